//! Persistent queued calls on JetStream surviving the broker's SIGKILL, against a real
//! `nats-server`. The guarantees the file queue shares (stored before the await returns, at
//! least once, one id runs once, dead letters, absolute deadlines, retention, a worker process
//! killed holding a call) are `queue_over_backends.rs`, run over both.

use std::time::Duration;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::nats::{self, CallQueue, CallState, NatsConnection, QueueConfig, QueueWorker};
use rpc_runtime::{Call, Format, MethodRef, RpcError};
use rpc_tests::nats::{Broker, WorkImpl, WorkServer};
use rpc_tests::within;

static ADD: MethodRef = MethodRef::dynamic("test.Work", "add", MethodKind::Unary, 0);

async fn connect(broker: &Broker) -> NatsConnection {
    within(10, "connect to the broker", nats::connect(broker.url())).await.expect("connect")
}

async fn queue(connection: &NatsConnection, config: QueueConfig) -> CallQueue {
    within(10, "open the queue", CallQueue::open(connection, config)).await.expect("open the queue")
}

/// The decoded result of a finished call.
fn result<T: serde::de::DeserializeOwned>(state: CallState) -> T {
    match state {
        CallState::Done(Ok(reply)) => postcard::from_bytes(&reply.body).expect("decode"),
        other => panic!("expected a result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_calls_survive_a_broker_kill() {
    let mut broker = Broker::start();
    let connection = connect(&broker).await;
    let calls = queue(&connection, QueueConfig::default()).await;
    let handles: Vec<_> =
        futures::future::join_all((0..5i64).map(|i| calls.submit_method(&ADD, (i, 100i64))))
            .await
            .into_iter()
            .map(|h| h.expect("stored"))
            .collect();
    broker.kill();
    broker.restart();
    within(30, "reconnect", connection.wait_connected()).await.unwrap();
    let worker =
        QueueWorker::new(WorkServer::new(WorkImpl::named("after"))).serve(&connection).await.unwrap();
    for (i, handle) in handles.iter().enumerate() {
        let state = calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(result::<i64>(state), i as i64 + 100);
    }
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_the_brokers_limit_is_refused_before_it_is_marked() {
    let broker = Broker::start_with(Some(64 * 1024));
    let connection = connect(&broker).await;
    let calls = queue(&connection, QueueConfig::default()).await;
    static ECHO: MethodRef = MethodRef::dynamic("test.Work", "echo", MethodKind::Unary, 0);
    let body = postcard::to_stdvec(&(vec![1u8; 100_000],)).unwrap();
    let err = calls.submit_with_id(Call::new(&ECHO, Format::Postcard, body), "too-big").await.unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { len, max: 65_536 } if len > 100_000), "{err}");
    // Nothing was stored under the id, not even a pending mark.
    assert!(matches!(calls.fetch_result("too-big").await.unwrap(), CallState::Expired));
}
