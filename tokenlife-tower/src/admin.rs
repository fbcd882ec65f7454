//! The admin router (feature `axum`): revoke, introspect, keysets, JWKS, token endpoint.
//!
//! | method & path | what | auth |
//! | --- | --- | --- |
//! | `GET /.well-known/jwks.json` | current public keys | none |
//! | `POST /token` | RFC 6749: `client_credentials`, `refresh_token` grants | client (Basic or form) |
//! | `POST /revoke` | RFC 7009 revocation (form `token`, `token_type_hint`) | admin |
//! | `POST /introspect` | RFC 7662 introspection (form `token`) | admin |
//! | `POST /revocations/jti` | JSON `{"jti", "until"?}` | admin |
//! | `POST /revocations/subject` | JSON `{"subject", "issued_before"?, "until"?}` | admin |
//! | `POST /revocations/family` | JSON `{"family", "until"?}` | admin |
//! | `GET /keysets` | history, current marked | admin |
//! | `POST /keysets` | publish a public JWKS (`?label=…&keep_signing=true`) | admin |
//! | `POST /keysets/stage` | stage a public JWKS as canary | admin |
//! | `POST /keysets/promote` | promote the staged keyset | admin |
//! | `POST /keysets/rollback` | roll back one step | admin |
//! | `POST /keysets/rollback/{version}` | roll back to a version | admin |
//! | `POST /tokens` | JSON `{"subject", "scope"?, "refresh"?}`: mint a pair | admin |
//!
//! The admin credential is its own static key (`Authorization: Bearer <admin key>`),
//! never one of the tokens it manages. Errors are JSON `{"error", "error_description"}`
//! with RFC 6749 / 7009 / 7662 codes; a refused request changes no state. Every action is
//! an audit event when the validator has a monitor.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokenlife_core::audit::{AuditAction, AuditEvent};
use tokenlife_core::{
    IssueError, Issuer, KeyErrorKind, Keyset, KeysetError, KeysetSnapshot, Revocation,
    RevocationTarget, TokenRequest, Validator,
};

/// Default largest admin request body (64 KiB).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

struct Client {
    id: String,
    secret: blake3::Hash,
    scope: Option<String>,
}

struct Inner {
    validator: Validator,
    issuer: Option<Issuer>,
    admin_key: Option<blake3::Hash>,
    clients: Vec<Client>,
    max_body: usize,
    default_until: Duration,
}

/// What the admin router works on. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("issuer", &self.inner.issuer.is_some())
            .field("clients", &self.inner.clients.len())
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// Starts an admin state around `validator` (its keyset store and revocation list).
    pub fn builder(validator: Validator) -> AdminStateBuilder {
        AdminStateBuilder {
            inner: Inner {
                validator,
                issuer: None,
                admin_key: None,
                clients: Vec::new(),
                max_body: DEFAULT_MAX_BODY,
                default_until: Duration::from_secs(86_400),
            },
        }
    }
}

/// Builds an [`AdminState`].
#[must_use]
pub struct AdminStateBuilder {
    inner: Inner,
}

impl std::fmt::Debug for AdminStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminStateBuilder").finish_non_exhaustive()
    }
}

impl AdminStateBuilder {
    /// The issuer behind `/token` and `/tokens`.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.inner.issuer = Some(issuer);
        self
    }

    /// The admin credential (sent as `Authorization: Bearer <key>`). Without one every
    /// admin endpoint answers 401.
    pub fn admin_key(mut self, key: &str) -> Self {
        self.inner.admin_key = Some(blake3::hash(key.as_bytes()));
        self
    }

    /// A client allowed the `client_credentials` grant, with the scope it gets.
    pub fn client(mut self, id: &str, secret: &str, scope: Option<&str>) -> Self {
        self.inner.clients.push(Client {
            id: id.to_owned(),
            secret: blake3::hash(secret.as_bytes()),
            scope: scope.map(str::to_owned),
        });
        self
    }

    /// Largest request body (default 64 KiB); larger ones get 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.inner.max_body = bytes;
        self
    }

    /// How long a revocation without `until` is kept (default one day).
    pub fn default_until(mut self, d: Duration) -> Self {
        self.inner.default_until = d;
        self
    }

    /// The state.
    pub fn build(self) -> AdminState {
        AdminState {
            inner: Arc::new(self.inner),
        }
    }
}

/// The admin router. Mount it on its own listener (or under a prefix).
pub fn router(state: AdminState) -> Router {
    let max = state.inner.max_body;
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/token", post(token))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
        .route("/revocations/jti", post(revoke_jti))
        .route("/revocations/subject", post(revoke_subject))
        .route("/revocations/family", post(revoke_family))
        .route("/keysets", get(keysets).post(publish))
        .route("/keysets/stage", post(stage))
        .route("/keysets/promote", post(promote))
        .route("/keysets/rollback", post(rollback))
        .route("/keysets/rollback/{version}", post(rollback_to))
        .route("/tokens", post(mint))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

/// An RFC-style JSON error.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: &'static str,
    description: String,
    challenge: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    fn bad(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "error_description": self.description}));
        let mut res = (self.status, [(header::CACHE_CONTROL, "no-store")], body).into_response();
        if let Some(c) = self.challenge {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(c),
            );
        }
        res
    }
}

type ApiResult = Result<Response, ApiError>;

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let status = r.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        ApiError::new(status, error, r.body_text())
    })
}

fn json_body<T: for<'de> Deserialize<'de>>(
    b: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_json::from_slice(&b).map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
}

fn form_body<T: for<'de> Deserialize<'de>>(
    b: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_urlencoded::from_bytes(&b).map_err(|e| ApiError::bad(format!("bad form body: {e}")))
}

impl AdminState {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        match (&self.inner.admin_key, presented) {
            // blake3::Hash compares in constant time.
            (Some(key), Some(p)) if blake3::hash(p.as_bytes()) == *key => Ok(()),
            _ => Err(ApiError {
                challenge: Some(r#"Bearer realm="admin""#),
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "admin credential required",
                )
            }),
        }
    }

    fn now(&self) -> u64 {
        self.inner.validator.clock().unix_now()
    }

    fn audit(&self, action: AuditAction, detail: String) {
        if let Some(m) = self.inner.validator.monitor() {
            m.audit(
                AuditEvent::new(action, m.now())
                    .keyset_version(self.inner.validator.keyset_store().current().version())
                    .detail(detail),
            );
        }
    }

    /// A revocation's `until` (Unix seconds): given and in the future, or the default.
    fn until(&self, until: Option<u64>) -> Result<u64, ApiError> {
        let now = self.now();
        let until = until.unwrap_or(now + self.inner.default_until.as_secs());
        if until <= now {
            return Err(ApiError::bad("`until` must be in the future"));
        }
        Ok(until)
    }
}

async fn jwks(State(s): State<AdminState>) -> Response {
    let body = s.inner.validator.keyset_store().current().to_public_jwks();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn issue_error(e: &IssueError) -> ApiError {
    match e {
        IssueError::InvalidRequest(why) => ApiError::bad(*why),
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    }
}

fn token_response(pair: &tokenlife_core::TokenPair) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(pair),
    )
        .into_response()
}

async fn token(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let form: TokenForm = form_body(b)?;
    let issuer = s.inner.issuer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unsupported_grant_type",
            "no issuer configured",
        )
    })?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {
            let (id, secret) = basic_credentials(&headers)
                .or_else(|| Some((form.client_id.clone()?, form.client_secret.clone()?)))
                .ok_or_else(|| invalid_client("client authentication required"))?;
            let client = s
                .inner
                .clients
                .iter()
                .find(|c| c.id == id && c.secret == blake3::hash(secret.as_bytes()))
                .ok_or_else(|| invalid_client("unknown client or bad secret"))?;
            // The requested scope must be within the client's.
            let scope = match (&form.scope, &client.scope) {
                (None, s) => s.clone(),
                (Some(req), Some(allowed)) => {
                    let allowed: Vec<&str> = allowed.split(' ').collect();
                    if req.split(' ').any(|r| !allowed.contains(&r)) {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "scope exceeds the client's",
                        ));
                    }
                    Some(req.clone())
                }
                (Some(_), None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
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
            let rt = form
                .refresh_token
                .ok_or_else(|| ApiError::bad("missing refresh_token"))?;
            match issuer.renew(&rt) {
                Ok(pair) => Ok(token_response(&pair)),
                Err(e) => Err(ApiError::new(
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    e.oauth_error(),
                    e.to_string(),
                )),
            }
        }
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unsupported grant_type",
        )),
        None => Err(ApiError::bad("missing grant_type")),
    }
}

fn invalid_client(why: &str) -> ApiError {
    ApiError {
        challenge: Some(r#"Basic realm="token""#),
        ..ApiError::new(StatusCode::UNAUTHORIZED, "invalid_client", why)
    }
}

#[derive(Deserialize)]
struct TokenOnly {
    token: Option<String>,
    token_type_hint: Option<String>,
}

impl TokenOnly {
    /// The `token` field, which RFC 7009 and RFC 7662 both require.
    fn token(&self) -> Result<String, ApiError> {
        self.token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::bad("missing token"))
    }
}

async fn revoke(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let fp = s.inner.validator.fingerprint(&token);
    let is_refresh = form.token_type_hint.as_deref() == Some("refresh_token")
        || token.starts_with(tokenlife_core::REFRESH_PREFIX);
    if is_refresh && let Some(issuer) = &s.inner.issuer {
        issuer.revoke_refresh(&token, None).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                e.to_string(),
            )
        })?;
    } else if let Ok(v) = s.inner.validator.validate(&token) {
        // RFC 7009 §2.2: an invalid token needs no revoking and still gets 200.
        let c = v.claims();
        let until = std::time::UNIX_EPOCH + Duration::from_secs(c.exp.unwrap_or(0) + 300);
        if let Some(jti) = &c.jti {
            s.inner
                .validator
                .revocations()
                .revoke_jti(jti, until)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        e.to_string(),
                    )
                })?;
        }
    }
    s.audit(AuditAction::Admin, format!("revoke token {fp}"));
    Ok(StatusCode::OK.into_response())
}

async fn introspect(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let form: TokenOnly = form_body(b)?;
    let token = form.token()?;
    let body = match s.inner.validator.validate(&token) {
        Ok(v) => {
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
            if let Ok(Value::Object(all)) = v.deserialize_claims::<Value>()
                && let Some(cid) = all.get("client_id")
            {
                o.insert("client_id".into(), cid.clone());
            }
            out
        }
        Err(_) => json!({"active": false}),
    };
    s.audit(
        AuditAction::Admin,
        format!("introspect token {}", s.inner.validator.fingerprint(&token)),
    );
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JtiBody {
    jti: String,
    until: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    subject: String,
    issued_before: Option<u64>,
    until: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyBody {
    family: String,
    until: Option<u64>,
}

fn revocation_error(e: &tokenlife_core::RevocationError) -> ApiError {
    match e {
        tokenlife_core::RevocationError::InvalidId => {
            ApiError::bad("empty or over-long identifier")
        }
        tokenlife_core::RevocationError::Full => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "revocation_list_full",
            e.to_string(),
        ),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.to_string(),
        ),
    }
}

/// Records an admin revocation: validated `until`, one audit event, one response shape.
fn apply_revocation(
    s: &AdminState,
    target: RevocationTarget,
    until: Option<u64>,
    what: &'static str,
) -> ApiResult {
    let until = s.until(until)?;
    s.inner
        .validator
        .revocations()
        .revoke(Revocation { target, until })
        .map_err(|e| revocation_error(&e))?;
    s.audit(AuditAction::Admin, format!("revoke {what}"));
    Ok((StatusCode::OK, Json(json!({"revoked": what}))).into_response())
}

async fn revoke_jti(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let body: JtiBody = json_body(b)?;
    apply_revocation(&s, RevocationTarget::Jti(body.jti), body.until, "jti")
}

async fn revoke_subject(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let body: SubjectBody = json_body(b)?;
    let issued_before = body.issued_before.unwrap_or(s.now() + 1);
    apply_revocation(
        &s,
        RevocationTarget::Subject {
            subject: body.subject,
            issued_before,
        },
        body.until,
        "subject",
    )
}

async fn revoke_family(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let body: FamilyBody = json_body(b)?;
    apply_revocation(
        &s,
        RevocationTarget::Family(body.family),
        body.until,
        "family",
    )
}

fn snapshot_json(snap: &KeysetSnapshot, current: u64) -> Value {
    let kids = |ks: &Keyset| ks.keys().map(|k| k.kid().to_owned()).collect::<Vec<_>>();
    json!({
        "version": snap.version(),
        "current": snap.version() == current,
        "label": snap.label(),
        "created_at": snap.created_at().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "kids": kids(snap.active()),
        "signing_kid": snap.signing_kid(),
        "staged_kids": snap.staged().map(kids),
    })
}

async fn keysets(State(s): State<AdminState>, headers: HeaderMap) -> ApiResult {
    s.authorize(&headers)?;
    let store = s.inner.validator.keyset_store();
    let current = store.current().version();
    let list: Vec<Value> = store
        .history()
        .iter()
        .map(|snap| snapshot_json(snap, current))
        .collect();
    Ok(
        Json(json!({"current": current, "generation": store.generation(), "keysets": list}))
            .into_response(),
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PublishQuery {
    label: Option<String>,
    keep_signing: Option<bool>,
}

/// A public JWKS from an admin request: every entry must load, and none may carry
/// private or symmetric key material.
fn public_keyset(
    uri: &Uri,
    b: Result<Bytes, BytesRejection>,
    current: &KeysetSnapshot,
) -> Result<Keyset, ApiError> {
    let q: PublishQuery = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("bad query: {e}")))?;
    let b = body(b)?;
    let text = std::str::from_utf8(&b).map_err(|_| ApiError::bad("body is not UTF-8"))?;
    let ks = Keyset::from_jwks_json(text).map_err(|e| {
        let cause = std::error::Error::source(&e);
        let why = cause.map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
        let private = cause
            .and_then(|c| c.downcast_ref::<tokenlife_core::KeyError>())
            .is_some_and(|k| k.kind() == KeyErrorKind::PrivateMaterial);
        if private {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "private_key_material",
                format!("bad JWKS: {why}"),
            )
        } else {
            ApiError::bad(format!("bad JWKS: {why}"))
        }
    })?;
    if let Some(w) = ks.warnings().first() {
        let error = if w.kind() == KeyErrorKind::PrivateMaterial {
            "private_key_material"
        } else {
            "invalid_request"
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
            "private_key_material",
            "symmetric keys are not accepted over HTTP",
        ));
    }
    let mut keys: Vec<_> = ks.keys().cloned().collect();
    let mut signing = None;
    if q.keep_signing == Some(true)
        && let Some(sk) = current.signing_key()
    {
        if keys.iter().any(|k| k.kid() == sk.kid()) {
            return Err(ApiError::bad("kid of the signing key is taken in the JWKS"));
        }
        signing = Some(sk.kid().to_owned());
        keys.push(sk.clone());
    }
    let mut out = Keyset::new(keys).map_err(|e| ApiError::bad(e.to_string()))?;
    if let Some(kid) = signing {
        out = out
            .with_signing_kid(&kid)
            .map_err(|e| ApiError::bad(e.to_string()))?;
    }
    Ok(match q.label {
        Some(l) => out.with_label(l),
        None => out,
    })
}

/// Publishes (or, as a canary, stages) the public JWKS of the request.
fn install_keyset(
    s: &AdminState,
    headers: &HeaderMap,
    uri: &Uri,
    b: Result<Bytes, BytesRejection>,
    canary: bool,
) -> ApiResult {
    s.authorize(headers)?;
    let store = s.inner.validator.keyset_store();
    let ks = public_keyset(uri, b, &store.current())?;
    let (v, action, verb) = if canary {
        (
            store.stage(ks).map_err(|e| keyset_error(&e))?,
            AuditAction::KeysetStaged,
            "stage",
        )
    } else {
        (store.publish(ks), AuditAction::KeysetPublished, "publish")
    };
    s.audit(action, format!("{verb} v{v}"));
    Ok((StatusCode::CREATED, Json(json!({"version": v}))).into_response())
}

async fn publish(
    State(s): State<AdminState>,
    headers: HeaderMap,
    uri: Uri,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    install_keyset(&s, &headers, &uri, b, false)
}

async fn stage(
    State(s): State<AdminState>,
    headers: HeaderMap,
    uri: Uri,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    install_keyset(&s, &headers, &uri, b, true)
}

fn keyset_error(e: &KeysetError) -> ApiError {
    match e {
        KeysetError::UnknownVersion(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_version", e.to_string())
        }
        _ => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
    }
}

/// A keyset change that names the version it leads to: change, audit, answer.
fn keyset_change(
    s: &AdminState,
    action: AuditAction,
    verb: &str,
    change: impl FnOnce(&tokenlife_core::KeysetStore) -> Result<u64, KeysetError>,
) -> ApiResult {
    let v = change(s.inner.validator.keyset_store()).map_err(|e| keyset_error(&e))?;
    s.audit(action, format!("{verb} v{v}"));
    Ok(Json(json!({"version": v})).into_response())
}

async fn promote(State(s): State<AdminState>, headers: HeaderMap) -> ApiResult {
    s.authorize(&headers)?;
    keyset_change(&s, AuditAction::KeysetPromoted, "promote to", |store| {
        store.promote()
    })
}

async fn rollback(State(s): State<AdminState>, headers: HeaderMap) -> ApiResult {
    s.authorize(&headers)?;
    keyset_change(&s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback()
    })
}

async fn rollback_to(
    State(s): State<AdminState>,
    headers: HeaderMap,
    version: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let Path(version) = version.map_err(|_| ApiError::bad("version must be a number"))?;
    keyset_change(&s, AuditAction::KeysetRollback, "rollback to", |store| {
        store.rollback_to(version).map(|()| version)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    subject: String,
    scope: Option<String>,
    refresh: Option<bool>,
}

async fn mint(
    State(s): State<AdminState>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    s.authorize(&headers)?;
    let body: MintBody = json_body(b)?;
    let issuer =
        s.inner.issuer.as_ref().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no issuer configured")
        })?;
    let mut req = TokenRequest::subject(&body.subject);
    if let Some(scope) = body.scope {
        req = req.scope(scope);
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
