//! [`Validator`]: the hot path that turns a bearer token into [`Verified`] claims.
//!
//! Order of work for each token (see DESIGN.md):
//!
//! 1. reject oversize input before any decoding;
//! 2. look the token up in the verified-token cache (a seeded 128-bit hash picks the
//!    entry, the entry's stored token bytes must match exactly, and the very key that
//!    verified it must still be in the current snapshot);
//! 3. on a miss: decode the header, pick the key by `kid` from the current snapshot
//!    (one lock-free load), insist the header's `alg` is the key's algorithm, verify the
//!    signature, then check `iss`, `aud` and the required claims and their JSON types;
//! 4. on every request, hit or miss: `exp` and `nbf` (with leeway) on the injected clock,
//!    then revocation by `jti`, subject and family.
//!
//! No lock is taken on this path.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, ValidationError, ValidationErrorKind as Kind};
use crate::fingerprint::Fingerprint;
use crate::hash::{random_key, random_u64};
use crate::keys::{Key, Keyset, KeysetSnapshot, KeysetStore, Retirement, same_key};
use crate::observe::span;
use crate::observe::{Arm, Event, Hit, Observer, SharedObserver, TokenRef, Validated};
use crate::revoke::{RevocationList, RevokedBy};

/// Default largest token accepted, in bytes.
const DEFAULT_MAX_TOKEN_SIZE: usize = 8 * 1024;
/// Default number of verified tokens kept in the cache.
const DEFAULT_CACHE_CAPACITY: u64 = 100_000;
/// Largest verified-token cache (its tables are sized once, at build).
const MAX_CACHE_CAPACITY: u64 = 1 << 24;
/// Default longest time a verified token stays cached (it never outlives its `exp`).
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);

mod cache;
mod claims;
mod header;
mod hits;

pub use claims::RegisteredClaims;
use header::{Header, json_object, typ_matches, verify_signature};

/// One verified token, shared between the cache and the `Verified` values handed out.
struct Entry {
    token: Box<str>,
    payload: Box<[u8]>,
    claims: RegisteredClaims,
    key: Arc<Key>,
    /// The instance of the snapshot that verified it (never reused, unlike a version
    /// number).
    snapshot: u64,
    /// The arm of that snapshot that verified it.
    arm: Arm,
    /// That snapshot's version.
    version: u64,
    /// Whether that snapshot had a shadow candidate (which judges every live token).
    shadowed: bool,
    /// Unix seconds from which the entry is no longer served from the cache.
    cache_until: u64,
}

/// A token that passed validation: its claims, the key and keyset version that verified
/// it. Cheap to clone.
#[derive(Clone)]
pub struct Verified {
    entry: Arc<Entry>,
    keyset_version: u64,
    arm: Arm,
    cached: bool,
    fingerprint_key: [u8; 32],
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("fingerprint", &self.fingerprint())
            .field("kid", &self.kid())
            .field("keyset_version", &self.keyset_version)
            .field("sub", &self.entry.claims.sub)
            .finish_non_exhaustive()
    }
}

impl Verified {
    /// The registered claims.
    pub fn claims(&self) -> &RegisteredClaims {
        &self.entry.claims
    }

    /// All claims, deserialized into your own type.
    ///
    /// # Errors
    /// The payload does not fit `T`.
    pub fn deserialize_claims<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.entry.payload)
    }

    /// Every claim as a JSON map (registered and custom alike), parsed on demand.
    ///
    /// ```
    /// # use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, testing};
    /// # let key = testing::key("k", Algorithm::HS256);
    /// # let store = KeysetStore::new(Keyset::new([testing::key("k", Algorithm::HS256)])?);
    /// # let v = Validator::builder(store).issuer("i").audience("a").build()?;
    /// # let exp = tokenlife_core::SystemClock.unix_now() + 60;
    /// # use tokenlife_core::Clock;
    /// let token = testing::sign(&key, &serde_json::json!({"iss": "i", "aud": "a", "exp": exp, "tenant": "acme"}));
    /// let verified = v.validate(&token)?;
    /// assert_eq!(verified.all_claims()["tenant"], "acme");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn all_claims(&self) -> serde_json::Map<String, serde_json::Value> {
        // The payload parsed as a JSON object when it was verified, so this cannot fail.
        serde_json::from_slice(&self.entry.payload).unwrap_or_default()
    }

    /// The kid of the key that verified the token.
    pub fn kid(&self) -> &str {
        self.entry.key.kid()
    }

    /// The algorithm it was verified with (the key's).
    pub fn algorithm(&self) -> Algorithm {
        self.entry.key.algorithm()
    }

    /// The version of the keyset snapshot that was current when it was validated.
    pub fn keyset_version(&self) -> u64 {
        self.keyset_version
    }

    /// Which keyset judged it: the active one, a canary's candidate (for a subject inside
    /// the canary share), or a retired key within its grace period.
    pub fn arm(&self) -> Arm {
        self.arm
    }

    /// Whether the signature check was skipped because the token was in the
    /// verified-token cache.
    pub fn from_cache(&self) -> bool {
        self.cached
    }

    /// Whether the token's `scope` claim contains `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.entry.claims.has_scope(scope)
    }

    /// The token's keyed fingerprint, for logs and audit events (computed on demand).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::compute(&self.fingerprint_key, &self.entry.token)
    }
}

/// The `sub` claim of an unverified payload, for choosing a canary arm (`None` if it
/// cannot be read: the active arm judges, and the usual checks reject what is broken).
fn peek_subject(p64: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: Option<String>,
    }
    let payload = URL_SAFE_NO_PAD.decode(p64).ok()?;
    serde_json::from_slice::<Sub>(&payload).ok()?.sub
}

/// The three segments of a JWS compact serialisation: header, payload, signature.
#[inline]
fn segments(token: &str) -> Result<(&str, &str, &str), ValidationError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h64), Some(p64), Some(sig), None) => Ok((h64, p64, sig)),
        _ => Err(Kind::Malformed.into()),
    }
}

/// The header segment's bytes (base64url).
#[inline]
fn decode_header(h64: &str) -> Result<Vec<u8>, ValidationError> {
    URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|e| ValidationError::with_source(Kind::Malformed, e))
}

/// The JOSE header: a UTF-8 JSON object within the nesting limit, no `crit`.
#[inline]
fn parse_header(json: &[u8]) -> Result<Header<'_>, ValidationError> {
    let text =
        json_object(json).ok_or_else(|| ValidationError::with_field(Kind::Malformed, "header"))?;
    let header: Header<'_> = serde_json::from_str(text)
        .map_err(|_| ValidationError::with_field(Kind::Malformed, "header"))?;
    if header.crit {
        return Err(ValidationError::with_field(
            Kind::UnsupportedCritical,
            "crit",
        ));
    }
    Ok(header)
}

/// Whether `keyset` holds the key that signed `token` and that key verifies its signature
/// (header rules, key by `kid` or the one key of a kid-less token's `alg`, algorithm,
/// signature): the key half of validation, nothing about claims or time. For checking a
/// candidate keyset against live tokens before it is deployed.
pub(crate) fn key_check(keyset: &Keyset, token: &str) -> Result<Arc<Key>, ValidationError> {
    if token.len() > DEFAULT_MAX_TOKEN_SIZE {
        return Err(Kind::TooLarge.into());
    }
    let (h64, p64, sig) = segments(token)?;
    let header_json = decode_header(h64)?;
    let header = parse_header(&header_json)?;
    let message = &token[..h64.len() + 1 + p64.len()];
    let key = match header.kid.as_deref() {
        Some(kid) => keyset
            .get(kid)
            .ok_or_else(|| ValidationError::with_field(Kind::UnknownKid, "kid"))?,
        None => {
            let mut of_alg = keyset.keys().filter(|k| k.alg_name() == header.alg);
            match (of_alg.next(), of_alg.next()) {
                (Some(k), None) => k,
                _ => return Err(ValidationError::with_field(Kind::UnknownKid, "kid")),
            }
        }
    };
    if key.alg_name() != header.alg {
        return Err(ValidationError::with_field(Kind::AlgorithmMismatch, "alg"));
    }
    verify_signature(sig, message, key)?;
    Ok(key.clone())
}

/// What the rollout guard takes as evidence that a token really was trusted: the key of
/// `keyset` that verifies its signature, with the token's `sub` and `exp` (read only once
/// the signature holds). `None` for a token that `keyset` does not verify.
pub(crate) fn verified_parts(
    keyset: &Keyset,
    token: &str,
) -> Option<(Arc<Key>, Option<String>, Option<u64>)> {
    #[derive(serde::Deserialize)]
    struct Parts {
        sub: Option<String>,
        exp: Option<u64>,
    }
    let key = key_check(keyset, token).ok()?;
    let (_, p64, _) = segments(token).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(p64).ok()?;
    let parts: Parts = serde_json::from_slice(&payload).ok()?;
    Some((key, parts.sub, parts.exp))
}

/// Validates bearer tokens against a [`KeysetStore`]. Cheap to clone; clones share the
/// cache, the keyset store and the revocation list.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
/// use tokenlife_core::{Key, Keyset, KeysetStore, ManualClock, ValidationErrorKind, Validator};
///
/// let store = KeysetStore::new(Keyset::new([Key::hmac("k1", Algorithm::HS256, &[42; 32])?])?);
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let validator = Validator::builder(store)
///     .issuer("https://auth.example.com")
///     .audience("api://orders")
///     .clock(clock.clone())
///     .build()?;
///
/// let mut header = Header::new(Algorithm::HS256);
/// header.kid = Some("k1".into());
/// let claims = serde_json::json!({
///     "iss": "https://auth.example.com", "aud": "api://orders", "sub": "user-42",
///     "exp": 1_700_000_600, "jti": "t-1",
/// });
/// let token = encode(&header, &claims, &EncodingKey::from_secret(&[42; 32]))?;
///
/// assert_eq!(validator.validate(&token)?.claims().sub.as_deref(), Some("user-42"));
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(validator.validate(&token).unwrap_err().kind(), ValidationErrorKind::Expired);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    store: KeysetStore,
    revocations: RevocationList,
    issuers: Box<[Box<str>]>,
    audiences: Box<[Box<str>]>,
    leeway: u64,
    require_nbf: bool,
    require_sub: bool,
    require_jti: bool,
    require_iat: bool,
    max_token_size: usize,
    clock: Arc<dyn Clock>,
    cache: Option<cache::VerifiedCache<Entry>>,
    cache_ttl: Duration,
    seed: u64,
    fingerprint_key: [u8; 32],
    observer: Option<SharedObserver>,
    /// The cache hits counted for the observers that count them, not yet told.
    hits: Option<hits::HitCount>,
    /// Whether an observer wants each cache hit told.
    each_hit: bool,
    accepted_typ: Option<Box<[Box<str>]>>,
    /// Validators of other issuers, chosen by the token's `iss` (multi-issuer).
    tenants: Box<[Validator]>,
    /// Where a token with a kid these keys lack may wait for a refresh (async adapters).
    key_wait: Option<Arc<dyn KeyWait>>,
    /// How long it may wait.
    unknown_kid_wait: Duration,
    /// Whether this validator or one of its tenants has a `key_wait`.
    waits_for_keys: bool,
}

pub use crate::keys::{KeyWait, KeyWaitFuture};

impl Drop for Inner {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.fingerprint_key);
    }
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("issuers", &self.inner.issuers)
            .field("audiences", &self.inner.audiences)
            .field("leeway", &self.inner.leeway)
            .field("max_token_size", &self.inner.max_token_size)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Default largest token accepted, in bytes.
    pub const DEFAULT_MAX_TOKEN_SIZE: usize = DEFAULT_MAX_TOKEN_SIZE;
    /// Default number of verified tokens kept in the cache.
    pub const DEFAULT_CACHE_CAPACITY: u64 = DEFAULT_CACHE_CAPACITY;
    /// Default longest time a verified token stays cached (it never outlives its `exp`).
    pub const DEFAULT_CACHE_TTL: Duration = DEFAULT_CACHE_TTL;

    /// Starts a validator for the keys in `store`.
    pub fn builder(store: KeysetStore) -> ValidatorBuilder {
        ValidatorBuilder {
            store,
            revocations: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            require_nbf: false,
            required: Vec::new(),
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
            clock: Arc::new(SystemClock),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_ttl: DEFAULT_CACHE_TTL,
            fingerprint_key: None,
            observer: None,
            monitor_key: None,
            accepted_typ: None,
            tenants: Vec::new(),
            key_wait: None,
            unknown_kid_wait: Duration::from_millis(250),
        }
    }

    /// The revocation list consulted on every validation.
    pub fn revocations(&self) -> &RevocationList {
        &self.inner.revocations
    }

    /// The keyset store the validator reads.
    pub fn keyset_store(&self) -> &KeysetStore {
        &self.inner.store
    }

    /// The clock the validator reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The keyed fingerprint of any token string (valid or not), for audit and logs.
    pub fn fingerprint(&self, token: &str) -> Fingerprint {
        Fingerprint::compute(&self.inner.fingerprint_key, token)
    }

    /// Drops every cached verification (they are also dropped one by one as keysets change).
    pub fn clear_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    /// Verifications cached now (at most the configured capacity, whatever the churn).
    pub fn cached(&self) -> usize {
        self.inner
            .cache
            .as_ref()
            .map_or(0, cache::VerifiedCache::len)
    }

    /// Verifications the cache holds at most (0 without a cache).
    pub fn cache_capacity(&self) -> usize {
        self.inner
            .cache
            .as_ref()
            .map_or(0, cache::VerifiedCache::capacity)
    }

    /// Validates a bearer token (the part after `Bearer `).
    ///
    /// # Errors
    /// A [`ValidationError`] whose [`kind`](ValidationError::kind) says why the token was
    /// rejected.
    #[inline]
    pub fn validate(&self, token: &str) -> Result<Verified, ValidationError> {
        self.validate_from(token, None)
    }

    /// Validates a bearer token presented by `client` (a remote address or client id,
    /// used only for per-client alerting and audit).
    ///
    /// # Errors
    /// As for [`validate`](Self::validate).
    pub fn validate_from(
        &self,
        token: &str,
        client: Option<&str>,
    ) -> Result<Verified, ValidationError> {
        self.validate_timed(token, client, None)
    }

    /// [`validate_from`](Self::validate_from), with the observer's sampling decision
    /// already asked ([`probe`](Self::probe)) when `timed` is `Some`.
    #[inline(always)]
    pub(crate) fn validate_timed(
        &self,
        token: &str,
        client: Option<&str>,
        timed: Option<bool>,
    ) -> Result<Verified, ValidationError> {
        if !self.inner.tenants.is_empty()
            && let Some(tenant) = self.tenant_for(token)
        {
            return tenant.validate_from(token, client);
        }
        let mut arm = Arm::Active;
        let mut now = 0;
        let Some(observer) = &self.inner.observer else {
            return self.validate_inner(token, client, true, &mut arm, &mut now);
        };
        // A sampled validation (the timed ones) runs in a span of its own, its events
        // told inside it; the rest pay nothing for it.
        if timed.unwrap_or_else(|| observer.time_validation()) {
            return self.validate_sampled(token, client, observer, self.issuer());
        }
        let result = self.validate_inner(token, client, true, &mut arm, &mut now);
        // The common case, told without an event: a cache hit of the active keyset,
        // untimed — counted for the observers that count, told to those that want each.
        if let Ok(v) = &result
            && v.from_cache()
            && arm == Arm::Active
        {
            if let Some(hits) = &self.inner.hits {
                hits.add(v.keyset_version(), now, &**observer);
            }
            if self.inner.each_hit {
                observer.on_hit(&Hit {
                    token: TokenRef::new(token),
                    keyset_version: v.keyset_version(),
                    issuer: self.issuer(),
                    arm,
                    client,
                    now,
                });
            }
            return result;
        }
        self.tell(observer, token, client, self.issuer(), arm, None, &result);
        result
    }

    /// The issuer events name (the first configured).
    fn issuer(&self) -> &str {
        self.inner.issuers.first().map_or("", |i| &**i)
    }

    /// Tells the observers the cache hits this validator and its tenants counted and
    /// have not told yet ([`Hits`](crate::observe::Hits)): call it before reading what
    /// they count (a metrics scrape does), so the counts hold every validation before.
    /// Without it, counted hits are told when the keyset version or the clock's second
    /// changes on a later hit, and before any miss or failure is told.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use tokenlife_core::observe::{Event, Hits, Observer};
    /// use tokenlife_core::testing::Fixture;
    ///
    /// #[derive(Default)]
    /// struct Successes(AtomicU64);
    /// impl Observer for Successes {
    ///     fn on_event(&self, e: &Event<'_>) {
    ///         if let Event::Validated { outcome: Ok(_), .. } = e {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    ///     fn counts_hits(&self) -> bool {
    ///         true
    ///     }
    ///     fn on_hits(&self, hits: &Hits<'_>) {
    ///         self.0.fetch_add(hits.count, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let fx = Fixture::new();
    /// let seen = Arc::new(Successes::default());
    /// let v = tokenlife_core::Validator::builder(fx.store.clone())
    ///     .issuer(tokenlife_core::testing::ISS)
    ///     .audience(tokenlife_core::testing::AUD)
    ///     .clock(fx.clock.clone()) // a second that does not pass in the middle
    ///     .observer(seen.clone())
    ///     .build()
    ///     .unwrap();
    /// let token = fx.token("orders:read");
    /// for _ in 0..5 {
    ///     v.validate(&token).unwrap();
    /// }
    /// // The first was verified (told at once); four hits are counted, not yet told.
    /// assert_eq!(seen.0.load(Ordering::Relaxed), 1);
    /// v.flush_hits();
    /// assert_eq!(seen.0.load(Ordering::Relaxed), 5);
    /// ```
    pub fn flush_hits(&self) {
        if let (Some(hits), Some(observer)) = (&self.inner.hits, &self.inner.observer) {
            hits.flush(&**observer);
        }
        for tenant in &self.inner.tenants {
            tenant.flush_hits();
        }
    }

    /// Tells `observer` the [`Event::Validated`] of `result`.
    #[allow(clippy::too_many_arguments)]
    fn tell(
        &self,
        observer: &SharedObserver,
        token: &str,
        client: Option<&str>,
        issuer: &str,
        arm: Arm,
        elapsed: Option<std::time::Duration>,
        result: &Result<Verified, ValidationError>,
    ) {
        // Every success counted so far reaches the observers before a miss or failure
        // (the rollout guard judges a failure against the successes of its window).
        if !matches!(result, Ok(v) if v.from_cache())
            && let Some(hits) = &self.inner.hits
        {
            hits.flush(&**observer);
        }
        let (outcome, keyset_version) = match result {
            Ok(v) => (
                Ok(Validated {
                    from_cache: v.from_cache(),
                }),
                v.keyset_version(),
            ),
            Err(e) => (Err(e.kind()), self.inner.store.load().version()),
        };
        observer.on_event(&Event::Validated {
            outcome,
            token: TokenRef::new(token),
            keyset_version,
            issuer,
            arm,
            client,
            elapsed,
        });
    }

    /// A sampled validation: timed, in a validation span that also holds the events it
    /// tells (their audit records carry its trace), its outcome recorded on the span.
    #[cold]
    #[inline(never)]
    fn validate_sampled(
        &self,
        token: &str,
        client: Option<&str>,
        observer: &SharedObserver,
        issuer: &str,
    ) -> Result<Verified, ValidationError> {
        let started = Instant::now();
        let traced = span::enter(span::validation(issuer));
        let (mut arm, mut now) = (Arm::Active, 0);
        let result = self.validate_inner(token, client, true, &mut arm, &mut now);
        match &result {
            Ok(v) => {
                traced.record_u64("tokenlife.keyset_version", v.keyset_version());
                traced.record_bool("tokenlife.cache_hit", v.from_cache());
            }
            Err(e) => traced.fail(e.kind().as_str()),
        }
        self.tell(
            observer,
            token,
            client,
            issuer,
            arm,
            Some(started.elapsed()),
            &result,
        );
        result
    }

    /// Validates like [`validate`](Self::validate) but emits nothing: no metric, no
    /// lifecycle transition, no audit event, no alert. For operators' reads (RFC 7662
    /// introspection, RFC 7009 revocation) that must not count as API traffic nor raise a
    /// revoked-token alert.
    ///
    /// # Errors
    /// As for [`validate`](Self::validate).
    pub fn inspect(&self, token: &str) -> Result<Verified, ValidationError> {
        if let Some(tenant) = self.tenant_for(token) {
            return tenant.inspect(token);
        }
        self.validate_inner(token, None, false, &mut Arm::Active, &mut 0)
    }

    /// The validator of another issuer ([`ValidatorBuilder::tenant`]) that judges this
    /// token, by its unverified `iss`; `None` (this validator judges it) when there are
    /// no tenants, or the `iss` is none of theirs. The `iss` only picks the keys: the
    /// tenant then verifies the signature with its own keys, so a token of issuer A
    /// signed with a key of issuer B fails at A.
    fn tenant_for(&self, token: &str) -> Option<&Validator> {
        if self.inner.tenants.is_empty() || token.len() > self.inner.max_token_size {
            return None;
        }
        let iss = peek_iss(token)?;
        self.inner
            .tenants
            .iter()
            .find(|t| t.inner.issuers.iter().any(|i| **i == *iss))
    }

    /// The clock skew allowed on `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway)
    }

    /// Whether a request whose token failed [`UnknownKid`](crate::error::ValidationErrorKind::UnknownKid)
    /// may wait for keys ([`ValidatorBuilder::key_wait`], here or in a tenant): the async
    /// adapters ask [`wait_for_keys`](Self::wait_for_keys) only then.
    #[inline]
    pub fn waits_for_keys(&self) -> bool {
        self.inner.waits_for_keys
    }

    /// For a token that just failed `unknown_kid`: a future that resolves when the key
    /// refresh in flight for the validator that judges it (this one or the tenant of its
    /// `iss`) finishes, at most [`ValidatorBuilder::unknown_kid_wait`] later; `None` when
    /// there is nothing to wait for. Validate again after it.
    pub fn wait_for_keys(&self, token: &str) -> Option<KeyWaitFuture> {
        let v = self.tenant_for(token).unwrap_or(self);
        let bound = v.inner.unknown_kid_wait;
        if bound.is_zero() {
            return None;
        }
        let wait = v.inner.key_wait.as_ref()?;
        wait.wait(TokenRef::new(token).kid().as_deref(), bound)
    }

    /// The observer, if one was given: the admin operations report through it too.
    pub fn observer(&self) -> Option<&dyn Observer> {
        self.inner.observer.as_deref()
    }

    /// `live`: API traffic (a shadow candidate judges it too); `arm` is set to the arm
    /// that judged the token, for the event.
    fn validate_inner(
        &self,
        token: &str,
        client: Option<&str>,
        live: bool,
        arm: &mut Arm,
        now_out: &mut u64,
    ) -> Result<Verified, ValidationError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_size {
            return Err(Kind::TooLarge.into());
        }
        if token.is_empty() {
            return Err(Kind::MissingToken.into());
        }
        let hash = crate::hash::token_key(token, inner.seed);
        let now = inner.clock.unix_now();
        *now_out = now;

        let cached = inner
            .cache
            .as_ref()
            .and_then(|c| c.get(hash, now))
            .filter(|e| *e.token == *token);
        // The common case: verified under the current snapshot itself (one load to
        // know), which has no shadow to judge it: the snapshot is not needed.
        let current = inner.store.current_instance();
        let (entry, from_cache, version, snap) = match cached {
            Some(e) if e.snapshot == current && e.arm != Arm::Retired && !e.shadowed => {
                *arm = e.arm;
                let version = e.version;
                (e, true, version, None)
            }
            cached => {
                let snap = inner.store.load();
                match cached.filter(|e| self.still_holds(e, &snap, now, arm)) {
                    Some(e) => (e, true, snap.version(), Some(snap)),
                    // Keys past their freshness (a remote source down too long, or
                    // started without its provider): 503 before any key is looked at,
                    // not the unknown kid the missing keys would make of it.
                    None if !inner.store.is_fresh(now) => return Err(Kind::KeysStale.into()),
                    None => match self.verify(token, &snap, now, arm) {
                        Ok(e) => (e, false, snap.version(), Some(snap)),
                        Err(err) => {
                            // A stale entry of this very token (its key gone) is dropped;
                            // one of another token that shares the key is left alone.
                            if let Some(c) = &inner.cache {
                                c.remove_if(hash, |e| *e.token == *token);
                            }
                            return Err(err);
                        }
                    },
                }
            }
        };

        self.admit(&entry, now)?;
        if !from_cache && let Some(cache) = &inner.cache {
            cache.insert(hash, entry.clone(), entry.cache_until, now);
        }
        if live
            && let Some(snap) = &snap
            && let Some(shadow) = snap.shadow()
        {
            self.judge_shadow(shadow, snap, &entry, token, client);
        }
        Ok(Verified {
            entry,
            keyset_version: version,
            arm: *arm,
            cached: from_cache,
            fingerprint_key: inner.fingerprint_key,
        })
    }

    /// What a verified token must still pass at `now`, cached or not: its `exp` and `nbf`
    /// (with the leeway), fresh revocations and keys, and no revocation of it.
    #[inline(always)]
    fn admit(&self, entry: &Entry, now: u64) -> Result<(), ValidationError> {
        let inner = &*self.inner;
        let claims = &entry.claims;
        if let Some(exp) = claims.exp
            && now > exp.saturating_add(inner.leeway)
        {
            return Err(ValidationError::with_field(Kind::Expired, "exp"));
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(inner.leeway)
        {
            return Err(ValidationError::with_field(Kind::NotYetValid, "nbf"));
        }
        if !inner.revocations.is_fresh(now) {
            return Err(Kind::RevocationsStale.into());
        }
        if !inner.store.is_fresh(now) {
            return Err(Kind::KeysStale.into());
        }
        if let Some(by) = inner.revocations.check(
            claims.jti.as_deref(),
            claims.sub.as_deref(),
            claims.iat,
            claims.family.as_deref(),
            now,
        ) {
            let field = match by {
                RevokedBy::Jti => "jti",
                RevokedBy::Subject => "sub",
                RevokedBy::Family => "fam",
            };
            return Err(ValidationError::with_field(Kind::Revoked, field));
        }
        Ok(())
    }

    /// The request guard's first try, on the token's bytes as they came (not yet checked
    /// to be visible ASCII): a plain cache hit of these very bytes — the active keyset's,
    /// under the current snapshot, admitted now — is the answer, counted like any hit.
    /// Its bytes equal a token that was verified, so they are base64url and dots: the
    /// byte check a miss needs would find nothing. Anything else is left to a full
    /// validation, told nothing here; the sampling decision, if it was asked, goes with it
    /// (so each request asks the observer once).
    pub(crate) fn probe(&self, raw: &[u8]) -> Probe {
        let inner = &*self.inner;
        let Some(cache) = &inner.cache else {
            return Probe::Miss(None);
        };
        // Tenants pick by the token's `iss`; an observer that wants each hit wants its
        // token text: both take the full path.
        if !inner.tenants.is_empty() || inner.each_hit {
            return Probe::Miss(None);
        }
        if let Some(o) = &inner.observer
            && o.time_validation()
        {
            return Probe::Miss(Some(true));
        }
        let timed = inner.observer.as_ref().map(|_| false);
        if raw.is_empty() || raw.len() > inner.max_token_size {
            return Probe::Miss(timed);
        }
        let now = inner.clock.unix_now();
        let Some(entry) = cache
            .get(crate::hash::token_key(raw, inner.seed), now)
            .filter(|e| e.token.as_bytes() == raw)
        else {
            return Probe::Miss(timed);
        };
        if entry.snapshot != inner.store.current_instance()
            || entry.arm != Arm::Active
            || entry.shadowed
            || self.admit(&entry, now).is_err()
        {
            return Probe::Miss(timed);
        }
        let version = entry.version;
        if let (Some(hits), Some(observer)) = (&inner.hits, &inner.observer) {
            hits.add(version, now, &**observer);
        }
        Probe::Hit(Verified {
            entry,
            keyset_version: version,
            arm: Arm::Active,
            cached: true,
            fingerprint_key: inner.fingerprint_key,
        })
    }

    /// Whether a cached entry may answer under `snap`: verified under this very version,
    /// or its key still verifies for the token's arm (or is retired within its grace).
    #[inline]
    fn still_holds(&self, e: &Entry, snap: &KeysetSnapshot, now: u64, arm: &mut Arm) -> bool {
        if e.snapshot == snap.instance() && e.arm != Arm::Retired {
            *arm = e.arm;
            return true;
        }
        let a = snap.arm_for(e.claims.sub.as_deref());
        if snap.holds_for(&e.key, a) {
            *arm = a;
            return true;
        }
        if a == Arm::Active && self.inner.store.retired_accepts(&e.key, now) {
            *arm = Arm::Retired;
            return true;
        }
        false
    }

    /// A shadow candidate's verdict on a token the current keyset accepted: counted in the
    /// snapshot's [`ShadowStats`](crate::keys::ShadowStats) and reported as
    /// [`Event::Shadow`].
    fn judge_shadow(
        &self,
        shadow: &Keyset,
        snap: &KeysetSnapshot,
        entry: &Entry,
        token: &str,
        client: Option<&str>,
    ) {
        let outcome = match shadow.get(entry.key.kid()) {
            None => Err(Kind::UnknownKid),
            Some(k) if same_key(k, &entry.key) => Ok(()),
            Some(k) if k.algorithm() != entry.key.algorithm() => Err(Kind::AlgorithmMismatch),
            Some(k) => {
                let (message, sig) = token.rsplit_once('.').unwrap_or((token, ""));
                verify_signature(sig, message, k).map_err(|e| e.kind())
            }
        };
        if let Some(stats) = snap.shadow_stats() {
            stats.record(outcome.is_err());
        }
        if let Some(o) = &self.inner.observer {
            o.on_event(&Event::Shadow {
                outcome,
                token: TokenRef::new(token),
                keyset_version: snap.version(),
                client,
            });
        }
    }

    /// The key for `kid` for a token judged by `arm`: the snapshot's, or a retired key the
    /// store's policy still answers for (the arm becomes [`Arm::Retired`]).
    fn key_for(
        &self,
        snap: &KeysetSnapshot,
        kid: &str,
        now: u64,
        arm: &mut Arm,
    ) -> Result<Arc<Key>, ValidationError> {
        if let Some(k) = snap.find_for(kid, *arm) {
            return Ok(k.clone());
        }
        if *arm == Arm::Active {
            match self.inner.store.retired(kid, now) {
                Some((k, Retirement::Grace(_))) => {
                    *arm = Arm::Retired;
                    return Ok(k);
                }
                Some((_, Retirement::RenewRequired(_))) => {
                    return Err(ValidationError::with_field(Kind::KeyRetired, "kid"));
                }
                _ => {}
            }
        }
        Err(ValidationError::with_field(Kind::UnknownKid, "kid"))
    }

    /// The cache-miss path: header, key, signature, static claims.
    fn verify(
        &self,
        token: &str,
        snap: &KeysetSnapshot,
        now: u64,
        arm: &mut Arm,
    ) -> Result<Arc<Entry>, ValidationError> {
        let inner = &*self.inner;
        let (h64, p64, sig) = segments(token)?;
        let header_json = decode_header(h64)?;
        let header = parse_header(&header_json)?;
        if let Some(accepted) = &inner.accepted_typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|t| typ_matches(t, accepted))
        {
            return Err(ValidationError::with_field(Kind::WrongType, "typ"));
        }
        let message = &token[..h64.len() + 1 + p64.len()];
        *arm = if snap.routes_canary() {
            // The canary arm is chosen by the subject, read before the signature check
            // (either arm's keys are trusted; the subject only picks which judge).
            snap.arm_for(peek_subject(p64).as_deref())
        } else {
            Arm::Active
        };
        let key = match header.kid.as_deref() {
            Some(kid) => {
                let key = self.key_for(snap, kid, now, arm)?;
                if key.alg_name() != header.alg {
                    return Err(ValidationError::with_field(Kind::AlgorithmMismatch, "alg"));
                }
                verify_signature(sig, message, &key)?;
                key
            }
            None => Self::verify_kidless(sig, message, &header.alg, snap, *arm)?.clone(),
        };
        let payload = URL_SAFE_NO_PAD
            .decode(p64)
            .map_err(|e| ValidationError::with_source(Kind::Malformed, e))?;
        let payload_text = json_object(&payload)
            .ok_or_else(|| ValidationError::with_field(Kind::Malformed, "payload"))?;
        // serde's messages can quote claim values: classify, keep no source.
        let claims: RegisteredClaims =
            serde_json::from_str(payload_text).map_err(|e| match e.classify() {
                serde_json::error::Category::Data => Kind::InvalidClaim.into(),
                _ => ValidationError::with_field(Kind::Malformed, "payload"),
            })?;
        self.check_static(&claims)?;

        let by_ttl = now.saturating_add(inner.cache_ttl.as_secs());
        let cache_until = claims
            .exp
            .map_or(by_ttl, |exp| {
                exp.saturating_add(inner.leeway).saturating_add(1)
            })
            .min(by_ttl);
        Ok(Arc::new(Entry {
            token: token.into(),
            payload: payload.into_boxed_slice(),
            claims,
            key,
            snapshot: snap.instance(),
            arm: *arm,
            version: snap.version(),
            shadowed: snap.shadow().is_some(),
            cache_until,
        }))
    }

    /// A token without `kid`: the one active key of the header's algorithm verifies it;
    /// during a canary, when that fails (or there is none), the one staged key of that
    /// algorithm. At most two signature checks; ambiguity is an unknown key.
    fn verify_kidless<'s>(
        sig: &str,
        message: &str,
        alg: &str,
        snap: &'s KeysetSnapshot,
        arm: Arm,
    ) -> Result<&'s Arc<Key>, ValidationError> {
        fn unique<'k>(mut it: impl Iterator<Item = &'k Arc<Key>>) -> Option<&'k Arc<Key>> {
            match (it.next(), it.next()) {
                (Some(k), None) => Some(k),
                _ => None,
            }
        }
        let of_alg = |k: &&Arc<Key>| k.alg_name() == alg;
        let active = if arm == Arm::Canary {
            None
        } else {
            unique(snap.active().keys().filter(of_alg))
        };
        let staged = snap.staged().and_then(|s| unique(s.keys().filter(of_alg)));
        let mut last = ValidationError::with_field(Kind::UnknownKid, "kid");
        for key in active.into_iter().chain(staged) {
            match verify_signature(sig, message, key) {
                Ok(()) => return Ok(key),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Checks that do not depend on time: issuer, audience, required claims.
    fn check_static(&self, claims: &RegisteredClaims) -> Result<(), ValidationError> {
        let inner = &*self.inner;
        let missing = |f| ValidationError::with_field(Kind::MissingClaim, f);
        let iss = claims.iss.as_deref().ok_or_else(|| missing("iss"))?;
        if claims.aud.is_empty() {
            return Err(missing("aud"));
        }
        if claims.exp.is_none() {
            return Err(missing("exp"));
        }
        if inner.require_nbf && claims.nbf.is_none() {
            return Err(missing("nbf"));
        }
        if inner.require_sub && claims.sub.is_none() {
            return Err(missing("sub"));
        }
        if inner.require_jti && claims.jti.is_none() {
            return Err(missing("jti"));
        }
        if inner.require_iat && claims.iat.is_none() {
            return Err(missing("iat"));
        }
        if !inner.issuers.iter().any(|i| **i == *iss) {
            return Err(ValidationError::with_field(Kind::WrongIssuer, "iss"));
        }
        if !claims
            .aud
            .iter()
            .any(|a| inner.audiences.iter().any(|x| **x == **a))
        {
            return Err(ValidationError::with_field(Kind::WrongAudience, "aud"));
        }
        Ok(())
    }
}

/// Builds a [`Validator`]. Issuer and audience are required.
#[must_use]
pub struct ValidatorBuilder {
    store: KeysetStore,
    revocations: Option<RevocationList>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    require_nbf: bool,
    required: Vec<String>,
    max_token_size: usize,
    clock: Arc<dyn Clock>,
    cache_capacity: u64,
    cache_ttl: Duration,
    fingerprint_key: Option<[u8; 32]>,
    observer: Option<SharedObserver>,
    monitor_key: Option<[u8; 32]>,
    accepted_typ: Option<Vec<Box<str>>>,
    tenants: Vec<Validator>,
    key_wait: Option<Arc<dyn KeyWait>>,
    unknown_kid_wait: Duration,
}

impl fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the fingerprint keys.
        f.debug_struct("ValidatorBuilder")
            .field("store", &self.store)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("max_token_size", &self.max_token_size)
            .field("cache_capacity", &self.cache_capacity)
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

impl ValidatorBuilder {
    /// Multi-issuer: tokens whose `iss` is one of `tenant`'s issuers are judged by
    /// `tenant` entirely (its keys, audiences, policy, cache and observer); every other
    /// token by this validator. Build each issuer's validator on that issuer's keys
    /// (`RemoteKeys` per identity provider, say) and give them the same revocation
    /// list and monitor if revocations and metrics should span them.
    ///
    /// ```
    /// use tokenlife_core::{Algorithm, Keyset, KeysetStore, ValidationErrorKind, Validator, testing};
    /// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    /// let store = |kid| KeysetStore::new(Keyset::new([testing::key(kid, Algorithm::ES256)]).unwrap());
    /// let b = Validator::builder(store("b-key")).issuer("https://b").audience("api").build().unwrap();
    /// let v = Validator::builder(store("a-key")).issuer("https://a").audience("api").tenant(b).build().unwrap();
    /// let claims = |iss: &str| serde_json::json!({"iss": iss, "aud": "api", "sub": "u", "exp": now + 60});
    ///
    /// let a_key = testing::key("a-key", Algorithm::ES256);
    /// let b_key = testing::key("b-key", Algorithm::ES256);
    /// assert!(v.validate(&testing::sign(&a_key, &claims("https://a"))).is_ok());
    /// assert!(v.validate(&testing::sign(&b_key, &claims("https://b"))).is_ok());
    /// // Issuer B's claim signed with issuer A's key: B does not know that key.
    /// let forged = testing::sign(&a_key, &claims("https://b"));
    /// assert_eq!(v.validate(&forged).unwrap_err().kind(), ValidationErrorKind::UnknownKid);
    /// ```
    pub fn tenant(mut self, tenant: Validator) -> Self {
        self.tenants.push(tenant);
        self
    }

    /// Lets requests of the async adapters whose token names a `kid` these keys lack wait
    /// for `keys`' refresh in flight (see [`KeyWait`]); with
    /// [`RemoteKeys`](crate::keys::remote::RemoteKeys) as an observer too, the unknown kid
    /// wakes that refresh, so a provider that starts signing with a new key costs no
    /// failed request. Known kids never wait; the sync `validate` never waits.
    pub fn key_wait(mut self, keys: impl KeyWait) -> Self {
        self.key_wait = Some(Arc::new(keys));
        self
    }

    /// How long a request may wait for keys (default 250 ms; zero: never).
    pub fn unknown_kid_wait(mut self, bound: Duration) -> Self {
        self.unknown_kid_wait = bound;
        self
    }

    /// Explicit typing (RFC 8725 §3.11): accept only tokens whose header `typ` is one of
    /// these media types (compared case-insensitively, `application/` optional), such as
    /// `at+jwt` (RFC 9068) — so that an ID token or another JWT signed by the same key
    /// cannot pass as an access token. By default `typ` is not checked.
    ///
    /// ```
    /// # use tokenlife_core::{Algorithm, Keyset, KeysetStore, Validator, ValidationErrorKind, testing, Clock, SystemClock};
    /// # let key = testing::key("k", Algorithm::ES256);
    /// # let store = KeysetStore::new(Keyset::new([testing::key("k", Algorithm::ES256)])?);
    /// let v = Validator::builder(store).issuer("i").audience("a").accept_typ(["at+jwt"]).build()?;
    /// # let claims = serde_json::json!({"iss": "i", "aud": "a", "exp": SystemClock.unix_now() + 60});
    /// let plain = testing::sign(&key, &claims);          // typ "JWT"
    /// assert_eq!(v.validate(&plain).unwrap_err().kind(), ValidationErrorKind::WrongType);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_typ<'a>(mut self, types: impl IntoIterator<Item = &'a str>) -> Self {
        self.accepted_typ
            .get_or_insert_with(Vec::new)
            .extend(types.into_iter().map(Into::into));
        self
    }

    /// Feeds metrics, lifecycle, audit and alerts to `monitor` (the
    /// [`Monitor`](crate::observe::Monitor) tokenlife ships, or any observer): the same as
    /// [`observer`](Self::observer).
    pub fn monitor(self, monitor: impl Observer) -> Self {
        self.observer(monitor)
    }

    /// Reports every validation to `observer` too, beside the monitor or observer set
    /// before (a [`RolloutGuard`](crate::rollout::RolloutGuard) beside the
    /// [`Monitor`](crate::observe::Monitor), keeping the monitor's fingerprint key).
    pub fn also_observer(mut self, observer: impl Observer) -> Self {
        self.observer = Some(match self.observer.take() {
            Some(first) => SharedObserver::new((first.0, observer)),
            None => SharedObserver::new(observer),
        });
        self
    }

    /// Reports every validation to `observer` (replacing any monitor or observer set
    /// before; combine two with a tuple).
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.monitor_key = observer.fingerprint_key();
        self.observer = Some(SharedObserver::new(observer));
        self
    }

    /// Accepts tokens from this issuer (may be called more than once).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (may be called more than once).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires `nbf` to be present (it is always checked when present).
    pub fn require_nbf(mut self, require: bool) -> Self {
        self.require_nbf = require;
        self
    }

    /// Requires more registered claims to be present: any of `sub`, `jti`, `iat`, `nbf`
    /// (`iss`, `aud` and `exp` are always required).
    ///
    /// # Errors
    /// [`ConfigErrorKind::InvalidValue`](crate::error::ConfigErrorKind::InvalidValue) for any other name.
    pub fn required_claims<'a>(
        mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ConfigError> {
        for n in names {
            match n {
                "iss" | "aud" | "exp" => {}
                "sub" | "jti" | "iat" | "nbf" => self.required.push(n.to_owned()),
                _ => return Err(ConfigError::invalid("required_claims")),
            }
        }
        Ok(self)
    }

    /// Largest token accepted, in bytes (default 8 KiB). Larger input is rejected before
    /// any decoding.
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// The clock for `exp`/`nbf` and revocation lapses (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses this revocation list (shared with an issuer or a fleet backend) instead of
    /// a new one on the validator's clock.
    pub fn revocations(mut self, list: RevocationList) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Verified-token cache size in entries (default 100 000, at most 2^24); 0 turns the
    /// cache off. A hard bound: churn of distinct tokens evicts, never grows it.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Longest time a verification stays cached (default 10 min; never past `exp`).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The key for token fingerprints. Give every node of a fleet the same key to
    /// correlate audit events; by default it is random per process.
    pub fn fingerprint_key(mut self, key: [u8; 32]) -> Self {
        self.fingerprint_key = Some(key);
        self
    }

    /// Builds the validator.
    ///
    /// # Errors
    /// [`ConfigErrorKind::MissingIssuer`](crate::error::ConfigErrorKind::MissingIssuer) / [`ConfigErrorKind::MissingAudience`](crate::error::ConfigErrorKind::MissingAudience) when none was
    /// given; [`ConfigErrorKind::InvalidValue`](crate::error::ConfigErrorKind::InvalidValue) for a zero `max_token_size`.
    pub fn build(self) -> Result<Validator, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::MISSING_ISSUER);
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::MISSING_AUDIENCE);
        }
        if self.max_token_size == 0 {
            return Err(ConfigError::invalid("max_token_size"));
        }
        crate::crypto::ensure_provider();
        let has = |n: &str| self.required.iter().any(|r| r == n);
        let cache = (self.cache_capacity > 0).then(|| {
            cache::VerifiedCache::new(
                usize::try_from(self.cache_capacity.min(MAX_CACHE_CAPACITY)).unwrap_or(usize::MAX),
            )
        });
        let revocations = self.revocations.unwrap_or_else(|| {
            let b = RevocationList::builder().clock_arc(self.clock.clone());
            match &self.observer {
                Some(o) => b.observer_arc(o.clone()),
                None => b,
            }
            .build()
        });
        let hits = self
            .observer
            .as_ref()
            .filter(|o| o.counts_hits())
            .map(|_| hits::HitCount::new(self.issuers.first().map_or("", |i| i)));
        Ok(Validator {
            inner: Arc::new(Inner {
                revocations,
                issuers: self.issuers.into_iter().map(Into::into).collect(),
                audiences: self.audiences.into_iter().map(Into::into).collect(),
                leeway: self.leeway.as_secs(),
                require_nbf: self.require_nbf || has("nbf"),
                require_sub: has("sub"),
                require_jti: has("jti"),
                require_iat: has("iat"),
                max_token_size: self.max_token_size,
                clock: self.clock,
                cache,
                cache_ttl: self.cache_ttl,
                seed: random_u64(),
                fingerprint_key: self
                    .fingerprint_key
                    .or(self.monitor_key)
                    .unwrap_or_else(random_key),
                hits,
                each_hit: self.observer.as_ref().is_some_and(|o| o.each_hit()),
                observer: self.observer,
                store: self.store,
                accepted_typ: self.accepted_typ.map(Vec::into_boxed_slice),
                waits_for_keys: self.key_wait.is_some()
                    || self.tenants.iter().any(Validator::waits_for_keys),
                tenants: self.tenants.into_boxed_slice(),
                key_wait: self.key_wait,
                unknown_kid_wait: self.unknown_kid_wait,
            }),
        })
    }
}

/// What [`Validator::probe`] made of a token's bytes.
pub(crate) enum Probe {
    /// A plain cache hit of these very bytes, counted: the answer.
    Hit(Verified),
    /// Anything else: validate in full, with the observer's sampling decision when it
    /// was asked (`Some`).
    Miss(Option<bool>),
}

/// The `iss` claim of a token, read without verification (it only picks which
/// validator verifies the token).
fn peek_iss(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}
