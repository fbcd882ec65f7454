//! [`Fixture`]: the setup most tests start from, written once.

use std::sync::mpsc::Receiver;

use jsonwebtoken::Algorithm;

use crate::clock::ManualClock;
use crate::issue::{Issuer, TokenRequest};
use crate::keys::{Keyset, KeysetStore};
use crate::observe::Monitor;
use crate::observe::audit::{AuditEvent, AuditSink, Auditor};
use crate::validate::Validator;

/// The issuer every fixture token names.
pub const ISS: &str = "https://auth.example.com";
/// The audience every fixture token names.
pub const AUD: &str = "api://orders";
/// The admin key of [`Fixture::admin`] (`Authorization: Bearer …`).
#[cfg(feature = "admin")]
pub const ADMIN_KEY: &str = "admin-secret-for-tests";
/// The confidential client of [`Fixture::admin`]: id, secret, the scope it may ask for.
#[cfg(feature = "admin")]
pub const CLIENT: (&str, &str, &str) = ("demo-client", "demo-secret", "orders:read orders:write");
/// The resource server of [`Fixture::admin`]: id, secret (it may introspect).
#[cfg(feature = "admin")]
pub const RESOURCE_SERVER: (&str, &str) = ("orders-api", "rs-secret");

/// One ES256 test key (`k1`) in a keyset labelled `v1`, a [`ManualClock`], a [`Monitor`]
/// whose audit events land in a channel, a [`Validator`] and an [`Issuer`] for
/// [`ISS`]/[`AUD`] on that clock, sharing one revocation list and the monitor.
///
/// ```
/// use tokenlife_core::testing::Fixture;
/// let f = Fixture::new();
/// let token = f.token("orders:read");
/// assert!(f.validator.validate(&token).unwrap().has_scope("orders:read"));
/// assert!(!f.audit_events().is_empty());
/// ```
#[derive(Debug)]
pub struct Fixture {
    /// The keyset store (version 1: `k1`, ES256, label `v1`).
    pub store: KeysetStore,
    /// The validator.
    pub validator: Validator,
    /// The issuer.
    pub issuer: Issuer,
    /// The monitor both report to.
    pub monitor: Monitor,
    /// The clock all of them read.
    pub clock: ManualClock,
    /// Where the monitor's audit events go (see [`Fixture::audit_events`]).
    pub events: Receiver<AuditEvent>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// The fixture on a clock starting now.
    pub fn new() -> Self {
        Self::on(ManualClock::starting_now())
    }

    /// The fixture on `clock`.
    ///
    /// # Panics
    /// Never with the fixed test key (the builders' checks all pass).
    pub fn on(clock: ManualClock) -> Self {
        Self::build(clock, None::<crate::observe::audit::TracingSink>)
    }

    /// The fixture on `clock`, its auditor writing to `sink` too (a durable store under
    /// test, say) beside the channel [`audit_events`](Self::audit_events) reads.
    ///
    /// # Panics
    /// As for [`on`](Self::on).
    pub fn with_sink(clock: ManualClock, sink: impl AuditSink) -> Self {
        Self::build(clock, Some(sink))
    }

    fn build(clock: ManualClock, extra: Option<impl AuditSink>) -> Self {
        let store = KeysetStore::new(
            Keyset::new([super::key("k1", Algorithm::ES256)])
                .expect("one key")
                .with_label("v1"),
        );
        let (sink, events) = Auditor::channel(10_000);
        let mut auditor = Auditor::builder().sink(sink);
        if let Some(extra) = extra {
            auditor = auditor.sink(extra);
        }
        let monitor = Monitor::builder()
            .clock(clock.clone())
            .auditor(auditor.build())
            .build();
        let validator = Validator::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .monitor(monitor.clone())
            .build()
            .expect("validator");
        let issuer = Issuer::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .revocations(validator.revocations().clone())
            .monitor(monitor.clone())
            .build()
            .expect("issuer");
        Self {
            store,
            validator,
            issuer,
            monitor,
            clock,
            events,
        }
    }

    /// An access token for `user-42` with `scope`.
    ///
    /// # Panics
    /// If the issuer cannot sign (the fixture's key always can).
    pub fn token(&self, scope: &str) -> String {
        self.issuer
            .issue_access(TokenRequest::subject("user-42").scope(scope))
            .expect("issue")
            .access_token
    }

    /// The admin API over the fixture's validator and issuer (feature `admin`): admin key
    /// [`ADMIN_KEY`], the client [`CLIENT`], the resource server [`RESOURCE_SERVER`]; the
    /// other settings are the builder's defaults, for the test to change.
    ///
    /// ```
    /// use tokenlife_core::testing::{ADMIN_KEY, Fixture};
    /// let f = Fixture::new();
    /// let admin = f.admin().max_body(1024).build().unwrap();
    /// let req = http::Request::get("/keysets")
    ///     .header("authorization", format!("Bearer {ADMIN_KEY}"))
    ///     .body(Vec::new())
    ///     .unwrap();
    /// assert_eq!(admin.respond(&req, None).status(), 200);
    /// ```
    #[cfg(feature = "admin")]
    pub fn admin(&self) -> crate::admin::AdminStateBuilder {
        crate::admin::AdminState::builder(self.validator.clone())
            .issuer(self.issuer.clone())
            .admin_key(ADMIN_KEY)
            .client(CLIENT.0, CLIENT.1, Some(CLIENT.2))
            .resource_server(RESOURCE_SERVER.0, RESOURCE_SERVER.1)
    }

    /// Every audit event so far (the auditor flushed first).
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        if let Some(a) = self.monitor.auditor() {
            a.flush();
        }
        self.events.try_iter().collect()
    }
}
