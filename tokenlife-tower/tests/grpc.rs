//! Peer gaps, item 6: a tonic gRPC server behind `TokenLifeLayer::grpc()`, called by a
//! real tonic client over HTTP/2 on 127.0.0.1 (the standard `grpc.health.v1` service,
//! so no code generation). A rejected call is a gRPC status the client understands —
//! `UNAUTHENTICATED` (16) or `PERMISSION_DENIED` (7) with a `grpc-message` and the
//! challenge as metadata — never an HTTP error a gRPC client reports as "protocol error".
#![cfg(feature = "axum")]

mod common;

use std::time::Duration;

use common::*;
use tokenlife_tower::TokenLifeLayer;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Serves the health service behind `layer`; returns a connected channel.
async fn serve_grpc(layer: TokenLifeLayer<tokenlife_tower::Grpc>) -> Channel {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

/// One health check with `token` (if any) as the bearer: the status code, message and
/// challenge of a failure, or `Ok`.
async fn check(channel: &Channel, token: Option<&str>) -> Result<i32, (Code, String, String)> {
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let mut client = HealthClient::new(channel.clone());
    match client.check(req).await {
        Ok(res) => Ok(res.into_inner().status),
        Err(status) => Err((
            status.code(),
            status.message().to_owned(),
            status
                .metadata()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
        )),
    }
}

#[tokio::test]
async fn a_tonic_service_behind_the_layer_answers_grpc_statuses() {
    let f = Fixture::new();
    let channel = serve_grpc(
        TokenLifeLayer::new(f.validator.clone())
            .require_scope("health:read")
            .grpc(),
    )
    .await;

    // A valid token with the scope: the call goes through (1 = SERVING).
    assert_eq!(check(&channel, Some(&f.token("health:read"))).await, Ok(1));

    // No token: UNAUTHENTICATED, the bare challenge.
    assert_eq!(
        check(&channel, None).await,
        Err((
            Code::Unauthenticated,
            "no bearer token".into(),
            r#"Bearer realm="api""#.into()
        ))
    );

    // A tampered token: UNAUTHENTICATED, invalid_token.
    // One character in the middle of the signature changed: a bad signature (the last
    // one could make the base64 itself malformed).
    let mut bad = f.token("health:read").into_bytes();
    let i = bad.len() - 10;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let (code, message, challenge) = check(&channel, Some(&bad)).await.unwrap_err();
    assert_eq!(code, Code::Unauthenticated);
    assert_eq!(message, "invalid signature");
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
        "{challenge}"
    );

    // A valid token without the scope: PERMISSION_DENIED, insufficient_scope.
    let (code, message, challenge) = check(&channel, Some(&f.token("other"))).await.unwrap_err();
    assert_eq!(
        (code, message.as_str()),
        (Code::PermissionDenied, "insufficient scope")
    );
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="health:read""#),
        "{challenge}"
    );

    // An expired token: UNAUTHENTICATED.
    let token = f.token("health:read");
    f.clock.advance(Duration::from_secs(3600));
    let (code, message, _) = check(&channel, Some(&token)).await.unwrap_err();
    assert_eq!(
        (code, message.as_str()),
        (Code::Unauthenticated, "token expired")
    );
}

/// The response is trailers-only and HTTP 200, as the gRPC protocol asks, whatever the
/// HTTP status of the same rejection would be (here a 400: not a bearer scheme).
#[tokio::test]
async fn the_grpc_rejection_is_trailers_only() {
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let f = Fixture::new();
    let svc = ServiceBuilder::new()
        .layer(TokenLifeLayer::new(f.validator.clone()).grpc())
        .service(service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        }));
    let req = http::Request::post("/grpc.health.v1.Health/Check")
        .header("authorization", "Basic abc")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "16");
    assert!(http_body::Body::is_end_stream(res.body()));
}
