//! Shared fixtures: the core's `testing::Fixture`, a real server on an ephemeral port.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;

use axum::Router;

pub use tokenlife_core::testing::{ADMIN_KEY, AUD, Fixture, ISS};

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
