//! [`Issuer`]: mint access tokens and rotate refresh tokens with reuse detection.
//!
//! Access tokens are JWTs signed with the current snapshot's signing key (its `kid` in the
//! header). Refresh tokens are opaque (`tlr_` + 256 random bits), single-use, and belong
//! to a *family*: [`Issuer::renew`] retires the presented one and returns a new pair in
//! the same family. Presenting a retired refresh token again revokes the whole family at
//! once (its refresh tokens and, through the shared [`RevocationList`], its access tokens)
//! and raises an alert: the refresh-token rotation rule of RFC 9700 §4.14.2. A retired
//! token presented again within a short grace ([`IssuerBuilder::reuse_grace`], default
//! 2 s) while its renewal is still in flight is a race between two renewals of one
//! client, not reuse: it is refused ([`RenewErrorKind::Rotated`]) and the family lives on.
//!
//! A client whose renewal answer was lost retries with the token it still holds: within
//! [`IssuerBuilder::retry_grace`] (default 30 s) of its rotation, the same client presenting
//! it again gets a working pair in the same family (a *sibling* of the answer it lost: only
//! hashes are stored, so the lost answer cannot be sent again), at most
//! [`IssuerBuilder::max_retries`] times. Siblings are one generation: the first of them to
//! be renewed moves the family on and every other is left behind — presented later, it is
//! reuse. So a thief who replays a token within the grace gets a sibling, and the family
//! is revoked as soon as the thief and the client have both renewed once.
//!
//! Only a hash of each refresh token is stored, behind the [`RefreshStore`] trait.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tokenlife_core::{Algorithm, Issuer, Keyset, KeysetStore, ManualClock, TokenRequest, Validator, testing};
//! use tokenlife_core::issue::RenewErrorKind;
//!
//! let clock = ManualClock::starting_now();
//! let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)])?);
//! let validator = Validator::builder(store.clone()).issuer("https://auth.example.com")
//!     .audience("api://orders").clock(clock.clone()).build()?;
//! let issuer = Issuer::builder(store.clone())
//!     .issuer("https://auth.example.com")
//!     .audience("api://orders")
//!     .access_ttl(Duration::from_secs(900))
//!     .refresh_ttl(Duration::from_secs(30 * 86400))
//!     .revocations(validator.revocations().clone())
//!     .clock(clock.clone())
//!     .build()?;
//!
//! let pair = issuer.issue(TokenRequest::subject("user-42").scope("orders:read"))?;
//! assert_eq!(validator.validate(&pair.access_token)?.claims().sub.as_deref(), Some("user-42"));
//!
//! let old_refresh = pair.refresh_token.clone().unwrap();
//! let renewed = issuer.renew(&old_refresh)?;                  // the old one is retired
//! // The answer was lost: the client retries at once and gets a sibling pair.
//! let retried = issuer.renew(&old_refresh)?;
//! assert!(validator.validate(&retried.access_token).is_ok());
//! // The client renews the pair it holds; the sibling it never saw is left behind.
//! let next = issuer.renew(retried.refresh_token.as_deref().unwrap())?;
//! clock.advance(Duration::from_secs(60));
//! let reuse = issuer.renew(&old_refresh).unwrap_err();        // presented again later: reuse
//! assert_eq!(reuse.kind(), RenewErrorKind::Reused);
//! // The whole family is gone: the newest refresh token and its access token too.
//! assert_eq!(issuer.renew(next.refresh_token.as_deref().unwrap()).unwrap_err().kind(), RenewErrorKind::Revoked);
//! assert!(validator.validate(&next.access_token).is_err());
//! # let _ = renewed;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::Serialize;

use crate::clock::{Clock, SystemClock, from_unix_secs, unix_secs};
use crate::error::{ConfigError, RevocationError, RevocationErrorKind};
use crate::keys::KeysetStore;
use crate::observe::lifecycle::{TokenKind, TokenState};
use crate::observe::span;
use crate::observe::{Event, Observer, RevokeReason, SharedObserver, TokenRef};
use crate::revoke::RevocationList;

mod error;
mod store;

pub use error::{IssueError, IssueErrorKind, RenewError, RenewErrorKind};
use store::RETIRED_SLACK_SECS;
pub use store::{
    Advance, DEFAULT_RETIRED_PER_FAMILY, MemoryRefreshStore, RefreshRecord, RefreshStore,
    RefreshStoreError, RefreshStoreErrorKind, RetryGrant,
};

/// Prefix of every refresh token.
const REFRESH_PREFIX: &str = "tlr_";
const REFRESH_LEN: usize = REFRESH_PREFIX.len() + 43;
/// Claims a [`TokenRequest`] may not set: the issuer owns them.
const RESERVED_CLAIMS: [&str; 10] = [
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

use crate::clock::MAX_TTL;

fn random_b64(bytes: usize) -> Result<String, IssueError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| IssueError::with_source(IssueErrorKind::Random, e))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

fn unix_millis(clock: &dyn Clock) -> u64 {
    clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    /// Claims a request may not set: the issuer owns them.
    pub const RESERVED_CLAIMS: [&'static str; 10] = RESERVED_CLAIMS;
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

    /// A custom claim. Registered claims ([`TokenRequest::RESERVED_CLAIMS`]) are refused at issue.
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

/// What introspection (RFC 7662) may say about a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshInfo {
    /// The subject.
    pub subject: String,
    /// The scope.
    pub scope: Option<String>,
    /// The client it was issued to.
    pub client: Option<String>,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
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
    reuse_grace_ms: u64,
    retry_grace_ms: u64,
    max_retries: u8,
    clock: Arc<dyn Clock>,
    refresh: Arc<dyn RefreshStore>,
    revocations: RevocationList,
    observer: Option<SharedObserver>,
    jti_prefix: String,
    jti_counter: AtomicU64,
    /// Marks this issuer put on refresh tokens and failed to take back (the store failed
    /// twice in a row): token id → the mark's time. A retry that finds exactly that mark
    /// takes it back first instead of calling the token reused. Bounded.
    pending_unmarks: std::sync::Mutex<std::collections::HashMap<[u8; 32], u64>>,
}

/// Most pending un-marks remembered (each a failed renewal during a store outage).
const MAX_PENDING_UNMARKS: usize = 10_000;

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.inner.iss)
            .field("aud", &self.inner.aud)
            .field("access_ttl", &self.inner.access_ttl)
            .field("refresh_ttl", &self.inner.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// Whether `token` has the shape of a refresh token (prefix, length, base64url), checked
/// before any store lookup.
pub(crate) fn is_refresh_shaped(token: &str) -> bool {
    token.len() == REFRESH_LEN
        && token.starts_with(REFRESH_PREFIX)
        && token[REFRESH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn refresh_id(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// A pair signed and a record built, nothing stored yet.
struct Minted {
    pair: TokenPair,
    record: Option<([u8; 32], RefreshRecord)>,
    /// The access token's `jti` (for the audit trail).
    jti: String,
    version: u64,
    /// The signing key's kid and algorithm (for the audit trail).
    kid: String,
    alg: jsonwebtoken::Algorithm,
}

impl Issuer {
    /// Prefix of every refresh token.
    pub const REFRESH_PREFIX: &'static str = REFRESH_PREFIX;
    /// Longest access or refresh lifetime accepted at build time (ten years).
    pub const MAX_TTL: Duration = MAX_TTL;
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
            reuse_grace: Duration::from_secs(2),
            retry_grace: Duration::from_secs(30),
            max_retries: 3,
            clock: Arc::new(SystemClock),
            refresh: None,
            revocations: None,
            observer: None,
            capacity: MemoryRefreshStore::DEFAULT_CAPACITY,
        }
    }

    /// The longest any token this issuer mints can stay valid (refresh or access
    /// lifetime, whichever is longer). A subject or family revocation must be remembered
    /// at least this long to cover every token it names.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.inner.refresh_ttl.max(self.inner.access_ttl))
    }

    /// The lifetime of the access tokens this issuer mints.
    pub fn access_lifetime(&self) -> Duration {
        Duration::from_secs(self.inner.access_ttl)
    }

    /// The revocation list the issuer consults and writes.
    pub fn revocations(&self) -> &RevocationList {
        &self.inner.revocations
    }

    fn check(req: &TokenRequest) -> Result<(), IssueError> {
        if req.subject.is_empty() {
            return Err(IssueError::invalid_request("empty subject"));
        }
        if req
            .claims
            .keys()
            .any(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(IssueError::invalid_request(
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
    ) -> Result<(String, String, u64, String, jsonwebtoken::Algorithm), IssueError> {
        let inner = &*self.inner;
        let snap = inner.store.load();
        // Inside a canary share, the candidate's signing key (when it has one).
        let key = snap
            .signing_key_for(&req.subject)
            .ok_or_else(|| IssueError::new(IssueErrorKind::NoSigningKey))?;
        let enc = key
            .encoding_key()
            .ok_or_else(|| IssueError::new(IssueErrorKind::NoSigningKey))?;
        let mut header = Header::new(key.algorithm());
        header.kid = Some(key.kid().to_owned());
        let jti = self.next_jti();
        let claims = AccessClaims {
            iss: &inner.iss,
            sub: &req.subject,
            aud: &inner.aud,
            iat: now,
            nbf: now,
            exp: now.saturating_add(inner.access_ttl),
            jti: &jti,
            scope: req.scope.as_deref(),
            fam: family,
            client_id: req.client.as_deref(),
            extra: &req.claims,
        };
        let token = jsonwebtoken::encode(&header, &claims, enc)
            .map_err(|e| IssueError::with_source(IssueErrorKind::Signing, e))?;
        Ok((
            token,
            jti,
            snap.version(),
            key.kid().to_owned(),
            key.algorithm(),
        ))
    }

    /// Signs the access token and, with a family, makes the refresh token and its
    /// record. Stores nothing.
    fn mint(&self, req: &TokenRequest, family: Option<String>) -> Result<Minted, IssueError> {
        let inner = &*self.inner;
        let now = inner.clock.unix_now();
        let (access, jti, version, kid, alg) = self.sign_access(req, family.as_deref(), now)?;
        let (refresh, record) = match family {
            Some(family) => {
                let refresh = format!("{REFRESH_PREFIX}{}", random_b64(32)?);
                let record = RefreshRecord {
                    family,
                    subject: req.subject.clone(),
                    scope: req.scope.clone(),
                    client: req.client.clone(),
                    claims: req.claims.clone(),
                    issued_at: now,
                    family_started_at: now,
                    expires_at: now.saturating_add(inner.refresh_ttl),
                    used_at_ms: None,
                    renewal_pending: false,
                    parent: None,
                    retry: store::RetryState::default(),
                };
                let id = refresh_id(&refresh);
                (Some(refresh), Some((id, record)))
            }
            None => (None, None),
        };
        Ok(Minted {
            pair: TokenPair {
                access_token: access,
                token_type: "Bearer",
                expires_in: inner.access_ttl,
                refresh_token: refresh,
                scope: req.scope.clone(),
            },
            record,
            jti,
            version,
            kid,
            alg,
        })
    }

    /// An access token only (the client-credentials grant).
    ///
    /// # Errors
    /// See [`IssueError`].
    pub fn issue_access(&self, req: TokenRequest) -> Result<TokenPair, IssueError> {
        let traced = span::enter(span::issue(false));
        let out = self.issue_access_inner(req);
        if let Err(e) = &out {
            traced.fail(e.oauth_error().as_str());
        }
        out
    }

    fn issue_access_inner(&self, req: TokenRequest) -> Result<TokenPair, IssueError> {
        Self::check(&req)?;
        let minted = self.mint(&req, None)?;
        self.issued_event(&minted, &req);
        Ok(minted.pair)
    }

    /// An access token and a refresh token starting a new family.
    ///
    /// # Errors
    /// See [`IssueError`]; on any error nothing is stored.
    pub fn issue(&self, req: TokenRequest) -> Result<TokenPair, IssueError> {
        let traced = span::enter(span::issue(true));
        let out = self.issue_inner(req);
        if let Err(e) = &out {
            traced.fail(e.oauth_error().as_str());
        }
        out
    }

    fn issue_inner(&self, req: TokenRequest) -> Result<TokenPair, IssueError> {
        Self::check(&req)?;
        let family = random_b64(16)?;
        let minted = self.mint(&req, Some(family))?;
        if let Some((id, record)) = &minted.record {
            self.inner
                .refresh
                .insert(*id, record.clone())
                .map_err(IssueError::store)?;
        }
        self.issued_event(&minted, &req);
        Ok(minted.pair)
    }

    fn emit(&self, event: Event<'_>) {
        if let Some(o) = &self.inner.observer {
            o.on_event(&event);
        }
    }

    fn issued_event(&self, minted: &Minted, req: &TokenRequest) {
        self.emit(Event::Issued {
            kind: TokenKind::Access,
            token: TokenRef::new(&minted.pair.access_token),
            keyset_version: Some(minted.version),
            key: Some((&minted.kid, minted.alg)),
            subject: Some(&req.subject),
            client: req.client.as_deref(),
            jti: Some(&minted.jti),
            issuer: Some(&self.inner.iss),
        });
        if let Some(r) = &minted.pair.refresh_token {
            self.emit(Event::Issued {
                kind: TokenKind::Refresh,
                token: TokenRef::new(r),
                keyset_version: None,
                key: None,
                subject: Some(&req.subject),
                client: req.client.as_deref(),
                jti: None,
                issuer: Some(&self.inner.iss),
            });
        }
    }

    fn refused(&self, token: &str, err: RenewError, rec: Option<&RefreshRecord>) -> RenewError {
        self.emit(Event::RenewFailed {
            reason: err.kind,
            token: TokenRef::new(token),
            subject: rec.map(|r| r.subject.as_str()),
            client: rec.and_then(|r| r.client.as_deref()),
        });
        err
    }

    /// Rotates a refresh token that was issued to no client (see
    /// [`renew_as`](Self::renew_as) for tokens bound to a client).
    ///
    /// # Errors
    /// As for [`renew_as`](Self::renew_as).
    pub fn renew(&self, refresh_token: &str) -> Result<TokenPair, RenewError> {
        self.renew_as(refresh_token, None)
    }

    /// Rotates a refresh token presented by `client` (the client the caller has
    /// authenticated, RFC 6749 §6; `None` for a public client): the presented token is
    /// retired and a new access + refresh pair in the same family is returned.
    ///
    /// The token must have been issued to that very client. A retired token presented
    /// again within the retry grace gets a sibling pair (an idempotent retry, see the
    /// module docs); otherwise it revokes the family (reuse detection) and returns
    /// [`RenewErrorKind::Reused`], unless it was retired within the reuse grace
    /// ([`RenewErrorKind::Rotated`]). A
    /// token of a revoked subject (issued at or before the cut-off) or family is refused
    /// and its family revoked for good.
    ///
    /// # Errors
    /// A [`RenewError`]. `Reused` and `Revoked` revoke the family; every other kind leaves
    /// all state as it was, so the client may retry (a renewal that fails after the token
    /// was marked used puts the mark back).
    pub fn renew_as(
        &self,
        refresh_token: &str,
        client: Option<&str>,
    ) -> Result<TokenPair, RenewError> {
        let traced = span::enter(span::renew());
        let out = self.renew_inner(refresh_token, client);
        if let Err(e) = &out {
            traced.fail(e.oauth_error().as_str());
        }
        out
    }

    fn renew_inner(
        &self,
        refresh_token: &str,
        client: Option<&str>,
    ) -> Result<TokenPair, RenewError> {
        let inner = &*self.inner;
        if !is_refresh_shaped(refresh_token) {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Malformed),
                None,
            ));
        }
        let id = refresh_id(refresh_token);
        let Some(rec) = inner.refresh.get(&id).map_err(RenewError::store)? else {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Unknown),
                None,
            ));
        };
        // Binding first: a presenter who is not the token's client changes nothing.
        if rec.client.as_deref() != client {
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::WrongClient),
                Some(&rec),
            ));
        }
        let now_ms = unix_millis(&*inner.clock);
        let mut rec = rec;
        if let (Some(used), true) = (rec.used_at_ms, rec.renewal_pending) {
            // A renewal (on any node) marked it and has not stored a successor: in flight
            // within the grace; past it, that renewal failed and the mark goes back.
            if now_ms.saturating_sub(used) < inner.reuse_grace_ms.max(1_000) {
                return Err(self.refused(
                    refresh_token,
                    RenewError::new(RenewErrorKind::Rotated),
                    Some(&rec),
                ));
            }
            inner
                .refresh
                .unmark_used(&id, used)
                .map_err(RenewError::store)?;
            rec.used_at_ms = None;
            rec.renewal_pending = false;
        }
        if rec.is_used() && self.take_back_failed_mark(&id, &rec)? {
            rec.used_at_ms = None;
        }
        if rec.is_used() {
            return self.retry_or_refuse(refresh_token, &id, &rec, now_ms);
        }
        self.check_live(refresh_token, &rec)?;
        // Sign before marking: a signing failure leaves the token live.
        let minted = self.mint_child(&id, &rec)?;
        if let Some(parent) = &rec.parent {
            // Of a generation of siblings, the first renewed moves the family on.
            if let store::Advance::Taken { at_ms } = inner
                .refresh
                .advance(parent, &id, now_ms)
                .map_err(RenewError::store)?
            {
                let behind = RefreshRecord {
                    used_at_ms: Some(at_ms),
                    ..rec.clone()
                };
                return Err(self.retired(refresh_token, &behind, now_ms));
            }
        }
        // The atomic step: of two concurrent renewals, one wins.
        match inner
            .refresh
            .mark_used(&id, now_ms)
            .map_err(RenewError::store)?
        {
            Some(before) if !before.is_used() => {}
            Some(before) => return self.retry_or_refuse(refresh_token, &id, &before, now_ms),
            None => {
                return Err(self.refused(
                    refresh_token,
                    RenewError::new(RenewErrorKind::Unknown),
                    None,
                ));
            }
        }
        let committed = match &minted.record {
            Some((new_id, record)) => {
                inner
                    .refresh
                    .commit_renewal(&id, now_ms, *new_id, record.clone())
            }
            None => Ok(true),
        };
        if let Ok(false) = committed {
            // Another node took the mark back (it judged this renewal failed) and may
            // have renewed: one wins, as in any race; nothing was stored here.
            return Err(self.refused(
                refresh_token,
                RenewError::new(RenewErrorKind::Rotated),
                Some(&rec),
            ));
        }
        if let Err(e) = committed {
            // Put the mark back so the client's retry is a renewal, not reuse.
            let mut err = RenewError::store(e);
            if let Err(undo) = inner.refresh.unmark_used(&id, now_ms) {
                err.source = Some(Box::new(undo));
                // The store failed again: remember the mark, so this node's retry takes
                // it back instead of calling the token reused.
                let mut pending = self.pending_unmarks();
                if pending.len() < MAX_PENDING_UNMARKS {
                    pending.insert(id, now_ms);
                }
            }
            return Err(self.refused(refresh_token, err, Some(&rec)));
        }
        self.renewed(refresh_token, &rec, minted, false)
    }

    /// The request a renewal of `rec` signs: its subject, scope, client and claims.
    fn request_of(rec: &RefreshRecord) -> TokenRequest {
        TokenRequest {
            subject: rec.subject.clone(),
            scope: rec.scope.clone(),
            client: rec.client.clone(),
            claims: rec.claims.clone(),
        }
    }

    /// Signs the pair that succeeds the record `id` in its family. Stores nothing.
    fn mint_child(&self, id: &[u8; 32], rec: &RefreshRecord) -> Result<Minted, RenewError> {
        let mut minted = self
            .mint(&Self::request_of(rec), Some(rec.family.clone()))
            .map_err(|e| RenewError {
                kind: match e.kind() {
                    IssueErrorKind::NoSigningKey => RenewErrorKind::NoSigningKey,
                    _ => RenewErrorKind::Issue,
                },
                source: Some(Box::new(e)),
            })?;
        if let Some((_, record)) = &mut minted.record {
            // The family keeps its start: a subject cut-off after it still catches it.
            record.family_started_at = rec.family_started_at;
            record.parent = Some(*id);
        }
        Ok(minted)
    }

    /// Reports a renewal (or an idempotent retry) and hands out its pair.
    fn renewed(
        &self,
        token: &str,
        rec: &RefreshRecord,
        minted: Minted,
        retry: bool,
    ) -> Result<TokenPair, RenewError> {
        self.issued_event(&minted, &Self::request_of(rec));
        self.emit(Event::Renewed {
            kind: TokenKind::Refresh,
            token: Some(TokenRef::new(token)),
            subject: Some(&rec.subject),
            client: rec.client.as_deref(),
            retry,
        });
        Ok(minted.pair)
    }

    /// A rotated token presented again: an idempotent retry within the retry grace (a
    /// sibling pair), else a race ([`RenewErrorKind::Rotated`]) or reuse.
    fn retry_or_refuse(
        &self,
        token: &str,
        id: &[u8; 32],
        rec: &RefreshRecord,
        now_ms: u64,
    ) -> Result<TokenPair, RenewError> {
        let inner = &*self.inner;
        let used = rec.used_at_ms.unwrap_or(0);
        if rec.renewal_pending || now_ms.saturating_sub(used) >= inner.retry_grace_ms {
            return Err(self.retired(token, rec, now_ms));
        }
        // A revoked or expired family gets no sibling.
        self.check_live(token, rec)?;
        let minted = self.mint_child(id, rec)?;
        match inner
            .refresh
            .take_retry(id, used, inner.max_retries)
            .map_err(RenewError::store)?
        {
            RetryGrant::Granted => {}
            // Retried too often within the grace: refused, the family lives on.
            RetryGrant::Exhausted => {
                return Err(self.refused(
                    token,
                    RenewError::new(RenewErrorKind::Rotated),
                    Some(rec),
                ));
            }
            // The family moved on from it (or no retries here): a race or reuse.
            _ => return Err(self.retired(token, rec, now_ms)),
        }
        if let Some((new_id, record)) = &minted.record {
            inner
                .refresh
                .insert(*new_id, record.clone())
                .map_err(RenewError::store)
                .map_err(|e| self.refused(token, e, Some(rec)))?;
        }
        self.renewed(token, rec, minted, true)
    }

    fn pending_unmarks(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], u64>> {
        self.inner
            .pending_unmarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `rec`'s mark is one this issuer failed to take back after a failed
    /// renewal, and is now taken back. `Err` when the store still fails (the retry is an
    /// outage, not reuse).
    fn take_back_failed_mark(
        &self,
        id: &[u8; 32],
        rec: &RefreshRecord,
    ) -> Result<bool, RenewError> {
        let Some(at_ms) = self.pending_unmarks().get(id).copied() else {
            return Ok(false);
        };
        if rec.used_at_ms != Some(at_ms) {
            self.pending_unmarks().remove(id);
            return Ok(false);
        }
        self.inner
            .refresh
            .unmark_used(id, at_ms)
            .map_err(RenewError::store)?;
        self.pending_unmarks().remove(id);
        Ok(true)
    }

    /// Refuses a live-looking record whose family or subject was revoked (revoking the
    /// family for good) or that has expired.
    fn check_live(&self, token: &str, rec: &RefreshRecord) -> Result<(), RenewError> {
        let now = self.inner.clock.unix_now();
        let (in_store, in_list) = self.revocation_of(rec, now)?;
        if in_store || in_list {
            if !in_store {
                // A subject revocation lapses; the family it caught must not come back.
                self.revoke_family_everywhere(&rec.family)?;
            }
            return Err(self.refused(token, RenewError::new(RenewErrorKind::Revoked), Some(rec)));
        }
        if now > rec.expires_at {
            return Err(self.refused(token, RenewError::new(RenewErrorKind::Expired), Some(rec)));
        }
        Ok(())
    }

    /// Whether a record is revoked: its family in the refresh store, and its subject
    /// (issued at or before a cut-off) or family in the revocation list.
    fn revocation_of(&self, rec: &RefreshRecord, now: u64) -> Result<(bool, bool), RenewError> {
        let inner = &*self.inner;
        let in_store = inner
            .refresh
            .is_family_revoked(&rec.family)
            .map_err(RenewError::store)?;
        let in_list = inner
            .revocations
            .check(
                None,
                Some(&rec.subject),
                Some(rec.family_started_at),
                Some(&rec.family),
                now,
            )
            .is_some();
        Ok((in_store, in_list))
    }

    /// A retired token presented again: a race within the grace, or reuse.
    fn retired(&self, token: &str, rec: &RefreshRecord, now_ms: u64) -> RenewError {
        let used = rec.used_at_ms.unwrap_or(0);
        if self.inner.reuse_grace_ms > 0 && now_ms.saturating_sub(used) < self.inner.reuse_grace_ms
        {
            return self.refused(token, RenewError::new(RenewErrorKind::Rotated), Some(rec));
        }
        self.reuse(token, rec)
    }

    /// Reuse of a retired refresh token: revoke the family everywhere, alert.
    fn reuse(&self, token: &str, rec: &RefreshRecord) -> RenewError {
        let inner = &*self.inner;
        let mut err = RenewError::new(RenewErrorKind::Reused);
        if let Err(e) = self.revoke_family_everywhere(&rec.family) {
            err.source = e.source;
        }
        self.emit(Event::RefreshReuse {
            token: TokenRef::new(token),
            subject: &rec.subject,
            client: rec.client.as_deref(),
            revocation_entries: inner.revocations.len(),
        });
        err
    }

    /// Revokes a family in the refresh store and, through the revocation list, its
    /// access tokens, for long enough to outlive every token of the family. Both are
    /// attempted even if the first fails; the first error is returned.
    fn revoke_family_everywhere(&self, family: &str) -> Result<u64, RenewError> {
        let inner = &*self.inner;
        let until = self.covering_until(inner.clock.unix_now());
        let store = inner
            .refresh
            .revoke_family(family, until)
            .map_err(RenewError::store);
        let list = inner
            .revocations
            .revoke_family(family, from_unix_secs(until))
            .map_err(|e| RenewError {
                kind: RenewErrorKind::Store,
                source: Some(Box::new(e)),
            });
        store.and(list).map(|()| until)
    }

    /// Revokes a whole family: its refresh tokens in the refresh store and its access
    /// tokens in the revocation list, remembered until every token of it has expired.
    /// The one family-revocation path (reuse detection, RFC 7009 and the admin API).
    /// Returns the `until` the revocation is kept to.
    ///
    /// # Errors
    /// [`RevocationErrorKind::InvalidId`] for an empty or over-long family; a store failure.
    pub fn revoke_family(&self, family: &str) -> Result<SystemTime, RenewError> {
        if family.is_empty() || family.len() > RevocationList::MAX_ID_LEN {
            return Err(RenewError {
                kind: RenewErrorKind::Malformed,
                source: Some(Box::new(RevocationError::new(
                    RevocationErrorKind::InvalidId,
                ))),
            });
        }
        let until = self.revoke_family_everywhere(family)?;
        self.emit(Event::Revoked {
            kind: TokenKind::Refresh,
            reason: RevokeReason::Family,
            from: None,
            subject: None,
            client: None,
            revocation_entries: Some(self.inner.revocations.len()),
            audited: false,
        });
        Ok(from_unix_secs(until))
    }

    /// Revokes every token of `subject` issued at or before `issued_before`, access and
    /// refresh alike, remembered until the last of them has expired
    /// (`issued_before` + [`max_lifetime`](Self::max_lifetime)). Returns that `until`.
    ///
    /// # Errors
    /// As for [`RevocationList::revoke_subject`].
    pub fn revoke_subject(
        &self,
        subject: &str,
        issued_before: SystemTime,
    ) -> Result<SystemTime, RevocationError> {
        let until = self.covering_until(unix_secs(issued_before));
        self.inner
            .revocations
            .revoke_subject(subject, issued_before, from_unix_secs(until))?;
        Ok(from_unix_secs(until))
    }

    /// The `until` (Unix seconds) that outlives every token issued up to `issued_before`.
    fn covering_until(&self, issued_before: u64) -> u64 {
        let inner = &*self.inner;
        issued_before
            .max(inner.clock.unix_now())
            .saturating_add(inner.refresh_ttl.max(inner.access_ttl))
            .saturating_add(RETIRED_SLACK_SECS)
    }

    /// Revokes the family of a refresh token (RFC 7009 for refresh tokens) on behalf of
    /// `client` (`None`: an operator, allowed any token). Unknown or malformed tokens are
    /// ignored, as RFC 7009 §2.2 asks: returns whether a family was revoked.
    ///
    /// # Errors
    /// [`RenewErrorKind::WrongClient`] when the token belongs to another client (nothing
    /// changes); a store failure.
    pub fn revoke_refresh(
        &self,
        refresh_token: &str,
        client: Option<&str>,
    ) -> Result<bool, RenewError> {
        let inner = &*self.inner;
        if !is_refresh_shaped(refresh_token) {
            return Ok(false);
        }
        let Some(rec) = inner
            .refresh
            .get(&refresh_id(refresh_token))
            .map_err(RenewError::store)?
        else {
            return Ok(false);
        };
        if client.is_some() && rec.client.as_deref() != client {
            return Err(RenewError::new(RenewErrorKind::WrongClient));
        }
        self.revoke_family_everywhere(&rec.family)?;
        self.emit(Event::Revoked {
            kind: TokenKind::Refresh,
            reason: RevokeReason::Family,
            from: Some(TokenState::Issued),
            subject: None,
            client: rec.client.as_deref(),
            revocation_entries: Some(inner.revocations.len()),
            audited: false,
        });
        Ok(true)
    }

    /// What a refresh token is, if it would renew now (RFC 7662 introspection): known,
    /// not used, not expired, family and subject not revoked. Changes nothing and emits
    /// nothing.
    ///
    /// # Errors
    /// A store failure.
    pub fn inspect_refresh(&self, refresh_token: &str) -> Result<Option<RefreshInfo>, RenewError> {
        let inner = &*self.inner;
        if !is_refresh_shaped(refresh_token) {
            return Ok(None);
        }
        let Some(rec) = inner
            .refresh
            .get(&refresh_id(refresh_token))
            .map_err(RenewError::store)?
        else {
            return Ok(None);
        };
        let now = inner.clock.unix_now();
        let (in_store, in_list) = self.revocation_of(&rec, now)?;
        let dead = rec.is_used() || now > rec.expires_at || in_store || in_list;
        Ok((!dead).then_some(RefreshInfo {
            subject: rec.subject,
            scope: rec.scope,
            client: rec.client,
            issued_at: rec.issued_at,
            expires_at: rec.expires_at,
        }))
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
    reuse_grace: Duration,
    retry_grace: Duration,
    max_retries: u8,
    clock: Arc<dyn Clock>,
    refresh: Option<Arc<dyn RefreshStore>>,
    revocations: Option<RevocationList>,
    observer: Option<SharedObserver>,
    capacity: usize,
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

    /// Access-token lifetime (default 15 min, at most [`Issuer::MAX_TTL`]).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime (default 30 days, at most [`Issuer::MAX_TTL`]).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// How long after a refresh token was rotated a second presentation that gets no
    /// retry (see [`retry_grace`](Self::retry_grace)) counts as a race between two
    /// renewals of the same client (refused, nothing revoked) rather than reuse (family
    /// revoked, alert). Default 2 s; `Duration::ZERO` makes every such presentation reuse.
    /// At most one minute.
    pub fn reuse_grace(mut self, grace: Duration) -> Self {
        self.reuse_grace = grace;
        self
    }

    /// How long after a refresh token was rotated its client may present it again and
    /// get a working sibling pair (its answer was lost: RFC 9700 §4.14.2 leaves room for
    /// this, and Okta, Auth0 and Cognito do it). Default 30 s; `Duration::ZERO` turns
    /// retries off; at most five minutes. Only the client the token was issued to may
    /// retry; for a public client, whoever holds the token — the first sibling renewed
    /// then leaves the others behind, so a thief and the client both renewing revokes
    /// the family.
    pub fn retry_grace(mut self, grace: Duration) -> Self {
        self.retry_grace = grace;
        self
    }

    /// How many retries one rotated token gives within the retry grace (default 3, at
    /// most 10). One more is refused ([`RenewErrorKind::Rotated`]); the family lives on.
    pub fn max_retries(mut self, n: u8) -> Self {
        self.max_retries = n;
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

    /// Capacity of the default in-memory refresh store (default
    /// [`MemoryRefreshStore::DEFAULT_CAPACITY`]).
    pub fn refresh_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The revocation list a revoked family or subject is written to and renewals are
    /// checked against (share the validator's, so the access tokens die too). Default: a
    /// list of the issuer's own, which still stops refresh tokens.
    pub fn revocations(mut self, list: RevocationList) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Metrics, lifecycle, audit and alerts: the same as
    /// [`observer`](Self::observer)`(monitor)`.
    pub fn monitor(self, monitor: impl Observer) -> Self {
        self.observer(monitor)
    }

    /// Reports issues, renewals, refusals, reuse and revocations to `observer`.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(SharedObserver::new(observer));
        self
    }

    /// Builds the issuer.
    ///
    /// # Errors
    /// [`ConfigErrorKind::MissingIssuer`](crate::error::ConfigErrorKind::MissingIssuer) / [`ConfigErrorKind::MissingAudience`](crate::error::ConfigErrorKind::MissingAudience);
    /// [`ConfigErrorKind::InvalidValue`](crate::error::ConfigErrorKind::InvalidValue) for a zero TTL, a TTL over [`Issuer::MAX_TTL`], a reuse grace
    /// over a minute, a retry grace over five minutes, more than ten retries, a zero store capacity, or a failed random source.
    pub fn build(self) -> Result<Issuer, ConfigError> {
        let iss = self.iss.ok_or(ConfigError::MISSING_ISSUER)?;
        let aud = self.aud.ok_or(ConfigError::MISSING_AUDIENCE)?;
        for (name, ttl) in [
            ("access_ttl", self.access_ttl),
            ("refresh_ttl", self.refresh_ttl),
        ] {
            if ttl.as_secs() == 0 || ttl > MAX_TTL {
                return Err(ConfigError::invalid(name));
            }
        }
        if self.reuse_grace > Duration::from_secs(60) {
            return Err(ConfigError::invalid("reuse_grace"));
        }
        if self.retry_grace > Duration::from_secs(300) {
            return Err(ConfigError::invalid("retry_grace"));
        }
        if self.max_retries > 10 {
            return Err(ConfigError::invalid("max_retries"));
        }
        if self.capacity == 0 {
            return Err(ConfigError::invalid("refresh_capacity"));
        }
        crate::crypto::ensure_provider();
        let refresh = self.refresh.unwrap_or_else(|| {
            Arc::new(MemoryRefreshStore::new(self.capacity, self.clock.clone()))
        });
        let revocations = self.revocations.unwrap_or_else(|| {
            RevocationList::builder()
                .clock_arc(self.clock.clone())
                .build()
        });
        let prefix = random_b64(9).map_err(|_| ConfigError::invalid("random source"))?;
        Ok(Issuer {
            inner: Arc::new(Inner {
                store: self.store,
                iss,
                aud,
                access_ttl: self.access_ttl.as_secs(),
                refresh_ttl: self.refresh_ttl.as_secs(),
                reuse_grace_ms: u64::try_from(self.reuse_grace.as_millis()).unwrap_or(60_000),
                retry_grace_ms: u64::try_from(self.retry_grace.as_millis()).unwrap_or(300_000),
                max_retries: self.max_retries,
                clock: self.clock,
                refresh,
                revocations,
                observer: self.observer,
                jti_prefix: format!("{prefix}."),
                jti_counter: AtomicU64::new(0),
                pending_unmarks: std::sync::Mutex::default(),
            }),
        })
    }
}
