//! The admin's revocations: by `jti`, by subject (a cut-off), by refresh family; ids
//! checked, `until` bounded, each audited with its actor and target.

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JtiBody {
    jti: String,
    until: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubjectBody {
    subject: String,
    issued_before: Option<u64>,
    until: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FamilyBody {
    family: String,
    until: Option<u64>,
}

pub(super) fn revocation_error(e: &RevocationError) -> ApiError {
    match e.kind() {
        RevocationErrorKind::InvalidId => ApiError::bad("empty or over-long identifier"),
        RevocationErrorKind::Full => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::RevocationListFull,
            e.to_string(),
        ),
        _ => unavailable(e),
    }
}

/// Records an admin revocation: checked id and `until`, one audit event, one answer
/// (with the `until` in force).
/// The audit record of an admin revocation: what was revoked (the jti or family id; a
/// subject goes in the event's subject field, which the auditor's subject policy governs).
pub(super) fn audit_revocation(s: &AdminState, target: &RevocationTarget, until: u64) {
    match target {
        RevocationTarget::Jti(id) => s.audit(
            AuditAction::Admin,
            format!("revoke jti {id:?} until {until}"),
        ),
        RevocationTarget::Family(id) => s.audit(
            AuditAction::Admin,
            format!("revoke family {id:?} until {until}"),
        ),
        RevocationTarget::Subject {
            subject,
            issued_before,
        } => s.audit_by(
            AuditAction::Admin,
            format!("revoke subject, tokens issued up to {issued_before}, until {until}"),
            "admin",
            Some(subject),
        ),
    }
}

pub(super) fn apply_revocation(
    s: &AdminState,
    target: RevocationTarget,
    until: u64,
    what: &'static str,
) -> ApiResult {
    s.inner
        .validator
        .revocations()
        .revoke(Revocation {
            target: target.clone(),
            until,
        })
        .map_err(|e| revocation_error(&e))?;
    audit_revocation(s, &target, until);
    Ok(json_response(
        StatusCode::OK,
        &revoked(what, until, &target),
        &[],
    ))
}

/// The answer to a revocation: what, until when, and a subject's cut-off (what the
/// incident command proves against).
fn revoked(what: &str, until: u64, target: &RevocationTarget) -> serde_json::Value {
    match target {
        RevocationTarget::Subject { issued_before, .. } => {
            json!({"revoked": what, "until": until, "issued_before": issued_before})
        }
        _ => json!({"revoked": what, "until": until}),
    }
}

pub(super) fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > crate::revoke::RevocationList::MAX_ID_LEN {
        return Err(ApiError::bad("empty or over-long identifier"));
    }
    Ok(())
}

pub(super) fn revoke_jti(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: JtiBody = json_body(b)?;
    // Without an `until`, at least as long as any access token of the issuer can live
    // (plus leeway): a default shorter than the token's life would let it come back.
    let until = match (body.until, &s.inner.issuer) {
        (None, Some(issuer)) => {
            let life =
                issuer.access_lifetime() + s.inner.validator.leeway() + Duration::from_secs(60);
            s.until(None)?.max(s.now().saturating_add(life.as_secs()))
        }
        (asked, _) => s.until(asked)?,
    };
    apply_revocation(s, RevocationTarget::Jti(body.jti), until, "jti")
}

/// Every token of a subject issued at or before `issued_before` (default: now). With an
/// issuer, through it: refresh tokens are covered too, and the revocation is kept until
/// every token it covers has expired, whatever `until` asked.
pub(super) fn revoke_subject(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: SubjectBody = json_body(b)?;
    check_id(&body.subject)?;
    let now = s.now();
    let issued_before = body.issued_before.unwrap_or(now);
    // A cut-off beyond any token's life is a typo, and past SystemTime's range a panic.
    if issued_before > now.saturating_add(MAX_CUT_OFF_AHEAD_SECS) {
        return Err(ApiError::bad(
            "`issued_before` is more than ten years ahead",
        ));
    }
    let asked = s.until(body.until)?;
    let covered = match &s.inner.issuer {
        Some(issuer) => Some(
            issuer
                .revoke_subject(&body.subject, unix_time(issued_before))
                .map_err(|e| revocation_error(&e))?,
        ),
        None => None,
    };
    let target = RevocationTarget::Subject {
        subject: body.subject,
        issued_before,
    };
    keep_until(s, target, asked, covered, "subject")
}

/// A whole family. With an issuer, the one family-revocation path: refresh store and
/// revocation list, for the family's whole life.
pub(super) fn revoke_family(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: FamilyBody = json_body(b)?;
    check_id(&body.family)?;
    let asked = s.until(body.until)?;
    let covered = match &s.inner.issuer {
        Some(issuer) => Some(
            issuer
                .revoke_family(&body.family)
                .map_err(|e| unavailable(&e))?,
        ),
        None => None,
    };
    keep_until(
        s,
        RevocationTarget::Family(body.family),
        asked,
        covered,
        "family",
    )
}

/// How far ahead a subject revocation's cut-off may lie (ten years).
pub(super) const MAX_CUT_OFF_AHEAD_SECS: u64 = 10 * 365 * 86_400;

pub(super) fn unix_time(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

/// After the issuer revoked what it covers (until `covered`), records the revocation in
/// the list itself when no issuer did, or when `until` asked for longer.
pub(super) fn keep_until(
    s: &AdminState,
    target: RevocationTarget,
    asked: u64,
    covered: Option<std::time::SystemTime>,
    what: &'static str,
) -> ApiResult {
    let covered = covered.map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    match covered {
        Some(c) if c >= asked => {
            audit_revocation(s, &target, c);
            Ok(json_response(
                StatusCode::OK,
                &revoked(what, c, &target),
                &[],
            ))
        }
        _ => apply_revocation(s, target, asked, what),
    }
}
