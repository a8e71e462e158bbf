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
