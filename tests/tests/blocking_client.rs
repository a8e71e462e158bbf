//! The generated blocking client: calls from plain threads with no async runtime, over a real
//! TCP connection to a server on its own runtime; a clear error, never a panic or a hang, from
//! inside a runtime or when the server goes away. A server-streaming method's results come as an
//! iterator that blocks per item.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::transport::tcp;
use rpc_runtime::{RpcError, Server, ServerHandle};
use rpc_tests::probe::{ProbeBlockingClient, ProbeImpl, ProbeServer, ProbeState};
use rpc_tests::streams::{StreamsBlockingClient, StreamsImpl, StreamsServer};

/// A probe server on a runtime of its own (the test's thread has none).
struct Served {
    runtime: tokio::runtime::Runtime,
    server: Option<ServerHandle>,
    addr: std::net::SocketAddr,
    state: Arc<ProbeState>,
}

fn serve() -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let probe = ProbeImpl::default();
    let state = Arc::clone(&probe.state);
    let (addr, server) = runtime.block_on(async {
        let listener = tcp::bind("127.0.0.1:0").await.unwrap();
        (listener.local_addr(), Server::new(ProbeServer::new(probe)).serve(listener))
    });
    Served { runtime, server: Some(server), addr, state }
}

#[test]
fn calls_block_until_their_results_are_back() {
    let served = serve();
    let addr = served.addr;
    let client = ProbeBlockingClient::connect(move || tcp::connect(addr)).unwrap();
    assert_eq!(client.add(2, 3).unwrap(), 5);
    assert_eq!(client.echo(vec![7; 100_000]).unwrap(), vec![7; 100_000]);
    // Clones share the connection and work from other threads.
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            let client = client.clone();
            std::thread::spawn(move || client.add(i, 10).unwrap())
        })
        .collect();
    let sums: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(sums, vec![10, 11, 12, 13]);
    // A one-way call returns once sent; a call behind it on the connection sees its effect.
    client.note(5).unwrap();
    client.add(0, 0).unwrap();
    assert_eq!(served.state.notes.load(Ordering::SeqCst), 5);
}

#[test]
fn a_deadline_and_a_panicking_handler_are_typed_errors() {
    let served = serve();
    let addr = served.addr;
    let client = ProbeBlockingClient::connect(move || tcp::connect(addr)).unwrap();
    // `hold` waits until released, which this test never does: only the deadline ends it.
    let held = client.with_timeout(Duration::from_millis(50)).hold(1);
    assert!(matches!(held, Err(RpcError::DeadlineExceeded)), "{held:?}");
    let boom = client.boom("deliberate: blocking client test".into());
    assert!(matches!(boom, Err(RpcError::HandlerPanicked)), "{boom:?}");
    assert_eq!(client.add(1, 1).unwrap(), 2);
}

#[test]
fn inside_a_runtime_a_call_is_refused_not_blocked() {
    let served = serve();
    let addr = served.addr;
    let client = ProbeBlockingClient::connect(move || tcp::connect(addr)).unwrap();
    let inside = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let outcome = inside.block_on(async { client.add(1, 2) });
    assert!(matches!(outcome, Err(RpcError::BlockingInRuntime)), "{outcome:?}");
    assert!(outcome.unwrap_err().never_started());
    // The async client underneath works there.
    let asynchronous = client.as_async().clone();
    assert_eq!(served.runtime.block_on(asynchronous.add(1, 2)).unwrap(), 3);
    // Connecting from inside a runtime is refused the same way.
    let connect = inside.block_on(async { ProbeBlockingClient::connect(move || tcp::connect(addr)) });
    assert!(matches!(connect, Err(RpcError::BlockingInRuntime)), "{connect:?}");
}

#[test]
fn a_server_that_goes_away_fails_the_call_and_a_refused_connection_is_an_error() {
    let mut served = serve();
    let addr = served.addr;
    let client = ProbeBlockingClient::connect(move || tcp::connect(addr)).unwrap();
    assert_eq!(client.add(1, 2).unwrap(), 3);
    let server = served.server.take().unwrap();
    served.runtime.block_on(server.shutdown(Duration::from_secs(1)));
    let after = client.add(1, 2);
    // The server said GOAWAY (shutting down), then closed: a call made after the client read the
    // first but before it read the close is refused as `ShuttingDown`, after both as closed.
    assert!(matches!(after, Err(RpcError::ConnectionClosed(_) | RpcError::ShuttingDown)), "{after:?}");
    drop(served);
    let refused = ProbeBlockingClient::connect(move || tcp::connect(addr));
    assert!(
        matches!(&refused, Err(RpcError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
}

/// A `Streams` server on a runtime of its own, and a blocking client of it.
fn serve_streams() -> (tokio::runtime::Runtime, ServerHandle, StreamsBlockingClient) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (addr, server) = runtime.block_on(async {
        let listener = tcp::bind("127.0.0.1:0").await.unwrap();
        (listener.local_addr(), Server::new(StreamsServer::new(StreamsImpl::new())).serve(listener))
    });
    let client = StreamsBlockingClient::connect(move || tcp::connect(addr)).unwrap();
    (runtime, server, client)
}

#[test]
fn a_server_stream_is_an_iterator_that_blocks_per_item() {
    let (_runtime, _server, client) = serve_streams();
    let sizes: Vec<usize> =
        client.streaming_output_call(vec![3, 0, 70_000]).unwrap().map(|p| p.unwrap().len()).collect();
    assert_eq!(sizes, vec![3, 0, 70_000]);
    assert_eq!(client.count(1, 0).unwrap().count(), 0, "an empty stream ends at once");
    // A stream far longer than its window (16 items): items keep coming as they are taken, and
    // dropping the iterator cancels the call while the connection carries on.
    let first: Vec<u64> = client.count(2, u64::MAX).unwrap().take(40).map(Result::unwrap).collect();
    assert_eq!(first, (0..40).collect::<Vec<_>>());
    assert!(client.produced(2, 40).unwrap() >= 40);
    // Clones iterate from other threads.
    let threads: Vec<_> = (0..3u64)
        .map(|n| {
            let client = client.clone();
            std::thread::spawn(move || client.count(10 + n, n).unwrap().map(Result::unwrap).sum::<u64>())
        })
        .collect();
    let sums: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(sums, vec![0, 0, 1]);
}

#[test]
fn a_stream_that_fails_yields_its_error_once_then_ends() {
    let (_runtime, _server, client) = serve_streams();
    // The deadline covers the whole stream: `sleepy` never sends an item.
    let mut sleepy = client.with_timeout(Duration::from_millis(50)).sleepy().unwrap();
    let first = sleepy.next();
    assert!(matches!(first, Some(Err(RpcError::DeadlineExceeded))), "{first:?}");
    assert!(sleepy.next().is_none());
    // A handler that panics mid-stream: the items before it, then the error.
    let got: Vec<_> = client.boom_after(2).unwrap().collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].as_ref().unwrap(), got[1].as_ref().unwrap()), (&0, &1));
    assert!(matches!(got[2], Err(RpcError::HandlerPanicked)), "{:?}", got[2]);
    assert_eq!(client.count(3, 2).unwrap().map(Result::unwrap).collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn inside_a_runtime_a_stream_is_refused_not_blocked() {
    let (_runtime, _server, client) = serve_streams();
    let inside = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let opened = inside.block_on(async { client.count(4, 5).map(drop) });
    assert!(matches!(opened, Err(RpcError::BlockingInRuntime)), "{opened:?}");
    let mut items = client.count(5, 5).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), 0);
    let inside_next = inside.block_on(async { items.next() });
    assert!(matches!(inside_next, Some(Err(RpcError::BlockingInRuntime))), "{inside_next:?}");
    assert!(items.next().is_none(), "the iterator ended with its error");
}
