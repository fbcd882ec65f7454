//! Any body on any admin and OAuth route, authenticated: a JSON or form answer with a
//! status below 500 (never a panic, never a server error from bad input), and a refused
//! request leaves the keyset version where it was.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use tokenlife_core::{Algorithm, Issuer, Keyset, KeysetStore, ManualClock, Validator, testing};
use tokenlife_tower::admin::{self, AdminState};
use tower::ServiceExt;

const ROUTES: [&str; 12] = [
    "/token",
    "/revoke",
    "/introspect",
    "/revocations/jti",
    "/revocations/subject",
    "/revocations/family",
    "/keysets",
    "/keysets?keep_signing=true",
    "/keysets/stage",
    "/tokens",
    "/keysets/rollback/1",
    "/keysets?label=x&keep_signing=false",
];

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    store: KeysetStore,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
        let validator = Validator::builder(store.clone())
            .issuer("i")
            .audience("a")
            .clock(clock.clone())
            .build()
            .unwrap();
        let issuer = Issuer::builder(store.clone())
            .issuer("i")
            .audience("a")
            .clock(clock)
            .revocations(validator.revocations().clone())
            .refresh_capacity(10_000)
            .build()
            .unwrap();
        let state = AdminState::builder(validator)
            .issuer(issuer)
            .admin_key("adm")
            .client("c", "s", Some("read"))
            .auth_throttle(u32::MAX, std::time::Duration::from_secs(1))
            .build()
            .unwrap();
        World {
            // The admin routes bound body reads with tokio's timer (as a server's runtime
            // has it).
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            app: admin::router(state),
            store,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let path = ROUTES[usize::from(route) % ROUTES.len()];
    let ctype = if route & 0x80 == 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let req = http::Request::post(path)
        .header("authorization", "Bearer adm")
        .header("content-type", ctype)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let before = w.store.current().version();
    let res = w.rt.block_on(w.app.clone().oneshot(req)).unwrap();
    let status = res.status().as_u16();
    assert!(
        status < 500 || status == 503 || status == 507,
        "{path}: {status}"
    );
    if status >= 400 {
        assert_eq!(
            w.store.current().version(),
            before,
            "{path} refused but changed keysets"
        );
    }
});
