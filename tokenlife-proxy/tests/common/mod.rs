//! The upstream the proxy tests put behind it: a real HTTP server on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use serde_json::{Value, json};

/// An upstream named `name`: answers every request with what it received as JSON (and
/// its name), counting them; `/slow` waits two seconds first.
pub(crate) async fn upstream_named(name: &'static str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .fallback(
            move |State(hits): State<Arc<AtomicUsize>>, req: Request| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                if req.uri().path() == "/slow" {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                let headers: serde_json::Map<String, Value> = req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), json!(v.to_str().unwrap_or("?"))))
                    .collect();
                let method = req.method().to_string();
                let version = format!("{:?}", req.version());
                let uri = req.uri().to_string();
                let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                axum::Json(
                    json!({"server": name, "method": method, "uri": uri, "version": version,
                "headers": headers, "body_len": body.len()}),
                )
            },
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// An upstream named `echo`.
#[allow(dead_code)]
pub(crate) async fn upstream() -> (String, Arc<AtomicUsize>) {
    upstream_named("echo").await
}
