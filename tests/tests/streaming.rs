//! The streaming suite, run over every transport: the gRPC interop streaming cases
//! (client_streaming, server_streaming, ping_pong, empty_stream, cancel_after_first_response,
//! timeout_on_sleeping_server), per-stream backpressure, and a panic in the middle of a stream.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use rpc_runtime::RpcError;
use rpc_tests::streams::StreamsClient;
use rpc_tests::*;

/// The fixture's `Streams` client, on the same connection as its `Kitchen` client.
fn streams(f: &Fixture) -> StreamsClient {
    StreamsClient::from_client(f.client.as_client().clone())
}

/// interop `client_streaming`: four payloads up, their total size back.
async fn client_streaming(transport: Transport) {
    let f = start(transport).await;
    let sizes = [27_182usize, 8, 1_828, 45_904];
    let payloads = stream::iter(sizes.map(|n| vec![1u8; n]));
    let total = guard("client_streaming", streams(&f).streaming_input_call(payloads)).await.unwrap();
    assert_eq!(total, 74_922);
    assert_eq!(f.client.as_client().in_flight(), 0);
}

/// interop `server_streaming`: one request, a payload of each requested size, in order.
async fn server_streaming(transport: Transport) {
    let f = start(transport).await;
    let sizes = vec![31_415u32, 9, 2_653, 58_979];
    let items = streams(&f).streaming_output_call(sizes.clone()).await.unwrap();
    let got: Vec<usize> = guard("server_streaming", items.map(|p| p.unwrap().len()).collect()).await;
    assert_eq!(got, sizes.iter().map(|&n| n as usize).collect::<Vec<_>>());
    assert_eq!(f.client.as_client().in_flight(), 0);
}

/// interop `ping_pong`: each request is answered before the next is sent.
async fn ping_pong(transport: Transport) {
    let f = start(transport).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut replies = streams(&f).full_duplex_call(1, tokio_stream(rx)).await.unwrap();
    for size in [31_415u32, 9, 2_653, 58_979] {
        tx.send(size).unwrap();
        let reply = guard("ping_pong reply", replies.next()).await.expect("a reply").unwrap();
        assert_eq!(reply.len(), size as usize);
    }
    drop(tx);
    assert!(guard("ping_pong end", replies.next()).await.is_none(), "the server ends after the client");
}

/// interop `empty_stream`: no items either way, and both sides end.
async fn empty_stream(transport: Transport) {
    let f = start(transport).await;
    let replies = streams(&f).full_duplex_call(2, stream::empty()).await.unwrap();
    let got: Vec<_> = guard("empty_stream", replies.collect()).await;
    assert!(got.is_empty(), "{got:?}");
}

/// interop `cancel_after_first_response`: dropping the results after the first cancels the call,
/// and the server drops its stream.
async fn cancel_after_first_response(transport: Transport) {
    let f = start(transport).await;
    let client = streams(&f);
    // The client never ends its side, so the server's stream ends only by the cancel.
    let sizes = stream::iter([31_415u32, 9, 2_653, 58_979]).chain(stream::pending());
    let mut replies = client.full_duplex_call(3, sizes).await.unwrap();
    let first = guard("first response", replies.next()).await.expect("a reply").unwrap();
    assert_eq!(first.len(), 31_415);
    drop(replies);
    assert_eq!(guard("the server sees the cancel", client.next_dropped()).await.unwrap(), 3);
}

/// interop `timeout_on_sleeping_server`, for a stream: the deadline covers the whole call.
async fn timeout_on_sleeping_server(transport: Transport) {
    let f = start(transport).await;
    let client = streams(&f).with_timeout(Duration::from_millis(200));
    let mut items = client.sleepy().await.unwrap();
    let first = guard("the deadline", items.next()).await.expect("the deadline ends the stream");
    assert!(matches!(first, Err(RpcError::DeadlineExceeded)), "{first:?}");
    assert!(items.next().await.is_none());
    assert_eq!(f.client.add(1, 2).await.unwrap(), 3, "the connection carries on");
}

/// A consumer that stops reading holds its window on the server and pauses only its own stream:
/// a second stream and unary calls on the same connection complete meanwhile.
async fn a_slow_consumer_pauses_only_its_own_stream(transport: Transport) {
    let f = start(transport).await;
    let client = streams(&f);
    let mut slow = client.count(10, 1_000).await.unwrap();
    // The producer makes a window of items (16) for the credit the client gave, then waits.
    assert_eq!(guard("a window produced", client.produced(10, 16)).await.unwrap(), 16);
    let fast: Vec<u64> =
        guard("a second stream", client.count(11, 100).await.unwrap().map(|i| i.unwrap()).collect()).await;
    assert_eq!(fast, (0..100).collect::<Vec<_>>());
    for i in 0..10 {
        assert_eq!(f.client.add(i, 1).await.unwrap(), i + 1, "unary calls carry on");
    }
    assert_eq!(client.produced(10, 0).await.unwrap(), 16, "the unread stream stayed at its window");
    // Taking half a window grants it back: the producer makes that many more, and stops again.
    for i in 0..8 {
        assert_eq!(guard("an item", slow.next()).await.unwrap().unwrap(), i);
    }
    assert_eq!(guard("more produced", client.produced(10, 24)).await.unwrap(), 24);
    for i in 0..10 {
        assert_eq!(f.client.add(i, 1).await.unwrap(), i + 1);
    }
    assert_eq!(client.produced(10, 0).await.unwrap(), 24, "no more than the credit granted");
    let rest: Vec<u64> = guard("the rest", slow.map(|i| i.unwrap()).collect()).await;
    assert_eq!(rest, (8..1_000).collect::<Vec<_>>());
}

/// A handler whose stream panics mid-way: its items so far, then `HandlerPanicked`, and the
/// connection's other calls carry on.
async fn a_panic_mid_stream_ends_only_that_stream(transport: Transport) {
    let f = start(transport).await;
    let client = streams(&f);
    let other = client.count(20, 50).await.unwrap();
    let got: Vec<_> = guard("boom_after", client.boom_after(3).await.unwrap().collect()).await;
    assert_eq!(got.len(), 4, "{got:?}");
    for (i, item) in got[..3].iter().enumerate() {
        assert_eq!(*item.as_ref().unwrap(), i as u32);
    }
    assert!(matches!(got[3], Err(RpcError::HandlerPanicked)), "{:?}", got[3]);
    let other: Vec<u64> = guard("the other stream", other.map(|i| i.unwrap()).collect()).await;
    assert_eq!(other, (0..50).collect::<Vec<_>>());
    assert_eq!(f.client.add(2, 2).await.unwrap(), 4);
}

/// An mpsc receiver as a `Stream` (without a dependency on tokio-stream).
fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}

macro_rules! suite {
    ($($transport:ident),* $(,)?) => {$(
        #[allow(non_snake_case)]
        mod $transport {
            use super::*;
            suite!(@tests $transport:
                client_streaming,
                server_streaming,
                ping_pong,
                empty_stream,
                cancel_after_first_response,
                timeout_on_sleeping_server,
                a_slow_consumer_pauses_only_its_own_stream,
                a_panic_mid_stream_ends_only_that_stream
            );
        }
    )*};
    (@tests $transport:ident: $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            super::$name(Transport::$transport).await;
        }
    )*};
}

suite!(Tcp, Unix, Memory, MemoryMessages, PipeChild, PipePair, FifoPair, FifoListener);

/// Graceful shutdown: a handler that watches for it ends its stream cleanly (`END`); a stream
/// still running when the grace period ends is cut off with `Cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_cleanly_or_at_the_end_of_the_grace_period() {
    let f = start(Transport::Memory).await;
    let client = streams(&f).with_timeout(None);
    let mut polite = client.until_shutdown().await.unwrap();
    assert_eq!(guard("the first tick", polite.next()).await.unwrap().unwrap(), 0);
    let mut stubborn = client.sleepy().await.unwrap();
    // A round trip, so both streams are running on the server before it shuts down.
    assert_eq!(f.client.add(1, 1).await.unwrap(), 2);
    let server = f.server.clone().expect("an in-process server");
    let shutdown = tokio::spawn(async move { server.shutdown(Duration::from_millis(300)).await });
    assert!(guard("a clean end", polite.next()).await.is_none(), "the handler ended its stream");
    let cut = guard("the grace period's end", stubborn.next()).await.expect("an error");
    assert!(matches!(cut, Err(RpcError::Cancelled(_))), "{cut:?}");
    guard("shutdown", shutdown).await.unwrap();
}

/// Items travel in the call's format: a JSON client streams both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_speak_json_too() {
    let f = start(Transport::Memory).await;
    let conn = f.connector.as_ref().expect("a listener").connect().await.unwrap();
    let json = rpc_runtime::Client::builder().format(rpc_runtime::Format::Json).build(conn);
    let client = StreamsClient::from_client(json);
    let sizes: Vec<usize> = guard(
        "json server stream",
        client.streaming_output_call(vec![3, 0, 5]).await.unwrap().map(|p| p.unwrap().len()).collect(),
    )
    .await;
    assert_eq!(sizes, [3, 0, 5]);
    let total = client.streaming_input_call(stream::iter([vec![1u8; 4], vec![2; 6]])).await.unwrap();
    assert_eq!(total, 10);
}

/// Through tower layers, a streaming method fails at once with an error that says streams need a
/// `Client` channel; unary methods on the same layered client work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layered_client_says_streams_need_a_client() {
    use tower::ServiceExt;
    let f = start(Transport::Memory).await;
    let layered = StreamsClient::from_service(f.client.as_client().clone().map_err(|e: RpcError| e));
    let err = layered.streaming_output_call(vec![1]).await.expect_err("no streams through layers");
    assert!(matches!(&err, RpcError::Protocol(m) if m.contains("rpc_runtime::Client")), "{err}");
    assert_eq!(layered.produced(1, 0).await.unwrap(), 0, "unary calls go through");
}
