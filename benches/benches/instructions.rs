//! Instruction counts (Callgrind, via gungraun): stable on a shared, noisy machine where
//! wall time is not. The cache-hit validation, the cache-miss RS256 and ES256
//! validations beside a bare aws-lc-rs verify of the same token (key parsed once), and
//! the revocation probe (hit and miss, 100,000 entries), and one request through each
//! adapter, bare and behind tokenlife (cache hit), in process. The `observed` rows carry
//! the gateway's observers (`benches::observed_validator`).
//!
//! Needs valgrind and the runner of the same version as the `gungraun` dev-dependency:
//! `cargo install gungraun-runner --version 0.19.4 --locked`, then
//! `cargo bench -p benches --bench instructions`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use benches::{decoding_key, key, observed_validator, observed_validator_with, token, validator};
use gungraun::{library_benchmark, library_benchmark_group, main};
use jsonwebtoken::DecodingKeyKind;
use tokenlife_core::{Algorithm, RevocationList, Validator};

fn warm(alg: Algorithm, cache: u64) -> (Validator, String) {
    warm_with(alg, cache, false)
}

/// As [`warm`], with the gateway's observers when `observed`.
fn warm_with(alg: Algorithm, cache: u64, observed: bool) -> (Validator, String) {
    let k = key(alg);
    let (_store, v) = if observed {
        observed_validator(std::slice::from_ref(&k), cache)
    } else {
        validator(std::slice::from_ref(&k), cache)
    };
    warmed(v, &k)
}

/// As [`warm_with`] observed, with the usage rollup beside the monitor (`--audit-db`).
fn warm_with_usage(alg: Algorithm, cache: u64) -> (Validator, String) {
    let k = key(alg);
    let (_store, v) = observed_validator_with(std::slice::from_ref(&k), cache, true);
    warmed(v, &k)
}

fn warmed(v: Validator, k: &Arc<tokenlife_core::Key>) -> (Validator, String) {
    let t = token(k, 1);
    // Two calls: the first verifies (and fills the cache), the second is what a steady
    // state looks like (lazy statics, provider install, allocator warm).
    v.validate(&t).expect("valid");
    v.validate(&t).expect("valid");
    (v, t)
}

fn bare(alg: Algorithm) -> (ParsedPublicKey, String) {
    let k = key(alg);
    let dk = decoding_key(&k);
    let parsed = match dk.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
            .expect("rsa key"),
        DecodingKeyKind::SecretOrDer(point) => {
            ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point).expect("ec key")
        }
    };
    let t = token(&k, 1);
    // Warm the same way.
    let (m, s) = t.rsplit_once('.').expect("token");
    let s = URL_SAFE_NO_PAD.decode(s).expect("b64");
    parsed.verify_sig(m.as_bytes(), &s).expect("valid");
    (parsed, t)
}

#[library_benchmark]
#[bench::rs256(warm(Algorithm::RS256, 10_000))]
#[bench::rs256_observed(warm_with(Algorithm::RS256, 10_000, true))]
#[bench::rs256_observed_usage(warm_with_usage(Algorithm::RS256, 10_000))]
fn validate_hit((v, t): (Validator, String)) -> (bool, Validator, String) {
    let hit = v.validate(black_box(&t)).expect("valid").from_cache();
    // The inputs go back out: their drop is not the operation measured.
    (hit, v, t)
}

#[library_benchmark]
#[bench::rs256(warm(Algorithm::RS256, 0))]
#[bench::es256(warm(Algorithm::ES256, 0))]
fn validate_miss((v, t): (Validator, String)) -> (bool, Validator, String) {
    let hit = v.validate(black_box(&t)).expect("valid").from_cache();
    (hit, v, t)
}

#[library_benchmark]
#[bench::rs256(bare(Algorithm::RS256))]
#[bench::es256(bare(Algorithm::ES256))]
fn bare_verify((parsed, t): (ParsedPublicKey, String)) -> (bool, ParsedPublicKey, String) {
    let (message, signature) = t.rsplit_once('.').expect("token");
    let mut buf = [0u8; 512];
    let n = URL_SAFE_NO_PAD
        .decode_slice(black_box(signature), &mut buf)
        .expect("base64");
    let ok = parsed.verify_sig(message.as_bytes(), &buf[..n]).is_ok();
    (ok, parsed, t)
}

fn revocations() -> (Arc<RevocationList>, u64) {
    let list = RevocationList::new();
    let until = SystemTime::now() + Duration::from_secs(3600);
    for n in 0..100_000u32 {
        list.revoke_jti(&format!("jti-{n:08}"), until)
            .expect("revoke");
    }
    let now = benches::now();
    // Warm the probe path.
    list.check(Some("jti-00000001"), None, None, None, now);
    (Arc::new(list), now)
}

#[library_benchmark]
#[bench::hit(revocations())]
fn revocation_hit((list, now): (Arc<RevocationList>, u64)) -> (bool, Arc<RevocationList>) {
    let hit = list
        .check(Some(black_box("jti-00054321")), None, None, None, now)
        .is_some();
    (hit, list)
}

#[library_benchmark]
#[bench::miss(revocations())]
fn revocation_miss((list, now): (Arc<RevocationList>, u64)) -> (bool, Arc<RevocationList>) {
    let miss = list
        .check(Some(black_box("nope-00054321")), None, None, None, now)
        .is_none();
    (miss, list)
}

/// One request through an app, in process: the app is built and warmed in setup.
type Call = Box<dyn Fn() -> u16>;

fn actix_app(wrapped: bool) -> Call {
    actix_app_with(wrapped, false)
}

fn actix_app_with(wrapped: bool, observed: bool) -> Call {
    use actix_web::{App, HttpResponse, test, web};
    async fn orders() -> HttpResponse {
        HttpResponse::Ok().body("ok")
    }
    let k = key(Algorithm::RS256);
    let (_store, v) = if observed {
        observed_validator(std::slice::from_ref(&k), 10_000)
    } else {
        validator(std::slice::from_ref(&k), 10_000)
    };
    let bearer = format!("Bearer {}", token(&k, 1));
    let sys = actix_web::rt::System::new();
    let req = move || {
        test::TestRequest::get()
            .uri("/orders")
            .insert_header(("authorization", bearer.as_str()))
            .to_request()
    };
    // The two apps are different types: one closure each, the same request.
    let call: Call = if wrapped {
        let app = sys.block_on(test::init_service(
            App::new()
                .wrap(tokenlife_actix::TokenLife::new(v))
                .route("/orders", web::get().to(orders)),
        ));
        Box::new(move || {
            sys.block_on(test::call_service(&app, req()))
                .status()
                .as_u16()
        })
    } else {
        let app = sys.block_on(test::init_service(
            App::new().route("/orders", web::get().to(orders)),
        ));
        Box::new(move || {
            sys.block_on(test::call_service(&app, req()))
                .status()
                .as_u16()
        })
    };
    assert_eq!(call(), 200);
    assert_eq!(call(), 200);
    call
}

fn axum_app(layered: bool) -> Call {
    axum_app_with(layered, false)
}

fn axum_app_with(layered: bool, observed: bool) -> Call {
    use axum::body::Body;
    use tower::ServiceExt;
    let k = key(Algorithm::RS256);
    let (_store, v) = if observed {
        observed_validator(std::slice::from_ref(&k), 10_000)
    } else {
        validator(std::slice::from_ref(&k), 10_000)
    };
    let bearer = format!("Bearer {}", token(&k, 1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let base = axum::Router::new().route("/orders", axum::routing::get(|| async { "ok" }));
    let app = if layered {
        base.layer(tokenlife_tower::TokenLifeLayer::new(v))
    } else {
        base
    };
    let call: Call = Box::new(move || {
        let req = http::Request::get("/orders")
            .header("authorization", &bearer)
            .body(Body::empty())
            .expect("request");
        rt.block_on(app.clone().oneshot(req))
            .expect("call")
            .status()
            .as_u16()
    });
    assert_eq!(call(), 200);
    assert_eq!(call(), 200);
    call
}

#[library_benchmark]
#[bench::actix_bare(actix_app(false))]
#[bench::actix_tokenlife(actix_app(true))]
#[bench::actix_observed(actix_app_with(true, true))]
#[bench::axum_bare(axum_app(false))]
#[bench::axum_tokenlife(axum_app(true))]
#[bench::axum_observed(axum_app_with(true, true))]
fn adapter_request(call: Call) -> (u16, Call) {
    (black_box(call()), call)
}

library_benchmark_group!(
    name = hot_path;
    benchmarks = validate_hit, validate_miss, bare_verify, revocation_hit, revocation_miss
);

library_benchmark_group!(
    name = adapters;
    benchmarks = adapter_request
);

main!(library_benchmark_groups = hot_path, adapters);
