//! The token lifecycle: [`TokenState`], the one transition table, and the
//! [`LifecycleTracker`] that counts transitions without remembering tokens.
//!
//! ```text
//!            ┌────────► Active ──┬──► Renewed ──┬──► Revoked
//! (new) ──► Issued ──────────────┤               └──► Expired
//!   │                            ├──► Revoked
//!   └──► Rejected                └──► Expired
//! ```
//!
//! `Active → Active` is a repeated use. A retired (`Renewed`) refresh token presented
//! again would be `Renewed → Renewed`: the table forbids it, and the issuer treats it as
//! reuse (the whole family is revoked and an alert raised).
//!
//! ```
//! use tokenlife_core::observe::lifecycle::{LifecycleTracker, TokenKind, TokenState::*};
//!
//! let tracker = LifecycleTracker::new();
//! tracker.record(TokenKind::Refresh, None, Issued)?;
//! tracker.record(TokenKind::Refresh, Some(Issued), Renewed)?;
//! assert!(tracker.record(TokenKind::Refresh, Some(Renewed), Renewed).is_err());
//! assert_eq!(tracker.count(TokenKind::Refresh, Some(Issued), Renewed), 1);
//! # Ok::<(), tokenlife_core::observe::lifecycle::IllegalTransition>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;
use serde::Serialize;

/// What sort of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenKind {
    /// A JWT access token.
    Access,
    /// A refresh token.
    Refresh,
    /// An opaque API key.
    ApiKey,
}

impl TokenKind {
    pub(crate) const ALL: [TokenKind; 3] =
        [TokenKind::Access, TokenKind::Refresh, TokenKind::ApiKey];

    /// The label value (`access`, `refresh`, `api_key`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::ApiKey => "api_key",
        }
    }

    /// Position in the per-kind tables: an exhaustive `match`, checked against
    /// `ALL` at compile time (a new kind must be added to both).
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Access => 0,
            Self::Refresh => 1,
            Self::ApiKey => 2,
        }
    }

    pub(crate) const COUNT: usize = Self::ALL.len();
}

const _: () = {
    let mut i = 0;
    while i < TokenKind::COUNT {
        assert!(TokenKind::ALL[i].index() == i);
        i += 1;
    }
};

/// Where a token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenState {
    /// Minted, not yet seen in use.
    Issued,
    /// Seen in use and valid.
    Active,
    /// Replaced by a newer token (a rotated refresh token, a rotated API key).
    Renewed,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// Presented and refused without ever having been valid here.
    Rejected,
}

impl TokenState {
    const ALL: [TokenState; 6] = [
        TokenState::Issued,
        TokenState::Active,
        TokenState::Renewed,
        TokenState::Expired,
        TokenState::Revoked,
        TokenState::Rejected,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Active => "active",
            Self::Renewed => "renewed",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Rejected => "rejected",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Issued => 0,
            Self::Active => 1,
            Self::Renewed => 2,
            Self::Expired => 3,
            Self::Revoked => 4,
            Self::Rejected => 5,
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < TokenState::ALL.len() {
        assert!(TokenState::ALL[i].index() == i);
        i += 1;
    }
};

/// The transition table. `from = None` is a token not seen before.
pub fn is_allowed(from: Option<TokenState>, to: TokenState) -> bool {
    use TokenState::*;
    matches!(
        (from, to),
        (None, Issued | Rejected)
            | (Some(Issued), Active | Renewed | Expired | Revoked)
            | (Some(Active), Active | Renewed | Expired | Revoked)
            | (Some(Renewed), Revoked | Expired)
    )
}

/// A transition the table forbids: an opaque error, as every error of the crate, with
/// accessors for what was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal lifecycle transition for {kind:?}: {from:?} -> {to:?}")]
pub struct IllegalTransition {
    kind: TokenKind,
    from: Option<TokenState>,
    to: TokenState,
}

impl IllegalTransition {
    /// The token kind.
    pub fn token_kind(&self) -> TokenKind {
        self.kind
    }

    /// The state it was in (`None`: a token not seen before).
    pub fn from(&self) -> Option<TokenState> {
        self.from
    }

    /// The state it was to move to.
    pub fn to(&self) -> TokenState {
        self.to
    }
}

/// One recorded transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LifecycleEvent {
    /// The token kind.
    pub kind: TokenKind,
    /// From (`None`: new).
    pub from: Option<TokenState>,
    /// To.
    pub to: TokenState,
}

const FROMS: usize = 7; // None + 6 states
const SLOTS: usize = 3 * FROMS * 6;

fn slot(kind: TokenKind, from: Option<TokenState>, to: TokenState) -> usize {
    let f = from.map_or(0, |s| s.index() + 1);
    (kind.index() * FROMS + f) * 6 + to.index()
}

/// Counts lifecycle transitions (and mirrors them to the metrics recorder). Bounded
/// memory: a fixed table of counters, no per-token state.
pub struct LifecycleTracker {
    counts: Box<[AtomicU64]>,
    metrics: Box<[Option<Counter>]>,
    illegal: AtomicU64,
}

impl fmt::Debug for LifecycleTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleTracker").finish_non_exhaustive()
    }
}

impl Default for LifecycleTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl LifecycleTracker {
    /// A tracker whose counters are registered with the current metrics recorder.
    pub fn new() -> Self {
        let counts = (0..SLOTS).map(|_| AtomicU64::new(0)).collect();
        let mut metrics: Vec<Option<Counter>> = (0..SLOTS).map(|_| None).collect();
        for kind in TokenKind::ALL {
            for from in std::iter::once(None).chain(TokenState::ALL.into_iter().map(Some)) {
                for to in TokenState::ALL {
                    if is_allowed(from, to) {
                        metrics[slot(kind, from, to)] = Some(metrics::counter!(
                            super::metrics::LIFECYCLE_TRANSITIONS,
                            "kind" => kind.as_str(),
                            "from" => from.map_or("new", TokenState::as_str),
                            "to" => to.as_str()
                        ));
                    }
                }
            }
        }
        Self {
            counts,
            metrics: metrics.into(),
            illegal: AtomicU64::new(0),
        }
    }

    /// Records a transition.
    ///
    /// # Errors
    /// [`IllegalTransition`] if the table forbids it; nothing is counted.
    pub fn record(
        &self,
        kind: TokenKind,
        from: Option<TokenState>,
        to: TokenState,
    ) -> Result<LifecycleEvent, IllegalTransition> {
        if !is_allowed(from, to) {
            self.illegal.fetch_add(1, Ordering::Relaxed);
            return Err(IllegalTransition { kind, from, to });
        }
        let i = slot(kind, from, to);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.metrics[i] {
            c.increment(1);
        }
        Ok(LifecycleEvent { kind, from, to })
    }

    /// How many transitions the table refused (nothing was counted for them). The
    /// domain never asks for one: a non-zero count is a bug.
    pub fn illegal(&self) -> u64 {
        self.illegal.load(Ordering::Relaxed)
    }

    /// How many times this transition was recorded.
    pub fn count(&self, kind: TokenKind, from: Option<TokenState>, to: TokenState) -> u64 {
        self.counts[slot(kind, from, to)].load(Ordering::Relaxed)
    }
}

/// The tracker as one of the [`Monitor`](crate::Monitor)'s parts: each event's transition
/// is recorded (an illegal one is counted in [`illegal`](LifecycleTracker::illegal) and
/// otherwise ignored).
impl super::Observer for LifecycleTracker {
    fn on_event(&self, event: &super::Event<'_>) {
        use super::Event;
        use crate::error::{RenewErrorKind, ValidationErrorKind as Kind};
        let (kind, from, to) = match *event {
            // First time this node sees the token valid.
            Event::Validated { outcome: Ok(v), .. } if !v.from_cache => (
                TokenKind::Access,
                Some(TokenState::Issued),
                TokenState::Active,
            ),
            Event::Validated {
                outcome: Err(kind), ..
            } => match kind {
                Kind::MissingToken | Kind::Revoked => return,
                Kind::Expired => (
                    TokenKind::Access,
                    Some(TokenState::Active),
                    TokenState::Expired,
                ),
                _ => (TokenKind::Access, None, TokenState::Rejected),
            },
            Event::Issued { kind, .. } => (kind, None, TokenState::Issued),
            Event::Renewed { kind, .. } => {
                let from = match kind {
                    TokenKind::ApiKey => TokenState::Active,
                    _ => TokenState::Issued,
                };
                (kind, Some(from), TokenState::Renewed)
            }
            Event::RenewFailed {
                reason: RenewErrorKind::Expired,
                ..
            } => (
                TokenKind::Refresh,
                Some(TokenState::Issued),
                TokenState::Expired,
            ),
            Event::RefreshReuse { .. } => (
                TokenKind::Refresh,
                Some(TokenState::Renewed),
                TokenState::Revoked,
            ),
            Event::Revoked {
                kind,
                from: Some(from),
                ..
            } => (kind, Some(from), TokenState::Revoked),
            Event::Transition { kind, from, to } => (kind, from, to),
            _ => return,
        };
        let _ = self.record(kind, from, to);
    }
}

#[cfg(test)]
mod tests {
    use super::TokenState::*;
    use super::*;

    #[test]
    fn the_table() {
        let all = [Issued, Active, Renewed, Expired, Revoked, Rejected];
        let allowed: Vec<_> = std::iter::once(None)
            .chain(all.into_iter().map(Some))
            .flat_map(|f| all.into_iter().map(move |t| (f, t)))
            .filter(|(f, t)| is_allowed(*f, *t))
            .collect();
        assert_eq!(allowed.len(), 2 + 4 + 4 + 2);
        // Terminal states go nowhere.
        for terminal in [Expired, Revoked, Rejected] {
            assert!(all.iter().all(|t| !is_allowed(Some(terminal), *t)));
        }
        // Reuse of a retired token is not a transition.
        assert!(!is_allowed(Some(Renewed), Renewed));
        assert!(!is_allowed(Some(Renewed), Active));
        assert!(!is_allowed(None, Active));
    }

    #[test]
    fn illegal_transitions_are_typed_and_not_counted() {
        let t = LifecycleTracker::new();
        let err = t
            .record(TokenKind::Access, Some(Revoked), Active)
            .unwrap_err();
        assert_eq!(err.to, Active);
        assert_eq!(t.count(TokenKind::Access, Some(Revoked), Active), 0);
    }
}
