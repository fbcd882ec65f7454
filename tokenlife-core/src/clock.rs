//! Time, injected: [`Clock`], [`SystemClock`] and (feature `test-util`) [`ManualClock`].

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// Every expiry decision in tokenlife reads time through a `Clock`, so tests can move
/// time with [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the Unix epoch (a JWT `NumericDate`).
    fn unix_now(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The operating system's clock. The default everywhere.
///
/// On Linux, whole seconds come from `CLOCK_REALTIME_COARSE` (the kernel's last tick,
/// read through the vDSO: a few instructions instead of a full clock read and a
/// `SystemTime` subtraction); it trails the precise clock by at most one tick (1–4 ms),
/// nothing at the one-second grain of JWT times.
///
/// ```
/// use tokenlife_core::{Clock, SystemClock};
/// let precise = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
/// assert!(SystemClock.unix_now().abs_diff(precise) <= 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    #[cfg(target_os = "linux")]
    #[inline]
    fn unix_now(&self) -> u64 {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        u64::try_from(ts.tv_sec).unwrap_or(0)
    }
}

/// Converts a `SystemTime` to Unix seconds (0 before the epoch).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Converts Unix seconds to a `SystemTime`.
pub(crate) fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(any(test, feature = "test-util"))]
pub use manual::ManualClock;

#[cfg(any(test, feature = "test-util"))]
mod manual {
    use super::{Clock, SystemTime, UNIX_EPOCH};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A clock that only moves when told to (feature `test-util`).
    ///
    /// Clones share the same time, so a test keeps one handle and gives a clone to
    /// the validator.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenlife_core::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::at_unix(1_700_000_000);
    /// let seen_by_validator = clock.clone();
    /// clock.advance(Duration::from_secs(3600));
    /// assert_eq!(seen_by_validator.unix_now(), 1_700_003_600);
    /// ```
    #[derive(Debug, Clone)]
    pub struct ManualClock {
        nanos: Arc<AtomicU64>,
    }

    impl ManualClock {
        /// A clock standing at the given Unix time in seconds.
        pub fn at_unix(secs: u64) -> Self {
            Self {
                nanos: Arc::new(AtomicU64::new(secs.saturating_mul(1_000_000_000))),
            }
        }

        /// A clock standing at the system's current time.
        pub fn starting_now() -> Self {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            Self {
                nanos: Arc::new(AtomicU64::new(u64::try_from(nanos).unwrap_or(u64::MAX))),
            }
        }

        /// Moves the clock forward.
        pub fn advance(&self, by: Duration) {
            let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            self.nanos.fetch_add(by, Ordering::SeqCst);
        }

        /// Sets the clock to the given Unix time in seconds (may move backwards).
        pub fn set_unix(&self, secs: u64) {
            self.nanos
                .store(secs.saturating_mul(1_000_000_000), Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
        }
    }
}

/// Longest token lifetime accepted at build time (ten years), for issued tokens and API
/// keys alike: larger values would overflow time arithmetic.
pub(crate) const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 366 * 86400);
