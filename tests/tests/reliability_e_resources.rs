//! Reliability cases E1–E4: resource exhaustion (concurrency cap, cheap-message floods, slow
//! consumers, many connections announcing large frames).
//!
//! No case waits on real I/O under a paused clock (an idle-looking runtime would jump to its next
//! timer while the OS still delivers bytes): cases that need exact virtual time run in memory
//! under paused time, and over the OS transports in real time with short timers.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::{Client, RpcError, ServerConfig};
use rpc_tests::alloc::{MemScope, MIB};
use rpc_tests::fixture::{assert_in_flight_empty, fake_server, settle, Fixture, Kind, REAL_STREAMS, STREAMS};
use rpc_tests::probe::ProbeClient;
use rpc_tests::wire::{self, code, varint, Frame, RawPeer};
use rpc_tests::within;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// Writes `n` frames built by `body(i)` in batches of 100, without reading anything.
async fn flood(peer: &mut RawPeer, n: u64, body: impl Fn(u64) -> Vec<u8>) {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(wire::frame(&body(i)));
        if i % 100 == 99 || i == n - 1 {
            if peer.send(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
    }
}

/// E1: one connection fires 1,000 and then 10,000 requests at a handler that blocks, and does
/// not read the replies. At most `max_in_flight` (8) handlers ever run: the server stops
/// reading (backpressure, the documented choice). Memory does not grow with the request count.
/// Once released, every request is answered exactly once.
#[tokio::test(start_paused = true)]
async fn e1_concurrency_cap() {
    e1_case(Kind::Memory).await;
}

/// The same over the OS transports, in real time.
#[tokio::test]
async fn e1_concurrency_cap_real() {
    for kind in REAL_STREAMS {
        within(600, "e1 over a real transport", e1_case(kind)).await;
    }
}

async fn e1_case(kind: Kind) {
    {
        let fx = Fixture::start_with(kind, |s| s.max_in_flight(8)).await;
        let mut peaks = Vec::new();
        for n in [1_000u64, 10_000] {
            let mem = MemScope::start();
            let mut peer = fx.raw().await;
            // The flood goes on a second connection; `peer` stays a bystander.
            let mut flooded = fx.raw().await;
            let mut writer_half = flooded.split_writer();
            // The writer half is kept open until the end: EOF would tell the server the client is
            // gone, and it would abort the calls.
            let writer = tokio::spawn(async move {
                flood(&mut writer_half, n, |i| wire::request(i, "hold", None, &varint(i))).await;
                writer_half
            });
            fx.state.wait_running(8).await;
            if kind == Kind::Memory {
                // Paused and in memory, settling proves no ninth handler starts; in real time the
                // final `max_running` check below does.
                settle().await;
                assert_eq!(fx.state.running(), 8, "{kind}: exactly the cap runs");
            }
            peaks.push(mem.peak());
            mem.assert_within(4 * MIB, &format!("{kind}: {n} blocked requests"));

            // A bystander on its own connection is not starved by the other connection's cap.
            peer.send_frame(&wire::request(1, "add", None, &[1, 1])).await.unwrap();
            assert!(matches!(peer.expect_frame().await, Frame::Response { id: 1, .. }));

            fx.state.release(n as usize);
            let mut seen = HashSet::new();
            while seen.len() < n as usize {
                match flooded.expect_frame().await {
                    Frame::Response { id, .. } => assert!(seen.insert(id), "{kind}: {id} answered twice"),
                    other => panic!("{kind}: {other:?}"),
                }
            }
            drop(writer.await.unwrap());
            fx.state.wait_idle().await;
            assert_eq!(fx.state.max_running.load(Ordering::SeqCst), 8, "{kind}: never more than the cap");
        }
        assert!(peaks[1] < peaks[0] + MIB, "{kind}: memory flat as requests grow 10x: {peaks:?}");
        fx.assert_serving().await;
        fx.stop().await;
    }
}

/// E2: Rapid Reset (request then cancel, 10,000 times) never runs more than the cap, keeps no
/// growing state, and, being ordinary request traffic, is not cut off.
#[tokio::test]
async fn e2_rapid_reset() {
    within(600, "e2_rapid_reset", async {
        for kind in STREAMS {
            let fx = Fixture::start_with(kind, |s| s.max_in_flight(8)).await;
            let mem = MemScope::start();
            let mut peer = fx.raw().await;
            flood(&mut peer, 20_000, |i| {
                if i % 2 == 0 {
                    wire::request(i / 2, "hold", None, &[1])
                } else {
                    wire::cancel(i / 2)
                }
            })
            .await;
            peer.send_frame(&wire::request(1_000_000, "add", None, &[2, 2])).await.unwrap();
            match within(600, "the call after the flood", peer.expect_frame()).await {
                Frame::Response { id: 1_000_000, .. } => {}
                other => panic!("{kind}: cancelled calls must not be answered: {other:?}"),
            }
            assert!(fx.state.max_running.load(Ordering::SeqCst) <= 8);
            within(60, "every cancelled handler to be dropped", fx.state.wait_idle()).await;
            assert_eq!(fx.state.running(), 0, "{kind}: every cancelled handler is gone");
            mem.assert_within(4 * MIB, &format!("{kind}: 10,000 request+cancel pairs"));
            fx.assert_serving().await;
            fx.stop().await;
        }
    })
    .await;
}

/// E2: floods of cheap frames. Pings past 1,000 in a second with no request, or cancels beyond
/// one per request plus 1,024, close the connection with a goaway naming the limit; pongs are
/// never queued without bound. An empty frame or a 1-byte frame is a protocol error at once.
#[tokio::test(start_paused = true)]
async fn e2_control_frame_floods() {
    control_floods_case(Kind::Memory, true).await;
}

/// The same over the OS transports, in real time.
#[tokio::test]
async fn e2_control_frame_floods_real() {
    // The ping limit is a rate (1,000 a second): under real time a slowed flood could stay under
    // it, so only the count-based floods run here.
    for kind in REAL_STREAMS {
        within(600, "e2 over a real transport", control_floods_case(kind, false)).await;
    }
}

async fn control_floods_case(kind: Kind, pings: bool) {
    {
        let fx = Fixture::start(kind).await;
        let floods = [
            (wire::ping as fn(u64) -> Vec<u8>, "too many control frames: more than 1000 pings"),
            (wire::cancel, "too many cancels: more than 1024"),
        ];
        for (body, want) in floods {
            if !pings && want.contains("pings") {
                continue;
            }
            let mem = MemScope::start();
            let mut peer = fx.raw().await;
            flood(&mut peer, 100_000, body).await;
            let frames = within(600, "the flood to be cut off", peer.until_closed()).await;
            let pongs = frames.iter().filter(|f| matches!(f, Frame::Pong { .. })).count();
            assert!(pongs <= 1000, "{kind}: {pongs} pongs");
            match frames.last() {
                Some(Frame::GoAway { code: code::PROTOCOL, message }) => {
                    assert!(message.contains(want), "{message}")
                }
                other => panic!("{kind}: expected a goaway naming the limit, got {other:?}"),
            }
            mem.assert_within(4 * MIB, &format!("{kind}: 100,000 control frames"));
        }
        for body in [vec![], vec![6], vec![5]] {
            let mut peer = fx.raw().await;
            flood(&mut peer, 1000, |_| body.clone()).await;
            let (c, _) = peer.goaway_then_close().await.expect("goaway");
            assert_eq!(c, code::PROTOCOL, "{kind}: {body:?}");
        }
        fx.assert_serving().await;
        fx.stop().await;
    }
}

/// E2 control run: legitimate heavy multiplexing (10,000 concurrent calls, a fifth of them
/// cancelled by a timer) and a keepalive ping every 10 s for an hour beside a long call are
/// never cut off.
#[tokio::test(start_paused = true)]
async fn e2_legitimate_heavy_client_is_not_cut_off() {
    legitimate_case(Kind::Memory, 10_000, 360, Duration::from_secs(10)).await;
}

/// The same over the OS transports, in real time: 2,000 calls with no deadline to race (so a
/// loaded machine cannot fail them), and 50 pings 10 ms apart, far below the ping limit.
#[tokio::test]
async fn e2_legitimate_heavy_client_is_not_cut_off_real() {
    for kind in REAL_STREAMS {
        let case = legitimate_case(kind, 2_000, 50, Duration::from_millis(10));
        within(600, "e2 over a real transport", case).await;
    }
}

async fn legitimate_case(kind: Kind, n: u64, pings: u64, ping_every: Duration) {
    {
        let fx = Fixture::start(kind).await;
        let client = if kind == Kind::Memory {
            fx.client().await
        } else {
            fx.client_with(Client::builder().timeout(None)).await
        };
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move {
                    if i % 5 == 0 {
                        tokio::select! {
                            r = c.sleep(1_000) => r.map(|_| ()),
                            _ = tokio::time::sleep(Duration::from_millis(1)) => Ok(()),
                        }
                    } else {
                        c.echo(vec![i as u8; 16]).await.map(|_| ())
                    }
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap_or_else(|e| panic!("{kind}: a legitimate call failed: {e}"));
        }
        assert!(client.as_client().closed_reason().is_none());
        assert_in_flight_empty(client.as_client());

        // A keepalive beside a long call. (Pings alone do not keep an empty connection open:
        // H6, in reliability_h_hostile.)
        let mut peer = fx.raw().await;
        peer.send_frame(&wire::request(7, "hold", None, &varint(7))).await.unwrap();
        fx.state.wait_running(1).await;
        for nonce in 0..pings {
            peer.send_frame(&wire::ping(nonce)).await.unwrap();
            assert_eq!(peer.expect_frame().await, Frame::Pong { nonce });
            tokio::time::sleep(ping_every).await;
        }
        fx.state.release(1);
        assert!(matches!(peer.expect_frame().await, Frame::Response { id: 7, .. }), "{kind}");
        peer.send_frame(&wire::request(1, "add", None, &[1, 2])).await.unwrap();
        assert!(matches!(peer.expect_frame().await, Frame::Response { id: 1, .. }), "{kind}");
        fx.assert_serving().await;
        fx.stop().await;
    }
}

/// Reads and discards everything until EOF or an error; returns the byte count.
async fn drain(peer: RawPeer) -> usize {
    let (mut read, _write, _peer, _guard) = peer.into_inner();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

/// E3: a client that never reads while the server produces large responses. The outbound queue
/// is bounded (here 4 frames, with 4 handlers), so memory stays within (handlers + 2 × queue + 1)
/// responses; when a write has blocked for the write timeout (30 s) the connection is dropped
/// and the handlers blocked on sending are cancelled.
///
/// In memory under paused time only. Over the OS transports nothing the peer can see says the
/// server has given up short of reading, which would unblock it; in real time the quiet peer
/// would have to out-wait the server, a race a loaded machine lost (once in 20 runs over TCP,
/// whose buffers took the server's writes for longer than the quiet period).
#[tokio::test(start_paused = true)]
async fn e3_slow_consumer() {
    slow_consumer_case(Kind::Memory, Duration::from_secs(30)).await;
}

async fn slow_consumer_case(kind: Kind, write_timeout: Duration) {
    const RESPONSE: u64 = 256 * 1024;
    {
        let fx = Fixture::start_with(kind, |s| {
            s.with_config(
                ServerConfig::default()
                    .with_max_in_flight(4)
                    .with_outbound_queue(4)
                    .with_write_timeout(write_timeout),
            )
        })
        .await;
        let mem = MemScope::start();
        let mut peer = fx.raw().await;
        flood(&mut peer, 100, |i| wire::request(i, "blob", None, &varint(RESPONSE))).await;
        let t0 = Instant::now();
        // The peer's behaviour: it reads nothing for a third longer than the write timeout.
        let quiet = write_timeout * 4 / 3;
        tokio::time::sleep(quiet).await;
        let read = drain(peer).await;
        assert!(read < 100 * RESPONSE as usize, "{kind}: the server gave up, having written {read} bytes");
        assert!(t0.elapsed() >= quiet);
        mem.assert_within(
            12 * MIB,
            &format!("{kind}: 100 responses of 256 KiB to a client that never reads"),
        );
        fx.assert_serving().await;
        fx.stop().await;
    }
}

/// E3, client side: a server that never reads fails the client's pending calls once a write has
/// blocked for the client's write timeout, with an error naming it.
#[tokio::test(start_paused = true)]
async fn e3_server_never_reads() {
    server_never_reads_case(Kind::Memory, Duration::from_secs(30)).await;
}

/// The same over the OS transports, in real time.
#[tokio::test]
async fn e3_server_never_reads_real() {
    for kind in REAL_STREAMS {
        let case = server_never_reads_case(kind, Duration::from_millis(300));
        within(600, "e3 over a real transport", case).await;
    }
}

async fn server_never_reads_case(kind: Kind, write_timeout: Duration) {
    {
        let builder = Client::builder().write_timeout(write_timeout).timeout(None).clone();
        let (server, client) = fake_server(kind, &builder).await;
        let typed = ProbeClient::from_client(client.clone());
        let mem = MemScope::start();
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let t = typed.clone();
                tokio::spawn(async move { t.echo(vec![0; 256 * 1024]).await })
            })
            .collect();
        let t0 = Instant::now();
        for call in calls {
            match call.await.unwrap() {
                Err(RpcError::ConnectionClosed(reason)) => {
                    assert!(reason.contains("write timeout"), "{reason}")
                }
                other => panic!("{kind}: {other:?}"),
            }
        }
        let waited = t0.elapsed();
        if kind == Kind::Memory {
            assert!(waited >= write_timeout && waited < write_timeout + Duration::from_secs(1), "{kind}");
        } else {
            assert!(waited >= write_timeout, "{kind}: not before the write timeout: {waited:?}");
        }
        assert_in_flight_empty(&client);
        mem.assert_within(16 * MIB, &format!("{kind}: 20 × 256 KiB requests to a server that never reads"));
        drop(server);
    }
}

/// In memory under paused time only: which connections the frame timeout closes depends on how
/// long making 200 connections takes, which only a paused clock makes exact (over the OS
/// transports the admission rules are the same code).
///
/// E4: 200 connections each announce a maximal frame, then send only its header, or trickle
/// 64 KiB of it. Memory follows the bytes received (no connection reserves the declared 4 MiB).
/// With a receive budget of 40 maximal frames, the others are shed at once with a goaway naming
/// the budget (or refused at the connection cap of 100, with a goaway saying so). The frame timeout closes the 40 stalled ones; the server keeps serving.
#[tokio::test(start_paused = true)]
async fn e4_many_connections_announcing_max_frames() {
    for kind in [Kind::Memory] {
        for trickle in [0usize, 64 * 1024] {
            let fx =
                Fixture::start_with(kind, |s| s.max_connections(100).max_receive_budget(40 * 4 * MIB)).await;
            let mem = MemScope::start();
            let mut served = Vec::new();
            let (mut refused, mut evicted, mut shed, mut stalled) = (0, 0, 0, 0);
            for _ in 0..200 {
                let mut peer = RawPeer::new(fx.connect().await);
                peer.send(&wire::greeting()).await.unwrap();
                peer.expect_preface().await;
                let mut bytes = (4 * MIB as u32).to_be_bytes().to_vec();
                bytes.resize(4 + trickle, 0);
                let _ = peer.send(&bytes).await;
                served.push(peer);
            }
            settle().await;
            let peak = mem.peak();
            // Per served connection: its buffer (what arrived, rounded up to the read step) plus
            // a few KiB of task state. The in-memory transport's pipe buffers (64 KiB per
            // direction, what the kernel holds for a socket) are process memory too.
            let pipes =
                if kind == Kind::Memory { 200 * 2 * rpc_runtime::transport::memory::BUFFER } else { 0 };
            let budget = 100 * (trickle * 2 + 32 * 1024) + pipes + 2 * MIB;
            mem.assert_within(budget, &format!("{kind}: 200 connections announcing 4 MiB, {trickle} B sent"));
            for mut peer in served {
                match peer.goaway_then_close().await {
                    Some((code::OVERLOADED, m)) if m.contains("connection limit") => refused += 1,
                    // At the cap, the connection idle longest (no call: these only announce
                    // frames) makes room for the newcomer (H6).
                    Some((code::IDLE, m)) if m.contains("make room") => evicted += 1,
                    Some((code::OVERLOADED, m)) => {
                        assert!(m.contains("receive budget of 167772160 bytes"), "{m}");
                        shed += 1;
                    }
                    Some((code::IDLE, m)) => {
                        assert!(m.contains("frame timeout"), "{m}");
                        stalled += 1;
                    }
                    other => panic!("{kind}: {other:?}"),
                }
            }
            assert_eq!(stalled + refused + evicted + shed, 200, "{kind}: every connection is told why");
            // Newcomers evict the idlest connections at the cap; of the 100 left, the budget
            // holds 40 frames and the other 60 are shed (the oldest holders first, H5). Over
            // FIFOs, each connection's handshake lets the paused clock run (issue 10, item 12),
            // so the 1 s waits for room and the frame timeouts interleave with the arrivals and
            // the split is not fixed; the memory bound above holds all the same.
            if kind != Kind::Fifo {
                assert_eq!(stalled, 40, "{kind}: the budget admits 40 maximal frames (peak {peak})");
                assert_eq!(refused + evicted + shed, 160, "{kind}: the rest is evicted, refused or shed");
                assert!(shed >= 60, "{kind}: {shed} shed by the budget");
            }
            fx.assert_serving().await;
            fx.stop().await;
        }
    }
}

/// E4: the receive budget is returned when a frame completes or its connection closes, so after
/// the large frames are done, new ones fit again. In memory under paused time only: a second
/// connection is shed only once the server has read the first one's partial frame, which nothing
/// the peer sees can confirm; only a settled paused runtime makes it certain.
#[tokio::test(start_paused = true)]
async fn e4_receive_budget_is_returned() {
    for kind in [Kind::Memory] {
        let fx = Fixture::start_with(kind, |s| s.max_receive_budget(MIB)).await;
        let big = |id| wire::request(id, "bytes", None, &[varint(600 * 1024), vec![7; 600 * 1024]].concat());
        let mut a = fx.raw().await;
        let frame_a = wire::frame(&big(1));
        a.send(&frame_a[..100 * 1024]).await.unwrap();
        settle().await;
        // The budget holds one 600 KiB frame. A second waits for room, then the holder that has
        // held it longest (A, stalled) is shed rather than the newcomer (H5).
        let mut b = fx.raw().await;
        b.send(&frame_a[..8]).await.unwrap();
        let (c, m) = a.goaway_then_close().await.expect("goaway");
        assert_eq!(c, code::OVERLOADED, "{kind}: {m}");
        assert!(m.contains("receive budget of 1048576 bytes"), "{m}");
        let mut a = b;
        // Once B's frame is complete, the budget is free again, on B and on new connections.
        a.send(&frame_a[8..]).await.unwrap();
        assert!(matches!(a.expect_frame().await, Frame::Response { id: 1, .. }));
        let mut c2 = fx.raw().await;
        c2.send_frame(&big(2)).await.unwrap();
        assert!(matches!(c2.expect_frame().await, Frame::Response { id: 2, .. }), "{kind}");
        // A connection closed mid-frame returns its reservation too.
        let mut d = fx.raw().await;
        d.send(&frame_a[..1000]).await.unwrap();
        settle().await;
        drop(d);
        settle().await;
        a.send_frame(&big(3)).await.unwrap();
        assert!(matches!(a.expect_frame().await, Frame::Response { id: 3, .. }), "{kind}");
        fx.assert_serving().await;
        fx.stop().await;
    }
}

#[test]
fn stream_kinds() {
    assert!(STREAMS.contains(&Kind::Memory));
}
