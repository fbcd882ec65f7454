//! The OAuth endpoints: JWKS, RFC 6749 `/token` (bounded concurrent grants), RFC 7009
//! `/revoke` (per-client quota), RFC 7662 `/introspect`, and the admin's `/tokens` mint.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn jwks(s: &AdminState) -> AdminResponse {
    let body = s.inner.validator.keyset_store().current().to_public_jwks();
    let mut res = http::Response::new(body.into_bytes());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    res
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

pub(super) fn issue_error(e: &IssueError) -> ApiError {
    ApiError::status(e.status(), e.oauth_error(), e.to_string())
}

pub(super) fn token_response(pair: &TokenPair) -> AdminResponse {
    json_response(
        StatusCode::OK,
        pair,
        &[
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
    )
}

pub(super) fn invalid_client(why: &str) -> ApiError {
    ApiError {
        challenge: Some(r#"Basic realm="token""#),
        ..ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidClient, why)
    }
}

/// The client a token request authenticates as (Basic, or `client_id` and
/// `client_secret` in the form): `Ok(None)` when it names no client at all.
pub(super) fn token_client<'a>(
    s: &'a AdminState,
    headers: &HeaderMap,
    form: &TokenForm,
    ip: IpAddr,
) -> Result<Option<&'a Client>, ApiError> {
    let presented = basic_credentials(headers).or_else(|| {
        form.client_id
            .as_ref()
            .map(|id| vec![(id.clone(), form.client_secret.clone().unwrap_or_default())])
    });
    let Some(presented) = presented else {
        return Ok(None);
    };
    let Some((id, _)) = presented.first() else {
        return Ok(None);
    };
    let bucket = s.inner.throttle.bucket(ip, &Identity::Id(id));
    if let Some(wait) = s.inner.throttle.blocked(bucket, s.now()) {
        return Err(ApiError::throttled(wait));
    }
    match presented
        .iter()
        .find_map(|(id, secret)| s.client(id, secret))
    {
        Some(c) => Ok(Some(c)),
        None => {
            s.auth_failed(bucket, AdminFailure::ClientAuth);
            Err(invalid_client("unknown client or bad secret"))
        }
    }
}

/// One of the bounded token-request slots; freed on drop.
pub(super) struct GrantSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for GrantSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

pub(super) fn grant_slot(s: &AdminState) -> Result<GrantSlot<'_>, ApiError> {
    let grants = &s.inner.grants;
    if grants.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= s.inner.max_grants {
        grants.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                "too many token requests in progress; retry shortly",
            )
        });
    }
    Ok(GrantSlot(grants))
}

pub(super) fn token(
    s: &AdminState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    b: Body<'_>,
) -> ApiResult {
    let _slot = grant_slot(s)?;
    let ip = peer.unwrap_or(SHARED_BUCKET);
    // The Basic identity, before the body is read (a form's client_id is checked after).
    if let (_, Some(id)) = claimed_identity(headers)
        && let Some(wait) = s
            .inner
            .throttle
            .blocked(s.inner.throttle.bucket(ip, &Identity::Id(&id)), s.now())
    {
        return Ok(throttled(wait));
    }
    let form: TokenForm = form_body(b)?;
    let issuer = s.inner.issuer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnsupportedGrantType,
            "no issuer configured",
        )
    })?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            let client = token_client(s, headers, &form, ip)?
                .ok_or_else(|| invalid_client("client authentication required"))?;
            // The requested scope must be within the client's.
            let scope = match (&form.scope, &client.scope) {
                (None, s) => s.clone(),
                (Some(req), Some(allowed)) => {
                    let allowed: Vec<&str> = allowed.split(' ').collect();
                    if req.split(' ').any(|r| !allowed.contains(&r)) {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::InvalidScope,
                            "scope exceeds the client's",
                        ));
                    }
                    Some(req.clone())
                }
                (Some(_), None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidScope,
                        "client has no scope",
                    ));
                }
            };
            let mut req = TokenRequest::subject(&client.id).client(&client.id);
            if let Some(scope) = scope {
                req = req.scope(scope);
            }
            let pair = issuer.issue_access(req).map_err(|e| issue_error(&e))?;
            Ok(token_response(&pair))
        }
        Some("refresh_token") => {
            // RFC 6749 §6: a client that has credentials authenticates, and the token
            // must have been issued to it; a token issued to no client renews without.
            let client = token_client(s, headers, &form, ip)?;
            let rt = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| ApiError::bad("missing refresh_token"))?;
            match issuer.renew_as(rt, client.map(|c| c.id.as_str())) {
                Ok(pair) => Ok(token_response(&pair)),
                Err(e) => Err(ApiError::status(e.status(), e.oauth_error(), e.to_string())),
            }
        }
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        )),
        None => Err(ApiError::bad("missing grant_type")),
    }
}

#[derive(Deserialize)]
pub(super) struct TokenOnly {
    token: Option<String>,
    // RFC 7009 §2.1: a hint only; the token's own shape decides its type.
    #[serde(rename = "token_type_hint")]
    _hint: Option<String>,
}

impl TokenOnly {
    /// The `token` field, which RFC 7009 and RFC 7662 both require.
    pub(super) fn token(&self) -> Result<&str, ApiError> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::bad("missing token"))
    }
}

pub(super) fn is_refresh_token(token: &str) -> bool {
    token.starts_with(Issuer::REFRESH_PREFIX)
}

pub(super) fn unauthorized_client(why: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::UnauthorizedClient, why)
}

/// RFC 7009. The token's own shape decides its type (a wrong hint is ignored, §2.1); an
/// invalid, expired or already revoked token needs nothing and gets 200 (§2.2); a client
/// may revoke only its own tokens; a valid access token that names neither `jti` nor a
/// family cannot be revoked alone (`unsupported_token_type`). The audit says what was
/// done. Reads go through `Validator::inspect`: no alert, no API counters.
pub(super) fn revoke(s: &AdminState, caller: &Caller, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let fp = s.inner.validator.fingerprint(token);
    let done = if is_refresh_token(token) {
        match &s.inner.issuer {
            Some(issuer) => match issuer.revoke_refresh(token, caller.client()) {
                Ok(true) => "refresh token family revoked",
                Ok(false) => "unknown refresh token, nothing to revoke",
                Err(e) if e.kind() == RenewErrorKind::WrongClient => {
                    return Err(unauthorized_client("token was not issued to this client"));
                }
                Err(e) => return Err(unavailable(&e)),
            },
            None => "no issuer, nothing to revoke",
        }
    } else {
        match s.inner.validator.inspect(token) {
            Ok(v) => revoke_access(s, &v, caller)?,
            Err(e) if e.kind() == ValidationErrorKind::Revoked => "already revoked",
            Err(e) if e.kind() == ValidationErrorKind::Expired => "expired, nothing to revoke",
            Err(_) => "invalid token, nothing to revoke",
        }
    };
    s.audit(
        AuditAction::ClientRequest,
        format!("revoke token {fp}: {done}"),
    );
    Ok(http::Response::new(Vec::new()))
}

/// Whether `client` may add one more revocation-list entry through RFC 7009: within its
/// quota for the window, and never into the tenth of the list kept for admin
/// revocations, refresh-token reuse and the fleet (security review 3, MEDIUM 9).
pub(super) fn client_revocation_allowed(s: &AdminState, client: &str) -> Result<(), ApiError> {
    let list = s.inner.validator.revocations();
    let reserve = list.capacity() / 10;
    if list.len().saturating_add(reserve) >= list.capacity() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the revocation list's room for client revocations is used up",
        ));
    }
    let (max, window) = s.inner.client_quota;
    let now = s.now();
    let mut map = s
        .inner
        .client_revocations
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Keyed by authenticated client ids only: as many entries as configured clients.
    let entry = map.entry(client.to_owned()).or_insert((now, 0));
    if entry.0.saturating_add(window) <= now {
        *entry = (now, 0);
    }
    if entry.1 >= max {
        let mut e = ApiError::throttled(entry.0.saturating_add(window) - now);
        e.description = "this client's revocation quota is used up; retry later".into();
        return Err(e);
    }
    entry.1 += 1;
    Ok(())
}

pub(super) fn revoke_access(
    s: &AdminState,
    v: &crate::validate::Verified,
    caller: &Caller,
) -> Result<&'static str, ApiError> {
    if let Some(client) = caller.client() {
        let owner = v
            .all_claims()
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if owner.as_deref() != Some(client) {
            return Err(unauthorized_client("token was not issued to this client"));
        }
    }
    let c = v.claims();
    let leeway = s.inner.validator.leeway().as_secs();
    let until = c.exp.unwrap_or(0).saturating_add(leeway).saturating_add(60);
    let list = s.inner.validator.revocations();
    if let Some(client) = caller.client()
        && (c.jti.is_some() || c.family.is_some())
    {
        client_revocation_allowed(s, client)?;
    }
    if let Some(jti) = &c.jti {
        list.revoke(Revocation {
            target: RevocationTarget::Jti(jti.clone()),
            until,
        })
        .map_err(|e| revocation_error(&e))?;
        return Ok("access token revoked by jti");
    }
    if let Some(fam) = &c.family {
        match &s.inner.issuer {
            Some(issuer) => {
                issuer.revoke_family(fam).map_err(|e| unavailable(&e))?;
            }
            None => list
                .revoke(Revocation {
                    target: RevocationTarget::Family(fam.clone()),
                    until,
                })
                .map_err(|e| revocation_error(&e))?,
        }
        return Ok("access token revoked by family");
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedTokenType,
        "the token has no jti nor family and cannot be revoked alone: revoke its subject",
    ))
}

pub(super) fn introspect(s: &AdminState, caller: &Caller, b: Body<'_>) -> ApiResult {
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let body = if is_refresh_token(token) {
        let info = match &s.inner.issuer {
            Some(issuer) if caller.is_admin() => {
                issuer.inspect_refresh(token).map_err(|e| unavailable(&e))?
            }
            _ => None,
        };
        match info {
            Some(r) => {
                let mut out = json!({"active": true, "token_type": "refresh_token",
                    "sub": r.subject, "exp": r.expires_at, "iat": r.issued_at});
                let o = out.as_object_mut().expect("object");
                if let Some(scope) = r.scope {
                    o.insert("scope".into(), scope.into());
                }
                if let Some(cid) = r.client {
                    o.insert("client_id".into(), cid.into());
                }
                out
            }
            None => json!({"active": false}),
        }
    } else {
        match s.inner.validator.inspect(token) {
            Ok(v) => access_introspection(&v),
            Err(_) => json!({"active": false}),
        }
    };
    s.audit_by(
        AuditAction::ClientRequest,
        format!("introspect token {}", s.inner.validator.fingerprint(token)),
        caller.actor(),
        None,
    );
    Ok(json_response(
        StatusCode::OK,
        &body,
        &[(header::CACHE_CONTROL, "no-store")],
    ))
}

pub(super) fn access_introspection(v: &crate::validate::Verified) -> Value {
    let c = v.claims();
    let mut out = json!({"active": true, "token_type": "access_token"});
    let o = out.as_object_mut().expect("object");
    for (k, val) in [
        ("sub", c.sub.clone().map(Value::from)),
        ("scope", c.scope.clone().map(Value::from)),
        ("iss", c.iss.clone().map(Value::from)),
        ("jti", c.jti.clone().map(Value::from)),
        ("exp", c.exp.map(Value::from)),
        ("iat", c.iat.map(Value::from)),
        ("nbf", c.nbf.map(Value::from)),
        (
            "aud",
            (!c.aud.is_empty()).then(|| Value::from(c.aud.clone())),
        ),
    ] {
        if let Some(val) = val {
            o.insert(k.into(), val);
        }
    }
    if let Some(cid) = v.all_claims().get("client_id") {
        o.insert("client_id".into(), cid.clone());
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MintBody {
    subject: String,
    scope: Option<String>,
    refresh: Option<bool>,
    client: Option<String>,
}

pub(super) fn mint(s: &AdminState, b: Body<'_>) -> ApiResult {
    audit_ready(s)?;
    let body: MintBody = json_body(b)?;
    let issuer = s.inner.issuer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no issuer configured",
        )
    })?;
    let mut req = TokenRequest::subject(&body.subject);
    if let Some(scope) = body.scope {
        req = req.scope(scope);
    }
    if let Some(client) = body.client {
        if !s.inner.clients.iter().any(|c| c.id == client) {
            return Err(ApiError::bad("unknown client"));
        }
        req = req.client(client);
    }
    let pair = if body.refresh.unwrap_or(true) {
        issuer.issue(req)
    } else {
        issuer.issue_access(req)
    }
    .map_err(|e| issue_error(&e))?;
    s.audit(AuditAction::Admin, "mint token".into());
    Ok(token_response(&pair))
}
