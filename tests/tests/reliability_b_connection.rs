//! Reliability cases B1–B3: connection faults (peer death, half-open peers, slowloris).

use std::time::Duration;

use rpc_runtime::{Client, RpcError};
use rpc_tests::alloc::{CountingAlloc, MemScope, MIB};
use std::sync::Arc;

use rpc_runtime::transport::Listener;
use rpc_tests::fixture::{
    assert_in_flight_empty, bind, fake_server, settle, ChildServer, Fixture, Kind, STREAMS,
};
use rpc_tests::probe::{spawn_holds, ProbeClient};
use rpc_tests::wire::RawPeer;
use rpc_tests::wire::{self, code, Frame};
use rpc_tests::{logs, within};
use tokio::time::Instant;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const PROBE_SERVER: &str = env!("CARGO_BIN_EXE_probe-server");

/// Starts `n` `add` calls on `client` and returns their join handles.
fn spawn_calls(client: &ProbeClient, n: u64) -> Vec<tokio::task::JoinHandle<Result<u64, RpcError>>> {
    (0..n)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.add(i, 1).await })
        })
        .collect()
}

/// B1, FIN: with 100 calls in flight the server side closes the connection; all 100 fail at once
/// with `ConnectionClosed` (not at their deadlines), and the pending map is empty. The client does
/// not reconnect by itself; a new connection carries new calls, and nothing is replayed on it.
#[tokio::test(start_paused = true)]
async fn b1_peer_closes_mid_call() {
    for kind in STREAMS {
        let mem = MemScope::start();
        let (mut server, client) = fake_server(kind, &Client::builder()).await;
        let typed = ProbeClient::from_client(client.clone());
        let calls = spawn_calls(&typed, 100);
        for _ in 0..100 {
            assert!(matches!(server.expect_frame().await, Frame::Request { .. }));
        }
        assert_eq!(client.in_flight(), 100);
        let started = Instant::now();
        drop(server);
        for call in calls {
            match call.await.unwrap() {
                Err(RpcError::ConnectionClosed(reason)) => assert!(reason.contains("closed"), "{reason}"),
                other => panic!("{kind}: expected ConnectionClosed, got {other:?}"),
            }
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "{kind}: failed at once, not at a deadline");
        assert_in_flight_empty(&client);
        assert!(matches!(typed.add(1, 1).await, Err(RpcError::ConnectionClosed(_))), "new calls fail fast");
        mem.assert_within(2 * MIB, &format!("{kind}: 100 calls failing together"));

        // A new connection: only the new call arrives (nothing replayed), and it is answered.
        let (mut server, client) = fake_server(kind, &Client::builder()).await;
        let typed = ProbeClient::from_client(client.clone());
        let call = tokio::spawn(async move { typed.add(20, 22).await });
        match server.expect_frame().await {
            Frame::Request { id, method, .. } => {
                assert_eq!(method, "add");
                server.send_frame(&wire::response(id, &wire::varint(42))).await.unwrap();
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(call.await.unwrap().unwrap(), 42);
        assert_in_flight_empty(&client);
    }
}

/// B1 with a reconnecting client: the 100 calls in flight when the connection breaks fail at once
/// and are not replayed; the next call makes a new connection, on which only that call arrives.
#[tokio::test(start_paused = true)]
async fn b1_reconnecting_client_replays_nothing() {
    for kind in STREAMS {
        let (mut listener, endpoint, _dir) = bind(kind).await;
        let endpoint = Arc::new(endpoint);
        let client = Client::builder().build_reconnecting({
            let endpoint = Arc::clone(&endpoint);
            move || {
                let endpoint = Arc::clone(&endpoint);
                async move { endpoint.connect().await }
            }
        });
        let typed = ProbeClient::from_client(client.clone());
        let calls = spawn_calls(&typed, 100);
        let mut first = RawPeer::new(listener.accept().await.unwrap().unwrap());
        first.handshake().await;
        for _ in 0..100 {
            assert!(matches!(first.expect_frame().await, Frame::Request { .. }));
        }
        let t0 = Instant::now();
        drop(first);
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(RpcError::ConnectionClosed(_))), "{kind}");
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_in_flight_empty(&client);

        let t = typed.clone();
        let call = tokio::spawn(async move { t.add(40, 2).await });
        let mut second = RawPeer::new(listener.accept().await.unwrap().unwrap());
        second.handshake().await;
        let Frame::Request { id, method, .. } = second.expect_frame().await else { panic!() };
        assert_eq!(method, "add");
        second.send_frame(&wire::response(id, &wire::varint(42))).await.unwrap();
        assert_eq!(call.await.unwrap().unwrap(), 42, "{kind}: routed after reconnecting");
        settle().await;
        let replay = tokio::time::timeout(Duration::from_secs(1), second.next()).await;
        assert!(replay.is_err(), "{kind}: nothing replayed on the new connection: {replay:?}");
        assert_in_flight_empty(&client);
    }
}

/// B1, RST: the server process is killed (SIGKILL) with 100 calls in flight; every call fails
/// promptly with `ConnectionClosed`, long before its 30 s deadline. A fresh server process then
/// serves a new client.
#[tokio::test(flavor = "current_thread")]
async fn b1_server_process_killed() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    for args in [vec!["tcp"], vec!["unix", sock.to_str().unwrap()]] {
        let server = ChildServer::spawn(PROBE_SERVER, &args);
        let client = ProbeClient::new(server.endpoint.connect().await.unwrap());
        // `hold` never returns by itself: the calls stay in flight until the process dies.
        let calls = spawn_holds(&client, 100);
        assert_eq!(client.add(1, 1).await.unwrap(), 2, "the server is up");
        let started = std::time::Instant::now();
        server.signal(libc::SIGKILL);
        for call in calls {
            match within(20, "calls failing after SIGKILL", call).await.unwrap() {
                Err(RpcError::ConnectionClosed(_)) => {}
                other => panic!("{args:?}: expected ConnectionClosed, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?}: prompt, not at the deadline");
        assert_in_flight_empty(client.as_client());
        drop(server);

        let again = ChildServer::spawn(PROBE_SERVER, &args);
        let client = ProbeClient::new(again.endpoint.connect().await.unwrap());
        assert_eq!(client.add(2, 3).await.unwrap(), 5);
        assert_in_flight_empty(client.as_client());
    }
}

/// B2, server side: a client that goes silent (a stopped process, a dead network) is closed at
/// the idle timeout, exactly, with a goaway naming it; not before.
#[tokio::test(start_paused = true)]
async fn b2_silent_client_is_closed_at_idle_timeout() {
    let log = logs::capture();
    for kind in STREAMS {
        let fx = Fixture::start_with(kind, |s| s.idle_timeout(Duration::from_secs(60))).await;
        let mut peer = fx.raw().await;
        peer.send_frame(&wire::request(1, "add", None, &[1, 2])).await.unwrap();
        assert!(matches!(peer.expect_frame().await, Frame::Response { id: 1, .. }));
        let quiet_since = Instant::now();
        let (c, message) = peer.goaway_then_close().await.expect("goaway");
        assert_eq!((c, message.as_str()), (code::IDLE, "idle for 60s"));
        assert_eq!(
            quiet_since.elapsed(),
            Duration::from_secs(60),
            "{kind}: closed exactly at the idle timeout"
        );
        fx.assert_serving().await;
        fx.stop().await;
    }
    log.lines.assert_contains(&["closing connection: idle for 60s"]);
}

/// B2, client side: a server that stops answering (half-open) fails each pending call at its
/// deadline with `DeadlineExceeded`, and the pending map empties. This is the default (keepalive
/// is opt-in); with keepalive, see the next case.
#[tokio::test(start_paused = true)]
async fn b2_silent_server_fails_calls_at_their_deadline() {
    for kind in STREAMS {
        let (mut server, client) = fake_server(kind, Client::builder().timeout(Duration::from_secs(5))).await;
        let typed = ProbeClient::from_client(client.clone());
        let started = Instant::now();
        let calls = spawn_calls(&typed, 10);
        for _ in 0..10 {
            server.expect_frame().await;
        }
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(RpcError::DeadlineExceeded)));
        }
        assert_eq!(started.elapsed(), Duration::from_secs(5), "{kind}");
        assert_in_flight_empty(&client);
    }
}

/// B2 with keepalive (opt-in): a silent server is detected within two intervals (idle, then an
/// unanswered ping) and every pending call fails at once, long before its deadline; the error
/// names the keepalive.
#[tokio::test(start_paused = true)]
async fn b2_keepalive_detects_a_silent_server() {
    for kind in STREAMS {
        let builder =
            Client::builder().timeout(Duration::from_secs(3600)).keepalive(Duration::from_secs(5)).clone();
        let (mut server, client) = fake_server(kind, &builder).await;
        let typed = ProbeClient::from_client(client.clone());
        let t0 = Instant::now();
        let calls = spawn_calls(&typed, 10);
        for _ in 0..10 {
            server.expect_frame().await;
        }
        for call in calls {
            match call.await.unwrap() {
                Err(RpcError::ConnectionClosed(reason)) => assert!(reason.contains("keepalive"), "{reason}"),
                other => panic!("{kind}: {other:?}"),
            }
        }
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "{kind}: idle interval, then the ping's");
        assert!(matches!(server.expect_frame().await, Frame::Ping { .. }), "{kind}: a ping was sent");
        assert_in_flight_empty(&client);
    }
}

/// B2 with a real stopped process: SIGSTOP the server; calls with a 300 ms deadline fail with
/// `DeadlineExceeded` on time; after SIGCONT the same connection serves again.
#[tokio::test(flavor = "current_thread")]
async fn b2_stopped_server_process() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    for args in [vec!["tcp"], vec!["unix", sock.to_str().unwrap()]] {
        let server = ChildServer::spawn(PROBE_SERVER, &args);
        let client = ProbeClient::new(server.endpoint.connect().await.unwrap());
        assert_eq!(client.add(1, 1).await.unwrap(), 2);
        server.signal(libc::SIGSTOP);
        let short = client.with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let outcome = within(20, "a call to a stopped server", short.add(1, 2)).await;
        assert!(matches!(outcome, Err(RpcError::DeadlineExceeded)), "{args:?}: {outcome:?}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(10), "{took:?}");
        assert_in_flight_empty(client.as_client());
        server.signal(libc::SIGCONT);
        assert_eq!(within(20, "a call after SIGCONT", client.add(2, 2)).await.unwrap(), 4);
        assert_in_flight_empty(client.as_client());
    }
}

/// B3: slowloris. Half a header then silence, a large frame trickled at one byte per second,
/// nothing at all after connect, and a preface then nothing: each is closed when its timer
/// really fires (frame 30 s from the first byte, handshake 10 s, idle 300 s: the defaults),
/// with a logged reason, while another client keeps being served.
#[tokio::test(start_paused = true)]
async fn b3_slowloris() {
    let log = logs::capture();
    for kind in STREAMS {
        let fx = Fixture::start(kind).await;
        let bystander = fx.client().await;
        let mem = MemScope::start();

        // Half a header.
        let mut peer = fx.raw().await;
        let t0 = Instant::now();
        peer.send(&[0, 0]).await.unwrap();
        let (c, message) = peer.goaway_then_close().await.expect("goaway");
        assert_eq!(c, code::IDLE);
        assert!(
            message.contains("frame not completed within the frame timeout of 30s (2 bytes"),
            "{message}"
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(30), "{kind}: the frame timer fired on time");

        // One byte per second of a 1 MiB frame: the frame's clock started at its first byte.
        let mut peer = fx.raw().await;
        let t0 = Instant::now();
        let frame = wire::frame(&wire::request(1, "echo", None, &vec![0u8; MIB]));
        let mut closed = None;
        for (i, b) in frame.iter().enumerate() {
            if peer.send(&[*b]).await.is_err() {
                closed = Some(i);
                break;
            }
            // The peer's own pace, in virtual time.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if t0.elapsed() > Duration::from_secs(31) {
                break;
            }
        }
        let (c, message) = peer.goaway_then_close().await.expect("goaway for the trickle");
        assert_eq!(c, code::IDLE, "{closed:?}");
        assert!(message.contains("frame timeout of 30s"), "{message}");

        // Nothing at all after connect: the handshake timeout.
        let mut silent = rpc_tests::wire::RawPeer::new(fx.connect().await);
        let t0 = Instant::now();
        silent.expect_preface().await;
        assert!(silent.until_closed().await.is_empty());
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "{kind}: handshake timeout");

        assert_eq!(bystander.add(5, 5).await.unwrap(), 10, "{kind}: other clients keep being served");
        assert_in_flight_empty(bystander.as_client());

        // A preface, then nothing: the idle timeout (which also closes the idle bystander).
        let mut idle = fx.raw().await;
        let t0 = Instant::now();
        let (c, message) = idle.goaway_then_close().await.expect("goaway");
        assert_eq!((c, message.as_str()), (code::IDLE, "idle for 300s"));
        assert_eq!(t0.elapsed(), Duration::from_secs(300), "{kind}: idle timeout");

        mem.assert_within(4 * MIB, &format!("{kind}: slowloris"));
        fx.assert_serving().await;
        fx.stop().await;
    }
    log.lines.assert_contains(&["closing connection: frame not completed within the frame timeout"]);
    log.lines.assert_contains(&["closing connection: no preface within the handshake timeout"]);
}

#[test]
fn kinds_are_covered() {
    // The connection-fault cases above run over every stream transport.
    assert_eq!(STREAMS, [Kind::Tcp, Kind::Unix, Kind::Memory, Kind::Pipe, Kind::Fifo]);
}
