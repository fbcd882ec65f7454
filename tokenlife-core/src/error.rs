//! Errors: opaque error types with `#[non_exhaustive]` kinds.
//!
//! [`ValidationError`] knows the HTTP status and the RFC 6750 error code a client should
//! see, so adapters only render it. Its `Display` never contains the token.

use std::error::Error as StdError;
use std::fmt;

/// The boxed source of an error, one alias for the crate.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A boxed cause as `Error::source` returns it (every error here keeps its cause so).
pub(crate) fn as_source<'a>(
    e: &'a (dyn StdError + Send + Sync + 'static),
) -> &'a (dyn StdError + 'static) {
    e
}

/// What went wrong while validating a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValidationErrorKind {
    /// No token was presented.
    MissingToken,
    /// The token is longer than the configured maximum; it was not decoded.
    TooLarge,
    /// The token is not a well-formed JWS compact serialisation (parts, base64, JSON).
    Malformed,
    /// The header's `alg` differs from the algorithm of the key it names (includes `none`).
    AlgorithmMismatch,
    /// The header names a key id that the current keyset does not hold.
    UnknownKid,
    /// The header lists a `crit` extension that this validator does not understand.
    UnsupportedCritical,
    /// The signature does not verify with the key.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not one of the accepted issuers.
    WrongIssuer,
    /// `aud` contains none of the accepted audiences.
    WrongAudience,
    /// A required claim is absent.
    MissingClaim,
    /// A claim has the wrong JSON type or an impossible value.
    InvalidClaim,
    /// The token (by `jti`, subject or family) has been revoked.
    Revoked,
    /// The token is valid but lacks a scope the route requires.
    InsufficientScope,
    /// The header's `typ` is not one the validator was told to accept (RFC 8725 §3.11).
    WrongType,
    /// The key that signed the token was removed by a rotation or rollback, and the
    /// store's retirement policy is [`Retirement::RenewRequired`](crate::keys::Retirement::RenewRequired):
    /// the client should renew (its refresh token still works, and the new access token
    /// is signed by the current key).
    KeyRetired,
    /// Fleet mode, fail-closed: this node has been cut off from the fleet's revocations for
    /// longer than its bound, so it cannot tell whether the token was revoked. 503; retry.
    RevocationsStale,
    /// The keys of this token's issuer are past their staleness bound (an identity
    /// provider unreachable, or serving no usable key, for longer than the remote key
    /// source's `max_staleness`; see
    /// [`KeysetStore::set_fresh_until`](crate::KeysetStore::set_fresh_until)): they may no
    /// longer be the issuer's. 503; retry.
    KeysStale,
}

const _: () = {
    let mut i = 0;
    while i < ValidationErrorKind::ALL.len() {
        assert!(ValidationErrorKind::ALL[i].index() == i);
        i += 1;
    }
};

impl ValidationErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ValidationErrorKind; 19] = [
        Self::MissingToken,
        Self::TooLarge,
        Self::Malformed,
        Self::AlgorithmMismatch,
        Self::UnknownKid,
        Self::UnsupportedCritical,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::Revoked,
        Self::InsufficientScope,
        Self::WrongType,
        Self::KeyRetired,
        Self::RevocationsStale,
        Self::KeysStale,
    ];

    /// Position in [`Self::ALL`]: an exhaustive `match` (a new kind does not compile
    /// until it has a place), checked against `ALL` at compile time.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::MissingToken => 0,
            Self::TooLarge => 1,
            Self::Malformed => 2,
            Self::AlgorithmMismatch => 3,
            Self::UnknownKid => 4,
            Self::UnsupportedCritical => 5,
            Self::BadSignature => 6,
            Self::Expired => 7,
            Self::NotYetValid => 8,
            Self::WrongIssuer => 9,
            Self::WrongAudience => 10,
            Self::MissingClaim => 11,
            Self::InvalidClaim => 12,
            Self::Revoked => 13,
            Self::InsufficientScope => 14,
            Self::WrongType => 15,
            Self::KeyRetired => 16,
            Self::RevocationsStale => 17,
            Self::KeysStale => 18,
        }
    }

    /// The RFC 6750 `error` code for this kind, or `None` where the RFC says to send
    /// no code (a request that carried no token at all).
    pub fn rfc6750_code(self) -> Option<&'static str> {
        self.bearer_error().map(BearerError::as_str)
    }

    /// The typed RFC 6750 error for this kind, or `None` for a request with no token and
    /// for [`Self::RevocationsStale`] (a server-side condition, not the token's fault).
    pub fn bearer_error(self) -> Option<BearerError> {
        match self {
            Self::MissingToken | Self::RevocationsStale | Self::KeysStale => None,
            Self::InsufficientScope => Some(BearerError::InsufficientScope),
            _ => Some(BearerError::InvalidToken),
        }
    }

    /// The HTTP status code for this kind: 401, 403 for [`Self::InsufficientScope`], 503
    /// for [`Self::RevocationsStale`].
    pub fn status(self) -> u16 {
        match self {
            Self::InsufficientScope => 403,
            Self::RevocationsStale | Self::KeysStale => 503,
            _ => 401,
        }
    }

    /// A stable, low-cardinality name (`"expired"`, `"bad_signature"`, …) for metrics
    /// labels and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::UnknownKid => "unknown_kid",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::Revoked => "revoked",
            Self::InsufficientScope => "insufficient_scope",
            Self::WrongType => "wrong_type",
            Self::KeyRetired => "key_retired",
            Self::RevocationsStale => "revocations_stale",
            Self::KeysStale => "keys_stale",
        }
    }

    /// A short description that is safe to show a client (no internal detail).
    pub fn description(self) -> &'static str {
        match self {
            Self::MissingToken => "no bearer token",
            Self::TooLarge => "token too large",
            Self::Malformed => "malformed token",
            Self::AlgorithmMismatch => "token algorithm does not match its key",
            Self::UnknownKid => "unknown key id",
            Self::UnsupportedCritical => "unsupported critical header",
            Self::BadSignature => "invalid signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::MissingClaim => "missing required claim",
            Self::InvalidClaim => "invalid claim",
            Self::Revoked => "token revoked",
            Self::InsufficientScope => "insufficient scope",
            Self::WrongType => "wrong token type",
            Self::KeyRetired => "the key that signed this token was retired: renew the token",
            Self::RevocationsStale => "revocation state unavailable: retry later",
            Self::KeysStale => "the issuer's keys are unavailable: retry later",
        }
    }
}

impl fmt::Display for ValidationErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A token was rejected. [`kind`](Self::kind) says why.
///
/// The `Display` output is the kind's description plus, where known, the name of the
/// offending claim or header field; it never contains the token or any claim value.
///
/// ```
/// use tokenlife_core::{ValidationError, ValidationErrorKind};
///
/// let err = ValidationError::new(ValidationErrorKind::Expired);
/// assert_eq!(err.kind(), ValidationErrorKind::Expired);
/// assert_eq!(err.status(), 401);
/// assert_eq!(err.rfc6750_code(), Some("invalid_token"));
/// assert_eq!(err.to_string(), "token expired");
/// ```
#[derive(Debug)]
pub struct ValidationError {
    kind: ValidationErrorKind,
    field: Option<&'static str>,
    source: Option<BoxError>,
}

impl ValidationError {
    /// An error of this kind with no further detail.
    pub fn new(kind: ValidationErrorKind) -> Self {
        Self {
            kind,
            field: None,
            source: None,
        }
    }

    pub(crate) fn with_field(kind: ValidationErrorKind, field: &'static str) -> Self {
        Self {
            kind,
            field: Some(field),
            source: None,
        }
    }

    pub(crate) fn with_source(kind: ValidationErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            field: None,
            source: Some(source.into()),
        }
    }

    /// Why the token was rejected.
    pub fn kind(&self) -> ValidationErrorKind {
        self.kind
    }

    /// The claim or header field concerned (`"exp"`, `"aud"`, `"kid"`, …), where one is.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// The RFC 6750 `error` code to send the client (see [`ValidationErrorKind::rfc6750_code`]).
    pub fn rfc6750_code(&self) -> Option<&'static str> {
        self.kind.rfc6750_code()
    }

    /// The HTTP status to send the client (see [`ValidationErrorKind::status`]).
    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())?;
        if let Some(field) = self.field {
            write!(f, " ({field})")?;
        }
        Ok(())
    }
}

impl StdError for ValidationError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}

impl From<ValidationErrorKind> for ValidationError {
    fn from(kind: ValidationErrorKind) -> Self {
        Self::new(kind)
    }
}

/// What was wrong with a builder's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// No accepted issuer was configured.
    MissingIssuer,
    /// No accepted audience was configured.
    MissingAudience,
    /// A size, duration, capacity or credential is empty, zero or out of range
    /// ([`ConfigError::field`] names it).
    InvalidValue,
}

/// A builder was given an impossible or incomplete configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    field: Option<&'static str>,
}

impl ConfigError {
    pub(crate) const MISSING_ISSUER: Self = Self {
        kind: ConfigErrorKind::MissingIssuer,
        field: None,
    };
    pub(crate) const MISSING_AUDIENCE: Self = Self {
        kind: ConfigErrorKind::MissingAudience,
        field: None,
    };

    pub(crate) const fn invalid(field: &'static str) -> Self {
        Self {
            kind: ConfigErrorKind::InvalidValue,
            field: Some(field),
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The setting at fault, for [`ConfigErrorKind::InvalidValue`].
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.field) {
            (ConfigErrorKind::MissingIssuer, _) => {
                f.write_str("no issuer configured: call `.issuer(..)`")
            }
            (ConfigErrorKind::MissingAudience, _) => {
                f.write_str("no audience configured: call `.audience(..)`")
            }
            (ConfigErrorKind::InvalidValue, Some(field)) => {
                write!(f, "invalid value for `{field}`")
            }
            (ConfigErrorKind::InvalidValue, None) => f.write_str("invalid value"),
        }
    }
}

impl StdError for ConfigError {}

/// What went wrong with a key or a keyset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyErrorKind {
    /// The input is not valid JSON or not a JWKS document.
    InvalidJson,
    /// The key type, curve or algorithm is not supported.
    Unsupported,
    /// The key material could not be decoded (bad base64, bad PEM, wrong length).
    InvalidMaterial,
    /// The key is declared for a use other than signatures (`use` ≠ `sig`).
    WrongUse,
    /// The key has no `kid`.
    MissingKid,
    /// Two keys share a `kid`.
    DuplicateKid,
    /// No usable key was found.
    Empty,
    /// The named signing key is not in the keyset or holds no private material.
    NoSigningKey,
    /// A key that was meant to be public carries private material.
    PrivateMaterial,
    /// The JWKS document is larger than [`Keyset::MAX_JWKS_BYTES`] or lists more than
    /// [`Keyset::MAX_JWKS_KEYS`] keys; nothing was loaded.
    ///
    /// [`Keyset::MAX_JWKS_BYTES`]: crate::Keyset::MAX_JWKS_BYTES
    /// [`Keyset::MAX_JWKS_KEYS`]: crate::Keyset::MAX_JWKS_KEYS
    TooLarge,
    /// A symmetric (`oct`, HMAC) key where only public keys are accepted: whoever can
    /// read a JWKS could sign with it.
    Symmetric,
}

impl KeyErrorKind {
    fn description(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid JWKS JSON",
            Self::Unsupported => "unsupported key type, curve or algorithm",
            Self::InvalidMaterial => "invalid key material",
            Self::WrongUse => "key is not for signatures",
            Self::MissingKid => "key has no kid",
            Self::DuplicateKid => "duplicate kid",
            Self::Empty => "no usable key",
            Self::NoSigningKey => "no usable signing key",
            Self::PrivateMaterial => "private key material where a public key was expected",
            Self::TooLarge => "JWKS document too large or with too many keys",
            Self::Symmetric => "symmetric key where only public keys are accepted",
        }
    }
}

/// A key or keyset could not be loaded or used.
///
/// ```
/// use tokenlife_core::Keyset;
/// use tokenlife_core::error::KeyErrorKind;
///
/// let err = Keyset::from_jwks_json("not json").unwrap_err();
/// assert_eq!(err.kind(), KeyErrorKind::InvalidJson);
/// ```
#[derive(Debug)]
pub struct KeyError {
    kind: KeyErrorKind,
    kid: Option<String>,
    source: Option<BoxError>,
}

impl KeyError {
    pub(crate) fn new(kind: KeyErrorKind) -> Self {
        Self {
            kind,
            kid: None,
            source: None,
        }
    }

    pub(crate) fn kid(mut self, kid: Option<&str>) -> Self {
        self.kid = kid.map(str::to_owned);
        self
    }

    pub(crate) fn source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> KeyErrorKind {
        self.kind
    }

    /// The `kid` of the key concerned, where known.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// For [`KeyErrorKind::Empty`] from a JWKS: why its first entry was refused.
    pub fn entry_error(&self) -> Option<&KeyError> {
        self.source.as_deref()?.downcast_ref::<KeyError>()
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        Ok(())
    }
}

impl StdError for KeyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}

/// Why a keyset change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeysetErrorKind {
    /// There is no earlier keyset to roll back to.
    NoPrevious,
    /// The requested version ([`KeysetError::version`]) is not (or no longer) in the
    /// history.
    UnknownVersion,
    /// `promote` was called with nothing staged.
    NothingStaged,
    /// A staged key shares its `kid` ([`KeysetError::kid`]) with a different active
    /// key: tokens of either would be checked against the wrong one. Stage it under
    /// another kid.
    KidConflict,
    /// The version ([`KeysetError::version`]) was quarantined by the rollout guard after
    /// it failed; [`KeysetStore::release`](crate::KeysetStore::release) lifts that.
    Quarantined,
    /// A canary share outside 0–100 %.
    InvalidShare,
    /// Another rollout (a staged canary or a shadow candidate) is in progress: promote or
    /// abort it first.
    RolloutInProgress,
    /// The share applies to a canary, and the rollout in progress is a shadow (or there
    /// is none).
    NotACanary,
    /// `promote` asked for a clean shadow run and the candidate would have rejected
    /// tokens the current keyset accepted ([`KeysetError::count`] of them).
    ShadowRegressions,
    /// `promote` asked for a clean shadow run over more validations than the candidate
    /// has seen so far ([`KeysetError::count`]).
    ShadowSampleTooSmall,
    /// The change would trust a key revoked as compromised
    /// ([`KeysetStore::revoke_key`](crate::KeysetStore::revoke_key); its kid in
    /// [`KeysetError::kid`]) and no other key would be left to verify with.
    KeyRevoked,
    /// The list of revoked keys is full ([`KeysetStore::MAX_REVOKED_KEYS`](crate::KeysetStore::MAX_REVOKED_KEYS)).
    TooManyRevokedKeys,
}

/// A keyset change (rollback, promote, stage) could not be made; the current keyset is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysetError {
    kind: KeysetErrorKind,
    version: Option<u64>,
    kid: Option<Box<str>>,
    count: Option<u64>,
}

impl KeysetError {
    pub(crate) fn new(kind: KeysetErrorKind) -> Self {
        Self {
            kind,
            version: None,
            kid: None,
            count: None,
        }
    }

    pub(crate) fn with_count(kind: KeysetErrorKind, count: u64) -> Self {
        Self {
            count: Some(count),
            ..Self::new(kind)
        }
    }

    pub(crate) fn unknown_version(version: u64) -> Self {
        Self {
            version: Some(version),
            ..Self::new(KeysetErrorKind::UnknownVersion)
        }
    }

    pub(crate) fn quarantined(version: u64) -> Self {
        Self {
            version: Some(version),
            ..Self::new(KeysetErrorKind::Quarantined)
        }
    }

    pub(crate) fn kid_conflict(kid: &str) -> Self {
        Self {
            kid: Some(kid.into()),
            ..Self::new(KeysetErrorKind::KidConflict)
        }
    }

    pub(crate) fn key_revoked(kid: &str) -> Self {
        Self {
            kid: Some(kid.into()),
            ..Self::new(KeysetErrorKind::KeyRevoked)
        }
    }

    /// Why.
    pub fn kind(&self) -> KeysetErrorKind {
        self.kind
    }

    /// The version asked for, for [`KeysetErrorKind::UnknownVersion`].
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The conflicting key id, for [`KeysetErrorKind::KidConflict`] and
    /// [`KeysetErrorKind::KeyRevoked`].
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The regressions seen ([`KeysetErrorKind::ShadowRegressions`]) or the sample seen so
    /// far ([`KeysetErrorKind::ShadowSampleTooSmall`]).
    pub fn count(&self) -> Option<u64> {
        self.count
    }
}

impl fmt::Display for KeysetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            KeysetErrorKind::NoPrevious => f.write_str("no earlier keyset to roll back to"),
            KeysetErrorKind::UnknownVersion => write!(
                f,
                "keyset version {} is not in the history",
                self.version.unwrap_or(0)
            ),
            KeysetErrorKind::NothingStaged => f.write_str("no keyset is staged"),
            KeysetErrorKind::Quarantined => write!(
                f,
                "keyset version {} is quarantined after an automatic rollback; release it first",
                self.version.unwrap_or(0)
            ),
            KeysetErrorKind::KidConflict => write!(
                f,
                "staged key id `{}` is taken by a different active key",
                self.kid.as_deref().unwrap_or("")
            ),
            KeysetErrorKind::InvalidShare => {
                f.write_str("a canary share is a percentage from 0 to 100")
            }
            KeysetErrorKind::RolloutInProgress => {
                f.write_str("another rollout is in progress: promote or abort it first")
            }
            KeysetErrorKind::NotACanary => f.write_str("no canary is staged"),
            KeysetErrorKind::ShadowRegressions => write!(
                f,
                "the shadow candidate would have rejected {} token(s) the current keyset accepted",
                self.count.unwrap_or(0)
            ),
            KeysetErrorKind::ShadowSampleTooSmall => write!(
                f,
                "the shadow candidate has judged only {} token(s) so far",
                self.count.unwrap_or(0)
            ),
            KeysetErrorKind::KeyRevoked => write!(
                f,
                "key `{}` is revoked as compromised and no other key would be left",
                self.kid.as_deref().unwrap_or("")
            ),
            KeysetErrorKind::TooManyRevokedKeys => f.write_str("too many revoked keys"),
        }
    }
}

impl StdError for KeysetError {}

/// Why a revocation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationErrorKind {
    /// The identifier was empty, longer than the limit or held a control character;
    /// nothing was recorded.
    InvalidId,
    /// The list holds its capacity of live entries; nothing was added.
    Full,
    /// The fleet backend could not store or publish the revocation (the local list has
    /// it).
    Backend,
}

/// A revocation could not be recorded everywhere it should be.
///
/// For [`RevocationErrorKind::Backend`] the local revocation list has been updated;
/// only the propagation failed.
#[derive(Debug)]
pub struct RevocationError {
    kind: RevocationErrorKind,
    source: Option<BoxError>,
}

impl RevocationError {
    /// An error of `kind` (for [`RevocationBackend`](crate::revoke::RevocationBackend)
    /// implementations).
    pub fn new(kind: RevocationErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// A backend failure, with its cause.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Self {
            kind: RevocationErrorKind::Backend,
            source: Some(source.into()),
        }
    }

    /// Why.
    pub fn kind(&self) -> RevocationErrorKind {
        self.kind
    }
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RevocationErrorKind::InvalidId => "invalid revocation identifier",
            RevocationErrorKind::Full => "revocation list is full",
            RevocationErrorKind::Backend => "revocation backend failed",
        })
    }
}

impl StdError for RevocationError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}

/// The `error` code of a JSON error answer (RFC 6749 §5.2, RFC 7009, RFC 7662, and
/// tokenlife's own for the admin API). Typed, so adapters match on it rather than on
/// strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request` (RFC 6749): a missing or malformed parameter or body.
    InvalidRequest,
    /// `invalid_client` (RFC 6749): client authentication failed.
    InvalidClient,
    /// `invalid_grant` (RFC 6749): the refresh token is unknown, used, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client` (RFC 6749): the token was not issued to this client.
    UnauthorizedClient,
    /// `unsupported_grant_type` (RFC 6749).
    UnsupportedGrantType,
    /// `invalid_scope` (RFC 6749): more scope than the client has.
    InvalidScope,
    /// `unsupported_token_type` (RFC 7009): this token cannot be revoked alone.
    UnsupportedTokenType,
    /// `server_error` (RFC 6749).
    ServerError,
    /// `temporarily_unavailable` (RFC 6749): a full store or no signing key; try later.
    TemporarilyUnavailable,
    /// `unauthorized`: admin, client or resource-server credentials required.
    Unauthorized,
    /// `slow_down`: too many failed authentications from this address.
    SlowDown,
    /// `payload_too_large`: the body is over the limit.
    PayloadTooLarge,
    /// `private_key_material`: a JWKS over HTTP carried private or symmetric keys.
    PrivateKeyMaterial,
    /// `revocation_list_full`: the revocation list is at capacity.
    RevocationListFull,
    /// `unknown_version`: no such keyset version in the history.
    UnknownVersion,
    /// `kid_conflict`: a staged key id is taken by a different active key.
    KidConflict,
    /// `conflict`: the keyset change cannot be made now (nothing staged, nothing to roll
    /// back to).
    Conflict,
    /// `no_signing_key`: the change would leave the issuer unable to sign.
    NoSigningKey,
    /// `not_found`: the operation needs a part that is not configured.
    NotFound,
    /// `quarantined`: the keyset version was rolled back by the rollout guard; release it
    /// first.
    Quarantined,
    /// `invalid_share`: a canary share outside 0–100.
    InvalidShare,
    /// `rollout_in_progress`: another canary or shadow rollout is staged.
    RolloutInProgress,
    /// `shadow_regressions`: the shadow candidate would have rejected accepted tokens, or
    /// has not seen enough traffic yet.
    ShadowRegressions,
}

impl ErrorCode {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Unauthorized => "unauthorized",
            Self::SlowDown => "slow_down",
            Self::PayloadTooLarge => "payload_too_large",
            Self::PrivateKeyMaterial => "private_key_material",
            Self::RevocationListFull => "revocation_list_full",
            Self::UnknownVersion => "unknown_version",
            Self::KidConflict => "kid_conflict",
            Self::Conflict => "conflict",
            Self::NoSigningKey => "no_signing_key",
            Self::NotFound => "not_found",
            Self::Quarantined => "quarantined",
            Self::InvalidShare => "invalid_share",
            Self::RolloutInProgress => "rollout_in_progress",
            Self::ShadowRegressions => "shadow_regressions",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 6750 §3.1 `error` code of a bearer-token challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerError {
    /// `invalid_request`: the request is malformed (two `Authorization` headers, a
    /// broken header).
    InvalidRequest,
    /// `invalid_token`: expired, revoked, malformed or otherwise invalid.
    InvalidToken,
    /// `insufficient_scope`: valid, but without the scope the resource needs.
    InsufficientScope,
}

impl BearerError {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }

    /// The status that goes with it: 400, 401 or 403 (RFC 6750 §3.1).
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
        }
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An RFC 6750 §3 `WWW-Authenticate` challenge, framework-neutral: every adapter sends
/// the same one.
///
/// ```
/// use tokenlife_core::error::{BearerError, Challenge};
///
/// assert_eq!(Challenge::new("api").to_string(), r#"Bearer realm="api""#);
/// assert_eq!(
///     Challenge::new("api")
///         .error(BearerError::InsufficientScope, "insufficient scope")
///         .scope("orders:write")
///         .to_string(),
///     r#"Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="orders:write""#
/// );
/// // Quoted-string values stay valid whatever they are given.
/// assert_eq!(Challenge::new("a\"pi\\").to_string(), r#"Bearer realm="api""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge<'a> {
    realm: &'a str,
    error: Option<(BearerError, &'a str)>,
    scope: Option<&'a str>,
    resource_metadata: Option<&'a str>,
}

impl<'a> Challenge<'a> {
    /// A challenge for `realm` with no error (a request that carried no token, §3.1).
    pub fn new(realm: &'a str) -> Self {
        Self {
            realm,
            error: None,
            scope: None,
            resource_metadata: None,
        }
    }

    /// The URL of the resource's RFC 9728 protected-resource metadata
    /// (`resource_metadata="…"`), which clients such as MCP's follow to find the
    /// authorization server.
    #[must_use]
    pub fn resource_metadata(mut self, url: &'a str) -> Self {
        self.resource_metadata = Some(url);
        self
    }

    /// The error and its human-readable description.
    #[must_use]
    pub fn error(mut self, error: BearerError, description: &'a str) -> Self {
        self.error = Some((error, description));
        self
    }

    /// The scopes the resource needs, space-separated (for `insufficient_scope`).
    #[must_use]
    pub fn scope(mut self, scope: &'a str) -> Self {
        self.scope = Some(scope);
        self
    }
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Keeps a quoted-string value valid: no quotes, backslashes or control characters.
        fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
            for c in s
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            {
                fmt::Write::write_char(f, c)?;
            }
            Ok(())
        }
        f.write_str("Bearer realm=\"")?;
        quoted(f, self.realm)?;
        f.write_str("\"")?;
        if let Some((e, description)) = self.error {
            write!(f, ", error=\"{e}\", error_description=\"")?;
            quoted(f, description)?;
            f.write_str("\"")?;
        }
        if let Some(scope) = self.scope {
            f.write_str(", scope=\"")?;
            quoted(f, scope)?;
            f.write_str("\"")?;
        }
        if let Some(url) = self.resource_metadata {
            f.write_str(", resource_metadata=\"")?;
            quoted(f, url)?;
            f.write_str("\"")?;
        }
        Ok(())
    }
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
    /// Its family, or its subject, was revoked.
    Revoked,
    /// It had already been used: the family has now been revoked.
    Reused,
    /// It was rotated a moment ago, within the reuse grace: a race between two renewals,
    /// not reuse. Nothing was revoked.
    Rotated,
    /// It was issued to another client (or to a client, and none authenticated).
    WrongClient,
    /// The refresh store is full: nothing changed, the token still renews later.
    Full,
    /// The current keyset cannot sign (a verify-only deploy): nothing changed, the token
    /// still renews once a signing key is back.
    NoSigningKey,
    /// The refresh store failed.
    Store,
    /// Issuing the new pair failed.
    Issue,
}

impl RenewErrorKind {
    /// The reason code (audit trail, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Reused => "refresh_reuse",
            Self::Rotated => "rotated",
            Self::WrongClient => "wrong_client",
            Self::Full => "full",
            Self::NoSigningKey => "no_signing_key",
            Self::Store => "store",
            Self::Issue => "issue",
        }
    }
}

/// What went wrong with an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiKeyErrorKind {
    /// Not of the shape `<prefix><id>_<secret>`; no lookup was made.
    Malformed,
    /// No such key, or the secret does not match (the two are not told apart).
    Unknown,
    /// Past its expiry (including the end of a rotation overlap).
    Expired,
    /// Revoked.
    Revoked,
    /// The key store is at capacity.
    Full,
    /// The random source failed.
    Random,
    /// The requested lifetime is zero or longer than [`Issuer::MAX_TTL`](crate::issue::Issuer::MAX_TTL).
    InvalidTtl,
}

impl ApiKeyErrorKind {
    /// Every kind, in table order.
    pub const ALL: [Self; 7] = [
        Self::Malformed,
        Self::Unknown,
        Self::Expired,
        Self::Revoked,
        Self::Full,
        Self::Random,
        Self::InvalidTtl,
    ];

    /// Position in [`Self::ALL`]: an exhaustive `match`, checked against `ALL` at compile
    /// time, so a new kind cannot go uncounted.
    pub const fn index(self) -> usize {
        match self {
            Self::Malformed => 0,
            Self::Unknown => 1,
            Self::Expired => 2,
            Self::Revoked => 3,
            Self::Full => 4,
            Self::Random => 5,
            Self::InvalidTtl => 6,
        }
    }

    /// The reason code (audit trail, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Full => "full",
            Self::Random => "random",
            Self::InvalidTtl => "invalid_ttl",
        }
    }
}

/// What went wrong with a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The URL is not an `http(s)` URL.
    InvalidUrl,
    /// No connection (refused, DNS, TLS).
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// An answer other than 200 (or 304 to a conditional request).
    HttpStatus,
    /// A body over the size limit.
    TooLarge,
    /// A body that is not the JSON document expected (JWKS or discovery).
    InvalidJson,
    /// A JWKS with no key this library can use (empty, or every key skipped).
    NoUsableKeys,
    /// A discovery document whose `issuer` is not the issuer asked for.
    IssuerMismatch,
    /// Plain `http://` to a host that is not loopback, without
    /// [`RemoteKeysBuilder::allow_insecure_http`](crate::keys::remote::RemoteKeysBuilder::allow_insecure_http).
    InsecureUrl,
    /// A discovery document's `jwks_uri` on another origin than the issuer's, not in
    /// [`RemoteKeysBuilder::allow_jwks_origin`](crate::keys::remote::RemoteKeysBuilder::allow_jwks_origin) (whoever controls the document must not
    /// point the gateway at an arbitrary host).
    ForeignOrigin,
}

impl RemoteErrorKind {
    /// The kind as a metric label and a status word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::HttpStatus => "http_status",
            Self::TooLarge => "too_large",
            Self::InvalidJson => "invalid_json",
            Self::NoUsableKeys => "no_usable_keys",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::InsecureUrl => "insecure_url",
            Self::ForeignOrigin => "foreign_origin",
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < ApiKeyErrorKind::ALL.len() {
        assert!(ApiKeyErrorKind::ALL[i].index() == i);
        i += 1;
    }
};
