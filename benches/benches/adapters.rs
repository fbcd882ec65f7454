//! The adapters' own cost, in process and in one run: a request through the bare app and
//! through the same app behind tokenlife (cache hit), for axum (`TokenLifeLayer`, tower
//! `oneshot` on a ready router) and actix-web (`TokenLife`, `test::call_service`). No
//! network, so the ratio is harsher than over HTTP (where the kernel and the client add
//! the same cost to both): if it holds here, it holds behind a socket.
//!
//! `cargo bench -p benches --bench adapters`

#![allow(missing_docs)]

use std::hint::black_box;

use actix_web::{App, HttpResponse, test, web};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use benches::{key, token, validator};
use criterion::{Criterion, criterion_group, criterion_main};
use tokenlife_core::Algorithm;
use tower::ServiceExt;

fn axum(c: &mut Criterion) {
    let k = key(Algorithm::RS256);
    let (_, v) = validator(std::slice::from_ref(&k), 10_000);
    let bearer = format!("Bearer {}", token(&k, 1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let base = Router::new().route("/orders", get(|| async { "ok" }));
    let bare = base.clone();
    // What any tower layer costs on an axum route (axum boxes the layered route again):
    // a layer that does nothing, to tell axum's share from tokenlife's.
    let noop = base.clone().layer(tower::util::MapRequestLayer::new(
        |r: http::Request<Body>| r,
    ));
    let layered = base.layer(tokenlife_tower::TokenLifeLayer::new(v));
    let req = || {
        http::Request::get("/orders")
            .header("authorization", &bearer)
            .body(Body::empty())
            .expect("request")
    };
    // Warm the cache.
    let res = rt.block_on(layered.clone().oneshot(req())).expect("call");
    assert_eq!(res.status(), 200);
    let mut g = c.benchmark_group("adapter/axum");
    g.bench_function("bare", |b| {
        b.iter(|| black_box(rt.block_on(bare.clone().oneshot(req())).expect("call")))
    });
    g.bench_function("no-op layer", |b| {
        b.iter(|| black_box(rt.block_on(noop.clone().oneshot(req())).expect("call")))
    });
    g.bench_function("layer (cache hit)", |b| {
        b.iter(|| black_box(rt.block_on(layered.clone().oneshot(req())).expect("call")))
    });
    g.finish();
}

fn actix(c: &mut Criterion) {
    let k = key(Algorithm::RS256);
    let (_, v) = validator(std::slice::from_ref(&k), 10_000);
    let bearer = format!("Bearer {}", token(&k, 1));
    let sys = actix_web::rt::System::new();
    async fn orders() -> HttpResponse {
        HttpResponse::Ok().body("ok")
    }
    let bare = sys.block_on(test::init_service(
        App::new().route("/orders", web::get().to(orders)),
    ));
    let wrapped = sys.block_on(test::init_service(
        App::new()
            .wrap(tokenlife_actix::TokenLife::new(v))
            .route("/orders", web::get().to(orders)),
    ));
    let req = || {
        test::TestRequest::get()
            .uri("/orders")
            .insert_header(("authorization", bearer.as_str()))
            .to_request()
    };
    let res = sys.block_on(test::call_service(&wrapped, req()));
    assert_eq!(res.status(), 200);
    let mut g = c.benchmark_group("adapter/actix");
    g.bench_function("bare", |b| {
        b.iter(|| black_box(sys.block_on(test::call_service(&bare, req()))))
    });
    g.bench_function("TokenLife (cache hit)", |b| {
        b.iter(|| black_box(sys.block_on(test::call_service(&wrapped, req()))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = axum, actix
}
criterion_main!(benches);
