//! Keys, keysets and the versioned [`KeysetStore`] with atomic rollback.
//!
//! A [`Key`] is one verification key (and optionally its private signing half), with the
//! algorithm fixed by the key, never by a token. A [`Keyset`] is a set of keys, one of
//! which may sign. The [`KeysetStore`] holds the current [`KeysetSnapshot`] in an
//! `ArcSwap`: validation loads it without a lock, and every change (publish, stage,
//! promote, rollback) is one atomic swap.
//!
//! # Examples
//!
//! ```
//! use tokenlife_core::{Key, Keyset, KeysetStore};
//! use jsonwebtoken::Algorithm;
//!
//! let blue = Keyset::new([Key::hmac("blue", Algorithm::HS256, &[1; 32])?])?.with_label("blue");
//! let green = Keyset::new([Key::hmac("green", Algorithm::HS256, &[2; 32])?])?.with_label("green");
//!
//! let store = KeysetStore::new(blue);
//! assert_eq!(store.current().version(), 1);
//! let v2 = store.publish(green);
//! assert_eq!(store.current().label(), Some("green"));
//!
//! store.rollback()?;                      // back to version 1
//! assert_eq!(store.current().version(), 1);
//! store.rollback_to(v2)?;                 // or to any version still in the history
//! assert_eq!(store.current().version(), v2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod jwk;
mod key;
mod keyset;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
mod store;
mod verifier;

pub use key::Key;
pub use keyset::Keyset;
pub(crate) use store::same_key;
pub use store::{
    KeysetSnapshot, KeysetStore, KeysetStoreBuilder, Retirement, RolloutMode, ShadowStats,
};

/// A future of nothing, boxed: what [`KeyWait::wait`] hands out.
pub type KeyWaitFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A source of keys that can be waited for: the async adapters let a request whose token
/// names a `kid` these keys lack wait (at most [`ValidatorBuilder::unknown_kid_wait`](crate::validate::ValidatorBuilder::unknown_kid_wait))
/// for a refresh already in flight, then validate it once more. The validation itself
/// never waits. `keys::remote::RemoteKeys` (feature `remote`) is one.
pub trait KeyWait: Send + Sync + 'static {
    /// For a token naming `kid` that just failed as unknown: a future that resolves when
    /// the refresh in flight finishes (whatever its outcome), a ready one when the kid is
    /// known by now (a refresh finished since that validation), or `None` when neither
    /// (a cooldown, keys that are simply not there): nothing to wait for. `bound` caps
    /// the wait.
    fn wait(&self, kid: Option<&str>, bound: std::time::Duration) -> Option<KeyWaitFuture>;
}
