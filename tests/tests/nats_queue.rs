//! Persistent queued calls on JetStream, against a real `nats-server`: stored before the caller's
//! await returns, run later by whichever worker is up, at least once, never twice for one id,
//! dead-lettered after bounded attempts, expired at their absolute deadline, kept for the
//! retention time, surviving a worker's and the broker's SIGKILL.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::nats::{self, CallQueue, CallState, NatsConnection, QueueConfig, QueueWorker};
use rpc_runtime::{Call, Format, MethodRef, RpcError};
use rpc_tests::nats::{Broker, WorkImpl, WorkServer, WorkerProcess};
use rpc_tests::within;

static ADD: MethodRef = MethodRef::dynamic("test.Work", "add", MethodKind::Unary, 0);
static SLEEP: MethodRef = MethodRef::dynamic("test.Work", "sleep_ms", MethodKind::Unary, 0);
static WHOAMI: MethodRef = MethodRef::dynamic("test.Work", "whoami", MethodKind::Unary, 0);
static EXPLODE: MethodRef = MethodRef::dynamic("test.Work", "explode", MethodKind::Unary, 0);

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
async fn a_call_stored_with_no_worker_runs_when_one_starts() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let calls = queue(&connection, QueueConfig::default()).await;
    let handle = within(10, "submit", calls.submit_method(&ADD, (2i64, 3i64))).await.expect("stored");
    assert!(matches!(calls.fetch_result(&handle.id).await.unwrap(), CallState::Pending));

    let worker = QueueWorker::new(WorkServer::new(WorkImpl::named("late"))).serve(&connection).await.unwrap();
    let state = calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(result::<i64>(state), 5);

    // Another process holding the id reads the same outcome.
    let elsewhere = queue(&connect(&broker).await, QueueConfig::default()).await;
    assert_eq!(result::<i64>(elsewhere.fetch_result(&handle.id).await.unwrap()), 5);
    assert!(matches!(elsewhere.fetch_result("never-stored").await.unwrap(), CallState::Expired));
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_submission_runs_once() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let calls = queue(&connection, QueueConfig::default()).await;
    let sleep = || Call::new(&SLEEP, Format::Postcard, postcard::to_stdvec(&(0u64,)).unwrap());
    let first = calls.submit_with_id(sleep(), "job-1").await.unwrap();
    let second = calls.submit_with_id(sleep(), "job-1").await.unwrap();
    assert_eq!(first, second);

    let work = WorkImpl::named("once");
    // One call at a time, in order: the sentinel below finishes after anything stored before it.
    let worker =
        QueueWorker::new(WorkServer::new(work.clone())).max_concurrent(1).serve(&connection).await.unwrap();
    within(20, "the call", calls.wait_result("job-1", Duration::from_secs(20))).await.unwrap();
    // Submitted again after it ran: still nothing stored, nothing run.
    calls.submit_with_id(sleep(), "job-1").await.unwrap();
    let sentinel = calls.submit_method(&WHOAMI, ()).await.unwrap();
    assert_eq!(
        result::<String>(calls.wait_result(&sentinel.id, Duration::from_secs(20)).await.unwrap()),
        "once"
    );
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), 1, "three submissions of one id ran once");
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_always_panics_is_dead_lettered_after_the_attempts() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let config = QueueConfig { max_attempts: 3, ..QueueConfig::default() };
    let calls = queue(&connection, config.clone()).await;
    let worker = QueueWorker::new(WorkServer::new(WorkImpl::named("doomed")))
        .config(config)
        .serve(&connection)
        .await
        .unwrap();
    let handle = calls.submit_method(&EXPLODE, ()).await.unwrap();
    match calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap() {
        CallState::DeadLetter { attempts: 3, error: RpcError::HandlerPanicked } => {}
        other => panic!("expected a dead letter after 3 attempts, got {other:?}"),
    }
    // The worker carries on.
    let next = calls.submit_method(&ADD, (1i64, 1i64)).await.unwrap();
    assert_eq!(result::<i64>(calls.wait_result(&next.id, Duration::from_secs(20)).await.unwrap()), 2);
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_expires_at_its_absolute_deadline() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let calls = queue(&connection, QueueConfig::default()).await;
    let mut call = Call::new(&SLEEP, Format::Postcard, postcard::to_stdvec(&(0u64,)).unwrap());
    // A deadline that has passed by the time any worker can see the call: stored as an absolute
    // time, it must stop the call without a worker having to wait for anything.
    call.deadline = Some(tokio::time::Instant::now());
    let handle = calls.submit(call).await.unwrap();
    let work = WorkImpl::named("too-late");
    let worker = QueueWorker::new(WorkServer::new(work.clone())).serve(&connection).await.unwrap();
    match calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap() {
        CallState::Done(Err(RpcError::DeadlineExceeded)) => {}
        other => panic!("expected an expired call, got {other:?}"),
    }
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), 0, "an expired call does not run");
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_fetched_after_its_retention_is_expired() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let config = QueueConfig { retention: Duration::from_secs(1), ..QueueConfig::default() };
    let calls = queue(&connection, config.clone()).await;
    let worker = QueueWorker::new(WorkServer::new(WorkImpl::named("brief")))
        .config(config)
        .serve(&connection)
        .await
        .unwrap();
    let handle = calls.submit_method(&ADD, (1i64, 2i64)).await.unwrap();
    assert_eq!(result::<i64>(calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap()), 3);
    // The broker removes entries older than the retention on its own timer; ask until it has
    // (a hang guard bounds the wait).
    within(20, "the result expires", async {
        while !matches!(calls.fetch_result(&handle.id).await.unwrap(), CallState::Expired) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_running_a_call_loses_nothing() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let calls =
        queue(&connection, QueueConfig { ack_wait: Duration::from_secs(1), ..QueueConfig::default() }).await;
    let mut first = WorkerProcess::start(&broker.url(), "first", true);
    let handle = calls.submit_method(&SLEEP, (1500u64,)).await.unwrap();
    assert_eq!(first.next_line(), "sleeping");
    first.kill();
    // The broker delivers the unacked call again after the ack wait, to the worker that is up.
    let _second = WorkerProcess::start(&broker.url(), "second", true);
    let state = within(30, "the call runs again", calls.wait_result(&handle.id, Duration::from_secs(25)))
        .await
        .unwrap();
    assert_eq!(result::<String>(state), "second");
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
