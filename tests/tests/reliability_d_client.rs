//! Reliability cases D1–D3: client faults (cancellation by drop, id abuse and misrouting,
//! extreme time values).
//!
//! No case waits on real I/O under a paused clock: only in-memory cases run paused.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rpc_runtime::__fuzz::decode_payload;
use rpc_runtime::{Client, RpcError};
use rpc_tests::alloc::{MemScope, MIB};
use rpc_tests::fixture::{assert_in_flight_empty, fake_server, Fixture, Kind, REAL_STREAMS, STREAMS};
use rpc_tests::probe::ProbeClient;
use rpc_tests::wire::{self, code, varint, Frame};
use rpc_tests::{logs, within};
use tokio::time::Instant;

/// D1 on the wire: a call dropped before it was sent sends nothing; dropped after it was sent,
/// it sends a cancel; a response already on the wire for a dropped call is discarded.
#[tokio::test]
async fn d1_cancellation_frames() {
    within(600, "d1_cancellation_frames", async {
        for kind in STREAMS {
            let (mut server, client) = fake_server(kind, &Client::builder()).await;
            let typed = ProbeClient::from_client(client.clone());

            // Never polled: nothing leaves.
            drop(typed.add(1, 1));
            // Polled until sent, then dropped by a select! timer.
            tokio::select! {
                r = typed.add(2, 2) => panic!("{kind}: answered without a server: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            let Frame::Request { id, method, .. } = server.expect_frame().await else { panic!() };
            assert_eq!(method, "add", "{kind}: the first call never left");
            assert_eq!(server.expect_frame().await, Frame::Cancel { id });
            assert_in_flight_empty(&client);

            // A response already on its way for the cancelled call is discarded; the next call gets
            // its own.
            server.send_frame(&wire::response(id, &varint(4))).await.unwrap();
            let t = typed.clone();
            let next = tokio::spawn(async move { t.add(3, 3).await });
            let Frame::Request { id: next_id, .. } = server.expect_frame().await else { panic!() };
            server.send_frame(&wire::response(next_id, &varint(6))).await.unwrap();
            assert_eq!(next.await.unwrap().unwrap(), 6);
            assert_in_flight_empty(&client);
        }
    })
    .await;
}

/// D1 end to end: dropping calls (before the send, after it, and while the response is being
/// written) drops the server's handlers within a bounded time and frees their slots; nothing
/// leaks in the client's map.
#[tokio::test]
async fn d1_cancellation_frees_server_slots() {
    within(600, "d1_cancellation_frees_server_slots", async {
        for kind in STREAMS {
            let fx = Fixture::start_with(kind, |s| s.max_in_flight(2)).await;
            let client = fx.client().await;
            let mem = MemScope::start();
            for round in 0..50 {
                tokio::select! {
                    r = client.hold(round) => panic!("{kind}: hold returned {r:?}"),
                    _ = fx.state.wait_running(1) => {}
                }
                // Dropped after sending: the server drops the handler.
                within(60, "the handler to be dropped", fx.state.wait_dropped(round as usize + 1)).await;
            }
            assert_eq!(fx.state.running(), 0);
            assert_eq!(fx.state.max_running.load(Ordering::SeqCst), 1);
            // Both slots are free: two holds run at once.
            let a = tokio::spawn({
                let c = client.clone();
                async move { c.hold(1).await }
            });
            let b = tokio::spawn({
                let c = client.clone();
                async move { c.hold(2).await }
            });
            fx.state.wait_running(2).await;
            fx.state.release(2);
            assert_eq!(a.await.unwrap().unwrap() + b.await.unwrap().unwrap(), 3);

            // Dropped while a large response is being written: discarded, nothing left behind.
            tokio::select! {
                r = client.blob(2 * MIB as u64) => { r.unwrap(); }
                _ = tokio::task::yield_now() => {}
            }
            // The server reads a connection in order: this answer comes after the cancel was handled.
            assert_eq!(client.add(1, 1).await.unwrap(), 2);
            assert_in_flight_empty(client.as_client());
            mem.assert_within(8 * MIB, &format!("{kind}: 50 cancelled calls and a cancelled 2 MiB response"));
            fx.assert_serving().await;
            fx.stop().await;
        }
    })
    .await;
}

/// D2, server side: a request reusing the id of a call in flight is ignored (and logged); the
/// original call still gets exactly one response. Ids 0 and `u64::MAX` are ordinary ids.
#[tokio::test]
async fn d2_duplicate_request_ids() {
    within(600, "d2_duplicate_request_ids", async {
        let log = logs::capture();
        for kind in STREAMS {
            let fx = Fixture::start(kind).await;
            let mut peer = fx.raw().await;
            peer.send_frame(&wire::request(5, "hold", None, &[50])).await.unwrap();
            fx.state.wait_running(1).await;
            peer.send_frame(&wire::request(5, "add", None, &[1, 1])).await.unwrap();
            for id in [0, u64::MAX] {
                peer.send_frame(&wire::request(id, "add", None, &[2, 3])).await.unwrap();
                match peer.expect_frame().await {
                    Frame::Response { id: got, payload } => {
                        assert_eq!((got, decode_payload::<u64>(&payload).unwrap()), (id, 5))
                    }
                    other => panic!("{kind}: {other:?}"),
                }
            }
            fx.state.release(1);
            match peer.expect_frame().await {
                Frame::Response { id: 5, payload } => {
                    assert_eq!(decode_payload::<u64>(&payload).unwrap(), 50)
                }
                other => panic!("{kind}: the duplicate must not be answered: {other:?}"),
            }
            peer.send_frame(&wire::request(6, "add", None, &[1, 2])).await.unwrap();
            match peer.expect_frame().await {
                Frame::Response { id: 6, .. } => {}
                other => panic!("{kind}: exactly one response for id 5, got {other:?}"),
            }
            fx.assert_serving().await;
            fx.stop().await;
        }
        log.lines.assert_contains(&["ignored a request reusing the id of a call in flight"]);
    })
    .await;
}

/// D2, client side: replies to unknown ids and second replies are ignored; a reply of the wrong
/// type is a typed `Decode` error, never a panic; the next call is routed correctly.
#[tokio::test]
async fn d2_misrouted_responses() {
    within(600, "d2_misrouted_responses", async {
        for kind in STREAMS {
            let (mut server, client) = fake_server(kind, &Client::builder()).await;
            let typed = ProbeClient::from_client(client.clone());

            let t = typed.clone();
            let call = tokio::spawn(async move { t.add(1, 1).await });
            let Frame::Request { id, .. } = server.expect_frame().await else { panic!() };
            server.send_frame(&wire::response(id + 1000, &varint(13))).await.unwrap();
            server.send_frame(&wire::error(id + 1001, code::INTERNAL, "nobody's")).await.unwrap();
            server.send_frame(&wire::response(id, &varint(2))).await.unwrap();
            server.send_frame(&wire::response(id, &varint(99))).await.unwrap();
            assert_eq!(call.await.unwrap().unwrap(), 2, "{kind}");

            // The wrong response variant: `echo` answered with a `u64`-shaped payload that is not a
            // valid `Vec<u8>` here (length 200, 1 byte).
            let t = typed.clone();
            let call = tokio::spawn(async move { t.echo(vec![1]).await });
            let Frame::Request { id, .. } = server.expect_frame().await else { panic!() };
            server.send_frame(&wire::response(id, &[200, 1, 1])).await.unwrap();
            assert!(matches!(call.await.unwrap(), Err(RpcError::Decode(_))), "{kind}");

            let t = typed.clone();
            let call = tokio::spawn(async move { t.add(4, 4).await });
            let Frame::Request { id, .. } = server.expect_frame().await else { panic!() };
            server.send_frame(&wire::response(id, &varint(8))).await.unwrap();
            assert_eq!(call.await.unwrap().unwrap(), 8);
            assert_in_flight_empty(&client);
            assert!(client.closed_reason().is_none(), "{kind}: the connection survived all of it");
        }
    })
    .await;
}

/// D2: the client's ids are u64 and never reused while in flight: 10,000 calls get 10,000
/// distinct ids.
#[tokio::test(start_paused = true)]
async fn d2_ids_are_unique() {
    let (mut server, client) = fake_server(rpc_tests::fixture::Kind::Memory, &Client::builder()).await;
    let typed = ProbeClient::from_client(client.clone());
    let calls: Vec<_> = (0..10_000u64)
        .map(|i| {
            let t = typed.clone();
            tokio::spawn(async move { t.add(i, 0).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let Frame::Request { id, payload, .. } = server.expect_frame().await else { panic!() };
        assert!(ids.insert(id), "id {id} reused");
        // Answer with the first argument so misrouting would show.
        let (a, _b) = decode_payload::<(u64, u64)>(&payload).unwrap();
        server.send_frame(&wire::response(id, &varint(a))).await.unwrap();
    }
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as u64);
    }
    assert_in_flight_empty(&client);
}

/// D3: extreme deadlines from the peer. 0 is refused at once with `DeadlineExceeded`;
/// `u64::MAX` µs is clamped to the server's maximum (24 h) and never panics; an overlong varint
/// is a protocol error for that id; random deadlines never break the server.
///
/// The clamp is timed exactly in memory under paused time (the 24 h default); over the OS
/// transports it runs in real time against a server whose maximum is 200 ms.
#[tokio::test(start_paused = true)]
async fn d3_extreme_deadlines_from_the_peer() {
    extreme_deadlines_case(Kind::Memory, None).await;
}

/// D3 from the peer, over the OS transports (real time).
#[tokio::test]
async fn d3_extreme_deadlines_from_the_peer_real() {
    for kind in REAL_STREAMS {
        let case = extreme_deadlines_case(kind, Some(Duration::from_millis(200)));
        within(600, "d3 over a real transport", case).await;
    }
}

async fn extreme_deadlines_case(kind: Kind, max_deadline: Option<Duration>) {
    {
        let fx = Fixture::start_with(kind, |s| match max_deadline {
            Some(max) => s.max_deadline(max),
            None => s,
        })
        .await;
        let mut peer = fx.raw().await;
        peer.send_frame(&wire::request_raw(1, b"add", Some(0), false, &[1, 1])).await.unwrap();
        assert!(matches!(
            peer.expect_frame().await,
            Frame::Error { id: 1, code: code::DEADLINE_EXCEEDED, .. }
        ));

        peer.send_frame(&wire::request_raw(2, b"add", Some(u64::MAX), false, &[1, 1])).await.unwrap();
        assert!(matches!(peer.expect_frame().await, Frame::Response { id: 2, .. }), "{kind}");

        // A call that never finishes, with a forged u64::MAX deadline: cut at the clamp.
        let t0 = Instant::now();
        peer.send_frame(&wire::request_raw(3, b"hold", Some(u64::MAX), false, &[3])).await.unwrap();
        assert!(matches!(
            peer.expect_frame().await,
            Frame::Error { id: 3, code: code::DEADLINE_EXCEEDED, .. }
        ));
        match max_deadline {
            None => assert_eq!(t0.elapsed(), Duration::from_secs(24 * 3600), "{kind}: clamped to 24 h"),
            Some(max) => assert!(t0.elapsed() >= max, "{kind}: clamped to {max:?}, not before"),
        }

        let mut overlong = wire::request_raw(4, b"add", Some(0), false, &[1, 1]);
        // Kind, id, call kind, flags, format, an empty service name, "add", the hash: then the
        // deadline.
        let at = 1 + varint(4).len() + 3 + 1 + 4 + 8;
        overlong.splice(at..at + 1, [0xff; 11]);
        peer.send_frame(&overlong).await.unwrap();
        match peer.expect_frame().await {
            Frame::Error { id: 4, code: code::PROTOCOL, message } => {
                assert!(message.contains("deadline"), "{message}")
            }
            other => panic!("{kind}: {other:?}"),
        }

        let mut rng = rand::rngs::StdRng::seed_from_u64(0xd3);
        for id in 10..200u64 {
            let us = match id % 4 {
                0 => rng.random(),
                1 => rng.random_range(0..10),
                2 => u64::MAX - rng.random_range(0..1000),
                _ => rng.random_range(0..1_000_000_000),
            };
            peer.send_frame(&wire::request_raw(id, b"add", Some(us), false, &[1, 1])).await.unwrap();
            match peer.expect_frame().await {
                Frame::Response { id: got, .. }
                | Frame::Error { id: got, code: code::DEADLINE_EXCEEDED, .. } => {
                    assert_eq!(got, id)
                }
                other => panic!("{kind}: deadline {us}: {other:?}"),
            }
        }
        fx.assert_serving().await;
        fx.stop().await;
    }
}

/// D3, client side: extreme timeouts never panic. `Duration::MAX` means no usable deadline, zero
/// fails at once without sending anything.
#[tokio::test]
async fn d3_extreme_timeouts_on_the_client() {
    within(600, "d3_extreme_timeouts_on_the_client", async {
        for kind in STREAMS {
            let fx = Fixture::start(kind).await;
            let client = fx.client().await;
            assert_eq!(client.with_timeout(Duration::MAX).add(1, 1).await.unwrap(), 2);
            assert_eq!(client.with_timeout(Duration::from_secs(u64::MAX)).add(1, 2).await.unwrap(), 3);
            assert!(matches!(
                client.with_timeout(Duration::ZERO).add(1, 1).await,
                Err(RpcError::DeadlineExceeded)
            ));
            assert_eq!(client.with_timeout(Duration::from_nanos(1_999_999_999)).add(2, 2).await.unwrap(), 4);
            assert_in_flight_empty(client.as_client());
            fx.stop().await;
        }
    })
    .await;
}
