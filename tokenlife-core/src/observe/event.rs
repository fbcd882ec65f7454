//! What the domain emits: [`Event`], handed to an [`Observer`].
//!
//! The validator, issuer, API keys, revocation list and the admin operations know
//! nothing of metrics, audit or alerts: they describe what happened as an [`Event`] and
//! hand it to their observer, if they have one. [`Monitor`](super::Monitor) is one
//! observer; write your own, or run two side by side with a tuple `(a, b)`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ApiKeyErrorKind, RemoteErrorKind, RenewErrorKind, ValidationErrorKind};
use crate::fingerprint::Fingerprint;

use super::audit::AuditAction;
use super::lifecycle::{TokenKind, TokenState};

/// A token as an event carries it: its keyed fingerprint on demand, never its text.
///
/// ```
/// use tokenlife_core::observe::TokenRef;
///
/// let key = [7u8; 32];
/// let token = TokenRef::new("eyJhbGciOi.not-logged.anywhere");
/// assert_eq!(format!("{token:?}"), "TokenRef(..)");
/// assert_eq!(token.fingerprint(&key), TokenRef::new("eyJhbGciOi.not-logged.anywhere").fingerprint(&key));
/// ```
#[derive(Clone, Copy)]
pub struct TokenRef<'a>(&'a str);

impl<'a> TokenRef<'a> {
    /// Wraps a presented token or key.
    pub fn new(token: &'a str) -> Self {
        Self(token)
    }

    /// The keyed BLAKE3 fingerprint of the token under `key`.
    pub fn fingerprint(&self, key: &[u8; 32]) -> Fingerprint {
        Fingerprint::compute(key, self.0)
    }

    /// The token itself, for the crate's own observers that must verify it (the rollout
    /// guard's evidence check); never logged, never stored.
    pub(crate) fn expose(&self) -> &'a str {
        self.0
    }

    /// The `kid` of the token's JOSE header, if it has one (at most 256 bytes; the header
    /// at most 2 KiB). Not a secret: it names a key. Decoded on demand (the unknown-kid
    /// path), never on a hit.
    ///
    /// ```
    /// use tokenlife_core::observe::TokenRef;
    /// // {"alg":"ES256","kid":"k2"}
    /// assert_eq!(TokenRef::new("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsyIn0.e30.sig").kid().as_deref(), Some("k2"));
    /// assert_eq!(TokenRef::new("not-a-jwt").kid(), None);
    /// ```
    pub fn kid(&self) -> Option<String> {
        use base64::Engine;
        let header = self.0.split('.').next()?;
        if header.len() > 2048 {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()?;
        #[derive(serde::Deserialize)]
        struct Header {
            kid: Option<String>,
        }
        let kid = serde_json::from_slice::<Header>(&bytes).ok()?.kid?;
        (kid.len() <= 256).then_some(kid)
    }

    /// The token's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the token is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRef(..)")
    }
}

/// Why something was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeReason {
    /// One token, by `jti`.
    Jti,
    /// Every token of a subject issued up to a cut-off.
    Subject,
    /// A refresh family (and its access tokens).
    Family,
    /// A retired refresh token came back: its family went with it.
    RefreshReuse,
    /// An API key.
    ApiKey,
}

impl RevokeReason {
    /// The `reason` label: `jti`, `subject`, `family`, `refresh_reuse`, `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Subject => "subject",
            Self::Family => "family",
            Self::RefreshReuse => "refresh_reuse",
            Self::ApiKey => "api_key",
        }
    }
}

/// A successful validation, as events see it (`Default`: not from the cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Validated {
    /// Answered from the verified-token cache.
    pub from_cache: bool,
}

/// A validation that passed from the verified-token cache, untimed: the hot path's common
/// case, told to [`Observer::on_hit`] without building an [`Event`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Hit<'a> {
    /// The token.
    pub token: TokenRef<'a>,
    /// The keyset version that verified it.
    pub keyset_version: u64,
    /// The validator's issuer.
    pub issuer: &'a str,
    /// The keyset arm that verified it.
    pub arm: Arm,
    /// The client address, when known.
    pub client: Option<&'a str>,
    /// The validator's clock when it judged the token (Unix seconds).
    pub now: u64,
}

impl<'a> Hit<'a> {
    /// The [`Event::Validated`] this hit stands for.
    pub fn event(&self) -> Event<'a> {
        Event::Validated {
            outcome: Ok(Validated { from_cache: true }),
            token: self.token,
            keyset_version: self.keyset_version,
            issuer: self.issuer,
            arm: self.arm,
            client: self.client,
            elapsed: None,
        }
    }
}

/// Cache hits of the active keyset counted together: what an observer that
/// [`counts_hits`](Observer::counts_hits) gets instead of one [`Hit`] each.
///
/// The validator counts its untimed cache hits of the active keyset per keyset version
/// and second of its clock, and tells the count when the version or the second changes,
/// before it tells any miss or failure (so a count over the window, as the rollout
/// guard keeps, holds every success before the failure it judges), and when asked
/// ([`Validator::flush_hits`](crate::Validator::flush_hits), which a metrics scrape
/// calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hits<'a> {
    /// How many.
    pub count: u64,
    /// The keyset version that verified them.
    pub keyset_version: u64,
    /// The validator's issuer.
    pub issuer: &'a str,
    /// The second of the validator's clock they were judged in (Unix seconds).
    pub now: u64,
}

impl<'a> Hits<'a> {
    /// `count` hits of `keyset_version` for `issuer` at `now`.
    pub fn new(count: u64, keyset_version: u64, issuer: &'a str, now: u64) -> Self {
        Self {
            count,
            keyset_version,
            issuer,
            now,
        }
    }
}

/// Which keyset of the current snapshot judged a validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Arm {
    /// The active keyset (and, outside a canary, the keys staged beside it).
    #[default]
    Active,
    /// The staged candidate, for a client inside the canary share.
    Canary,
    /// A key a rotation or rollback removed, still accepted until its grace deadline.
    Retired,
}

impl Arm {
    /// The `arm` label: `active`, `canary`, `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Canary => "canary",
            Self::Retired => "retired",
        }
    }
}

/// One thing that happened to a token, a key or a keyset.
///
/// Borrowed: an observer that keeps anything copies what it needs. Tokens appear only as
/// [`TokenRef`]s.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A JWT was validated on the API path ([`Validator::validate`](crate::Validator::validate);
    /// [`Validator::inspect`](crate::Validator::inspect) emits nothing).
    Validated {
        /// The verdict.
        outcome: Result<Validated, ValidationErrorKind>,
        /// The token presented.
        token: TokenRef<'a>,
        /// The keyset version that judged it.
        keyset_version: u64,
        /// The issuer of the validator that judged it (its first configured `iss`; a
        /// tenant's for a token routed to a tenant; empty when none is configured): a
        /// label from configuration, never from the token.
        issuer: &'a str,
        /// Which keyset of that version judged it (a canary's candidate, a retired key).
        arm: Arm,
        /// The caller (remote address or client id), when the adapter knows it.
        client: Option<&'a str>,
        /// How long it took, when the observer asked to time it ([`Observer::time_validation`]).
        elapsed: Option<Duration>,
    },
    /// A shadow candidate judged a token the current keyset accepted (the response was
    /// the current keyset's).
    Shadow {
        /// `Ok` if the candidate would have accepted it too, else why it would not.
        outcome: Result<(), ValidationErrorKind>,
        /// The token presented.
        token: TokenRef<'a>,
        /// The keyset version carrying the shadow candidate.
        keyset_version: u64,
        /// The caller, when the adapter knows it.
        client: Option<&'a str>,
    },
    /// A fetch of remote keys (an identity provider's JWKS) ended.
    RemoteKeys {
        /// The source (JWKS or issuer URL).
        source: &'a str,
        /// What came of it (a failure keeps the last good keys current).
        outcome: RemoteFetch,
        /// The keyset version current after it.
        version: u64,
        /// Entries of the JWKS that could not be used and were skipped (`kid: reason`).
        skipped: &'a [String],
        /// The source started without its provider and no fetch has succeeded since
        /// (its keys are persisted ones, or none).
        degraded: bool,
    },
    /// A keyset change removed keys that verified tokens until then; the store's
    /// retirement policy decides what becomes of those tokens.
    KeysRetired {
        /// The version that became current.
        version: u64,
        /// The removed keys' ids.
        kids: &'a [&'a str],
        /// The policy in force.
        policy: RetirementPolicy,
        /// Until when (Unix seconds) their tokens are still accepted (`grace`) or answered
        /// with "renew" (`renew_required`).
        until: Option<u64>,
    },
    /// A token or key was minted.
    Issued {
        /// Access, refresh or API key.
        kind: TokenKind,
        /// The new token.
        token: TokenRef<'a>,
        /// The keyset version that signed it (JWTs).
        keyset_version: Option<u64>,
        /// The kid and algorithm of the key that signed it (JWTs).
        key: Option<(&'a str, jsonwebtoken::Algorithm)>,
        /// Its subject (JWTs).
        subject: Option<&'a str>,
        /// The client it was issued to.
        client: Option<&'a str>,
        /// Its `jti` (access tokens).
        jti: Option<&'a str>,
        /// The issuer (`iss`) that minted it (JWTs).
        issuer: Option<&'a str>,
    },
    /// A refresh token was rotated or an API key rotated.
    Renewed {
        /// Refresh or API key.
        kind: TokenKind,
        /// The token presented to renew (refresh tokens).
        token: Option<TokenRef<'a>>,
        /// Its subject (refresh tokens).
        subject: Option<&'a str>,
        /// The client.
        client: Option<&'a str>,
        /// An idempotent retry: the token had been rotated already and its client,
        /// having lost the answer, got a sibling pair.
        retry: bool,
    },
    /// A refresh token was refused.
    RenewFailed {
        /// Why it was refused.
        reason: RenewErrorKind,
        /// The token presented.
        token: TokenRef<'a>,
        /// Its subject, when the token was known.
        subject: Option<&'a str>,
        /// Its client, when the token was known.
        client: Option<&'a str>,
    },
    /// A retired refresh token came back; its family is now revoked.
    RefreshReuse {
        /// The token presented.
        token: TokenRef<'a>,
        /// Its subject.
        subject: &'a str,
        /// Its client.
        client: Option<&'a str>,
        /// Entries in the revocation list after revoking the family.
        revocation_entries: u64,
    },
    /// Something was revoked.
    Revoked {
        /// What sort of token the revocation covers.
        kind: TokenKind,
        /// By what.
        reason: RevokeReason,
        /// The state the revoked token was in, when one known token was revoked.
        from: Option<TokenState>,
        /// The subject, for subject revocations.
        subject: Option<&'a str>,
        /// The client, for API keys.
        client: Option<&'a str>,
        /// Entries in the revocation list afterwards, when it changed.
        revocation_entries: Option<u64>,
        /// Whether this revocation is an audit record of its own (a revocation list
        /// entry or an API key), rather than the refresh-store half of one.
        audited: bool,
    },
    /// An API key was presented.
    ApiKeyChecked {
        /// `Ok`, or why it was refused.
        outcome: Result<(), ApiKeyErrorKind>,
        /// The key presented.
        token: TokenRef<'a>,
    },
    /// A token's state changed without anything else to report (an API key seen for the
    /// first time, or found expired).
    Transition {
        /// Which sort of token.
        kind: TokenKind,
        /// The state it was in.
        from: Option<TokenState>,
        /// The state it is in now.
        to: TokenState,
    },
    /// The rollout guard rolled a failing keyset version back.
    KeysetRolledBack {
        /// The version that failed (now quarantined).
        from: u64,
        /// The version made current again.
        to: u64,
        /// Why.
        reason: RollbackReason,
        /// Key failures of `from` seen in the window.
        failures: u64,
        /// Validations of `from` seen in the window.
        sample: u64,
    },
    /// An unknown kid of a remote issuer came during the refresh cooldown and woke no
    /// refresh.
    UnknownKidSuppressed {
        /// The source (JWKS or issuer URL).
        source: &'a str,
    },
    /// Something happened to this node's link with the fleet.
    Fleet(FleetEvent),
    /// An admin operation or a refused admin request.
    Admin {
        /// What was done (`Admin` for revocations and mints, `Keyset*` for keyset changes).
        action: AuditAction,
        /// What it was, for the audit trail (`"publish v3"`, `"revoke jti …"`).
        detail: Option<&'a str>,
        /// Why a request was refused.
        failure: Option<AdminFailure>,
        /// Who: the caller's address for refused requests; for accepted ones the actor
        /// (`admin`, or the OAuth client's or resource server's id).
        client: Option<&'a str>,
        /// The subject the action concerned (a subject revocation), where there is one.
        subject: Option<&'a str>,
        /// The current keyset version afterwards.
        keyset_version: Option<u64>,
    },
}

/// What came of a fetch of remote keys ([`Event::RemoteKeys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteFetch {
    /// New keys, now current.
    Updated,
    /// The same keys as before.
    Unchanged,
    /// `304 Not Modified`.
    NotModified,
    /// It failed; the last good keys stay current.
    Failed(RemoteErrorKind),
}

impl RemoteFetch {
    /// The label value: `updated`, `unchanged`, `not_modified`, or the failure's kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::NotModified => "not_modified",
            Self::Failed(kind) => kind.as_str(),
        }
    }

    /// Whether it failed.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

/// What becomes of the tokens of removed keys ([`Event::KeysRetired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetirementPolicy {
    /// Refused at once.
    Reject,
    /// Accepted until a deadline.
    Grace,
    /// Answered with "renew" until a deadline.
    RenewRequired,
}

impl RetirementPolicy {
    /// Every policy, in label order.
    pub const ALL: [Self; 3] = [Self::Reject, Self::Grace, Self::RenewRequired];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Grace => "grace",
            Self::RenewRequired => "renew_required",
        }
    }
}

/// Why the rollout guard rolled a version back ([`Event::KeysetRolledBack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RollbackReason {
    /// Unknown kids, bad signatures, algorithm mismatches of tokens the last good version
    /// verifies.
    BadKeyRate,
    /// Any failure, past the policy's `max_failure_rate`.
    FailureRate,
}

impl RollbackReason {
    /// The reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadKeyRate => "bad_key_rate",
            Self::FailureRate => "failure_rate",
        }
    }
}

/// Why an admin or OAuth request was refused ([`Event::Admin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AdminFailure {
    /// Bad or missing admin (or resource-server) credentials.
    AdminAuth,
    /// Bad or missing client credentials at an OAuth endpoint.
    ClientAuth,
}

impl AdminFailure {
    /// The failure code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminAuth => "admin_auth",
            Self::ClientAuth => "client_auth",
        }
    }
}

/// What happened to a node's link with the fleet ([`Event::Fleet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetEvent {
    /// The subscriber is connected and has synced, at this Unix time.
    Synced {
        /// When (Unix seconds).
        at: u64,
    },
    /// The subscriber lost its connection (or its heartbeat).
    Disconnected,
    /// No heartbeat (nor any message) came within the bound; the subscription ended.
    HeartbeatMissed,
    /// A revocation from another node was applied.
    RevocationApplied,
    /// A message was dropped.
    Dropped(FleetDrop),
    /// Local revocations waiting to reach Redis, now.
    Queued(u64),
    /// An older keyset state whose content differs from this node's was ignored.
    KeysetStateIgnored,
    /// The fleet epoch changed (a Redis that lost its data, a failover).
    EpochChanged,
}

/// Why a fleet message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FleetDrop {
    /// Larger than the message bound.
    Oversize,
    /// Not the expected JSON.
    Malformed,
    /// A message version this node does not speak.
    Version,
    /// Well-formed but not acceptable (a bad revocation).
    Invalid,
    /// The local revocation list was full.
    Full,
    /// A keyset state carrying private or symmetric key material.
    PrivateMaterial,
}

impl FleetDrop {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::Malformed => "malformed",
            Self::Version => "version",
            Self::Invalid => "invalid",
            Self::Full => "full",
            Self::PrivateMaterial => "private",
        }
    }
}

/// Receives the domain's [`Event`]s. Called inline, on the caller's thread: keep it
/// cheap, and hand anything slow to a queue (as the [`Auditor`](super::audit::Auditor)
/// does).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tokenlife_core::observe::{Event, Observer};
///
/// #[derive(Default)]
/// struct CountFailures(AtomicU64);
///
/// impl Observer for CountFailures {
///     fn on_event(&self, event: &Event<'_>) {
///         if let Event::Validated { outcome: Err(_), .. } = event {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// # let o = CountFailures::default();
/// # o.on_event(&Event::Validated { outcome: Err(tokenlife_core::ValidationErrorKind::Expired),
/// #     token: tokenlife_core::observe::TokenRef::new("t"), keyset_version: 1, issuer: "i",
/// #     arm: tokenlife_core::observe::Arm::Active, client: None, elapsed: None });
/// # assert_eq!(o.0.load(Ordering::Relaxed), 1);
/// ```
pub trait Observer: Send + Sync + 'static {
    /// One event.
    fn on_event(&self, event: &Event<'_>);

    /// A validation that passed from the cache, untimed (most requests). The default
    /// tells it as the [`Event::Validated`] it stands for ([`Hit::event`]); the library's
    /// metrics and rollout guard count it in a few instructions, without the event.
    #[inline]
    fn on_hit(&self, hit: &Hit<'_>) {
        self.on_event(&hit.event());
    }

    /// Whether this observer takes the active keyset's cache hits counted
    /// ([`on_hits`](Self::on_hits)) rather than one by one ([`on_hit`](Self::on_hit)).
    /// A validator whose observers all count calls none of them on such a hit: it adds
    /// one to a counter and tells the count later (see [`Hits`]). The default is one by
    /// one; the library's metrics, rollout guard and console feed count.
    fn counts_hits(&self) -> bool {
        false
    }

    /// Whether this observer (or, for a composition, one of its parts) wants each cache
    /// hit through [`on_hit`](Self::on_hit). The default: when it does not
    /// [`count`](Self::counts_hits) them.
    fn each_hit(&self) -> bool {
        !self.counts_hits()
    }

    /// Cache hits counted together, for an observer that
    /// [`counts_hits`](Self::counts_hits). The default ignores them. Called with the
    /// validator's count locked (a request thread that starts the next count waits for
    /// it): add the count and return.
    fn on_hits(&self, hits: &Hits<'_>) {
        let _ = hits;
    }

    /// Whether to time the validation about to run (its `elapsed` is then set). The
    /// default is never: timing costs two clock reads.
    fn time_validation(&self) -> bool {
        false
    }

    /// Whether an audit event of the control lane emitted now would be kept: the admin
    /// operations ask before they change anything and answer 503 while it is `false`
    /// (a stalled audit sink), so no admin action goes unaudited and no request thread
    /// waits on audit I/O. The default is always.
    fn audit_ready(&self) -> bool {
        true
    }

    /// The key this observer fingerprints tokens with, if it has one: a builder given
    /// this observer (and no key of its own) fingerprints with the same key, so the
    /// domain's and the observer's fingerprints of one token agree. The default is none.
    fn fingerprint_key(&self) -> Option<[u8; 32]> {
        None
    }
}

/// Observes nothing.
impl Observer for () {
    fn on_event(&self, _: &Event<'_>) {}

    fn on_hit(&self, _: &Hit<'_>) {}

    fn counts_hits(&self) -> bool {
        true
    }
}

/// Both observers see every event, `A` first.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_event(&self, event: &Event<'_>) {
        self.0.on_event(event);
        self.1.on_event(event);
    }

    /// Each part that wants each hit gets it.
    #[inline]
    fn on_hit(&self, hit: &Hit<'_>) {
        if self.0.each_hit() {
            self.0.on_hit(hit);
        }
        if self.1.each_hit() {
            self.1.on_hit(hit);
        }
    }

    fn counts_hits(&self) -> bool {
        self.0.counts_hits() || self.1.counts_hits()
    }

    fn each_hit(&self) -> bool {
        self.0.each_hit() || self.1.each_hit()
    }

    /// Each part that counts hits gets the count.
    fn on_hits(&self, hits: &Hits<'_>) {
        if self.0.counts_hits() {
            self.0.on_hits(hits);
        }
        if self.1.counts_hits() {
            self.1.on_hits(hits);
        }
    }

    #[inline]
    fn time_validation(&self) -> bool {
        // Both are asked, so a sampling observer keeps its own count.
        let a = self.0.time_validation();
        let b = self.1.time_validation();
        a || b
    }

    fn audit_ready(&self) -> bool {
        self.0.audit_ready() && self.1.audit_ready()
    }

    fn fingerprint_key(&self) -> Option<[u8; 32]> {
        self.0
            .fingerprint_key()
            .or_else(|| self.1.fingerprint_key())
    }
}

impl<O: Observer + ?Sized> Observer for Arc<O> {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event);
    }

    #[inline]
    fn on_hit(&self, hit: &Hit<'_>) {
        (**self).on_hit(hit);
    }

    fn counts_hits(&self) -> bool {
        (**self).counts_hits()
    }

    fn each_hit(&self) -> bool {
        (**self).each_hit()
    }

    fn on_hits(&self, hits: &Hits<'_>) {
        (**self).on_hits(hits);
    }

    fn time_validation(&self) -> bool {
        (**self).time_validation()
    }

    fn audit_ready(&self) -> bool {
        (**self).audit_ready()
    }

    fn fingerprint_key(&self) -> Option<[u8; 32]> {
        (**self).fingerprint_key()
    }
}

/// An [`Observer`] from a closure (see [`from_fn`]).
#[derive(Clone, Copy)]
pub struct FnObserver<F>(F);

impl<F> fmt::Debug for FnObserver<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnObserver(..)")
    }
}

/// Makes an [`Observer`] of a closure, in the manner of `tower::service_fn`.
///
/// ```
/// use tokenlife_core::observe::{self, Event};
///
/// let o = observe::from_fn(|e: &Event<'_>| {
///     if let Event::Revoked { reason, .. } = e {
///         tracing::info!(reason = reason.as_str(), "revoked");
///     }
/// });
/// # let _ = o;
/// ```
pub fn from_fn<F>(f: F) -> FnObserver<F>
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    FnObserver(f)
}

impl<F> Observer for FnObserver<F>
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>) {
        (self.0)(event);
    }
}

/// How the domain holds its observer.
#[derive(Clone)]
pub(crate) struct SharedObserver(pub(crate) Arc<dyn Observer>);

impl SharedObserver {
    pub(crate) fn new(observer: impl Observer) -> Self {
        Self(Arc::new(observer))
    }
}

impl std::ops::Deref for SharedObserver {
    type Target = dyn Observer;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for SharedObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer(..)")
    }
}
