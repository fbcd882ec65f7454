//! `tracing` spans around what takes time or matters in a trace — validation (sampled:
//! the validations the observer times), issuing, renewing, admin operations, remote key
//! fetches — with OpenTelemetry's field names, so `tracing-opentelemetry` exports them as
//! they are: `otel.name`, `otel.kind`, `otel.status_code` (`ERROR` on failure) and
//! `error.type` (the typed error's code), beside `tokenlife.*` attributes. No
//! `opentelemetry` dependency here: whoever installs a subscriber decides where spans go
//! (without one a span costs one atomic load).
//!
//! The domain calls these functions instead of `tracing` itself (the emissions stay in
//! `observe`); [`fail`] records a failure on the span returned.

use tracing::field::Empty;

/// The span of one validation (only when sampled: see the module).
pub(crate) fn validation(issuer: &str) -> tracing::Span {
    tracing::info_span!(
        target: "tokenlife",
        "tokenlife.validate",
        otel.name = "tokenlife.validate",
        otel.kind = "internal",
        otel.status_code = Empty,
        error.type = Empty,
        tokenlife.issuer = issuer,
        tokenlife.keyset_version = Empty,
        tokenlife.cache_hit = Empty,
    )
}

/// The span of minting a token pair.
pub(crate) fn issue(refresh: bool) -> tracing::Span {
    tracing::info_span!(
        target: "tokenlife",
        "tokenlife.issue",
        otel.name = "tokenlife.issue",
        otel.kind = "internal",
        otel.status_code = Empty,
        error.type = Empty,
        tokenlife.refresh = refresh,
    )
}

/// The span of a refresh-token renewal.
pub(crate) fn renew() -> tracing::Span {
    tracing::info_span!(
        target: "tokenlife",
        "tokenlife.renew",
        otel.name = "tokenlife.renew",
        otel.kind = "internal",
        otel.status_code = Empty,
        error.type = Empty,
    )
}

/// The span of one admin or OAuth operation (`operation`: its name, such as `Token`).
#[cfg(feature = "admin")]
pub(crate) fn admin(operation: &str) -> tracing::Span {
    tracing::info_span!(
        target: "tokenlife",
        "tokenlife.admin",
        otel.name = format!("tokenlife.admin {operation}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        error.type = Empty,
        tokenlife.operation = operation,
        http.response.status_code = Empty,
    )
}

/// The span of a remote key fetch (`url.full`: the source fetched).
#[cfg(feature = "remote")]
fn remote_fetch(source: &str) -> tracing::Span {
    tracing::info_span!(
        target: "tokenlife",
        "tokenlife.remote_fetch",
        otel.name = "tokenlife.remote_fetch",
        otel.kind = "client",
        otel.status_code = Empty,
        error.type = Empty,
        url.full = source,
    )
}

/// A span entered for as long as this lives (a synchronous operation), with the
/// outcome recorded on it.
pub(crate) struct Traced(tracing::span::EnteredSpan);

impl Traced {
    /// Records a failure of kind `code` (`otel.status_code = ERROR`, `error.type`).
    pub(crate) fn fail(&self, code: &str) {
        fail(&self.0, code);
    }

    /// Records a field (a `u64`).
    pub(crate) fn record_u64(&self, field: &'static str, value: u64) {
        self.0.record(field, value);
    }

    /// Records a field (a `bool`).
    pub(crate) fn record_bool(&self, field: &'static str, value: bool) {
        self.0.record(field, value);
    }
}

/// Enters `span` until the returned guard drops.
pub(crate) fn enter(span: tracing::Span) -> Traced {
    Traced(span.entered())
}

fn fail(span: &tracing::Span, code: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", code);
}

/// Runs `fut` inside a remote-fetch span for `source`, recording a failure's `code`.
#[cfg(feature = "remote")]
pub(crate) async fn remote_fetch_of<T, E>(
    source: &str,
    code: impl Fn(&E) -> &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use tracing::Instrument;
    let span = remote_fetch(source);
    let out = fut.instrument(span.clone()).await;
    if let Err(e) = &out {
        fail(&span, code(e));
    }
    out
}
