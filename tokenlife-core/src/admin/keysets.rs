//! Keyset operations: the history, publish, stage (canary or shadow), share, promote,
//! abort, release, revoke a key, rollback; the rollout and remote-keys status.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn kids(ks: &Keyset) -> Vec<String> {
    ks.keys().map(|k| k.kid().to_owned()).collect()
}

/// The candidate of a snapshot, as the admin API shows it.
pub(super) fn candidate_json(snap: &KeysetSnapshot) -> Value {
    match snap.candidate() {
        None => Value::Null,
        Some((ks, mode)) => {
            let mut v = json!({
                "mode": mode.as_str(),
                "label": ks.label(),
                "kids": kids(ks),
                "signing_kid": ks.signing_key().map(|k| k.kid()),
            });
            match mode {
                RolloutMode::Canary => v["share"] = json!(snap.canary_share()),
                _ => {
                    if let Some(st) = snap.shadow_stats() {
                        v["shadow"] =
                            json!({"sample": st.sample(), "regressions": st.regressions()});
                    }
                }
            }
            v
        }
    }
}

pub(super) fn snapshot_json(snap: &KeysetSnapshot, current: u64) -> Value {
    json!({
        "version": snap.version(),
        "current": snap.version() == current,
        "label": snap.label(),
        "created_at": snap.created_at().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "kids": kids(snap.active()),
        "signing_kid": snap.signing_kid(),
        "staged_kids": snap.staged().map(kids),
        "rollout": candidate_json(snap),
    })
}

pub(super) fn keysets(s: &AdminState) -> AdminResponse {
    let store = s.inner.validator.keyset_store();
    let current = store.current().version();
    let list: Vec<Value> = store
        .history()
        .iter()
        .map(|snap| snapshot_json(snap, current))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "current": current,
            "generation": store.generation(),
            "quarantined": store.quarantined(),
            "keysets": list,
        }),
        &[],
    )
}

pub(super) fn rollout(s: &AdminState) -> AdminResponse {
    let store = s.inner.validator.keyset_store();
    let snap = store.current();
    let policy = store.retirement();
    let grace = match policy {
        crate::keys::Retirement::Grace(d) | crate::keys::Retirement::RenewRequired(d) => {
            Some(d.as_secs())
        }
        _ => None,
    };
    let guard = s.inner.guard.as_ref().map(|g| {
        let (watching, last_good) = g.watching();
        json!({"watching": watching, "last_good": last_good, "rollbacks": g.rollbacks()})
    });
    let mut body = json!({
        "current": snap.version(),
        "generation": store.generation(),
        "label": snap.label(),
        "signing_kid": snap.signing_kid(),
        "rollout": candidate_json(&snap),
        "quarantined": store.quarantined(),
        "retirement": {"policy": policy.as_str(), "seconds": grace, "retired_kids": store.retired_kids()},
        "guard": guard,
    });
    let revoked = store.revoked_keys();
    if !revoked.is_empty() {
        body["revoked_keys"] = json!(revoked);
    }
    json_response(StatusCode::OK, &body, &[])
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishQuery {
    label: Option<String>,
    keep_signing: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct StageQuery {
    label: Option<String>,
    share: Option<f64>,
    mode: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ShareQuery {
    share: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PromoteQuery {
    version: Option<u64>,
    min_shadow_sample: Option<u64>,
}

/// A public JWKS from an admin request: every entry must load, and none may carry
/// private or symmetric key material.
pub(super) fn public_keyset(b: Body<'_>) -> Result<Keyset, ApiError> {
    let b = body(b)?;
    let text = std::str::from_utf8(b).map_err(|_| ApiError::bad("body is not UTF-8"))?;
    let ks = Keyset::from_jwks_json(text).map_err(|e| {
        let why = std::error::Error::source(&e)
            .map_or_else(|| e.to_string(), |cause| format!("{e}: {cause}"));
        if e.entry_error()
            .is_some_and(|k| k.kind() == KeyErrorKind::PrivateMaterial)
        {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::PrivateKeyMaterial,
                format!("bad JWKS: {why}"),
            )
        } else {
            ApiError::bad(format!("bad JWKS: {why}"))
        }
    })?;
    if let Some(w) = ks.warnings().first() {
        let error = if w.kind() == KeyErrorKind::PrivateMaterial {
            ErrorCode::PrivateKeyMaterial
        } else {
            ErrorCode::InvalidRequest
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            error,
            format!("JWKS entry refused: {w}"),
        ));
    }
    if ks.keys().any(|k| k.is_symmetric()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::PrivateKeyMaterial,
            "symmetric keys are not accepted over HTTP",
        ));
    }
    Ok(ks)
}

pub(super) fn with_label(ks: Keyset, label: Option<String>) -> Keyset {
    match label {
        Some(l) => ks.with_label(l),
        None => ks,
    }
}

pub(super) fn query<T: for<'de> Deserialize<'de>>(q: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("bad query: {e}")))
}

/// Publishes the public JWKS of the request. Keys from HTTP cannot sign, so the current
/// signing key is kept (`keep_signing=true`), or explicitly dropped (`keep_signing=false`:
/// a verify-only deploy, the issuer cannot sign until a rollback); with an issuer and
/// neither, the publish is refused (409 `no_signing_key`) rather than leaving `/token`
/// broken.
pub(super) fn publish(s: &AdminState, q: Option<&str>, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let q: PublishQuery = query(q)?;
    let ks = public_keyset(b)?;
    let store = s.inner.validator.keyset_store();
    let current = store.current();
    let ks = match (q.keep_signing, current.signing_key()) {
        (Some(true), Some(sk)) => {
            if ks.keys().any(|k| k.kid() == sk.kid()) {
                return Err(ApiError::bad("kid of the signing key is taken in the JWKS"));
            }
            let keys = ks.keys().cloned().chain([sk.clone()]);
            Keyset::new(keys)
                .and_then(|k| k.with_signing_kid(sk.kid()))
                .map_err(|e| ApiError::bad(e.to_string()))?
        }
        (None, Some(_)) if s.inner.issuer.is_some() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NoSigningKey,
                "this keyset would leave the issuer without a signing key: add \
                 ?keep_signing=true to keep the current one, or ?keep_signing=false to \
                 publish a verify-only keyset",
            ));
        }
        _ => ks,
    };
    let v = store.publish(with_label(ks, q.label));
    s.audit(AuditAction::KeysetPublished, format!("publish v{v}"));
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"version": v}),
        &[],
    ))
}

/// Stages the public JWKS of the request as a candidate: a canary (`share` percent of
/// clients, 0 by default: its keys verify for everyone, the current keys sign) or a
/// shadow (`mode=shadow`: judged beside the current keys, affecting no response).
pub(super) fn stage(s: &AdminState, q: Option<&str>, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    if q.is_some_and(|q| q.split('&').any(|p| p.starts_with("keep_signing="))) {
        return Err(ApiError::bad("keep_signing applies to publish only"));
    }
    let q: StageQuery = query(q)?;
    let mode = match q.mode.as_deref() {
        None | Some("canary") => RolloutMode::Canary,
        Some("shadow") => RolloutMode::Shadow,
        Some(_) => return Err(ApiError::bad("mode must be canary or shadow")),
    };
    if mode == RolloutMode::Shadow && q.share.is_some() {
        return Err(ApiError::bad("a shadow candidate takes no share"));
    }
    let ks = with_label(public_keyset(b)?, q.label);
    let store = s.inner.validator.keyset_store();
    let v = match mode {
        RolloutMode::Shadow => store.stage_shadow(ks),
        _ => store.stage_canary(ks, q.share.unwrap_or(0.0)),
    }
    .map_err(|e| keyset_error(&e))?;
    let share = store.current().canary_share();
    let detail = match mode {
        RolloutMode::Shadow => format!("stage v{v} shadow"),
        _ => format!("stage v{v} canary {share}%"),
    };
    s.audit(AuditAction::KeysetStaged, detail);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"version": v, "mode": mode.as_str()}),
        &[],
    ))
}

pub(super) fn share(s: &AdminState, q: Option<&str>) -> ApiResult {
    audit_ready(s)?;
    let q: ShareQuery = query(q)?;
    let share = q.share.ok_or_else(|| ApiError::bad("missing share"))?;
    let store = s.inner.validator.keyset_store();
    let v = store.set_share(share).map_err(|e| keyset_error(&e))?;
    s.audit(AuditAction::KeysetShare, format!("canary v{v} at {share}%"));
    Ok(json_response(
        StatusCode::OK,
        &json!({"version": v, "share": store.current().canary_share()}),
        &[],
    ))
}

pub(super) fn release(s: &AdminState, version: &str) -> ApiResult {
    audit_ready(s)?;
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::bad("version must be a number"))?;
    if !s.inner.validator.keyset_store().release(version) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownVersion,
            format!("keyset version {version} is not quarantined"),
        ));
    }
    s.audit(AuditAction::KeysetReleased, format!("release v{version}"));
    Ok(json_response(
        StatusCode::OK,
        &json!({"released": version}),
        &[],
    ))
}

pub(super) fn revoke_key(s: &AdminState, kid: &str) -> ApiResult {
    if kid.is_empty() || kid.len() > 256 || kid.chars().any(char::is_control) {
        return Err(ApiError::bad("kid must be 1 to 256 printable characters"));
    }
    keyset_change(
        s,
        AuditAction::KeyRevoked,
        &format!("revoke key {kid:?} (compromised); current"),
        |store| store.revoke_key(kid),
    )
}

pub(super) fn keyset_error(e: &KeysetError) -> ApiError {
    let (status, code) = match e.kind() {
        KeysetErrorKind::UnknownVersion => (StatusCode::NOT_FOUND, ErrorCode::UnknownVersion),
        KeysetErrorKind::KidConflict | KeysetErrorKind::KeyRevoked => {
            (StatusCode::CONFLICT, ErrorCode::KidConflict)
        }
        KeysetErrorKind::Quarantined => (StatusCode::CONFLICT, ErrorCode::Quarantined),
        KeysetErrorKind::InvalidShare => (StatusCode::BAD_REQUEST, ErrorCode::InvalidShare),
        KeysetErrorKind::RolloutInProgress => (StatusCode::CONFLICT, ErrorCode::RolloutInProgress),
        KeysetErrorKind::ShadowRegressions | KeysetErrorKind::ShadowSampleTooSmall => {
            (StatusCode::CONFLICT, ErrorCode::ShadowRegressions)
        }
        _ => (StatusCode::CONFLICT, ErrorCode::Conflict),
    };
    ApiError::new(status, code, e.to_string())
}

/// Refuses (503) an operation that would change state while its audit event could not be
/// queued (a stalled audit sink has filled the control lane): nothing changes unaudited,
/// and nothing waits on audit I/O.
pub(super) fn audit_ready(s: &AdminState) -> Result<(), ApiError> {
    match s.inner.validator.observer() {
        Some(o) if !o.audit_ready() => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the audit trail is not keeping up; nothing was changed",
        )),
        _ => Ok(()),
    }
}

/// A keyset change that names the version it leads to: change, audit, answer.
pub(super) fn keyset_change(
    s: &AdminState,
    action: AuditAction,
    verb: &str,
    change: impl FnOnce(&KeysetStore) -> Result<u64, KeysetError>,
) -> ApiResult {
    audit_ready(s)?;
    let v = change(s.inner.validator.keyset_store()).map_err(|e| keyset_error(&e))?;
    s.audit(action, format!("{verb} v{v}"));
    Ok(json_response(StatusCode::OK, &json!({"version": v}), &[]))
}

pub(super) fn promote(s: &AdminState, q: Option<&str>) -> ApiResult {
    let q: PromoteQuery = query(q)?;
    keyset_change(
        s,
        AuditAction::KeysetPromoted,
        "promote to",
        |store| match q.version {
            Some(v) => store.promote_version(v, q.min_shadow_sample),
            None => store.promote_checked(q.min_shadow_sample),
        },
    )
}

pub(super) fn rollback(s: &AdminState) -> ApiResult {
    keyset_change(s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback()
    })
}

pub(super) fn rollback_to(s: &AdminState, version: &str) -> ApiResult {
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::bad("version must be a number"))?;
    keyset_change(s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback_to(version).map(|()| version)
    })
}
