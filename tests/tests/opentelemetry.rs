//! With cargo feature `opentelemetry` and a `tracing-opentelemetry` layer, the spans of a call
//! are OpenTelemetry spans of one trace: the server's span (and the spans of the calls its
//! handler makes) are children of the client's, linked by the `traceparent` the call carries.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use rpc_runtime::transport::memory;
use rpc_runtime::Server;
use rpc_tests::relay::{RelayClient, RelayImpl, RelayServer};
use rpc_tests::within;
use tracing_subscriber::layer::SubscriberExt;

fn find<'a>(spans: &'a [SpanData], name: &str, method: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| {
            s.name == name
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "rpc.method" && kv.value.as_str() == method)
        })
        .unwrap_or_else(|| panic!("no {name} span for {method} among {}", spans.len()))
}

#[tokio::test(flavor = "current_thread")]
async fn the_spans_of_a_call_and_its_onward_call_form_one_opentelemetry_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("rpc-tests"));
    let _guard = rpc_tests::logs::set_default(tracing_subscriber::registry().with(layer));

    // `relay` calls `echo` on the same server through a second connection.
    let (listener, connector) = memory::listener();
    let onward = RelayClient::new(connector.connect().unwrap());
    let _server = Server::new(RelayServer::new(RelayImpl { onward: Some(onward) })).serve(listener);
    let client = RelayClient::new(connector.connect().unwrap());
    assert_eq!(within(30, "the call", client.relay("hi".into())).await.unwrap(), Ok("hi".to_string()));

    let spans = exporter.get_finished_spans().unwrap();
    let caller = find(&spans, "rpc.client", "relay");
    let relay = find(&spans, "rpc.server", "relay");
    let onward = find(&spans, "rpc.client", "echo");
    let echo = find(&spans, "rpc.server", "echo");
    let trace_id = caller.span_context.trace_id();
    for span in [relay, onward, echo] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    assert_eq!(relay.parent_span_id, caller.span_context.span_id());
    assert_eq!(onward.parent_span_id, relay.span_context.span_id());
    assert_eq!(echo.parent_span_id, onward.span_context.span_id());
    assert!(relay.parent_span_is_remote, "the server's parent is the caller's span, received over the wire");
}
