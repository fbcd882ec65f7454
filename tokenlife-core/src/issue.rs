//! [`Issuer`]: mint access tokens and rotate refresh tokens with reuse detection.
//!
//! Access tokens are JWTs signed with the current snapshot's signing key (its `kid` in the
//! header). Refresh tokens are opaque (`tlr_` + 256 random bits), single-use, and belong
//! to a *family*: [`Issuer::renew`] retires the presented one and returns a new pair in
//! the same family. Presenting a retired refresh token again revokes the whole family at
//! once (its refresh tokens and, through the shared [`RevocationList`], its access tokens)
//! and raises an alert: the refresh-token rotation rule of RFC 9700 §4.14.2.
//!
//! Only a hash of each refresh token is stored, behind the [`RefreshStore`] trait.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tokenlife_core::{Algorithm, Issuer, Keyset, KeysetStore, RenewErrorKind, TokenRequest, Validator, testing};
//!
//! let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)])?);
//! let validator = Validator::builder(store.clone()).issuer("https://auth.example.com").audience("api://orders").build()?;
//! let issuer = Issuer::builder(store.clone())
//!     .issuer("https://auth.example.com")
//!     .audience("api://orders")
//!     .access_ttl(Duration::from_secs(900))
//!     .refresh_ttl(Duration::from_secs(30 * 86400))
//!     .revocations(validator.revocations().clone())
//!     .build()?;
//!
//! let pair = issuer.issue(TokenRequest::subject("user-42").scope("orders:read"))?;
//! assert_eq!(validator.validate(&pair.access_token)?.claims().sub.as_deref(), Some("user-42"));
//!
//! let old_refresh = pair.refresh_token.clone().unwrap();
//! let renewed = issuer.renew(&old_refresh)?;                  // the old one is retired
//! let reuse = issuer.renew(&old_refresh).unwrap_err();        // presented again: reuse
//! assert_eq!(reuse.kind(), RenewErrorKind::Reused);
//! // The whole family is gone: the newest refresh token and its access token too.
//! assert_eq!(issuer.renew(renewed.refresh_token.as_deref().unwrap()).unwrap_err().kind(), RenewErrorKind::Revoked);
//! assert!(validator.validate(&renewed.access_token).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache;
use serde::Serialize;

use crate::alert::AlertKind;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::{Clock, SystemClock, from_unix_secs};
use crate::error::ConfigError;
use crate::keyset::KeysetStore;
use crate::lifecycle::{TokenKind, TokenState};
use crate::monitor::Monitor;
use crate::revoke::RevocationList;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Prefix of every refresh token.
pub const REFRESH_PREFIX: &str = "tlr_";
const REFRESH_LEN: usize = REFRESH_PREFIX.len() + 43;
/// Claims a [`TokenRequest`] may not set: the issuer owns them.
pub const RESERVED_CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "fam",
    "client_id",
];

fn random_b64(bytes: usize) -> Result<String, BoxError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Box::new(e) as BoxError)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// What to put in a token.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    subject: String,
    scope: Option<String>,
    client: Option<String>,
    claims: serde_json::Map<String, serde_json::Value>,
}

impl TokenRequest {
    /// A token for this subject.
    pub fn subject(sub: impl Into<String>) -> Self {
        Self {
            subject: sub.into(),
            ..Self::default()
        }
    }

    /// Space-separated scopes.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The OAuth client the token is for (`client_id` claim).
    #[must_use]
    pub fn client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// A custom claim. Registered claims ([`RESERVED_CLAIMS`]) are refused at issue.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }
}

/// What the issuer hands out (the body of an RFC 6749 token response).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TokenPair {
    /// The signed access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token, if one was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A stored refresh token (by hash; the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The family id.
    pub family: String,
    /// The subject.
    pub subject: String,
    /// The scope.
    pub scope: Option<String>,
    /// The client.
    pub client: Option<String>,
    /// Custom claims carried to every renewed access token.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Whether it has been used (retired).
    pub used: bool,
}

/// Where refresh-token state lives. The in-memory [`MemoryRefreshStore`] is the default;
/// fleet mode adds a shared one.
pub trait RefreshStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new record under the token's hash.
    ///
    /// # Errors
    /// Storage failure.
    fn insert(&self, id: [u8; 32], record: RefreshRecord) -> Result<(), BoxError>;
    /// The record, if any.
    ///
    /// # Errors
    /// Storage failure.
    fn get(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, BoxError>;
    /// Atomically marks the record used; returns it as it was before (so of two
    /// concurrent renewals exactly one sees `used == false`).
    ///
    /// # Errors
    /// Storage failure.
    fn mark_used(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, BoxError>;
    /// Revokes a family until `until` (Unix seconds).
    ///
    /// # Errors
    /// Storage failure.
    fn revoke_family(&self, family: &str, until: u64) -> Result<(), BoxError>;
    /// Whether the family is revoked.
    ///
    /// # Errors
    /// Storage failure.
    fn is_family_revoked(&self, family: &str) -> Result<bool, BoxError>;
}

struct RecordExpiry;

impl Expiry<[u8; 32], (RefreshRecord, Duration)> for RecordExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        v: &(RefreshRecord, Duration),
        _: Instant,
    ) -> Option<Duration> {
        Some(v.1)
    }
    fn expire_after_update(
        &self,
        _: &[u8; 32],
        _: &(RefreshRecord, Duration),
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        left
    }
}

/// Bounded, expiring in-memory refresh store (moka).
pub struct MemoryRefreshStore {
    records: Cache<[u8; 32], (RefreshRecord, Duration)>,
    families: Cache<String, u64>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshStore")
            .field("records", &self.records.entry_count())
            .finish()
    }
}

impl MemoryRefreshStore {
    /// A store holding at most `capacity` refresh tokens (retired ones included, until
    /// they expire: reuse must stay detectable).
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            records: Cache::builder()
                .max_capacity(capacity)
                .expire_after(RecordExpiry)
                .build(),
            families: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(400 * 86400))
                .build(),
            clock,
        }
    }
}

impl RefreshStore for MemoryRefreshStore {
    fn insert(&self, id: [u8; 32], record: RefreshRecord) -> Result<(), BoxError> {
        let ttl = Duration::from_secs(record.expires_at.saturating_sub(self.clock.unix_now()) + 60);
        self.records.insert(id, (record, ttl));
        Ok(())
    }

    fn get(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, BoxError> {
        Ok(self.records.get(id).map(|(r, _)| r))
    }

    fn mark_used(&self, id: &[u8; 32]) -> Result<Option<RefreshRecord>, BoxError> {
        let mut before = None;
        self.records
            .entry(*id)
            .and_compute_with(|entry| match entry {
                Some(e) => {
                    let (rec, ttl) = e.into_value();
                    before = Some(rec.clone());
                    Op::Put((RefreshRecord { used: true, ..rec }, ttl))
                }
                None => Op::Nop,
            });
        Ok(before)
    }

    fn revoke_family(&self, family: &str, until: u64) -> Result<(), BoxError> {
        self.families.insert(family.to_owned(), until);
        Ok(())
    }

    fn is_family_revoked(&self, family: &str) -> Result<bool, BoxError> {
        let now = self.clock.unix_now();
        Ok(self.families.get(family).is_some_and(|until| until >= now))
    }
}

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The current keyset has no signing key.
    #[error("the current keyset has no signing key")]
    NoSigningKey,
    /// The request asked for a registered claim or an empty subject.
    #[error("invalid token request: {0}")]
    InvalidRequest(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Signing(#[source] jsonwebtoken::errors::Error),
    /// The refresh store or the random source failed.
    #[error("refresh store failed")]
    Store(#[source] BoxError),
}

/// Why a renewal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RenewErrorKind {
    /// Not a refresh token of this shape; no lookup was made.
    Malformed,
    /// Unknown here (never issued, foreign, or forgotten after expiry).
    Unknown,
    /// Past its expiry.
    Expired,
    /// Its family was revoked.
    Revoked,
    /// It had already been used: the family has now been revoked.
    Reused,
    /// The refresh store failed.
    Store,
    /// Issuing the new pair failed.
    Issue,
}

/// A renewal was refused. All kinds are the RFC 6749 `invalid_grant` error (but `Store`
/// and `Issue`, which are `server_error`).
#[derive(Debug)]
pub struct RenewError {
    kind: RenewErrorKind,
    source: Option<BoxError>,
}

impl RenewError {
    fn new(kind: RenewErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// Why.
    pub fn kind(&self) -> RenewErrorKind {
        self.kind
    }

    /// The RFC 6749 §5.2 error code.
    pub fn oauth_error(&self) -> &'static str {
        match self.kind {
            RenewErrorKind::Store | RenewErrorKind::Issue => "server_error",
            _ => "invalid_grant",
        }
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            RenewErrorKind::Malformed => "malformed",
            RenewErrorKind::Unknown => "unknown",
            RenewErrorKind::Expired => "expired",
            RenewErrorKind::Revoked => "revoked",
            RenewErrorKind::Reused => "refresh_reuse",
            RenewErrorKind::Store => "store",
            RenewErrorKind::Issue => "issue",
        }
    }
}

impl fmt::Display for RenewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refresh token refused: {}", self.reason())
    }
}

impl StdError for RenewError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fam: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

/// Mints and renews tokens. Cheap to clone.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

struct Inner {
    store: KeysetStore,
    iss: String,
    aud: String,
    access_ttl: u64,
    refresh_ttl: u64,
    clock: Arc<dyn Clock>,
    refresh: Arc<dyn RefreshStore>,
    revocations: Option<RevocationList>,
    monitor: Option<Monitor>,
    jti_prefix: String,
    jti_counter: AtomicU64,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.inner.iss)
            .field("aud", &self.inner.aud)
            .field("access_ttl", &self.inner.access_ttl)
            .finish_non_exhaustive()
    }
}

/// Whether `token` has the shape of a refresh token (prefix, length, base64url), checked
/// before any store lookup.
fn is_refresh_shaped(token: &str) -> bool {
    token.len() == REFRESH_LEN
        && token.starts_with(REFRESH_PREFIX)
        && token[REFRESH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A refresh-store failure as a renewal error.
fn store_err(e: BoxError) -> RenewError {
    RenewError {
        kind: RenewErrorKind::Store,
        source: Some(e),
    }
}

fn refresh_id(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Issuer {
    /// Starts an issuer that signs with `store`'s current signing key.
    pub fn builder(store: KeysetStore) -> IssuerBuilder {
        IssuerBuilder {
            store,
            iss: None,
            aud: None,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 86400),
            clock: Arc::new(SystemClock),
            refresh: None,
            revocations: None,
            monitor: None,
            capacity: 1_000_000,
        }
    }

    /// The access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.access_ttl)
    }

    fn check(req: &TokenRequest) -> Result<(), IssueError> {
        if req.subject.is_empty() {
            return Err(IssueError::InvalidRequest("empty subject"));
        }
        if req
            .claims
            .keys()
            .any(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(IssueError::InvalidRequest(
                "registered claim in custom claims",
            ));
        }
        Ok(())
    }

    fn next_jti(&self) -> String {
        let n = self.inner.jti_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}{n:x}", self.inner.jti_prefix)
    }

    fn sign_access(
        &self,
        req: &TokenRequest,
        family: Option<&str>,
        now: u64,
    ) -> Result<(String, u64), IssueError> {
        let inner = &*self.inner;
        let snap = inner.store.load();
        let key = snap.signing_key().ok_or(IssueError::NoSigningKey)?;
        let enc = key.encoding_key().ok_or(IssueError::NoSigningKey)?;
        let mut header = Header::new(key.algorithm());
        header.kid = Some(key.kid().to_owned());
        let jti = self.next_jti();
        let claims = AccessClaims {
            iss: &inner.iss,
            sub: &req.subject,
            aud: &inner.aud,
            iat: now,
            nbf: now,
            exp: now + inner.access_ttl,
            jti: &jti,
            scope: req.scope.as_deref(),
            fam: family,
            client_id: req.client.as_deref(),
            extra: &req.claims,
        };
        let token = jsonwebtoken::encode(&header, &claims, enc).map_err(IssueError::Signing)?;
        Ok((token, snap.version()))
    }

    /// An access token only (the client-credentials grant).
    ///
    /// # Errors
    /// See [`IssueError`].
    pub fn issue_access(&self, req: TokenRequest) -> Result<TokenPair, IssueError> {
        Self::check(&req)?;
        let now = self.inner.clock.unix_now();
        let (access, version) = self.sign_access(&req, None, now)?;
        self.issued_event(&access, None, &req, version);
        Ok(TokenPair {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.inner.access_ttl,
            refresh_token: None,
            scope: req.scope,
        })
    }

    /// An access token and a refresh token starting a new family.
    ///
    /// # Errors
    /// See [`IssueError`].
    pub fn issue(&self, req: TokenRequest) -> Result<TokenPair, IssueError> {
        Self::check(&req)?;
        let family = random_b64(16).map_err(IssueError::Store)?;
        self.issue_in_family(req, family)
    }

    fn issue_in_family(&self, req: TokenRequest, family: String) -> Result<TokenPair, IssueError> {
        let inner = &*self.inner;
        let now = inner.clock.unix_now();
        let (access, version) = self.sign_access(&req, Some(&family), now)?;
        let refresh = format!(
            "{REFRESH_PREFIX}{}",
            random_b64(32).map_err(IssueError::Store)?
        );
        let record = RefreshRecord {
            family,
            subject: req.subject.clone(),
            scope: req.scope.clone(),
            client: req.client.clone(),
            claims: req.claims.clone(),
            issued_at: now,
            expires_at: now + inner.refresh_ttl,
            used: false,
        };
        inner
            .refresh
            .insert(refresh_id(&refresh), record)
            .map_err(IssueError::Store)?;
        self.issued_event(&access, Some(&refresh), &req, version);
        Ok(TokenPair {
            access_token: access,
            token_type: "Bearer",
            expires_in: inner.access_ttl,
            refresh_token: Some(refresh),
            scope: req.scope,
        })
    }

    fn issued_event(&self, access: &str, refresh: Option<&str>, req: &TokenRequest, version: u64) {
        let Some(m) = &self.inner.monitor else { return };
        m.transition(TokenKind::Access, None, TokenState::Issued);
        m.audit(
            AuditEvent::new(AuditAction::TokenIssued, m.now())
                .kind(TokenKind::Access)
                .fingerprint(m.fingerprint(access))
                .keyset_version(version)
                .subject(Some(&req.subject))
                .client(req.client.as_deref()),
        );
        if let Some(r) = refresh {
            m.transition(TokenKind::Refresh, None, TokenState::Issued);
            m.audit(
                AuditEvent::new(AuditAction::TokenIssued, m.now())
                    .kind(TokenKind::Refresh)
                    .fingerprint(m.fingerprint(r))
                    .subject(Some(&req.subject))
                    .client(req.client.as_deref()),
            );
        }
    }

    fn refused(&self, token: &str, err: RenewError, rec: Option<&RefreshRecord>) -> RenewError {
        if let Some(m) = &self.inner.monitor {
            m.audit(
                AuditEvent::new(AuditAction::RenewFailed, m.now())
                    .failure(err.reason())
                    .kind(TokenKind::Refresh)
                    .fingerprint(m.fingerprint(token))
                    .subject(rec.map(|r| r.subject.as_str()))
                    .client(rec.and_then(|r| r.client.as_deref())),
            );
            if err.kind == RenewErrorKind::Expired {
                m.transition(
                    TokenKind::Refresh,
                    Some(TokenState::Issued),
                    TokenState::Expired,
                );
            }
        }
        err
    }

    /// Rotates a refresh token: the presented one is retired and a new access + refresh
    /// pair in the same family is returned. A retired token presented again revokes the
    /// family (reuse detection) and returns [`RenewErrorKind::Reused`].
    ///
    /// # Errors
    /// A [`RenewError`]; every kind but `Reused` leaves all state as it was.
    pub fn renew(&self, refresh_token: &str) -> Result<TokenPair, RenewError> {
        let inner = &*self.inner;
        if !is_refresh_shaped(refresh_token) {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Malformed),
                None,
            ));
        }
        let id = refresh_id(refresh_token);
        let Some(rec) = inner.refresh.get(&id).map_err(store_err)? else {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Unknown),
                None,
            ));
        };
        if rec.used {
            return Err(self.reuse(refresh_token, &rec));
        }
        if inner
            .refresh
            .is_family_revoked(&rec.family)
            .map_err(store_err)?
        {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Revoked),
                Some(&rec),
            ));
        }
        let now = inner.clock.unix_now();
        if now > rec.expires_at {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Expired),
                Some(&rec),
            ));
        }
        // The atomic step: of two concurrent renewals, one wins and the other is reuse.
        match inner.refresh.mark_used(&id).map_err(store_err)? {
            Some(before) if !before.used => {}
            Some(before) => return Err(self.reuse(refresh_token, &before)),
            None => {
                return Err(self.refused(
                    refresh_token,
                    RenewError::new(RenewErrorKind::Unknown),
                    None,
                ));
            }
        }
        let req = TokenRequest {
            subject: rec.subject.clone(),
            scope: rec.scope.clone(),
            client: rec.client.clone(),
            claims: rec.claims.clone(),
        };
        let pair = self
            .issue_in_family(req, rec.family.clone())
            .map_err(|e| RenewError {
                kind: RenewErrorKind::Issue,
                source: Some(Box::new(e)),
            })?;
        if let Some(m) = &inner.monitor {
            m.transition(
                TokenKind::Refresh,
                Some(TokenState::Issued),
                TokenState::Renewed,
            );
            m.audit(
                AuditEvent::new(AuditAction::TokenRenewed, m.now())
                    .kind(TokenKind::Refresh)
                    .fingerprint(m.fingerprint(refresh_token))
                    .subject(Some(&rec.subject))
                    .client(rec.client.as_deref()),
            );
        }
        Ok(pair)
    }

    /// Reuse of a retired refresh token: revoke the family everywhere, alert.
    fn reuse(&self, token: &str, rec: &RefreshRecord) -> RenewError {
        let inner = &*self.inner;
        let mut err = RenewError::new(RenewErrorKind::Reused);
        if let Err(e) = self.revoke_family_everywhere(&rec.family) {
            err.source = e.source;
        }
        if let Some(m) = &inner.monitor {
            m.refresh_reuse();
            m.transition(
                TokenKind::Refresh,
                Some(TokenState::Renewed),
                TokenState::Revoked,
            );
            let base = AuditEvent::new(AuditAction::Alert, m.now())
                .failure("refresh_reuse")
                .kind(TokenKind::Refresh)
                .fingerprint(m.fingerprint(token))
                .subject(Some(&rec.subject))
                .client(rec.client.as_deref());
            m.alert(AlertKind::RefreshTokenReuse, base);
            m.revoked(
                TokenKind::Refresh,
                "refresh_reuse",
                inner.revocations.as_ref().map_or(0, RevocationList::len),
            );
        }
        err
    }

    /// Revokes a family in the refresh store and, through the shared revocation list, its
    /// access tokens, for long enough to outlive every token of the family. Both are
    /// attempted even if the first fails; the first error is returned.
    fn revoke_family_everywhere(&self, family: &str) -> Result<(), RenewError> {
        let inner = &*self.inner;
        let until = inner.clock.unix_now() + inner.refresh_ttl.max(inner.access_ttl) + 60;
        let store = inner.refresh.revoke_family(family, until);
        let list = match &inner.revocations {
            Some(list) => list
                .revoke_family(family, from_unix_secs(until))
                .map_err(|e| Box::new(e) as BoxError),
            None => Ok(()),
        };
        store.and(list).map_err(|e| RenewError {
            kind: RenewErrorKind::Store,
            source: Some(e),
        })
    }

    /// Revokes the family of a refresh token (RFC 7009 for refresh tokens). Unknown or
    /// malformed tokens are ignored, as RFC 7009 §2.2 asks.
    ///
    /// # Errors
    /// Storage failure.
    pub fn revoke_refresh(&self, refresh_token: &str) -> Result<bool, RenewError> {
        let inner = &*self.inner;
        if !is_refresh_shaped(refresh_token) {
            return Ok(false);
        }
        let Some(rec) = inner
            .refresh
            .get(&refresh_id(refresh_token))
            .map_err(store_err)?
        else {
            return Ok(false);
        };
        self.revoke_family_everywhere(&rec.family)?;
        if let Some(m) = &inner.monitor {
            m.transition(
                TokenKind::Refresh,
                Some(TokenState::Issued),
                TokenState::Revoked,
            );
            m.revoked(
                TokenKind::Refresh,
                "family",
                inner.revocations.as_ref().map_or(0, RevocationList::len),
            );
        }
        Ok(true)
    }
}

/// Builds an [`Issuer`].
#[must_use]
#[derive(Debug)]
pub struct IssuerBuilder {
    store: KeysetStore,
    iss: Option<String>,
    aud: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    clock: Arc<dyn Clock>,
    refresh: Option<Arc<dyn RefreshStore>>,
    revocations: Option<RevocationList>,
    monitor: Option<Monitor>,
    capacity: u64,
}

impl IssuerBuilder {
    /// The `iss` claim.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// The `aud` claim.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud = Some(aud.into());
        self
    }

    /// Access-token lifetime (default 15 min).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime (default 30 days).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// The clock for `iat`/`exp`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where refresh state lives (default: a [`MemoryRefreshStore`] on the issuer's clock).
    pub fn refresh_store(mut self, store: impl RefreshStore) -> Self {
        self.refresh = Some(Arc::new(store));
        self
    }

    /// Capacity of the default in-memory refresh store (default 1 000 000).
    pub fn refresh_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The revocation list a reused family is written to (share the validator's, so the
    /// family's access tokens die too).
    pub fn revocations(mut self, list: RevocationList) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Metrics, lifecycle, audit and alerts.
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Builds the issuer.
    ///
    /// # Errors
    /// [`ConfigError::MissingIssuer`] / [`ConfigError::MissingAudience`];
    /// [`ConfigError::InvalidValue`] for a zero TTL.
    pub fn build(self) -> Result<Issuer, ConfigError> {
        let iss = self.iss.ok_or(ConfigError::MissingIssuer)?;
        let aud = self.aud.ok_or(ConfigError::MissingAudience)?;
        if self.access_ttl.as_secs() == 0 {
            return Err(ConfigError::InvalidValue("access_ttl"));
        }
        if self.refresh_ttl.as_secs() == 0 {
            return Err(ConfigError::InvalidValue("refresh_ttl"));
        }
        crate::crypto::ensure_provider();
        let refresh = self.refresh.unwrap_or_else(|| {
            Arc::new(MemoryRefreshStore::new(self.capacity, self.clock.clone()))
        });
        let prefix = random_b64(9).map_err(|_| ConfigError::InvalidValue("random source"))?;
        Ok(Issuer {
            inner: Arc::new(Inner {
                store: self.store,
                iss,
                aud,
                access_ttl: self.access_ttl.as_secs(),
                refresh_ttl: self.refresh_ttl.as_secs(),
                clock: self.clock,
                refresh,
                revocations: self.revocations,
                monitor: self.monitor,
                jti_prefix: format!("{prefix}."),
                jti_counter: AtomicU64::new(0),
            }),
        })
    }
}
