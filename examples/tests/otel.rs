//! OpenTelemetry, wired the way a user wires it — `tracing-opentelemetry` over an SDK
//! tracer with an in-memory exporter (no `opentelemetry` in tokenlife-core) — and the
//! span tree tokenlife produces under a request's span asserted: issue, validations
//! (sampled: every one here), a renewal, each a child of the request in its trace, with
//! OpenTelemetry's status and `error.type` on a failure; and the audit record of the
//! failure carries the same trace id.

use opentelemetry::trace::{Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporterBuilder, SdkTracerProvider, SpanData};
use tokenlife_core::observe::audit::{AuditAction, Auditor};
use tokenlife_core::{
    Algorithm, Issuer, Keyset, KeysetStore, Monitor, TokenRequest, Validator, testing,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[test]
fn spans_nest_under_the_request_and_the_audit_trail_carries_the_trace_id() {
    let exporter = InMemorySpanExporterBuilder::new().build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tokenlife-test")));
    let _default = tracing::subscriber::set_default(subscriber);

    // The trace id goes into every audit record emitted inside a trace.
    let (sink, receiver) = Auditor::channel(100);
    let auditor = Auditor::builder()
        .sink(sink)
        .trace_id(|| {
            let cx = tracing::Span::current().context();
            let sc = cx.span().span_context().clone();
            sc.is_valid().then(|| sc.trace_id().to_string())
        })
        .build();
    let monitor = Monitor::builder()
        .auditor(auditor.clone())
        .latency_sample(1)
        .build();
    let store = KeysetStore::new(Keyset::new([testing::key("k1", Algorithm::ES256)]).unwrap());
    let validator = Validator::builder(store.clone())
        .issuer(testing::ISS)
        .audience(testing::AUD)
        .monitor(monitor.clone())
        .build()
        .unwrap();
    let issuer = Issuer::builder(store)
        .issuer(testing::ISS)
        .audience(testing::AUD)
        .monitor(monitor)
        .build()
        .unwrap();

    let request = tracing::info_span!("request", otel.name = "POST /checkout");
    let trace_id = {
        let _in = request.enter();
        let pair = issuer.issue(TokenRequest::subject("alice")).unwrap();
        validator.validate(&pair.access_token).unwrap();
        validator.validate("not-a-jwt").unwrap_err();
        issuer
            .renew_as(pair.refresh_token.as_deref().unwrap(), None)
            .unwrap();
        let admin = tokenlife_core::admin::AdminState::builder(validator.clone())
            .admin_key("otel-admin-key")
            .build()
            .unwrap();
        let req = axum::http::Request::get("/keysets")
            .header("authorization", "Bearer otel-admin-key")
            .body(Vec::new())
            .unwrap();
        assert_eq!(admin.respond(&req, None).status(), 200);
        request.context().span().span_context().trace_id()
    };
    drop(request);
    provider.force_flush().unwrap();
    auditor.flush();

    let spans = exporter.get_finished_spans().unwrap();
    let root = spans
        .iter()
        .find(|s| s.name == "POST /checkout")
        .expect("the request span");
    let children: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_context.span_id())
        .collect();
    let mut names: Vec<&str> = children.iter().map(|s| &*s.name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "tokenlife.admin Keysets",
            "tokenlife.issue",
            "tokenlife.renew",
            "tokenlife.validate",
            "tokenlife.validate"
        ],
        "{spans:#?}"
    );
    assert!(
        children
            .iter()
            .all(|s| s.span_context.trace_id() == trace_id)
    );
    // The failed validation: an error with its type; the good one: its keyset version.
    let failed = children
        .iter()
        .find(|s| matches!(s.status, Status::Error { .. }))
        .expect("a failed span");
    assert_eq!(&*failed.name, "tokenlife.validate");
    assert_eq!(attr(failed, "error.type").as_deref(), Some("malformed"));
    let ok = children
        .iter()
        .find(|s| s.name == "tokenlife.validate" && !matches!(s.status, Status::Error { .. }))
        .unwrap();
    assert_eq!(attr(ok, "tokenlife.keyset_version").as_deref(), Some("1"));
    assert_eq!(attr(ok, "tokenlife.issuer").as_deref(), Some(testing::ISS));
    // The audit record of the failure names the trace.
    let records: Vec<_> = receiver.try_iter().collect();
    let failure = records
        .iter()
        .find(|r| r.action == AuditAction::ValidationFailed)
        .expect("the failure's record");
    assert_eq!(failure.trace_id.as_deref(), Some(&*trace_id.to_string()));
    // Outside the request, a sampled validation is a trace of its own.
    validator.validate("still-not-a-jwt").unwrap_err();
    auditor.flush();
    let outside: Vec<_> = receiver.try_iter().collect();
    assert_eq!(outside.len(), 1);
    let own = outside[0].trace_id.as_deref().expect("its own trace");
    assert_ne!(own, trace_id.to_string());
    // And an event emitted with no span at all carries none.
    auditor.emit(tokenlife_core::observe::audit::AuditEvent::new(
        AuditAction::Admin,
        1,
    ));
    auditor.flush();
    let bare: Vec<_> = receiver.try_iter().collect();
    assert_eq!(bare.len(), 1);
    assert_eq!(bare[0].trace_id, None);
}
