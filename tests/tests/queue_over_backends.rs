//! Persistent queued calls, one suite over both backends (`rpc_tests::backend`): the embedded
//! SQLite file queue and JetStream (a real `nats-server` per test). Stored before the caller's
//! await returns, run later by whichever worker is up, at least once, never twice for one id,
//! dead-lettered after bounded attempts, expired at their absolute deadline, kept for the
//! retention time, and nothing lost when a worker process holding a call is killed with SIGKILL.
//! A broker kill is in `nats_queue.rs`; the queue file reopened, below.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::embedded::{FileQueue, FileQueueConfig, FileWorker};
use rpc_runtime::queued::{CallState, PersistentQueue, QueuedCall};
use rpc_runtime::{Call, Format, MethodRef, RpcError};
use rpc_tests::backend::{Backend, Embedded, QueueSettings};
use rpc_tests::work::{WorkImpl, WorkQueue, WorkServer};
use rpc_tests::{per_backend, within};

static ADD: MethodRef = MethodRef::dynamic("test.Work", "add", MethodKind::Unary, 0);
static SLEEP: MethodRef = MethodRef::dynamic("test.Work", "sleep_ms", MethodKind::Unary, 0);
static WHOAMI: MethodRef = MethodRef::dynamic("test.Work", "whoami", MethodKind::Unary, 0);
static EXPLODE: MethodRef = MethodRef::dynamic("test.Work", "explode", MethodKind::Unary, 0);
static POKE: MethodRef = MethodRef::dynamic("test.Work", "poke", MethodKind::Oneway, 0);

per_backend!(
    a_call_stored_with_no_worker_runs_when_one_starts,
    a_duplicate_submission_runs_once,
    a_handler_that_always_panics_is_dead_lettered_after_the_attempts,
    a_queued_call_expires_at_its_absolute_deadline,
    a_result_fetched_after_its_retention_is_expired,
    a_worker_process_killed_while_running_a_call_loses_nothing,
    a_schema_mismatch_is_a_final_outcome,
    typed_persistent_calls_from_the_generated_queue_client,
);

fn call<A: serde::Serialize>(method: &'static MethodRef, args: A) -> Call {
    Call::new(method, Format::Postcard, postcard::to_stdvec(&args).unwrap())
}

/// The decoded result of a finished call.
fn result<T: serde::de::DeserializeOwned>(state: CallState) -> T {
    match state {
        CallState::Done(Ok(reply)) => postcard::from_bytes(&reply.body).expect("decode"),
        other => panic!("expected a result, got {other:?}"),
    }
}

async fn a_call_stored_with_no_worker_runs_when_one_starts<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings::default();
    let calls = backend.queue(&settings).await;
    let handle = within(10, "submit", calls.submit(call(&ADD, (2i64, 3i64)))).await.expect("stored");
    assert!(matches!(calls.fetch_result(&handle.id).await.unwrap(), CallState::Pending));
    // A one-way method is stored and run too; its outcome is an empty result.
    let poke = calls.submit(call(&POKE, ())).await.expect("stored");

    let work = WorkImpl::named("late");
    let worker = backend.queue_worker(work.clone(), &settings, 64).await;
    let state = calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(result::<i64>(state), 5);
    assert!(matches!(
        calls.wait_result(&poke.id, Duration::from_secs(20)).await.unwrap(),
        CallState::Done(Ok(_))
    ));
    assert_eq!(work.poked.load(Ordering::SeqCst), 1);

    // Another client of the queue holding the id reads the same outcome.
    let elsewhere = backend.queue(&settings).await;
    assert_eq!(result::<i64>(elsewhere.fetch_result(&handle.id).await.unwrap()), 5);
    assert!(matches!(elsewhere.fetch_result("never-stored").await.unwrap(), CallState::Expired));
    // A bad id is refused before anything is stored.
    let err = calls.submit_with_id(call(&ADD, (1i64, 1i64)), "not an id").await.unwrap_err();
    assert!(matches!(err, RpcError::Encode(_)), "{err}");
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn a_duplicate_submission_runs_once<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings::default();
    let calls = backend.queue(&settings).await;
    let first = calls.submit_with_id(call(&SLEEP, (0u64,)), "job-1").await.unwrap();
    let second = calls.submit_with_id(call(&SLEEP, (0u64,)), "job-1").await.unwrap();
    assert_eq!(first, second);

    let work = WorkImpl::named("once");
    // One call at a time, in order: the sentinel below finishes after anything stored before it.
    let worker = backend.queue_worker(work.clone(), &settings, 1).await;
    within(20, "the call", calls.wait_result("job-1", Duration::from_secs(20))).await.unwrap();
    // Submitted again after it ran: still nothing stored, nothing run.
    calls.submit_with_id(call(&SLEEP, (0u64,)), "job-1").await.unwrap();
    let sentinel = calls.submit(call(&WHOAMI, ())).await.unwrap();
    assert_eq!(
        result::<String>(calls.wait_result(&sentinel.id, Duration::from_secs(20)).await.unwrap()),
        "once"
    );
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), 1, "three submissions of one id ran once");
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn a_handler_that_always_panics_is_dead_lettered_after_the_attempts<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings { max_attempts: 3, ..QueueSettings::default() };
    let calls = backend.queue(&settings).await;
    let worker = backend.queue_worker(WorkImpl::named("doomed"), &settings, 64).await;
    let handle = calls.submit(call(&EXPLODE, ())).await.unwrap();
    match calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap() {
        CallState::DeadLetter { attempts: 3, error: RpcError::HandlerPanicked } => {}
        other => panic!("expected a dead letter after 3 attempts, got {other:?}"),
    }
    // The worker carries on.
    let next = calls.submit(call(&ADD, (1i64, 1i64))).await.unwrap();
    assert_eq!(result::<i64>(calls.wait_result(&next.id, Duration::from_secs(20)).await.unwrap()), 2);
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn a_queued_call_expires_at_its_absolute_deadline<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings::default();
    let calls = backend.queue(&settings).await;
    let mut expired = call(&SLEEP, (0u64,));
    // A deadline that has passed by the time any worker can see the call: stored as an absolute
    // time, it must stop the call without a worker having to wait for anything.
    expired.deadline = Some(tokio::time::Instant::now());
    let handle = calls.submit(expired).await.unwrap();
    let work = WorkImpl::named("too-late");
    let worker = backend.queue_worker(work.clone(), &settings, 64).await;
    match calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap() {
        CallState::Done(Err(RpcError::DeadlineExceeded)) => {}
        other => panic!("expected an expired call, got {other:?}"),
    }
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), 0, "an expired call does not run");
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn a_result_fetched_after_its_retention_is_expired<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings { retention: Duration::from_secs(1), ..QueueSettings::default() };
    let calls = backend.queue(&settings).await;
    let worker = backend.queue_worker(WorkImpl::named("brief"), &settings, 64).await;
    let handle = calls.submit(call(&ADD, (1i64, 2i64))).await.unwrap();
    assert_eq!(result::<i64>(calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap()), 3);
    // Retention is wall-clock time after the outcome was written (the broker removes it on its
    // own timer); ask until it is gone (a hang guard bounds the wait).
    within(20, "the result expires", async {
        while !matches!(calls.fetch_result(&handle.id).await.unwrap(), CallState::Expired) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn a_worker_process_killed_while_running_a_call_loses_nothing<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings { ack_wait: Duration::from_secs(1), ..QueueSettings::default() };
    let calls = backend.queue(&settings).await;
    let mut first = backend.queue_worker_process("first");
    let handle = calls.submit(call(&SLEEP, (1500u64,))).await.unwrap();
    assert_eq!(first.next_line(), "sleeping");
    first.kill();
    // The call comes back after the ack wait, to the worker that is up.
    let _second = backend.queue_worker_process("second");
    let state = within(30, "the call runs again", calls.wait_result(&handle.id, Duration::from_secs(25)))
        .await
        .unwrap();
    assert_eq!(result::<String>(state), "second");
}

async fn a_schema_mismatch_is_a_final_outcome<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings::default();
    let calls = backend.queue(&settings).await;
    let worker = backend.queue_worker(WorkImpl::named("current"), &settings, 64).await;
    static WRONG: MethodRef = MethodRef::dynamic("test.Work", "add", MethodKind::Unary, 1);
    let handle = calls.submit(call(&WRONG, (1i64, 2i64))).await.unwrap();
    match calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap() {
        CallState::Done(Err(RpcError::SignatureMismatch { method, .. })) => {
            assert_eq!(method, "test.Work.add")
        }
        other => panic!("expected a signature mismatch, got {other:?}"),
    }
    worker.shutdown(Duration::from_secs(1)).await;
}

/// `#[rpc(persistent)]` methods through the generated `WorkQueue`: typed arguments and results,
/// the call id that another client resumes, an id submitted twice, a deadline, a dead letter.
async fn typed_persistent_calls_from_the_generated_queue_client<B: Backend>() {
    let backend = B::start().await;
    let settings = QueueSettings { max_attempts: 2, ..QueueSettings::default() };
    let work = WorkQueue::new(backend.queue(&settings).await);
    let sum: QueuedCall<i64> = within(10, "submit", work.submit_add(2, 3)).await.expect("stored");
    assert!(sum.fetch().await.unwrap().is_pending(), "no worker yet");
    let poke: QueuedCall<()> = work.submit_poke().await.unwrap();
    let once = work.submit_sleep_ms_with_id("typed-1", 0).await.unwrap();
    let twice = work.submit_sleep_ms_with_id("typed-1", 0).await.unwrap();
    assert_eq!((once.id(), twice.id()), ("typed-1", "typed-1"));
    let late = work.with_timeout(Duration::ZERO).submit_sleep_ms(0).await.unwrap();
    let doomed = work.submit_explode().await.unwrap();

    let runs = WorkImpl::named("typed");
    let worker = backend.queue_worker(runs.clone(), &settings, 1).await;
    let wait = Duration::from_secs(20);
    assert!(matches!(sum.wait(wait).await.unwrap(), CallState::Done(Ok(5))));
    assert!(matches!(poke.wait(wait).await.unwrap(), CallState::Done(Ok(()))));
    assert!(matches!(&once.wait(wait).await.unwrap(), CallState::Done(Ok(name)) if name == "typed"));
    assert!(matches!(late.wait(wait).await.unwrap(), CallState::Done(Err(RpcError::DeadlineExceeded))));
    match doomed.wait(wait).await.unwrap() {
        CallState::DeadLetter { attempts: 2, error: RpcError::HandlerPanicked } => {}
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(
        runs.sleeps_started.load(Ordering::SeqCst),
        1,
        "the id submitted twice ran once; the late call never"
    );
    assert_eq!(runs.poked.load(Ordering::SeqCst), 1);

    // Another client of the queue, holding only the id, reads the typed result.
    let elsewhere = WorkQueue::new(backend.queue(&settings).await);
    let resumed: QueuedCall<i64> = elsewhere.resume_add(sum.id());
    assert!(matches!(resumed.fetch().await.unwrap(), CallState::Done(Ok(5))));
    worker.shutdown(Duration::from_secs(1)).await;
}

/// The file queue's counterpart of the broker kill: calls stored by one opening of the file,
/// which is then closed, are run by a worker of a later opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_the_queue_file_survive_it_being_closed_and_reopened() {
    let backend = Embedded::start().await;
    let config = FileQueueConfig::default();
    let calls = FileQueue::open(backend.path(), config.clone()).await.unwrap();
    let handles: Vec<_> =
        futures::future::join_all((0..5i64).map(|i| calls.submit_method(&ADD, (i, 100i64))))
            .await
            .into_iter()
            .map(|h| h.expect("stored"))
            .collect();
    drop(calls);
    let reopened = FileQueue::open(backend.path(), config).await.unwrap();
    let worker = FileWorker::new(WorkServer::new(WorkImpl::named("after"))).serve(&reopened);
    for (i, handle) in handles.iter().enumerate() {
        let state = reopened.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(result::<i64>(state), i as i64 + 100);
    }
    worker.shutdown(Duration::from_secs(1)).await;
}

/// A call larger than the file queue's bound is refused before anything is stored, with the
/// sizes; the queue carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_the_file_queues_bound_is_refused() {
    let backend = Embedded::start().await;
    let config = FileQueueConfig { max_call_bytes: 64 * 1024, ..FileQueueConfig::default() };
    let calls = FileQueue::open(backend.path(), config).await.unwrap();
    static ECHO: MethodRef = MethodRef::dynamic("test.Work", "echo", MethodKind::Unary, 0);
    let err = calls.submit_method(&ECHO, (vec![1u8; 100_000],)).await.unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { len, max: 65_536 } if len > 100_000), "{err}");
    let fits = calls.submit_method(&ECHO, (vec![1u8; 1000],)).await.unwrap();
    assert!(calls.fetch_result(&fits.id).await.unwrap().is_pending());
}

/// A worker that is killed on every attempt (its lease ends without an outcome each time) does
/// not leave the call pending forever: after the attempts it is a dead letter saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_workers_keep_dying_is_dead_lettered() {
    let backend = Embedded::start().await;
    let config =
        FileQueueConfig { max_attempts: 2, ack_wait: Duration::from_secs(1), ..FileQueueConfig::default() };
    let calls = FileQueue::open(backend.path(), config).await.unwrap();
    let handle = calls.submit_method(&SLEEP, (60_000u64,)).await.unwrap();
    for name in ["one", "two"] {
        let mut worker = backend.queue_worker_process(name);
        assert_eq!(worker.next_line(), "sleeping");
        worker.kill();
    }
    // A worker with the same settings finds the lease ended a second time, with no attempts left.
    let work = WorkImpl::named("three");
    let third = FileWorker::new(WorkServer::new(work.clone())).serve(&calls);
    match calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap() {
        CallState::DeadLetter { attempts: 2, error: RpcError::Cancelled(why) } => {
            assert!(why.contains("stopped before finishing"), "{why}")
        }
        other => panic!("expected a dead letter after 2 attempts, got {other:?}"),
    }
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), 0, "the dead letter did not run again");
    third.shutdown(Duration::from_secs(1)).await;
}

/// A stored call the file queue cannot read (a row written by something else, its `oneway` a
/// word) is taken out as a dead letter saying why, and the calls behind it still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_call_that_cannot_be_read_is_dead_lettered_and_the_rest_run() {
    let backend = Embedded::start().await;
    let calls = FileQueue::open(backend.path(), FileQueueConfig::default()).await.unwrap();
    {
        let db = rusqlite::Connection::open(backend.path()).unwrap();
        db.execute(
            "INSERT INTO calls (id, service, method, oneway, format, signature, metadata, body, stored_ms, visible_ms) \
             VALUES ('foreign', 'test.Work', 'add', 'yes', 0, 0, x'', x'', 0, 0)",
            [],
        )
        .unwrap();
    }
    let handle = calls.submit_method(&ADD, (2i64, 3i64)).await.unwrap();
    let worker = FileWorker::new(WorkServer::new(WorkImpl::named("w"))).serve(&calls);
    let state = calls.wait_result(&handle.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(result::<i64>(state), 5, "the call behind the unreadable one ran");
    let foreign = calls.fetch_result("foreign").await.unwrap();
    assert!(
        matches!(&foreign, CallState::DeadLetter { error: RpcError::Decode(m), .. } if m.contains("cannot be read")),
        "{foreign:?}"
    );
    worker.shutdown(Duration::from_secs(1)).await;
}
