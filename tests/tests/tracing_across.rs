//! Tracing across the wire: a span per call on both sides, and the W3C trace context in the
//! call's metadata making the server's span a child of the client's, across two processes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rpc_runtime::trace::TraceContext;
use rpc_runtime::transport::{memory, tcp};
use rpc_runtime::Server;
use rpc_tests::relay::{RelayClient, RelayImpl, RelayServer};
use rpc_tests::spans::{Closed, SpanCapture};
use rpc_tests::within;

/// The `trace-server` child, its spans read from its standard output by a thread.
struct TraceServer {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    spans: mpsc::Receiver<Closed>,
}

impl TraceServer {
    fn spawn() -> TraceServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trace-server"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn trace-server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = lines.next().expect("a ready line").expect("stdout");
        let addr = ready.strip_prefix("ready tcp ").expect(&ready).parse().expect("address");
        let (tx, spans) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(span) = Closed::parse(&line) {
                    let _ = tx.send(span);
                }
            }
        });
        TraceServer { child, addr, spans }
    }

    /// The next `n` spans the server closes (a generous guard against a hang, not a timing).
    fn next_spans(&self, n: usize) -> Vec<Closed> {
        (0..n)
            .map(|_| self.spans.recv_timeout(Duration::from_secs(30)).expect("the server's spans"))
            .collect()
    }
}

impl Drop for TraceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find<'a>(spans: &'a [Closed], name: &str, method: &str) -> &'a Closed {
    spans
        .iter()
        .find(|s| s.name == name && s.field("rpc.method") == method)
        .unwrap_or_else(|| panic!("no {name} span for {method} in {spans:#?}"))
}

#[test]
fn the_servers_span_is_a_child_of_the_clients_across_processes() {
    let server = TraceServer::spawn();
    let (capture, ours) = SpanCapture::collect();
    let _guard = rpc_tests::logs::set_default(capture);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let reply = runtime.block_on(within(30, "the calls", async {
        let client = RelayClient::new(tcp::connect(server.addr).await.unwrap());
        client.relay("hi".into()).await
    }));
    assert_eq!(reply.unwrap(), Ok("hi".to_string()));
    drop(runtime);

    let ours = ours.lock().unwrap().clone();
    let client = find(&ours, "rpc.client", "relay");
    assert_eq!(client.field("rpc.service"), "Relay");
    assert_eq!(client.field("outcome"), "ok");
    assert!(client.field("parent_span_id").is_empty(), "a root span: {client:?}");
    let trace_id = client.field("trace_id");
    assert_eq!(trace_id.len(), 32, "{client:?}");

    // The server's process: `relay`'s span, the client span of the call it makes onward, and
    // `echo`'s span, all in the test's trace, each the parent of the next.
    let theirs = server.next_spans(3);
    let relay = find(&theirs, "rpc.server", "relay");
    let onward = find(&theirs, "rpc.client", "echo");
    let echo = find(&theirs, "rpc.server", "echo");
    for span in [relay, onward, echo] {
        assert_eq!(span.field("trace_id"), trace_id, "{span:?}");
        assert_eq!(span.field("outcome"), "ok", "{span:?}");
        assert!(!span.field("duration_us").is_empty(), "{span:?}");
    }
    assert_eq!(relay.field("parent_span_id"), client.field("span_id"));
    assert_eq!(onward.field("parent_span_id"), relay.field("span_id"));
    assert_eq!(echo.field("parent_span_id"), onward.field("span_id"));
    assert!(relay.field("peer").starts_with("tcp:127.0.0.1:"), "{relay:?}");
    assert!(!relay.field("call_id").is_empty(), "{relay:?}");
}

#[test]
fn a_failed_call_records_its_error_on_both_spans() {
    let server = TraceServer::spawn();
    let (capture, ours) = SpanCapture::collect();
    let _guard = rpc_tests::logs::set_default(capture);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome = runtime.block_on(within(30, "the calls", async {
        // A method the server does not have: refused by the router, before any handler runs.
        static MISSING: rpc_runtime::MethodRef =
            rpc_runtime::MethodRef::dynamic("Relay", "missing", rpc_runtime::describe::MethodKind::Unary, 0);
        let client = RelayClient::new(tcp::connect(server.addr).await.unwrap());
        let unknown: Result<(), _> = rpc_runtime::Channel::call(client.as_client(), &MISSING, ()).await;
        // A call the handler serves, so the server closes one span we can wait for.
        client.echo("after".into()).await.unwrap();
        unknown
    }));
    assert!(matches!(outcome, Err(rpc_runtime::RpcError::UnknownMethod(_))), "{outcome:?}");
    drop(runtime);
    let ours = ours.lock().unwrap().clone();
    let missing = find(&ours, "rpc.client", "missing");
    assert_eq!(missing.field("outcome"), "error");
    assert!(missing.field("error").contains("missing"), "{missing:?}");
    // The server made no span for a call it refused before routing it to a handler.
    let theirs = server.next_spans(1);
    assert_eq!(theirs[0].field("rpc.method"), "echo", "{theirs:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn with_nothing_recording_a_call_carries_no_trace_context() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(RelayServer::new(RelayImpl::default())).serve(listener);
    let client = RelayClient::new(connector.connect().unwrap());
    assert_eq!(within(30, "the call", client.traceparent()).await.unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn a_recording_client_sends_its_spans_context() {
    let (capture, ours) = SpanCapture::collect();
    let _guard = rpc_tests::logs::set_default(capture);
    let (listener, connector) = memory::listener();
    let _server = Server::new(RelayServer::new(RelayImpl::default())).serve(listener);
    let client = RelayClient::new(connector.connect().unwrap());
    let sent = within(30, "the call", client.traceparent()).await.unwrap().expect("a traceparent");
    let sent = TraceContext::parse(&sent).expect("a valid traceparent");
    let ours = ours.lock().unwrap().clone();
    let client_span = find(&ours, "rpc.client", "traceparent");
    let server_span = find(&ours, "rpc.server", "traceparent");
    // The handler's context carries its own span's context, the client's span its parent.
    assert_eq!(format!("{:032x}", sent.trace_id), client_span.field("trace_id"));
    assert_eq!(format!("{:016x}", sent.span_id), server_span.field("span_id"));
    assert_eq!(server_span.field("parent_span_id"), client_span.field("span_id"));
}
