//! Reliability cases B1–B3: connection faults (peer death, half-open peers, slowloris).
//!
//! No case mixes a paused clock with real I/O: a paused runtime that looks idle jumps its clock
//! to the next timer even while the OS is still delivering bytes or an end-of-stream, firing
//! deadlines early. Cases that need exact virtual time run over the in-memory transport under
//! paused time; over the OS transports they run in real time, asserting only what real time
//! makes certain (a timer never fires early), with generous hang guards.

use std::time::Duration;

use rpc_runtime::{Client, RpcError};
use rpc_tests::alloc::{MemScope, MIB};
use std::sync::Arc;

use rpc_runtime::transport::Listener;
use rpc_tests::fixture::{
    assert_in_flight_empty, bind, fake_server, ChildServer, Fixture, Kind, REAL_STREAMS, STREAMS,
};
use rpc_tests::probe::{spawn_holds, ProbeClient};
use rpc_tests::wire::RawPeer;
use rpc_tests::wire::{self, code, Frame};
use rpc_tests::{logs, within};
use tokio::time::Instant;

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
/// with `ConnectionClosed` (not at their deadlines, an hour away), and the pending map is empty.
/// The client does not reconnect by itself; a new connection carries new calls, and nothing is
/// replayed on it.
///
/// Real time, not paused: the end-of-stream travels through the OS, and a paused clock would jump
/// to a deadline whenever the runtime looked idle before the reactor saw it (the old flake).
#[tokio::test]
async fn b1_peer_closes_mid_call() {
    let patient = Client::builder().timeout(Duration::from_secs(3600)).clone();
    for kind in STREAMS {
        let mem = MemScope::start();
        let (mut server, client) = fake_server(kind, &patient).await;
        let typed = ProbeClient::from_client(client.clone());
        let calls = spawn_calls(&typed, 100);
        for _ in 0..100 {
            let frame = within(60, "the 100 requests", server.expect_frame()).await;
            assert!(matches!(frame, Frame::Request { .. }));
        }
        assert_eq!(client.in_flight(), 100);
        drop(server);
        for call in calls {
            // Well within the hour-long deadline: the end of stream failed it.
            match within(60, "calls failing at the close", call).await.unwrap() {
                Err(RpcError::ConnectionClosed(reason)) => assert!(reason.contains("closed"), "{reason}"),
                other => panic!("{kind}: expected ConnectionClosed, got {other:?}"),
            }
        }
        assert_in_flight_empty(&client);
        assert!(matches!(typed.add(1, 1).await, Err(RpcError::ConnectionClosed(_))), "new calls fail fast");
        mem.assert_within(2 * MIB, &format!("{kind}: 100 calls failing together"));

        // A new connection: only the new call arrives (nothing replayed), and it is answered.
        let (mut server, client) = fake_server(kind, &patient).await;
        let typed = ProbeClient::from_client(client.clone());
        let call = tokio::spawn(async move { typed.add(20, 22).await });
        match within(60, "the new call", server.expect_frame()).await {
            Frame::Request { id, method, .. } => {
                assert_eq!(method, "add");
                server.send_frame(&wire::response(id, &wire::varint(42))).await.unwrap();
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(within(60, "the answer", call).await.unwrap().unwrap(), 42);
        assert_in_flight_empty(&client);
    }
}

/// B1 with a reconnecting client: the 100 calls in flight when the connection breaks fail at once
/// and are not replayed; the next call makes a new connection, on which only that call arrives.
/// Real time, as above.
#[tokio::test]
async fn b1_reconnecting_client_replays_nothing() {
    for kind in STREAMS {
        let (mut listener, endpoint, _dir) = bind(kind).await;
        let endpoint = Arc::new(endpoint);
        let client = Client::builder().timeout(Duration::from_secs(3600)).build_reconnecting({
            let endpoint = Arc::clone(&endpoint);
            move || {
                let endpoint = Arc::clone(&endpoint);
                async move { endpoint.connect().await }
            }
        });
        let typed = ProbeClient::from_client(client.clone());
        let calls = spawn_calls(&typed, 100);
        let mut first =
            RawPeer::new(within(60, "the first connection", listener.accept()).await.unwrap().unwrap());
        within(60, "the first handshake", first.handshake()).await;
        for _ in 0..100 {
            let frame = within(60, "the 100 requests", first.expect_frame()).await;
            assert!(matches!(frame, Frame::Request { .. }));
        }
        drop(first);
        for call in calls {
            let result = within(60, "calls failing at the close", call).await.unwrap();
            assert!(matches!(result, Err(RpcError::ConnectionClosed(_))), "{kind}: {result:?}");
        }
        assert_in_flight_empty(&client);

        let t = typed.clone();
        let call = tokio::spawn(async move { t.add(40, 2).await });
        let mut second =
            RawPeer::new(within(60, "the second connection", listener.accept()).await.unwrap().unwrap());
        within(60, "the second handshake", second.handshake()).await;
        let Frame::Request { id, method, .. } = within(60, "the new call", second.expect_frame()).await
        else {
            panic!()
        };
        assert_eq!(method, "add");
        second.send_frame(&wire::response(id, &wire::varint(42))).await.unwrap();
        assert_eq!(
            within(60, "the answer", call).await.unwrap().unwrap(),
            42,
            "{kind}: routed after reconnecting"
        );
        // Frames leave in the order they were queued: had anything been replayed when the
        // connection was made, it would arrive before this later call.
        let t = typed.clone();
        let later = tokio::spawn(async move { t.add(7, 7).await });
        match within(60, "the later call", second.expect_frame()).await {
            Frame::Request { id, method, .. } => {
                assert_eq!(method, "add", "{kind}: nothing replayed on the new connection");
                second.send_frame(&wire::response(id, &wire::varint(14))).await.unwrap();
            }
            other => panic!("{kind}: nothing replayed on the new connection, got {other:?}"),
        }
        assert_eq!(within(60, "the later answer", later).await.unwrap().unwrap(), 14);
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
/// the idle timeout with a goaway naming it; not before. Exactly at it over the in-memory
/// transport under paused time; over the OS transports in real time with a short timeout, where
/// only "not before" can be asserted without depending on timing.
#[tokio::test(start_paused = true)]
async fn b2_silent_client_is_closed_at_idle_timeout() {
    let log = logs::capture();
    silent_client_case(Kind::Memory, Duration::from_secs(60), "idle for 60s").await;
    log.lines.assert_contains(&["closing connection: idle for 60s"]);
}

/// B2, server side, over the OS transports (real time).
#[tokio::test]
async fn b2_silent_client_is_closed_at_idle_timeout_real() {
    for kind in REAL_STREAMS {
        silent_client_case(kind, Duration::from_millis(200), "idle for 200ms").await;
    }
}

async fn silent_client_case(kind: Kind, idle: Duration, says: &str) {
    let fx = Fixture::start_with(kind, |s| s.idle_timeout(idle)).await;
    let mut peer = within(60, "raw peer", fx.raw()).await;
    // The server last heard from this peer after this instant: a lower bound on its idle time.
    let quiet_since = Instant::now();
    peer.send_frame(&wire::request(1, "add", None, &[1, 2])).await.unwrap();
    assert!(matches!(within(60, "the response", peer.expect_frame()).await, Frame::Response { id: 1, .. }));
    let (c, message) = within(600, "the idle goaway", peer.goaway_then_close()).await.expect("goaway");
    assert_eq!((c, message.as_str()), (code::IDLE, says));
    let waited = quiet_since.elapsed();
    if kind == Kind::Memory {
        assert_eq!(waited, idle, "{kind}: closed exactly at the idle timeout");
    } else {
        assert!(waited >= idle, "{kind}: not before the idle timeout: {waited:?}");
    }
    within(60, "serving", fx.assert_serving()).await;
    fx.stop().await;
}

/// B2, client side: a server that stops answering (half-open) fails each pending call at its
/// deadline with `DeadlineExceeded`, and the pending map empties. This is the default (keepalive
/// is opt-in); with keepalive, see the next case. Exactly at the deadline in memory under paused
/// time; over the OS transports in real time, not before it.
#[tokio::test(start_paused = true)]
async fn b2_silent_server_fails_calls_at_their_deadline() {
    silent_server_case(Kind::Memory, Duration::from_secs(5)).await;
}

/// B2, client side, over the OS transports (real time).
#[tokio::test]
async fn b2_silent_server_fails_calls_at_their_deadline_real() {
    for kind in REAL_STREAMS {
        silent_server_case(kind, Duration::from_millis(300)).await;
    }
}

async fn silent_server_case(kind: Kind, timeout: Duration) {
    let (mut server, client) = fake_server(kind, Client::builder().timeout(timeout)).await;
    let typed = ProbeClient::from_client(client.clone());
    let started = Instant::now();
    let calls = spawn_calls(&typed, 10);
    for _ in 0..10 {
        within(60, "the requests", server.expect_frame()).await;
    }
    for call in calls {
        let result = within(60, "calls at their deadline", call).await.unwrap();
        assert!(matches!(result, Err(RpcError::DeadlineExceeded)), "{kind}: {result:?}");
    }
    let waited = started.elapsed();
    if kind == Kind::Memory {
        assert_eq!(waited, timeout, "{kind}");
    } else {
        assert!(waited >= timeout, "{kind}: not before the deadline: {waited:?}");
    }
    assert_in_flight_empty(&client);
}

/// B2 with keepalive (opt-in): a silent server is detected within two intervals (idle, then an
/// unanswered ping) and every pending call fails at once, long before its deadline; the error
/// names the keepalive. Exactly two intervals in memory under paused time; over the OS transports
/// in real time, not before two intervals.
#[tokio::test(start_paused = true)]
async fn b2_keepalive_detects_a_silent_server() {
    keepalive_case(Kind::Memory, Duration::from_secs(5)).await;
}

/// B2 with keepalive, over the OS transports (real time).
#[tokio::test]
async fn b2_keepalive_detects_a_silent_server_real() {
    for kind in REAL_STREAMS {
        keepalive_case(kind, Duration::from_millis(100)).await;
    }
}

async fn keepalive_case(kind: Kind, interval: Duration) {
    let builder = Client::builder().timeout(Duration::from_secs(3600)).keepalive(interval).clone();
    // The keepalive clock starts with the connection: measure from before it.
    let t0 = Instant::now();
    let (mut server, client) = fake_server(kind, &builder).await;
    let typed = ProbeClient::from_client(client.clone());
    let calls = spawn_calls(&typed, 10);
    for _ in 0..10 {
        within(60, "the requests", server.expect_frame()).await;
    }
    for call in calls {
        match within(60, "calls failing at the keepalive", call).await.unwrap() {
            Err(RpcError::ConnectionClosed(reason)) => assert!(reason.contains("keepalive"), "{reason}"),
            other => panic!("{kind}: {other:?}"),
        }
    }
    let waited = t0.elapsed();
    if kind == Kind::Memory {
        assert_eq!(waited, interval * 2, "{kind}: idle interval, then the ping's");
    } else {
        assert!(waited >= interval * 2, "{kind}: not before two intervals: {waited:?}");
    }
    let ping = within(60, "the ping", server.expect_frame()).await;
    assert!(matches!(ping, Frame::Ping { .. }), "{kind}: a ping was sent, got {ping:?}");
    assert_in_flight_empty(&client);
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

/// The timers of a slowloris case: the server's defaults in memory under paused time, short
/// ones over the OS transports in real time.
struct Timers {
    frame: Duration,
    handshake: Duration,
    idle: Duration,
    /// The trickling peer's pace.
    pace: Duration,
}

const DEFAULT_TIMERS: Timers = Timers {
    frame: Duration::from_secs(30),
    handshake: Duration::from_secs(10),
    idle: Duration::from_secs(300),
    pace: Duration::from_secs(1),
};

const SHORT_TIMERS: Timers = Timers {
    frame: Duration::from_millis(300),
    handshake: Duration::from_millis(200),
    idle: Duration::from_millis(200),
    pace: Duration::from_millis(10),
};

/// B3: slowloris. Half a header then silence, a large frame trickled at one byte per second,
/// nothing at all after connect, and a preface then nothing: each is closed when its timer
/// really fires (frame 30 s from the first byte, handshake 10 s, idle 300 s: the defaults),
/// with a logged reason, while another client keeps being served. Exactly on time in memory
/// under paused time.
#[tokio::test(start_paused = true)]
async fn b3_slowloris() {
    let log = logs::capture();
    slowloris_case(Kind::Memory, &DEFAULT_TIMERS).await;
    log.lines.assert_contains(&["closing connection: frame not completed within the frame timeout"]);
    log.lines.assert_contains(&["closing connection: no preface within the handshake timeout"]);
}

/// B3 over the OS transports, in real time with short timers: each timer fires, not before its
/// time.
#[tokio::test]
async fn b3_slowloris_real() {
    for kind in REAL_STREAMS {
        slowloris_case(kind, &SHORT_TIMERS).await;
    }
}

/// Asserts that `waited` is `timer` exactly (paused, in memory) or at least `timer` (real time).
fn on_time(kind: Kind, waited: Duration, timer: Duration, what: &str) {
    if kind == Kind::Memory {
        assert_eq!(waited, timer, "{kind}: the {what} fired on time");
    } else {
        assert!(waited >= timer, "{kind}: the {what} fired early: {waited:?} < {timer:?}");
    }
}

async fn slowloris_case(kind: Kind, t: &Timers) {
    // Real time: the bystander must not idle out while the other timers run, so the idle case
    // gets a server of its own below.
    let fx = Fixture::start_with(kind, |s| {
        let s = s.frame_timeout(t.frame).handshake_timeout(t.handshake);
        if kind == Kind::Memory {
            s.idle_timeout(t.idle)
        } else {
            s
        }
    })
    .await;
    let bystander = fx.client().await;
    let mem = MemScope::start();
    let frame_secs = format!("frame timeout of {:?}", t.frame);

    // Half a header.
    let mut peer = within(600, "raw peer", fx.raw()).await;
    let t0 = Instant::now();
    peer.send(&[0, 0]).await.unwrap();
    let (c, message) =
        within(600, "goaway for half a header", peer.goaway_then_close()).await.expect("goaway");
    assert_eq!(c, code::IDLE);
    assert!(message.contains(&format!("frame not completed within the {frame_secs} (2 bytes")), "{message}");
    on_time(kind, t0.elapsed(), t.frame, "frame timer");

    // One byte per `pace` of a 1 MiB frame: the frame's clock started at its first byte.
    let mut peer = within(600, "raw peer", fx.raw()).await;
    let t0 = Instant::now();
    let frame = wire::frame(&wire::request(1, "echo", None, &vec![0u8; MIB]));
    let mut closed = None;
    for (i, b) in frame.iter().enumerate() {
        if peer.send(&[*b]).await.is_err() {
            closed = Some(i);
            break;
        }
        // The peer's own pace.
        tokio::time::sleep(t.pace).await;
        if t0.elapsed() > t.frame + t.pace {
            break;
        }
    }
    let (c, message) = within(600, "goaway for the trickle", peer.goaway_then_close())
        .await
        .expect("goaway for the trickle");
    assert_eq!(c, code::IDLE, "{closed:?}");
    assert!(message.contains(&frame_secs), "{message}");

    // Nothing at all after connect: the handshake timeout.
    // The handshake clock starts when the server accepts: measure from before connecting.
    let t0 = Instant::now();
    let mut silent = rpc_tests::wire::RawPeer::new(fx.connect().await);
    within(600, "the server's preface", silent.expect_preface()).await;
    assert!(within(600, "the silent peer's end", silent.until_closed()).await.is_empty());
    on_time(kind, t0.elapsed(), t.handshake, "handshake timeout");

    let sum = within(60, "the bystander's call", bystander.add(5, 5)).await;
    assert_eq!(sum.unwrap(), 10, "{kind}: other clients keep being served");
    assert_in_flight_empty(bystander.as_client());

    // A preface, then nothing: the idle timeout (which, in memory, also closes the idle bystander).
    let idle_fx;
    let idle_server = if kind == Kind::Memory {
        &fx
    } else {
        idle_fx = Fixture::start_with(kind, |s| s.idle_timeout(t.idle)).await;
        &idle_fx
    };
    // The idle clock may start before the handshake returns here: measure from before it.
    let t0 = Instant::now();
    let mut idle = within(600, "raw peer", idle_server.raw()).await;
    let (c, message) = within(600, "the idle goaway", idle.goaway_then_close()).await.expect("goaway");
    assert_eq!((c, message.as_str()), (code::IDLE, format!("idle for {:?}", t.idle).as_str()));
    on_time(kind, t0.elapsed(), t.idle, "idle timeout");

    mem.assert_within(4 * MIB, &format!("{kind}: slowloris"));
    within(60, "serving", fx.assert_serving()).await;
    fx.stop().await;
}

#[test]
fn kinds_are_covered() {
    // The connection-fault cases above run over every stream transport: the timed ones in memory
    // under paused time and over the others in real time.
    assert_eq!(STREAMS, [Kind::Tcp, Kind::Unix, Kind::Memory, Kind::Pipe, Kind::Fifo]);
    assert_eq!(REAL_STREAMS, [Kind::Tcp, Kind::Unix, Kind::Pipe, Kind::Fifo]);
}
