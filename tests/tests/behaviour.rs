//! The behaviour suite, run over every transport: method shapes, concurrency, deadlines,
//! cancellation, one-way calls, panic isolation, connection loss and protocol errors.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use rpc_runtime::describe::MethodKind;
use rpc_runtime::transport::framed::{FrameReader, FrameWriter};
use rpc_runtime::{Client, MethodRef, RpcError};
use rpc_tests::*;

async fn method_shapes(transport: Transport) {
    let f = start(transport).await;
    let c = &f.client;
    c.ping().await.unwrap();
    assert_eq!(c.add(40, 2).await.unwrap(), 42);
    assert_eq!(c.many(1, 2, 3, 4, -5, 6.5, true, 'λ').await.unwrap(), "1 2 3 4 -5 6.5 true λ".to_string());
    assert_eq!(c.checked_div(84, 2).await.unwrap(), Ok(42));
    assert_eq!(c.checked_div(1, 0).await.unwrap(), Err(MathError::DivisionByZero));
    assert_eq!(c.checked_div(i64::MIN, -1).await.unwrap(), Err(MathError::Overflow { op: "div".into() }));

    let order = Order {
        customer: Customer { id: 7, name: "Ada".into() },
        lines: vec![
            Line { item: "tea".into(), quantity: 2, cents: 150 },
            Line { item: "cake".into(), quantity: 1, cents: 400 },
        ],
        payment: Payment::Card { last4: [1, 2, 3, 4] },
        notes: Some("no sugar".into()),
    };
    let receipt = c.order(order.clone()).await.unwrap();
    assert_eq!((receipt.total_cents, receipt.items), (700, 3));
    assert_eq!(receipt.order, order);
    let iou = Order { payment: Payment::Iou("later".into()), notes: None, lines: vec![], ..order };
    assert_eq!(c.order(iou.clone()).await.unwrap().order, iou);

    let counts = HashMap::from([("a".to_string(), 1), ("b".to_string(), 2)]);
    let (sum, label, sorted) = c.collections(vec![1, 2, 3], Some("four".into()), counts).await.unwrap();
    assert_eq!((sum, label), (6, Some(4)));
    assert_eq!(sorted.into_iter().collect::<Vec<_>>(), vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    assert_eq!(c.collections(vec![], None, HashMap::new()).await.unwrap(), (0, None, Default::default()));

    let data: Vec<u8> = (0..=255).cycle().take(1 << 20).collect();
    let mut expected = data.clone();
    expected.reverse();
    assert_eq!(c.reverse(data).await.unwrap(), expected);
    assert_eq!(c.reverse(Vec::new()).await.unwrap(), Vec::<u8>::new());
    assert_eq!(c.as_client().in_flight(), 0);
}

async fn concurrent_calls_complete_out_of_order(transport: Transport) {
    let f = start(transport).await;
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let client = f.client.clone();
            tokio::spawn(async move {
                let calls = (0..64u64).map(|i| {
                    let client = client.clone();
                    let value = task * 1000 + i;
                    let yields = rand::rng().random_range(0..50);
                    async move { (value, client.echo_after(value, yields).await) }
                });
                futures::future::join_all(calls).await
            })
        })
        .collect();
    let mut seen = 0;
    for task in tasks {
        for (value, result) in guard("concurrent calls", task).await.unwrap() {
            assert_eq!(result.unwrap(), value, "a response was routed to the wrong call");
            seen += 1;
        }
    }
    assert_eq!(seen, 1024);
    assert_eq!(f.client.as_client().in_flight(), 0);
}

async fn deadline_fails_the_call_and_stops_the_handler(transport: Transport) {
    let f = start(transport).await;
    let started = std::time::Instant::now();
    let result = guard("deadline", f.client.with_timeout(Duration::from_millis(200)).hang(1)).await;
    assert!(matches!(result, Err(RpcError::DeadlineExceeded)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(guard("handler start", f.client.next_started()).await.unwrap(), 1);
    // The deadline travelled with the request: the server drops the handler by itself.
    assert_eq!(guard("handler drop", f.client.next_dropped()).await.unwrap(), 1);
    assert_eq!(f.client.as_client().in_flight(), 0);
    assert_eq!(f.client.add(1, 1).await.unwrap(), 2, "the connection survives a deadline");
}

async fn dropping_a_call_cancels_the_handler(transport: Transport) {
    let f = start(transport).await;
    let client = f.client.with_timeout(None);
    let call = tokio::spawn(async move { client.hang(2).await });
    assert_eq!(guard("handler start", f.client.next_started()).await.unwrap(), 2);
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(guard("handler drop", f.client.next_dropped()).await.unwrap(), 2);
    assert_eq!(f.client.as_client().in_flight(), 0);
    assert_eq!(f.client.add(2, 2).await.unwrap(), 4);
}

async fn oneway_calls_reach_the_server(transport: Transport) {
    let f = start(transport).await;
    for i in 0..10 {
        f.client.record(format!("line {i}")).await.unwrap();
    }
    // One-way calls run concurrently, like all calls: each arrives, in no promised order.
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(guard("oneway delivery", f.client.next_record()).await.unwrap());
    }
    got.sort();
    assert_eq!(got, (0..10).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert_eq!(f.client.as_client().in_flight(), 0, "one-way calls wait for nothing");
}

async fn a_panicking_handler_fails_only_its_call(transport: Transport) {
    let f = start(transport).await;
    let others: Vec<_> = (0..10).map(|i| f.client.echo_after(i, 20)).collect();
    let (boom, others) =
        guard("panic isolation", async { tokio::join!(f.client.boom(1), futures::future::join_all(others)) })
            .await;
    assert!(matches!(boom, Err(RpcError::HandlerPanicked)), "{boom:?}");
    for (i, r) in others.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as u64);
    }
    assert_eq!(f.client.boom(u64::MAX).await.unwrap(), u64::MAX, "the connection survives a panic");
    if let Some(connector) = &f.connector {
        let second = KitchenClient::new(connector.connect().await.unwrap());
        assert_eq!(second.add(1, 2).await.unwrap(), 3, "the server keeps accepting");
    }
}

async fn connection_loss_fails_every_pending_call(transport: Transport) {
    let (client_end, server_end, _keep) = raw_pair(transport).await;
    let client = KitchenClient::new(client_end);
    let calls: Vec<_> = (0..100)
        .map(|i| {
            tokio::spawn({
                let client = client.clone();
                async move { client.echo_after(i, 0).await }
            })
        })
        .collect();
    // A server that reads all 100 requests, then dies without answering.
    let (read, write, _, _guard) = server_end.into_parts();
    let mut reader = FrameReader::new(read, 1 << 20);
    let mut writer = FrameWriter::new(write);
    writer.queue_raw(&rpc_tests::wire::greeting());
    writer.send(&mut Vec::new()).await.unwrap();
    assert_eq!(&reader.read_raw(8).await.unwrap().unwrap()[..], &PREFACE);
    reader.read_frame().await.unwrap().unwrap(); // the HELLO
    for _ in 0..100 {
        guard("requests", reader.read_frame()).await.unwrap().unwrap();
    }
    drop((reader, writer, _guard));
    for call in calls {
        let result = guard("pending call", call).await.unwrap();
        assert!(matches!(result, Err(RpcError::ConnectionClosed(_))), "{result:?}");
    }
    assert_eq!(client.as_client().in_flight(), 0);
    let later = guard("call after loss", client.add(1, 2)).await;
    assert!(matches!(later, Err(RpcError::ConnectionClosed(_))), "new calls fail fast: {later:?}");
}

async fn unknown_methods_leave_the_connection_up(transport: Transport) {
    let f = start(transport).await;
    let raw: &Client = f.client.as_client();
    static NO_SUCH: MethodRef = MethodRef::dynamic("Kitchen", "no_such_method", MethodKind::Unary, 0);
    let result: Result<u64, _> = raw.call(&NO_SUCH, &(1u64,)).await;
    assert!(matches!(&result, Err(RpcError::UnknownMethod(m)) if m == "no_such_method"), "{result:?}");
    // Hash 0 skips the signature check (a caller without a schema): the arguments then fail to
    // decode, and say so.
    static ADD: MethodRef = MethodRef::dynamic("Kitchen", "add", MethodKind::Unary, 0);
    let bad_args: Result<i64, _> = raw.call(&ADD, &("not", "numbers", "at all")).await;
    assert!(matches!(bad_args, Err(RpcError::Decode(_))), "{bad_args:?}");
    static OTHER: MethodRef = MethodRef::dynamic("NotKitchen", "add", MethodKind::Unary, 0);
    let other: Result<i64, _> = raw.call(&OTHER, &(1i64, 2i64)).await;
    assert!(matches!(&other, Err(RpcError::UnknownService(s)) if s == "NotKitchen"), "{other:?}");
    assert_eq!(f.client.add(2, 3).await.unwrap(), 5);
}

/// Copies of the `Kitchen` trait as another team might hold them (issue 11's skew cases).
mod skewed {
    use rpc_runtime::service;

    /// `add` over `u32`s: under protocol v1, `add(3, 4)` answered `Ok(0)`.
    #[service(name = "Kitchen")]
    pub(crate) trait KitchenU32 {
        async fn add(&self, a: u32, b: u32) -> u32;
        async fn ping(&self);
    }

    /// `add` over `String`s: under protocol v1, `add("", "")` answered `Ok("")`.
    #[service(name = "Kitchen")]
    pub(crate) trait KitchenText {
        async fn add(&self, a: String, b: String) -> String;
    }

    /// An unrelated service whose method shares a name (and a signature) with `Kitchen`'s.
    #[service]
    pub(crate) trait Stats {
        async fn add(&self, a: i64, b: i64) -> i64;
    }
}

/// Schema skew fails with a typed error naming the method, without running the handler; a
/// method of another service is not answered; the connection carries on.
async fn schema_skew_gets_a_typed_error(transport: Transport) {
    use skewed::{KitchenTextClient, KitchenU32Client, StatsClient};
    let f = start(transport).await;
    let raw = f.client.as_client().clone();
    let u32s = KitchenU32Client::from_client(raw.clone());
    match u32s.add(3, 4).await {
        Err(RpcError::SignatureMismatch { method, detail }) => {
            assert_eq!(method, "Kitchen.add");
            assert!(detail.contains("unary (i64,i64)->i64"), "names the server's signature: {detail}");
        }
        other => panic!("expected a signature mismatch, got {other:?}"),
    }
    // The methods the copies agree on still work.
    u32s.ping().await.expect("an unchanged method of a skewed copy");
    let text = KitchenTextClient::from_client(raw.clone());
    let result = text.add(String::new(), String::new()).await;
    assert!(
        matches!(&result, Err(RpcError::SignatureMismatch { method, .. }) if method == "Kitchen.add"),
        "{result:?}"
    );
    let stats = StatsClient::from_client(raw);
    let result = stats.add(1, 2).await;
    assert!(matches!(&result, Err(RpcError::UnknownService(s)) if s == "Stats"), "{result:?}");
    assert!(result.unwrap_err().never_started());
    assert_eq!(f.client.add(2, 3).await.unwrap(), 5);
}

async fn oversized_requests_fail_locally(transport: Transport) {
    let f = start(transport).await;
    let result = f.client.reverse(vec![0; 5 << 20]).await;
    assert!(matches!(result, Err(RpcError::FrameTooLarge { max, .. }) if max == 4 << 20), "{result:?}");
    assert_eq!(f.client.add(1, 2).await.unwrap(), 3, "only the oversized call fails");
}

async fn a_peer_of_another_version_gets_a_clear_error(transport: Transport) {
    let (client_end, server_end, _keep) = raw_pair(transport).await;
    let client = KitchenClient::new(client_end);
    let (_read, write, _, _g) = server_end.into_parts();
    let mut writer = FrameWriter::new(write);
    let mut v1 = PREFACE;
    v1[6] = 1;
    writer.queue_raw(&v1);
    writer.send(&mut Vec::new()).await.unwrap();
    let result = guard("call to a v1 server", client.add(1, 2)).await;
    match result {
        Err(RpcError::Protocol(msg)) => {
            assert!(msg.contains("version 1, this side speaks version 2"), "{msg}")
        }
        other => panic!("expected a protocol error naming the version, got {other:?}"),
    }
}

macro_rules! suite {
    // Every transport runs the behaviours that need a real server; the ones that play the server
    // by hand run where a test can stand in for the server (not a child process).
    ($($transport:ident: [$($extra:ident),*]),* $(,)?) => {$(
        #[allow(non_snake_case)]
        mod $transport {
            use super::*;
            suite!(@tests $transport:
                method_shapes,
                concurrent_calls_complete_out_of_order,
                deadline_fails_the_call_and_stops_the_handler,
                dropping_a_call_cancels_the_handler,
                oneway_calls_reach_the_server,
                a_panicking_handler_fails_only_its_call,
                unknown_methods_leave_the_connection_up,
                schema_skew_gets_a_typed_error,
                oversized_requests_fail_locally
                $(, $extra)*
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

suite!(
    Tcp: [connection_loss_fails_every_pending_call, a_peer_of_another_version_gets_a_clear_error],
    Unix: [connection_loss_fails_every_pending_call, a_peer_of_another_version_gets_a_clear_error],
    Memory: [connection_loss_fails_every_pending_call, a_peer_of_another_version_gets_a_clear_error],
    PipePair: [connection_loss_fails_every_pending_call, a_peer_of_another_version_gets_a_clear_error],
    FifoPair: [connection_loss_fails_every_pending_call, a_peer_of_another_version_gets_a_clear_error],
    FifoListener: [connection_loss_fails_every_pending_call, a_peer_of_another_version_gets_a_clear_error],
    PipeChild: [],
    MemoryMessages: [],
);
