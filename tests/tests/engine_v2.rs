//! Engine v2's seams from a user's side: several services on one server told apart by name,
//! tower layers around a generated client, metadata, formats, and middleware that sees every
//! call's outcome.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::transport::{memory, tcp, unix};
use rpc_runtime::{
    service, Call, Client, Context, Format, Handler, Metadata, ResponseBuf, Router, RpcError, Server, Service,
};
use rpc_tests::within;

/// The first service.
#[service]
pub trait Greeter {
    /// A greeting.
    async fn hello(&self, name: String) -> String;
    /// Shares its name with `Stats::count`, with another result.
    async fn count(&self) -> String;
    /// What the caller sent as metadata under `key`.
    async fn metadata(&self, key: String) -> Option<String>;
    /// Returns after `ms` milliseconds.
    async fn sleep(&self, ms: u64) -> u64;
}

/// The second service, under a dotted name.
#[service(name = "admin.Stats")]
pub trait Stats {
    /// A number.
    async fn count(&self) -> u64;
}

struct Impl;

impl Greeter for Impl {
    async fn hello(&self, name: String) -> String {
        format!("hello, {name}")
    }
    async fn count(&self) -> String {
        "greeter".into()
    }
    async fn metadata(&self, key: String) -> Option<String> {
        Context::current().and_then(|c| c.metadata().get(&key).map(str::to_owned))
    }
    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

impl Stats for Impl {
    async fn count(&self) -> u64 {
        42
    }
}

fn router() -> Router {
    Router::new().add_service(GreeterServer::new(Impl)).add_service(StatsServer::new(Impl))
}

/// Two services on one listener, over TCP and a Unix socket: each client reaches its own
/// service, though their methods share a name, and the server's HELLO lists both with the
/// same signature hashes as the descriptors.
#[tokio::test]
async fn two_services_on_one_server_are_told_apart_by_name() {
    within(60, "two services", async {
        let dir = tempfile::tempdir().unwrap();
        let tcp_listener = tcp::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp_listener.local_addr();
        let unix_path = dir.path().join("two.sock");
        let server = Server::new(router());
        let _tcp = server.serve(tcp_listener);
        let _unix = server.serve(unix::bind(&unix_path).await.unwrap());
        for conn in [tcp::connect(addr).await.unwrap(), unix::connect(&unix_path).await.unwrap()] {
            let client = Client::new(conn);
            let greeter = GreeterClient::from_client(client.clone());
            let stats = StatsClient::from_client(client.clone());
            assert_eq!(greeter.count().await.unwrap(), "greeter");
            assert_eq!(stats.count().await.unwrap(), 42);
            assert_eq!(greeter.hello("ada".into()).await.unwrap(), "hello, ada");

            let hello = client.server_hello().expect("the server's HELLO arrived before its replies");
            let names: Vec<_> = hello.services().iter().map(|s| s.name()).collect();
            // The built-in introspection service is listed last.
            assert_eq!(names, ["Greeter", "admin.Stats", "rpc.Introspection"]);
            let advertised = hello.service("admin.Stats").unwrap().method("count").unwrap();
            let local = StatsClient::descriptor().method("count").unwrap();
            assert_eq!(advertised.signature_hash(), local.signature_hash());
            assert!(hello.speaks(Format::Postcard));
        }
    })
    .await;
}

#[test]
#[should_panic(expected = "two services named `Greeter`")]
fn a_router_refuses_two_services_of_one_name() {
    let _ = Router::new().add_service(GreeterServer::new(Impl)).add_service(GreeterServer::new(Impl));
}

/// tower's own layers wrap a generated client: a concurrency limit, a timeout (whose error
/// comes out as `RpcError::Layer`), and a layer that adds metadata to every call.
#[tokio::test(start_paused = true)]
async fn tower_layers_wrap_a_generated_client() {
    use tower::ServiceExt;
    let (listener, connector) = memory::listener();
    let _server = Server::new(router()).serve(listener);
    let client = Client::new(connector.connect().unwrap());
    let layered = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .concurrency_limit(4)
        .map_request(|mut call: Call| {
            call.metadata.insert("x-layer", "tagged");
            call
        })
        .service(client.clone());
    let greeter = GreeterClient::from_service(layered);
    assert_eq!(greeter.hello("tower".into()).await.unwrap(), "hello, tower");
    assert_eq!(greeter.metadata("x-layer".into()).await.unwrap().as_deref(), Some("tagged"));
    match greeter.sleep(5_000).await {
        Err(RpcError::Layer(source)) => {
            assert!(source.is::<tower::timeout::error::Elapsed>(), "{source}")
        }
        other => panic!("expected the timeout layer's error, got {other:?}"),
    }
    // The call seam is a plain tower service too.
    let stats = StatsClient::from_service(client.clone().map_err(|e: RpcError| e));
    assert_eq!(stats.count().await.unwrap(), 42);
}

/// Metadata set on a client reaches the handler; metadata over its bounds never leaves the
/// client.
#[tokio::test]
async fn metadata_reaches_the_handler_within_its_bounds() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(router()).serve(listener);
    let client = Client::new(connector.connect().unwrap());
    let traced = client
        .with_metadata(
            [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
                .into_iter()
                .collect(),
        )
        .unwrap();
    let greeter = GreeterClient::from_client(traced);
    let got = greeter.metadata("traceparent".into()).await.unwrap();
    assert_eq!(got.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_eq!(
        GreeterClient::from_client(client.clone()).metadata("traceparent".into()).await.unwrap(),
        None
    );

    let too_many: Metadata =
        (0..=rpc_runtime::MAX_METADATA_ENTRIES).map(|i| (format!("k{i}"), "v")).collect();
    let err = client.with_metadata(too_many).unwrap_err();
    assert!(matches!(err, RpcError::MetadataTooLarge(_)), "{err}");
}

/// A server sends `METADATA_TOO_LARGE` for a call whose metadata is over the bounds (a peer
/// that is not this client), and serves the connection's next call.
#[tokio::test]
async fn a_call_with_metadata_over_its_bounds_is_refused_alone() {
    use rpc_runtime::__fuzz::{encode_envelope, Envelope};
    use rpc_tests::wire::{code, Frame, RawPeer};
    within(60, "metadata over bounds", async {
        let (listener, connector) = memory::listener();
        let _server = Server::new(GreeterServer::new(Impl)).serve(listener);
        let mut peer = RawPeer::new(connector.connect().unwrap());
        peer.handshake().await;
        let call = |id, metadata| Envelope::Call {
            id,
            kind: 0,
            format: 0,
            service: b"Greeter".to_vec(),
            method: b"count".to_vec(),
            hash: 0,
            timeout: None,
            metadata,
            payload: vec![],
        };
        let big = vec![("k".to_string(), "x".repeat(rpc_runtime::MAX_METADATA_BYTES))];
        peer.send_frame(&encode_envelope(&call(1, big))).await.unwrap();
        match peer.expect_frame().await {
            Frame::Error { id: 1, code: code::METADATA_TOO_LARGE, message } => {
                assert!(message.contains("bytes"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        peer.send_frame(&encode_envelope(&call(2, vec![]))).await.unwrap();
        assert!(matches!(peer.expect_frame().await, Frame::Response { id: 2, .. }));
    })
    .await;
}

/// A client built with `format(Json)` puts JSON on the wire (read by hand here).
#[tokio::test]
async fn a_json_client_sends_json() {
    use rpc_tests::wire::{Frame, RawPeer};
    within(60, "json on the wire", async {
        let (ours, theirs) = memory::pair();
        let client = Client::builder().format(Format::Json).build(ours);
        let mut server = RawPeer::new(theirs);
        server.handshake().await;
        let call = tokio::spawn(async move { GreeterClient::from_client(client).hello("wire".into()).await });
        match server.expect_frame().await {
            Frame::Request { service, method, payload, .. } => {
                assert_eq!((service.as_str(), method.as_str()), ("Greeter", "hello"));
                assert_eq!(payload, br#"["wire"]"#, "{}", String::from_utf8_lossy(&payload));
            }
            other => panic!("{other:?}"),
        }
        call.abort();
    })
    .await;
}

/// A client may speak JSON: the server answers each call in its own format.
#[tokio::test]
async fn json_calls_are_answered_in_json() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(router()).serve(listener);
    let json = Client::builder().format(Format::Json).build(connector.connect().unwrap());
    let greeter = GreeterClient::from_client(json.clone());
    assert_eq!(greeter.hello("json".into()).await.unwrap(), "hello, json");
    // Through the call seam, the reply's bytes are JSON.
    use tower::ServiceExt;
    static HELLO: rpc_runtime::MethodRef =
        rpc_runtime::MethodRef::dynamic("Greeter", "hello", rpc_runtime::describe::MethodKind::Unary, 0);
    let call = Call::new(&HELLO, Format::Json, &br#"["seam"]"#[..]);
    let reply = json.oneshot(call).await.unwrap();
    assert_eq!(&reply.body[..], br#""hello, seam""#);
}

/// Middleware is a `Service` around a service: it sees every call and its outcome.
struct Counting<S> {
    inner: S,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl<S: Service> Service for Counting<S> {
    fn descriptor(&self) -> &'static rpc_runtime::describe::ServiceDescriptor {
        self.inner.descriptor()
    }

    fn call(&self, method: &str, payload: &[u8], response: ResponseBuf) -> Result<Handler, RpcError> {
        let (ok, failed) = (Arc::clone(&self.ok), Arc::clone(&self.failed));
        let counted = move |outcome: &Result<_, RpcError>| {
            let counter = if outcome.is_ok() { &ok } else { &failed };
            counter.fetch_add(1, Ordering::SeqCst);
        };
        match self.inner.call(method, payload, response) {
            Ok(handler) => Ok(handler.map_future(move |fut| async move {
                let outcome = fut.await;
                counted(&outcome);
                outcome
            })),
            Err(e) => {
                counted(&Err(e.clone()));
                Err(e)
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn middleware_sees_every_call_and_its_outcome() {
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counting =
        Counting { inner: GreeterServer::new(Impl), ok: Arc::clone(&ok), failed: Arc::clone(&failed) };
    let (listener, connector) = memory::listener();
    let _server = Server::new(counting).serve(listener);
    let client = Client::new(connector.connect().unwrap());
    let greeter = GreeterClient::from_client(client.clone());
    greeter.hello("a".into()).await.unwrap();
    greeter.count().await.unwrap();
    // Arguments that do not decode: the inner service refuses the call, and the middleware sees it.
    static BAD: rpc_runtime::MethodRef =
        rpc_runtime::MethodRef::dynamic("Greeter", "hello", rpc_runtime::describe::MethodKind::Unary, 0);
    let bad: Result<String, _> = client.call(&BAD, &(1u8, 2u8, 3u8)).await;
    assert!(matches!(bad, Err(RpcError::Decode(_))), "{bad:?}");
    assert_eq!((ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst)), (2, 1));
}

/// A router answers untyped calls in-process, with the same checks as a server: how a
/// transport that carries calls (a broker) serves them.
#[tokio::test]
async fn a_router_serves_calls_in_process() {
    use rpc_runtime::describe::MethodKind;
    use tower::ServiceExt;
    static COUNT: rpc_runtime::MethodRef =
        rpc_runtime::MethodRef::new(StatsClient::descriptor, "admin.Stats", "count", MethodKind::Unary);
    let reply = router().oneshot(Call::new(&COUNT, Format::Json, &b"[]"[..])).await.unwrap();
    assert_eq!(&reply.body[..], b"42");
    let mut skewed = Call::new(&COUNT, Format::Json, &b"[]"[..]);
    skewed.signature ^= 1;
    let err = router().oneshot(skewed).await.unwrap_err();
    assert!(
        matches!(&err, RpcError::SignatureMismatch { method, .. } if method == "admin.Stats.count"),
        "{err}"
    );
}

/// A malformed HELLO (absurd limits, a wrong version, too many services) is refused with a
/// goaway naming the rule, before any call is read.
#[tokio::test]
async fn a_malformed_hello_gets_a_goaway_naming_the_rule() {
    use rpc_tests::wire::{self, code, varint, RawPeer};
    within(60, "malformed HELLOs", async {
        let (listener, connector) = memory::listener();
        let _server = Server::new(router()).serve(listener);
        let tiny_frames = [vec![1, 2], varint(16), vec![0, 16, 1, 0]].concat();
        let no_window = [vec![1, 2], varint(1 << 20), vec![0, 0, 1, 0]].concat();
        let version_9 = [vec![1, 9], varint(1 << 20), vec![0, 16, 1, 0]].concat();
        let no_format = [vec![1, 2], varint(1 << 20), vec![0, 16], varint(1 << 20), vec![0]].concat();
        let services = [vec![1, 2], varint(1 << 20), vec![0, 16, 1], varint(100_000)].concat();
        let not_hello = wire::ping(1);
        for (hello, want) in [
            (tiny_frames, "below the minimum 1024"),
            (no_window, "stream window of 0"),
            (version_9, "version 9"),
            (no_format, "no format"),
            (services, "services, more than"),
            (not_hello, "expected a HELLO frame first"),
        ] {
            let mut peer = RawPeer::new(connector.connect().unwrap());
            peer.send(&[&wire::PREFACE[..], &wire::frame(&hello)].concat()).await.unwrap();
            peer.expect_preface().await;
            let (c, message) = peer.goaway_then_close().await.expect("a goaway");
            assert_eq!(c, code::PROTOCOL);
            assert!(message.contains(want), "expected {want:?} in {message:?}");
        }
    })
    .await;
}

/// Stream frames for a call that is not a stream are violations: each gets `ERROR` code 13 for
/// its id, the connection's calls carry on until there have been too many, then a goaway names
/// the stream rule. (The rules on open streams: `streaming_rules.rs`.)
#[tokio::test]
async fn stream_frames_for_unknown_streams_are_violations() {
    use rpc_tests::wire::{self, code, varint, Frame, RawPeer};
    within(60, "stream frames", async {
        let (listener, connector) = memory::listener();
        let _server = Server::new(GreeterServer::new(Impl)).serve(listener);
        let mut peer = RawPeer::new(connector.connect().unwrap());
        peer.handshake().await;
        let item = [vec![5], varint(77), vec![1, 2, 3]].concat();
        let credit = [vec![8], varint(77), varint(u64::MAX)].concat();
        for frame in [&item, &credit] {
            peer.send_frame(frame).await.unwrap();
        }
        for _ in 0..2 {
            match peer.expect_frame().await {
                Frame::Error { id: 77, code: c, message } => {
                    assert_eq!(c, code::STREAM_PROTOCOL);
                    assert!(message.contains("not an open stream"), "{message}");
                }
                other => panic!("expected ERROR 13 for call 77, got {other:?}"),
            }
        }
        peer.send_frame(&wire::call(1, "Greeter", "count", 0, &[])).await.unwrap();
        assert!(matches!(peer.expect_frame().await, Frame::Response { id: 1, .. }), "calls carry on");
        for _ in 0..8 {
            peer.send_frame(&[vec![6], varint(78)].concat()).await.unwrap();
        }
        let (c, message) = peer.goaway_then_close().await.expect("a goaway");
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("not an open stream"), "{message}");
    })
    .await;
}

/// A HELLO frame longer than the server's maximum gets the same goaway as any such frame.
#[tokio::test]
async fn an_oversized_hello_gets_frame_too_large() {
    use rpc_tests::wire::{self, code, RawPeer};
    within(60, "oversized HELLO", async {
        let (listener, connector) = memory::listener();
        let _server = Server::new(router()).max_frame_len(64 * 1024).serve(listener);
        let mut peer = RawPeer::new(connector.connect().unwrap());
        let header = (1u32 << 20).to_be_bytes();
        peer.send(&[&wire::PREFACE[..], &header[..], &[1, 2]].concat()).await.unwrap();
        peer.expect_preface().await;
        let (c, message) = peer.goaway_then_close().await.expect("a goaway");
        assert_eq!(c, code::FRAME_TOO_LARGE, "{message}");
    })
    .await;
}

/// A client whose server sends a malformed HELLO fails its calls with the HELLO's error.
#[tokio::test]
async fn a_malformed_server_hello_is_reported_as_such() {
    use rpc_tests::wire::{self, varint, RawPeer};
    within(60, "malformed server HELLO", async {
        let (ours, theirs) = memory::pair();
        let client = GreeterClient::new(ours);
        let mut server = RawPeer::new(theirs);
        let bad = [vec![1, 2], varint(16), vec![0, 16, 1, 0]].concat();
        server.send(&[&wire::PREFACE[..], &wire::frame(&bad)].concat()).await.unwrap();
        match client.count().await {
            Err(RpcError::Protocol(m)) => assert!(m.contains("malformed HELLO"), "{m}"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}
