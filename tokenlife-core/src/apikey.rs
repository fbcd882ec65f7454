//! Opaque API keys with the token lifecycle: issue, validate, expire, revoke, rotate.
//!
//! A key looks like `tl_live_<id>_<secret>`: the id (12 random bytes) finds the record,
//! the secret (32 random bytes) is checked against its keyed BLAKE3 hash in constant time.
//! Only the hash is stored; the raw key is returned once, at issue. Input of the wrong
//! shape is refused before any lookup.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tokenlife_core::apikey::{ApiKeyErrorKind, ApiKeys};
//!
//! let keys = ApiKeys::builder().build();
//! let (raw, info) = keys.issue("ci-bot", Duration::from_secs(90 * 86400))?; // raw shown once
//! assert_eq!(&*keys.validate(&raw)?.client, "ci-bot");
//! keys.revoke(&info.id);
//! assert_eq!(keys.validate(&raw).unwrap_err().kind(), ApiKeyErrorKind::Revoked);
//! # Ok::<(), tokenlife_core::apikey::ApiKeyError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::{Clock, SystemClock};
pub use crate::error::ApiKeyErrorKind;
use crate::hash::random_key;
use crate::observe::lifecycle::{TokenKind, TokenState};
use crate::observe::{Event, Observer, RevokeReason, SharedObserver, TokenRef};

const ID_LEN: usize = 16; // 12 bytes, base64url
const SECRET_LEN: usize = 43; // 32 bytes, base64url

/// An API key was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API key refused: {}", self.reason())]
pub struct ApiKeyError {
    kind: ApiKeyErrorKind,
}

impl ApiKeyError {
    fn new(kind: ApiKeyErrorKind) -> Self {
        Self { kind }
    }

    /// Why.
    pub fn kind(&self) -> ApiKeyErrorKind {
        self.kind
    }

    /// HTTP status for a client: 401 for a refused key, 503 for `Full`/`Random`, 400
    /// for `InvalidTtl`.
    pub fn status(&self) -> u16 {
        match self.kind {
            ApiKeyErrorKind::Full | ApiKeyErrorKind::Random => 503,
            ApiKeyErrorKind::InvalidTtl => 400,
            _ => 401,
        }
    }

    fn reason(&self) -> &'static str {
        self.kind.as_str()
    }
}

/// What is known about a key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKeyInfo {
    /// The key id (the public part of the key).
    pub id: Arc<str>,
    /// Who the key belongs to.
    pub client: Arc<str>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds (shortened by a rotation).
    pub expires_at: u64,
}

struct Record {
    id: Arc<str>,
    client: Arc<str>,
    hash: blake3::Hash,
    created_at: u64,
    lifetime: u64,
    expires_at: AtomicU64,
    revoked: AtomicBool,
    seen: AtomicBool,
}

impl Record {
    fn info(&self) -> ApiKeyInfo {
        ApiKeyInfo {
            id: self.id.clone(),
            client: self.client.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at.load(Ordering::Acquire),
        }
    }
}

/// The API-key store: lock-free lookups, only hashes kept. Cheap to clone.
#[derive(Clone)]
pub struct ApiKeys {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    pepper: [u8; 32],
    /// Records stored inline in the map's entries: one pointer chase per lookup.
    records: papaya::HashMap<String, Record>,
    capacity: usize,
    clock: Arc<dyn Clock>,
    observer: Option<SharedObserver>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pepper);
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("prefix", &self.inner.prefix)
            .field("keys", &self.inner.records.len())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Starts a key store (prefix `tl_live_`, system clock, random pepper).
    pub fn builder() -> ApiKeysBuilder {
        ApiKeysBuilder {
            prefix: "tl_live_".into(),
            pepper: None,
            capacity: 1_000_000,
            clock: Arc::new(SystemClock),
            observer: None,
        }
    }

    /// The pepper (tests only).
    #[cfg(test)]
    pub(crate) fn pepper_for_tests(&self) -> [u8; 32] {
        self.inner.pepper
    }

    fn hash(&self, secret: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.inner.pepper, secret.as_bytes())
    }

    /// Issues a key for `client`, valid for `ttl`. The raw key is returned only here.
    ///
    /// # Errors
    /// [`ApiKeyErrorKind::Full`] at capacity (after lapsed keys are swept),
    /// [`ApiKeyErrorKind::Random`] if the OS random source fails,
    /// [`ApiKeyErrorKind::InvalidTtl`] for a zero lifetime or one over [`crate::Issuer::MAX_TTL`].
    pub fn issue(&self, client: &str, ttl: Duration) -> Result<(String, ApiKeyInfo), ApiKeyError> {
        if ttl.as_secs() == 0 || ttl > crate::clock::MAX_TTL {
            return Err(ApiKeyError::new(ApiKeyErrorKind::InvalidTtl));
        }
        let now = self.inner.clock.unix_now();
        self.make(client, now, ttl.as_secs())
    }

    fn make(
        &self,
        client: &str,
        now: u64,
        lifetime: u64,
    ) -> Result<(String, ApiKeyInfo), ApiKeyError> {
        let inner = &*self.inner;
        if inner.records.len() >= inner.capacity {
            self.sweep(now);
            if inner.records.len() >= inner.capacity {
                return Err(ApiKeyError::new(ApiKeyErrorKind::Full));
            }
        }
        let mut buf = [0u8; 44];
        getrandom::fill(&mut buf).map_err(|_| ApiKeyError::new(ApiKeyErrorKind::Random))?;
        let id = URL_SAFE_NO_PAD.encode(&buf[..12]);
        let secret = URL_SAFE_NO_PAD.encode(&buf[12..]);
        let raw = format!("{}{id}_{secret}", inner.prefix);
        let record = Record {
            id: id.as_str().into(),
            client: client.into(),
            hash: self.hash(&secret),
            created_at: now,
            lifetime,
            expires_at: AtomicU64::new(now.saturating_add(lifetime)),
            revoked: AtomicBool::new(false),
            seen: AtomicBool::new(false),
        };
        let info = record.info();
        inner.records.pin().insert(id, record);
        self.emit(Event::Issued {
            kind: TokenKind::ApiKey,
            token: TokenRef::new(&raw),
            keyset_version: None,
            key: None,
            subject: None,
            client: Some(client),
            jti: None,
            issuer: None,
        });
        Ok((raw, info))
    }

    fn emit(&self, event: Event<'_>) {
        if let Some(o) = &self.inner.observer {
            o.on_event(&event);
        }
    }

    /// Splits `<prefix><id>_<secret>`, checking the shape.
    fn split<'a>(&self, raw: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = raw.strip_prefix(self.inner.prefix.as_str())?;
        if rest.len() != ID_LEN + 1 + SECRET_LEN || rest.as_bytes()[ID_LEN] != b'_' {
            return None;
        }
        let (id, secret) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
        let ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (ok(id) && ok(secret)).then_some((id, secret))
    }

    /// Validates a presented key.
    ///
    /// # Errors
    /// `Malformed` (before any lookup), `Unknown`, `Expired`, `Revoked`.
    pub fn validate(&self, raw: &str) -> Result<ApiKeyInfo, ApiKeyError> {
        let result = self.check(raw);
        self.emit(Event::ApiKeyChecked {
            outcome: result.as_ref().map(|_| ()).map_err(ApiKeyError::kind),
            token: TokenRef::new(raw),
        });
        result
    }

    fn check(&self, raw: &str) -> Result<ApiKeyInfo, ApiKeyError> {
        let (id, secret) = self
            .split(raw)
            .ok_or(ApiKeyError::new(ApiKeyErrorKind::Malformed))?;
        let records = self.inner.records.pin();
        let rec = records
            .get(id)
            .ok_or(ApiKeyError::new(ApiKeyErrorKind::Unknown))?;
        // blake3::Hash compares in constant time.
        if self.hash(secret) != rec.hash {
            return Err(ApiKeyError::new(ApiKeyErrorKind::Unknown));
        }
        if rec.revoked.load(Ordering::Acquire) {
            return Err(ApiKeyError::new(ApiKeyErrorKind::Revoked));
        }
        let now = self.inner.clock.unix_now();
        if now > rec.expires_at.load(Ordering::Acquire) {
            let from = if rec.seen.load(Ordering::Relaxed) {
                TokenState::Active
            } else {
                TokenState::Issued
            };
            self.emit(Event::Transition {
                kind: TokenKind::ApiKey,
                from: Some(from),
                to: TokenState::Expired,
            });
            return Err(ApiKeyError::new(ApiKeyErrorKind::Expired));
        }
        if !rec.seen.swap(true, Ordering::AcqRel) {
            self.emit(Event::Transition {
                kind: TokenKind::ApiKey,
                from: Some(TokenState::Issued),
                to: TokenState::Active,
            });
        }
        Ok(rec.info())
    }

    /// Revokes a key by id. Returns whether it existed.
    pub fn revoke(&self, id: &str) -> bool {
        let records = self.inner.records.pin();
        let Some(rec) = records.get(id) else {
            return false;
        };
        rec.revoked.store(true, Ordering::Release);
        self.emit(Event::Revoked {
            kind: TokenKind::ApiKey,
            reason: RevokeReason::ApiKey,
            from: Some(TokenState::Active),
            subject: None,
            client: Some(&rec.client),
            revocation_entries: None,
            audited: true,
        });
        true
    }

    /// Rotates a key: a new key for the same client and lifetime is issued, and the old
    /// one keeps working for `overlap` more (then expires).
    ///
    /// # Errors
    /// `Unknown` if there is no such key, `Revoked` if it is revoked, `Expired` if it has
    /// expired, or an issue error.
    pub fn rotate(&self, id: &str, overlap: Duration) -> Result<(String, ApiKeyInfo), ApiKeyError> {
        let now = self.inner.clock.unix_now();
        let records = self.inner.records.pin();
        let rec = records
            .get(id)
            .ok_or(ApiKeyError::new(ApiKeyErrorKind::Unknown))?;
        if rec.revoked.load(Ordering::Acquire) {
            return Err(ApiKeyError::new(ApiKeyErrorKind::Revoked));
        }
        // An expired key is not renewed: rotation would resurrect it.
        if now > rec.expires_at.load(Ordering::Acquire) {
            return Err(ApiKeyError::new(ApiKeyErrorKind::Expired));
        }
        let new = self.make(&rec.client, now, rec.lifetime)?;
        rec.expires_at
            .fetch_min(now.saturating_add(overlap.as_secs()), Ordering::AcqRel);
        self.emit(Event::Renewed {
            kind: TokenKind::ApiKey,
            token: None,
            subject: None,
            client: Some(&rec.client),
            retry: false,
        });
        Ok(new)
    }

    /// The key's record, by id.
    pub fn get(&self, id: &str) -> Option<ApiKeyInfo> {
        self.inner.records.pin().get(id).map(|r| r.info())
    }

    /// Number of keys held (lapsed ones until the next sweep).
    pub fn len(&self) -> usize {
        self.inner.records.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets keys that expired or were revoked.
    pub fn sweep(&self, now: u64) {
        self.inner.records.pin().retain(|_, r| {
            !r.revoked.load(Ordering::Acquire) && r.expires_at.load(Ordering::Acquire) >= now
        });
    }
}

/// Builds [`ApiKeys`].
#[must_use]
pub struct ApiKeysBuilder {
    prefix: String,
    pepper: Option<[u8; 32]>,
    capacity: usize,
    clock: Arc<dyn Clock>,
    observer: Option<SharedObserver>,
}

impl fmt::Debug for ApiKeysBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeysBuilder")
            .field("prefix", &self.prefix)
            .field("pepper", &self.pepper.map(|_| "[redacted]"))
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl ApiKeysBuilder {
    /// The key prefix (default `tl_live_`), so scanners can spot leaked keys.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The secret key of the stored hashes (default: random per process, which means
    /// keys do not survive a restart; persist it alongside a persistent store).
    pub fn pepper(mut self, pepper: [u8; 32]) -> Self {
        self.pepper = Some(pepper);
        self
    }

    /// Most keys held (default 1 000 000).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The clock for expiry.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Metrics, lifecycle and audit.
    pub fn monitor(self, monitor: impl Observer) -> Self {
        self.observer(monitor)
    }

    /// Reports issues, checks, rotations and revocations to `observer`.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(SharedObserver::new(observer));
        self
    }

    /// The store.
    pub fn build(self) -> ApiKeys {
        ApiKeys {
            inner: Arc::new(Inner {
                prefix: self.prefix,
                pepper: self.pepper.unwrap_or_else(random_key),
                records: papaya::HashMap::new(),
                capacity: self.capacity,
                clock: self.clock,
                observer: self.observer,
            }),
        }
    }
}
