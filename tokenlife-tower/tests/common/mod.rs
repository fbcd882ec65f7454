//! Shared fixtures: keys, validator, issuer, a real server on an ephemeral port.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::mpsc::Receiver;

use axum::Router;
use tokenlife_core::observe::audit::{AuditEvent, Auditor};
use tokenlife_core::{
    Algorithm, Issuer, Keyset, KeysetStore, ManualClock, Monitor, TokenRequest, Validator, testing,
};

pub const ISS: &str = "https://auth.example.com";
pub const AUD: &str = "api://orders";
pub const ADMIN_KEY: &str = "admin-secret-for-tests";

pub struct Fixture {
    pub store: KeysetStore,
    pub validator: Validator,
    pub issuer: Issuer,
    pub events: Receiver<AuditEvent>,
    pub monitor: Monitor,
    pub clock: ManualClock,
}

impl Fixture {
    pub fn new() -> Self {
        let store = KeysetStore::new(
            Keyset::new([testing::key("k1", Algorithm::ES256)])
                .unwrap()
                .with_label("v1"),
        );
        let (sink, events) = Auditor::channel(10_000);
        let clock = ManualClock::starting_now();
        let monitor = Monitor::builder()
            .clock(clock.clone())
            .auditor(Auditor::builder().sink(sink).build())
            .build();
        let validator = Validator::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .monitor(monitor.clone())
            .build()
            .unwrap();
        let issuer = Issuer::builder(store.clone())
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .revocations(validator.revocations().clone())
            .monitor(monitor.clone())
            .build()
            .unwrap();
        Self {
            store,
            validator,
            issuer,
            events,
            monitor,
            clock,
        }
    }

    pub fn token(&self, scope: &str) -> String {
        self.issuer
            .issue_access(TokenRequest::subject("user-42").scope(scope))
            .unwrap()
            .access_token
    }

    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.monitor.auditor().unwrap().flush();
        self.events.try_iter().collect()
    }
}

/// Serves `app` on 127.0.0.1 with an ephemeral port; returns its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}
