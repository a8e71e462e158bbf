//! The server's fast paths keep every behaviour: calls that start on the connection's task
//! (`inline_handlers`, the default) and calls given a task at once must be indistinguishable to
//! a client, whether frames arrive one per read or many in one read.

use std::time::Duration;

use rpc_runtime::{Client, RpcError, Server};
use rpc_tests::*;

/// Runs `body` against a server with `inline_handlers` on and off.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod inline {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(true).await;
                }
            )*
        }
        mod spawned {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(false).await;
                }
            )*
        }
    };
}

both_modes!(
    panics_deadlines_and_cancels_behave_the_same,
    a_cancel_in_the_same_read_as_its_request_stops_the_handler,
    a_burst_past_the_slot_limit_is_answered_in_full,
);

async fn fixture(inline: bool, max_in_flight: usize) -> Fixture {
    start_with(Transport::Unix, |s| s.inline_handlers(inline).max_in_flight(max_in_flight)).await
}

async fn panics_deadlines_and_cancels_behave_the_same(inline: bool) {
    let f = fixture(inline, 128).await;
    // A panic on the first poll fails that call only.
    let boom = guard("boom", f.client.boom(7)).await;
    assert!(matches!(boom, Err(RpcError::HandlerPanicked)), "{boom:?}");
    assert_eq!(f.client.add(2, 3).await.unwrap(), 5);

    // A handler that waits is stopped at its deadline.
    let late = guard("deadline", f.client.with_timeout(Duration::from_millis(100)).hang(1)).await;
    assert!(matches!(late, Err(RpcError::DeadlineExceeded)), "{late:?}");
    assert_eq!(guard("started", f.client.next_started()).await.unwrap(), 1);
    assert_eq!(guard("dropped", f.client.next_dropped()).await.unwrap(), 1);

    // And by a cancel.
    let client = f.client.with_timeout(None);
    let call = tokio::spawn(async move { client.hang(2).await });
    assert_eq!(guard("started", f.client.next_started()).await.unwrap(), 2);
    call.abort();
    assert_eq!(guard("dropped", f.client.next_dropped()).await.unwrap(), 2);

    // Handlers that wait a little, made all at once, all come back.
    let calls: Vec<_> = (0..50).map(|i| f.client.echo_after(i, (i % 4) as u32)).collect();
    let got = guard("echoes", futures::future::join_all(calls)).await;
    assert_eq!(got.into_iter().map(Result::unwrap).collect::<Vec<_>>(), (0..50).collect::<Vec<_>>());
    assert_eq!(f.client.as_client().in_flight(), 0);
}

async fn a_cancel_in_the_same_read_as_its_request_stops_the_handler(inline: bool) {
    // As many slots as calls: if a cancel did not stop its handler, the slot would stay taken
    // and the last call below would wait forever.
    let f = fixture(inline, 10).await;
    let client = f.client.with_timeout(None);
    for round in 0..3u64 {
        // Each request is queued and its cancel right behind it, before the writer runs: both
        // usually go out in one write and are taken from one read. (A handler cancelled before
        // its first poll never starts, so slots, not drop reports, are what is checked.)
        for tag in 0..10 {
            let polled_once = tokio::time::timeout(Duration::ZERO, client.hang(round * 10 + tag)).await;
            assert!(polled_once.is_err(), "hang returned");
        }
        assert_eq!(
            guard("a call after the cancels", f.client.add(round as i64, 1)).await.unwrap(),
            round as i64 + 1
        );
    }
}

async fn a_burst_past_the_slot_limit_is_answered_in_full(inline: bool) {
    // Two slots: most of the burst waits parked or unread, and is served as slots free up.
    let f = fixture(inline, 2).await;
    let calls: Vec<_> = (0..200).map(|i| f.client.echo_after(i, (i % 3) as u32)).collect();
    let got = guard("burst", futures::future::join_all(calls)).await;
    assert_eq!(got.into_iter().map(Result::unwrap).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_connection_used_more_often_than_the_idle_timeout_stays_open() {
    let (listener, connector) = rpc_runtime::transport::memory::listener();
    let _server = Server::new(KitchenServer::new(KitchenImpl::new()))
        .idle_timeout(Duration::from_secs(10))
        .serve(listener);
    let client =
        KitchenClient::from_client(Client::builder().timeout(None).build(connector.connect().unwrap()));
    for i in 0..10 {
        assert_eq!(client.add(i, 1).await.unwrap(), i + 1, "call {i}");
        tokio::time::advance(Duration::from_secs(6)).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    match client.add(0, 0).await {
        Err(RpcError::ConnectionClosed(m)) => assert!(m.contains("idle"), "{m}"),
        other => panic!("expected the idle connection to be closed, got {other:?}"),
    }
}

/// The client keeps its calls' deadlines with one timer per connection, not one per call: a
/// call whose deadline is earlier than those already waiting still fails at its own deadline,
/// each call fails at its deadline and not another's, a call that expired is cancelled on the
/// server, and the calls still in time are answered.
#[tokio::test(start_paused = true)]
async fn each_call_fails_at_its_own_deadline_and_is_cancelled() {
    use rpc_tests::fixture::{fake_server, Kind};
    use rpc_tests::probe::ProbeClient;
    use rpc_tests::wire::{response, varint, Frame};
    use tokio::time::Instant;

    let (mut server, client) = fake_server(Kind::Memory, &Client::builder()).await;
    let probe = ProbeClient::from_client(client.clone());
    let start = Instant::now();
    // The default 30 s deadline sets the connection's timer first.
    let slow = tokio::spawn({
        let p = probe.clone();
        async move { p.add(1, 1).await }
    });
    let Frame::Request { id: slow_id, .. } = server.expect_frame().await else { panic!("a request") };
    let timed = |ms| {
        let p = ProbeClient::from_client(client.with_timeout(Duration::from_millis(ms)));
        tokio::spawn(async move {
            let r = p.add(ms, 0).await;
            (r, start.elapsed())
        })
    };
    let (later, sooner) = (timed(300), timed(100));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let Frame::Request { id, deadline_us, .. } = server.expect_frame().await else { panic!("a request") };
        ids.push((deadline_us.expect("a deadline travels"), id));
    }
    ids.sort_unstable();
    let (sooner_id, later_id) = (ids[0].1, ids[1].1);

    let (r, at) = sooner.await.unwrap();
    assert!(matches!(r, Err(RpcError::DeadlineExceeded)), "{r:?}");
    assert!(at >= Duration::from_millis(100) && at < Duration::from_millis(110), "failed at {at:?}");
    assert_eq!(server.expect_frame().await, Frame::Cancel { id: sooner_id }, "the server is told to stop");
    let (r, at) = later.await.unwrap();
    assert!(matches!(r, Err(RpcError::DeadlineExceeded)), "{r:?}");
    assert!(at >= Duration::from_millis(300) && at < Duration::from_millis(310), "failed at {at:?}");
    assert_eq!(server.expect_frame().await, Frame::Cancel { id: later_id });

    // The first call is still waiting, and gets its answer.
    assert_eq!(client.in_flight(), 1);
    server.send_frame(&response(slow_id, &varint(2))).await.unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), 2);
    assert_eq!(client.in_flight(), 0);
    // A response for an expired call is dropped; the connection carries on.
    server.send_frame(&response(sooner_id, &varint(100))).await.unwrap();
    let next = tokio::spawn({
        let p = probe.clone();
        async move { p.add(3, 4).await }
    });
    let Frame::Request { id, .. } = server.expect_frame().await else { panic!("a request") };
    server.send_frame(&response(id, &varint(7))).await.unwrap();
    assert_eq!(next.await.unwrap().unwrap(), 7);
}

/// A call that finds the client's outbound queue full waits for room (off the fast path), is
/// bounded by its deadline meanwhile, and when that passes first it fails and sends nothing:
/// neither its request nor a cancel reaches the server, and the calls queued before it do.
#[tokio::test(start_paused = true)]
async fn a_call_waiting_for_room_fails_at_its_deadline_and_sends_nothing() {
    use rpc_tests::fixture::{fake_server, settle, Kind};
    use rpc_tests::probe::ProbeClient;
    use rpc_tests::wire::{response, varint, Frame};
    use tokio::time::Instant;

    let builder = Client::builder().outbound_queue(1).timeout(None).clone();
    let (mut server, client) = fake_server(Kind::Memory, &builder).await;
    let probe = ProbeClient::from_client(client.clone());
    // The server does not read yet: this request fills the stream, blocking the writer...
    let big = tokio::spawn({
        let p = probe.clone();
        async move { p.echo(vec![7; 200_000]).await.map(|v| v.len()) }
    });
    settle().await;
    // ...and this one fills the queue (one frame).
    let queued = tokio::spawn({
        let p = probe.clone();
        async move { p.add(1, 2).await }
    });
    settle().await;
    let start = Instant::now();
    let waiting = ProbeClient::from_client(client.with_timeout(Duration::from_millis(100)));
    assert!(matches!(waiting.add(3, 4).await, Err(RpcError::DeadlineExceeded)));
    let at = start.elapsed();
    assert!(at >= Duration::from_millis(100) && at < Duration::from_millis(110), "failed at {at:?}");
    assert_eq!(client.in_flight(), 2, "the two queued calls still wait");

    let Frame::Request { id: big_id, method, .. } = server.expect_frame().await else { panic!("a request") };
    assert_eq!(method, "echo");
    let Frame::Request { id: queued_id, method, .. } = server.expect_frame().await else {
        panic!("a request")
    };
    assert_eq!(method, "add");
    server.send_frame(&response(big_id, &varint(0))).await.unwrap();
    server.send_frame(&response(queued_id, &varint(3))).await.unwrap();
    assert_eq!(big.await.unwrap().unwrap(), 0);
    assert_eq!(queued.await.unwrap().unwrap(), 3);
    // The next frame is a later call's: the call that gave up sent neither request nor cancel.
    let next = tokio::spawn({
        let p = probe.clone();
        async move { p.add(5, 6).await }
    });
    let Frame::Request { id, payload, .. } = server.expect_frame().await else { panic!("a request") };
    assert_eq!(rpc_runtime::__fuzz::decode_payload::<(u64, u64)>(&payload).unwrap(), (5, 6));
    server.send_frame(&response(id, &varint(11))).await.unwrap();
    assert_eq!(next.await.unwrap().unwrap(), 11);
    assert_eq!(client.in_flight(), 0);
}
