//! Why issuing or renewing failed: [`IssueError`], [`RenewError`] and its kinds.

use std::error::Error as StdError;
use std::fmt;

use super::store::{RefreshStoreError, RefreshStoreErrorKind};
use crate::error::ErrorCode;

use crate::error::BoxError;
pub use crate::error::RenewErrorKind;

/// Why issuing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssueErrorKind {
    /// The current keyset has no signing key.
    NoSigningKey,
    /// The request asked for a registered claim or an empty subject
    /// ([`IssueError::detail`] says which).
    InvalidRequest,
    /// Signing failed.
    Signing,
    /// The refresh store holds its capacity of live records.
    Full,
    /// The refresh store failed.
    Store,
    /// The OS random source failed.
    Random,
}

/// Issuing failed; nothing was stored. [`status`](Self::status) and
/// [`oauth_error`](Self::oauth_error) say what a token endpoint answers.
#[derive(Debug)]
pub struct IssueError {
    kind: IssueErrorKind,
    detail: Option<&'static str>,
    source: Option<BoxError>,
}

impl IssueError {
    pub(crate) fn new(kind: IssueErrorKind) -> Self {
        Self {
            kind,
            detail: None,
            source: None,
        }
    }

    pub(crate) fn invalid_request(detail: &'static str) -> Self {
        Self {
            detail: Some(detail),
            ..Self::new(IssueErrorKind::InvalidRequest)
        }
    }

    pub(crate) fn with_source(kind: IssueErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(kind)
        }
    }

    pub(crate) fn store(e: RefreshStoreError) -> Self {
        let kind = match e.kind() {
            RefreshStoreErrorKind::Full => IssueErrorKind::Full,
            _ => IssueErrorKind::Store,
        };
        Self::with_source(kind, e)
    }

    /// Why.
    pub fn kind(&self) -> IssueErrorKind {
        self.kind
    }

    /// What was wrong with the request, for [`IssueErrorKind::InvalidRequest`].
    pub fn detail(&self) -> Option<&'static str> {
        self.detail
    }

    /// The HTTP status a token endpoint answers with: 400 for a bad request, 503 when
    /// the refresh store is full or the current keyset cannot sign (a verify-only deploy:
    /// try later), 500 otherwise.
    pub fn status(&self) -> u16 {
        match self.kind {
            IssueErrorKind::InvalidRequest => 400,
            IssueErrorKind::Full | IssueErrorKind::NoSigningKey => 503,
            _ => 500,
        }
    }

    /// The RFC 6749 §5.2 error code (`invalid_request`, `temporarily_unavailable` or
    /// `server_error`).
    pub fn oauth_error(&self) -> ErrorCode {
        match self.kind {
            IssueErrorKind::InvalidRequest => ErrorCode::InvalidRequest,
            IssueErrorKind::Full | IssueErrorKind::NoSigningKey => {
                ErrorCode::TemporarilyUnavailable
            }
            _ => ErrorCode::ServerError,
        }
    }
}

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            IssueErrorKind::NoSigningKey => f.write_str("the current keyset has no signing key"),
            IssueErrorKind::InvalidRequest => write!(
                f,
                "invalid token request: {}",
                self.detail.unwrap_or("invalid")
            ),
            IssueErrorKind::Signing => f.write_str("signing failed"),
            IssueErrorKind::Full | IssueErrorKind::Store => match &self.source {
                Some(e) => write!(f, "refresh store: {e}"),
                None => f.write_str("refresh store failed"),
            },
            IssueErrorKind::Random => f.write_str("random source failed"),
        }
    }
}

impl StdError for IssueError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}

/// A renewal was refused. [`oauth_error`](Self::oauth_error) and
/// [`status`](Self::status) say what a token endpoint answers.
#[derive(Debug)]
pub struct RenewError {
    pub(super) kind: RenewErrorKind,
    pub(super) source: Option<BoxError>,
}

impl RenewError {
    pub(super) fn new(kind: RenewErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(super) fn store(e: RefreshStoreError) -> Self {
        let kind = match e.kind() {
            RefreshStoreErrorKind::Full => RenewErrorKind::Full,
            _ => RenewErrorKind::Store,
        };
        Self {
            kind,
            source: Some(Box::new(e)),
        }
    }

    /// Why.
    pub fn kind(&self) -> RenewErrorKind {
        self.kind
    }

    /// The RFC 6749 §5.2 error code: `invalid_grant` for a refused token,
    /// `temporarily_unavailable` when the store is full, `server_error` for a failure.
    pub fn oauth_error(&self) -> ErrorCode {
        match self.kind {
            RenewErrorKind::Store | RenewErrorKind::Issue => ErrorCode::ServerError,
            RenewErrorKind::Full | RenewErrorKind::NoSigningKey => {
                ErrorCode::TemporarilyUnavailable
            }
            _ => ErrorCode::InvalidGrant,
        }
    }

    /// The HTTP status for [`oauth_error`](Self::oauth_error): 400, 503 or 500.
    pub fn status(&self) -> u16 {
        match self.kind {
            RenewErrorKind::Store | RenewErrorKind::Issue => 500,
            RenewErrorKind::Full | RenewErrorKind::NoSigningKey => 503,
            _ => 400,
        }
    }

    pub(super) fn reason(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl fmt::Display for RenewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refresh token refused: {}", self.reason())
    }
}

impl StdError for RenewError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(crate::error::as_source)
    }
}
