//! Reliability cases H1–H8: hostile peers at scale, the resources an attacker can pin cheaply
//! with many connections or slow ones (RELIABILITY.md section H; the rules are in
//! docs/reliability.md).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::transport::{tcp, unix, BoxRead};
use rpc_runtime::{Server, ServerHandle};
use rpc_tests::alloc::{MemScope, MIB};
use rpc_tests::fixture::{settle, Fixture, Kind};
use rpc_tests::logs;
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::wire::{self, code, varint, Frame, RawPeer};
use rpc_tests::within;
use tokio::io::AsyncReadExt;

/// Connects to `addr`, sets `SO_LINGER {1, 0}` and closes: the kernel answers with a reset, and
/// the server-side socket is reset before (or while) the server accepts it.
fn reset_connect(addr: SocketAddr) {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt(2) on a descriptor we own, with a pointer to a live `linger` of the
    // size we pass.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(stream);
}

/// Resets `n` connections to `addr` from a blocking thread.
async fn reset_burst(addr: SocketAddr, n: usize) {
    tokio::task::spawn_blocking(move || (0..n).for_each(|_| reset_connect(addr))).await.expect("burst");
}

/// An honest client on a new connection makes a call: the server still accepts and serves.
async fn assert_tcp_serves(addr: SocketAddr, n: u64) {
    let conn = within(30, "an honest connect", tcp::connect(addr)).await.expect("honest connect");
    let client = ProbeClient::new(conn);
    assert_eq!(within(30, "an honest call", client.add(n, 1)).await.expect("honest call"), n + 1);
}

/// H1: connections reset before the server accepts them (`peer_addr()` then fails with
/// `ENOTCONN`) are skipped, one by one; the listener keeps accepting. 100 such connections wait
/// in the accept queue before the server starts, then a burst of 2,000 arrives while it serves,
/// with an honest client connecting and calling after every 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_tcp_connections_reset_before_accept_are_skipped() {
    let listener = tcp::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr();
    reset_burst(addr, 100).await;
    let handle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);
    assert_tcp_serves(addr, 0).await;
    for round in 1..=20 {
        reset_burst(addr, 100).await;
        assert_tcp_serves(addr, round).await;
    }
    assert!(!handle.is_shutting_down());
    within(30, "shutdown", handle.shutdown(std::time::Duration::from_secs(1))).await;
}

/// H1 over a Unix socket: peers that connect and close before the server accepts them are
/// skipped the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_unix_peers_gone_before_accept_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s");
    let listener = unix::bind(&path).await.expect("bind");
    let gone = |path: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                drop(std::os::unix::net::UnixStream::connect(&path).expect("connect"));
            }
        })
        .await
        .expect("burst")
    };
    gone(path.clone()).await;
    let handle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);
    for round in 0..10u64 {
        gone(path.clone()).await;
        let client = ProbeClient::new(within(30, "connect", unix::connect(&path)).await.expect("connect"));
        assert_eq!(within(30, "an honest call", client.add(round, 1)).await.expect("call"), round + 1);
    }
    within(30, "shutdown", handle.shutdown(std::time::Duration::from_secs(1))).await;
}

/// Sends `n` requests for `len`-byte blobs in one write, and reads nothing.
async fn ask_for_blobs(peer: &mut RawPeer, n: u64, len: usize) {
    let mut batch = Vec::new();
    for id in 0..n {
        batch.extend(wire::frame(&wire::request(id, "blob", None, &varint(len as u64))));
    }
    peer.send(&batch).await.expect("send the requests");
}

/// Reads `read`'s bytes until EOF (or an error), `chunk` at a time with `pause` between reads;
/// returns how many arrived. Frames may be torn: a connection cut by the write timeout is cut
/// mid-frame.
async fn drain(mut read: BoxRead, chunk: usize, pause: Duration) -> usize {
    let mut buf = vec![0u8; chunk];
    let mut total = 0;
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Waits until `f()` holds, checking whenever the runtime has run everything else (a hang guard
/// bounds it). For counters the server updates as real I/O completes.
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    within(60, what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// H2: peers that ask for large responses and never read hold at most their connection's
/// response budget (plus the one response waiting for room); the server-wide budget bounds them
/// together. Then the write timeout, measured on the oldest queued frame, cuts them.
#[tokio::test(start_paused = true)]
async fn h2_queued_responses_are_bounded_in_bytes() {
    // Per connection: 4 peers, 300 requests each for 3 MiB. Unbounded in bytes this would queue
    // 128 frames (384 MiB) per connection.
    let fx = Fixture::start(Kind::Memory).await;
    let mem = MemScope::start();
    let mut peers = Vec::new();
    for _ in 0..4 {
        let mut peer = fx.raw().await;
        ask_for_blobs(&mut peer, 300, 3 * MIB).await;
        peers.push(peer);
    }
    settle().await;
    // Each connection: 8 MiB of queued frames at most, and one 3 MiB response waiting for room.
    mem.assert_within(4 * (8 + 3 + 1) * MIB, "4 connections not reading 3 MiB responses");
    // The write timeout (30 s) cuts every one of them, though nobody ever read.
    tokio::time::sleep(Duration::from_secs(31)).await;
    for peer in peers {
        let got = within(60, "the cut", drain(peer.into_inner().0, 64 * 1024, Duration::ZERO)).await;
        assert!(got < 10 * 3 * MIB, "{got} bytes: the connection was not cut");
    }
    fx.assert_serving().await;
    fx.stop().await;

    // Server-wide: 8 connections with room for 8 MiB each share 12 MiB.
    let fx = Fixture::start_with(Kind::Memory, |s| s.max_response_budget(12 * MIB)).await;
    let mem = MemScope::start();
    let mut peers = Vec::new();
    for _ in 0..8 {
        let mut peer = fx.raw().await;
        ask_for_blobs(&mut peer, 50, MIB).await;
        peers.push(peer);
    }
    settle().await;
    // 12 MiB queued in all, and at most one 1 MiB response per connection waiting for room:
    // without the server-wide budget, 8 × 9 MiB.
    mem.assert_within((12 + 8 + 4) * MIB, "8 connections sharing a 12 MiB budget");
    // An honest client is still served (its small response fits once a queue is cut or drains).
    drop(peers);
    fx.assert_serving().await;
    fx.stop().await;
}

/// H3: write progress is measured on the oldest queued frame, not restarted per write. A peer
/// that drains 64 KiB a second, with many 1 MiB responses outstanding, never lets a batch finish
/// within 30 s of its oldest frame being queued: it is cut. One that drains 1 MiB a second keeps
/// up with its 8 MiB budget and gets every response.
#[tokio::test(start_paused = true)]
async fn h3_a_slow_reader_is_cut_one_that_keeps_up_is_not() {
    let fx = Fixture::start(Kind::Memory).await;
    let mut slow = fx.raw().await;
    ask_for_blobs(&mut slow, 100, MIB).await;
    let got = drain(slow.into_inner().0, 64 * 1024, Duration::from_secs(1)).await;
    assert!(got < 50 * MIB, "{got} bytes: the slow reader was never cut");
    let start = tokio::time::Instant::now();

    let mut steady = fx.raw().await;
    ask_for_blobs(&mut steady, 100, MIB).await;
    let mut responses = 0;
    while responses < 100 {
        match steady.next().await.expect("every response arrives") {
            Frame::Response { .. } => responses += 1,
            other => panic!("unexpected {other:?}"),
        }
        // 1 MiB a second: one response per second.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(start.elapsed() >= Duration::from_secs(99), "the reader really was slow");
    fx.assert_serving().await;
    fx.stop().await;
}

/// Starts a one-way `hold` (it never answers, and waits for the probe's release) on `peer`.
async fn oneway_hold(peer: &mut RawPeer, tag: u64) {
    let body = wire::request_raw(tag, b"hold", None, true, &varint(tag));
    peer.send_frame(&body).await.expect("send");
}

/// H4: many connections each send one one-way call to a slow handler and close. Each
/// connection's slot and socket are freed at once (the count returns to zero and a new client
/// is served, though the cap is far below the number of such calls); the calls go on detached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_departed_connections_free_their_slots_at_once() {
    for kind in [Kind::Tcp, Kind::Unix] {
        let fx = Fixture::start_with(kind, |s| s.max_connections(16)).await;
        for tag in 0..100u64 {
            let mut peer = fx.raw().await;
            oneway_hold(&mut peer, tag).await;
            within(30, "the call to start", fx.state.wait_running(tag as usize + 1)).await;
            drop(peer);
        }
        wait_until("every departed connection to be freed", || fx.handle.connections() == 0).await;
        assert_eq!(fx.handle.detached_calls(), 100, "{kind}: the calls go on");
        fx.assert_serving().await;
        fx.state.release(100);
        wait_until("the detached calls to end", || fx.handle.detached_calls() == 0).await;
        assert_eq!(fx.state.finished.load(Ordering::SeqCst), 100, "{kind}");
        fx.stop().await;
    }
}

/// H4: detached calls count against `max_detached_calls`: past it, a departing connection's
/// calls are cancelled. And a one-way call with no deadline gets the server's default (60 s).
#[tokio::test(start_paused = true)]
async fn h4_detached_calls_are_limited_and_oneway_calls_get_a_deadline() {
    let fx = Fixture::start_with(Kind::Memory, |s| s.max_detached_calls(10)).await;
    for tag in 0..20u64 {
        let mut peer = fx.raw().await;
        oneway_hold(&mut peer, tag).await;
        // The 10 detached ones, and this one.
        within(120, "the call to start", fx.state.wait_running(tag.min(10) as usize + 1)).await;
        drop(peer);
        settle().await;
    }
    assert_eq!(fx.handle.connections(), 0);
    assert_eq!(fx.handle.detached_calls(), 10);
    assert_eq!(fx.state.dropped.load(Ordering::SeqCst), 10, "the calls past the limit were cancelled");
    // The rest end at the one-way deadline.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(fx.state.dropped.load(Ordering::SeqCst), 20, "one-way calls end at 60 s");
    assert_eq!(fx.handle.detached_calls(), 0);
    fx.stop().await;

    let fx = Fixture::start_with(Kind::Memory, |s| s.oneway_deadline(Duration::from_secs(5))).await;
    let mut peer = fx.raw().await;
    oneway_hold(&mut peer, 1).await;
    fx.state.wait_running(1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(fx.state.dropped.load(Ordering::SeqCst), 1, "the configured one-way deadline");
    fx.stop().await;
}

/// H6: pings do not keep a connection with no calls open: it is closed as idle after the idle
/// timeout, pinging every 10 s all along.
#[tokio::test(start_paused = true)]
async fn h6_pings_do_not_keep_an_empty_connection_open() {
    let fx = Fixture::start(Kind::Memory).await;
    let mut peer = fx.raw().await;
    let start = tokio::time::Instant::now();
    let closed = within(600, "the idle close", async {
        for nonce in 0.. {
            if peer.send_frame(&wire::ping(nonce)).await.is_err() {
                break;
            }
            match peer.next().await {
                Ok(Frame::Pong { .. }) => {}
                Ok(Frame::GoAway { code, message }) => return (code, message),
                other => panic!("unexpected {other:?}"),
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        panic!("closed without a goaway");
    })
    .await;
    assert_eq!(closed.0, code::IDLE, "{closed:?}");
    let after = start.elapsed();
    assert!(after >= Duration::from_secs(300) && after <= Duration::from_secs(320), "closed after {after:?}");
    fx.stop().await;
}

/// H6: a per-peer connection cap (one IP address over TCP, one uid over a Unix socket): the
/// peer's next connection is refused with a goaway naming the limit; other connections are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h6_connections_per_peer_are_capped() {
    for kind in [Kind::Tcp, Kind::Unix] {
        let fx = Fixture::start_with(kind, |s| s.max_connections_per_peer(4)).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            let client = fx.client().await;
            assert_eq!(within(30, "a call", client.add(1, 1)).await.expect("served"), 2);
            held.push(client);
        }
        let mut fifth = fx.raw().await;
        let (c, message) = within(30, "the refusal", fifth.goaway_then_close()).await.expect("a goaway");
        assert_eq!(c, code::OVERLOADED, "{kind}");
        assert!(message.contains("from one peer"), "{kind}: {message}");
        drop(held);
        wait_until("the held connections to close", || fx.handle.connections() == 0).await;
        fx.assert_serving().await;
        fx.stop().await;
    }
}

/// H6: at the global cap, the connection idle longest is evicted (goaway, closed) rather than the
/// newcomer refused; a connection with a call running is never evicted.
#[tokio::test(start_paused = true)]
async fn h6_at_the_cap_the_idlest_connection_is_evicted() {
    let fx = Fixture::start_with(Kind::Memory, |s| s.max_connections(3)).await;
    let mut busy = fx.raw().await;
    busy.send_frame(&wire::request(1, "hold", None, &varint(1))).await.expect("send");
    fx.state.wait_running(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut oldest = fx.raw().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut newer = fx.raw().await;
    newer.send_frame(&wire::request(2, "add", None, &[1, 2])).await.expect("send");
    assert!(matches!(newer.expect_frame().await, Frame::Response { id: 2, .. }));
    assert_eq!(fx.handle.connections(), 3);
    // A newcomer: the idle `oldest` goes, not the busy one (connected first), not the newcomer.
    let client = fx.client().await;
    assert_eq!(client.add(20, 22).await.expect("the newcomer is served"), 42);
    let (c, message) = oldest.goaway_then_close().await.expect("a goaway");
    assert_eq!(c, code::IDLE);
    assert!(message.contains("make room"), "{message}");
    fx.state.release(1);
    assert!(matches!(busy.expect_frame().await, Frame::Response { id: 1, .. }), "the busy one was kept");
    fx.stop().await;
}

/// H7: a request reusing the id of a call in flight is a protocol violation: after 8 the
/// connection is closed; the warnings they trigger are rate-limited (10 at once), and what was
/// suppressed is reported once.
#[tokio::test(start_paused = true)]
async fn h7_violations_close_the_connection_and_logs_are_rate_limited() {
    let log = logs::capture();
    let fx = Fixture::start(Kind::Memory).await;
    let mut peer = fx.raw().await;
    peer.send_frame(&wire::request(1, "hold", None, &varint(1))).await.expect("send");
    fx.state.wait_running(1).await;
    let mut batch = Vec::new();
    for _ in 0..20_000 {
        batch.extend(wire::frame(&wire::request(1, "hold", None, &varint(1))));
    }
    let _ = peer.send(&batch).await;
    let (c, message) = within(60, "the close", peer.goaway_then_close()).await.expect("a goaway");
    assert_eq!(c, code::PROTOCOL);
    assert!(message.contains("too many protocol violations: more than 8"), "{message}");
    let lines = log.lines.all();
    let warnings = lines.iter().filter(|l| l.starts_with("WARN protocol violation")).count();
    assert_eq!(warnings, 8, "one per violation before the close, within the burst:\n{}", lines.join("\n"));

    // Handler panics: the server's own line is rate-limited per connection.
    let client = fx.client().await;
    for _ in 0..30 {
        assert!(client.boom("on purpose (H7)".into()).await.is_err());
    }
    let panics = log.lines.all().iter().filter(|l| l.contains("handler panicked")).count();
    assert!(panics <= 10, "{panics} panic lines from one connection");
    drop(client);
    settle().await;
    log.lines.assert_contains(&["suppressed=20"]);
    fx.assert_serving().await;
    fx.stop().await;
}

/// H8: control frames have a budget of their own: a ping flood with one request every 900 pings
/// is cut off (requests no longer reset the count), while a client pinging every second beside
/// a steady stream of calls is not.
#[tokio::test(start_paused = true)]
async fn h8_control_frames_are_budgeted_whatever_the_requests_do() {
    let fx = Fixture::start(Kind::Memory).await;
    let mut flood = fx.raw().await;
    let mut writer = flood.split_writer();
    let sender = tokio::spawn(async move {
        for id in 0..100 {
            let mut batch = Vec::new();
            for nonce in 0..900 {
                batch.extend(wire::frame(&wire::ping(nonce)));
            }
            batch.extend(wire::frame(&wire::request(id, "add", None, &[1, 2])));
            if writer.send(&batch).await.is_err() {
                return;
            }
        }
    });
    let frames = within(600, "the flood to be cut off", flood.until_closed()).await;
    match frames.last() {
        Some(Frame::GoAway { code: code::PROTOCOL, message }) => {
            assert!(message.contains("too many control frames"), "{message}")
        }
        other => panic!("expected a goaway naming the limit, got {other:?}"),
    }
    sender.abort();

    let mut steady = fx.raw().await;
    for i in 0..1200u64 {
        steady.send_frame(&wire::ping(i)).await.expect("send");
        assert_eq!(steady.expect_frame().await, Frame::Pong { nonce: i });
        let mut batch = Vec::new();
        for id in 0..50 {
            batch.extend(wire::frame(&wire::request(i * 50 + id, "add", None, &[1, 2])));
        }
        steady.send(&batch).await.expect("send");
        for _ in 0..50 {
            assert!(matches!(steady.expect_frame().await, Frame::Response { .. }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    fx.assert_serving().await;
    fx.stop().await;
}

/// The handle's counters are for the tests above; this one pins that a server with no
/// connections reports none.
#[tokio::test(start_paused = true)]
async fn the_handle_counts_connections_and_detached_calls() {
    let (listener, connector) = rpc_runtime::transport::memory::listener();
    let handle: ServerHandle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);
    assert_eq!((handle.connections(), handle.detached_calls()), (0, 0));
    let client = ProbeClient::new(connector.connect().expect("connect"));
    assert_eq!(client.add(1, 1).await.expect("call"), 2);
    assert_eq!(handle.connections(), 1);
    drop(client);
    settle().await;
    assert_eq!(handle.connections(), 0);
    handle.shutdown(Duration::from_secs(1)).await;
}

/// H5: connections holding large frames half-sent fill the shared receive budget; an honest
/// client's large calls still go through: each waits a moment for room, then the connection that
/// has held its reservation longest is shed (goaway, `Overloaded`), not the newcomer.
#[tokio::test(start_paused = true)]
async fn h5_the_oldest_holder_is_shed_not_the_newcomer() {
    let fx = Fixture::start_with(Kind::Memory, |s| s.max_receive_budget(16 * MIB)).await;
    let mut holders = Vec::new();
    for _ in 0..16 {
        let mut peer = fx.raw().await;
        let mut bytes = (MIB as u32).to_be_bytes().to_vec();
        bytes.resize(4 + MIB / 2, 0);
        peer.send(&bytes).await.expect("half a frame");
        holders.push(peer);
    }
    settle().await;
    let client = fx.client().await;
    for i in 0..8u8 {
        let arg = vec![i; 100 * 1024];
        let got = within(60, "an honest large call", client.bytes(arg)).await;
        assert_eq!(got.expect("the honest call goes through"), 100 * 1024);
    }
    let mut shed = 0;
    for mut peer in holders {
        peer.close_write().await;
        if let Some((c, m)) = peer.goaway_then_close().await {
            if c == code::OVERLOADED && m.contains("shed from the receive budget") {
                shed += 1;
            }
        }
    }
    assert!((1..=8).contains(&shed), "{shed} holders shed, for 8 honest calls");
    fx.assert_serving().await;
    fx.stop().await;
}

/// H5: a holder that has kept its reservation for `SHED_AFTER` is trickling, not sending: an
/// honest large call that finds no room sheds it at once instead of waiting (the attack harness
/// saw each honest 100 KiB call wait a whole `SHED_AFTER` before this rule).
#[tokio::test(start_paused = true)]
async fn h5_a_holder_past_its_time_is_shed_at_once() {
    use rpc_runtime::transport::framed::SHED_AFTER;
    let fx = Fixture::start_with(Kind::Memory, |s| s.max_receive_budget(4 * MIB)).await;
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut peer = fx.raw().await;
        let mut bytes = (MIB as u32).to_be_bytes().to_vec();
        bytes.resize(4 + MIB / 2, 0);
        peer.send(&bytes).await.expect("half a frame");
        holders.push(peer);
    }
    settle().await;
    tokio::time::advance(SHED_AFTER * 2).await;
    let client = fx.client().await;
    let start = tokio::time::Instant::now();
    let got = within(60, "an honest large call", client.bytes(vec![7; 100 * 1024])).await;
    assert_eq!(got.expect("the honest call goes through"), 100 * 1024);
    assert!(start.elapsed() < SHED_AFTER, "waited {:?} for room held by stale holders", start.elapsed());
    fx.assert_serving().await;
    fx.stop().await;
}
