//! Calls through a bus, one suite over both backends (`rpc_tests::backend`): the embedded
//! in-process bus and NATS (a real `nats-server` per test, worker processes). Generated clients,
//! balancing over three instances, broadcast and gather, discovery, no instance as a retryable
//! error, schema mismatches, deadlines, the concurrency limit, and the channel as a tower service.
//! The faults only a broker has (forged headers, payload limits, a broker restart) are in
//! `nats_calls.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::{service, Call, Format, Layered, MethodRef, RpcError};
use rpc_tests::backend::Backend;
use rpc_tests::work::{WorkClient, WorkImpl};
use rpc_tests::{per_backend, within};

per_backend!(
    a_generated_client_calls_through_the_bus,
    three_instances_share_calls_and_all_hear_broadcasts,
    no_instance_is_a_retryable_error_at_once,
    schema_mismatches_are_caught,
    deadlines_reach_the_server_and_stop_the_handler,
    a_busy_instance_refuses_calls_beyond_its_limit,
    the_channel_is_a_tower_service_of_calls,
);

async fn a_generated_client_calls_through_the_bus<B: Backend>() {
    let backend = B::start().await;
    let work = WorkImpl::named("solo");
    let server = backend.serve(work.clone(), 1024).await;
    let client = WorkClient::from_service(backend.channel(None));
    within(10, "calls", async {
        assert_eq!(client.add(2, 3).await.unwrap(), 5);
        assert_eq!(client.echo(vec![1, 2, 3]).await.unwrap(), vec![1, 2, 3]);
        assert_eq!(client.whoami().await.unwrap(), "solo");
        // A one-way call runs, with no reply.
        let seen = work.poke_seen.notified();
        client.poke().await.unwrap();
        seen.await;
        assert_eq!(client.pokes().await.unwrap(), 1);
    })
    .await;

    // JSON: the server answers in the call's format.
    let json = WorkClient::with_channel(Layered::new(backend.channel(None)).with_format(Format::Json));
    assert_eq!(within(10, "json call", json.add(40, 2)).await.unwrap(), 42);

    // Metadata reaches the handler's context.
    let traced = tower::ServiceBuilder::new()
        .map_request(|mut call: Call| {
            call.metadata.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
            call
        })
        .service(backend.channel(None));
    let traced = WorkClient::from_service(traced);
    let seen = within(10, "metadata call", traced.metadata("traceparent".into())).await.unwrap();
    assert_eq!(seen.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    server.shutdown(Duration::from_secs(1)).await;
}

async fn three_instances_share_calls_and_all_hear_broadcasts<B: Backend>() {
    let backend = B::start().await;
    let instances = backend.instances_named(&["w1", "w2", "w3"]).await;
    let client = WorkClient::from_service(backend.channel(None));

    // Balanced: each call goes to one instance; over 90 calls, each serves some (over NATS the
    // split is random: the chance that it leaves one out is 3 * (2/3)^90, about 1e-15).
    let calls = (0..90).map(|_| client.whoami());
    let names = within(30, "90 calls", futures::future::join_all(calls)).await;
    let mut served = BTreeMap::<String, usize>::new();
    for name in names {
        *served.entry(name.expect("call")).or_default() += 1;
    }
    assert_eq!(served.keys().collect::<Vec<_>>(), ["w1", "w2", "w3"], "{served:?}");
    assert_eq!(served.values().sum::<usize>(), 90);

    // Discovery lists the three instances.
    assert_eq!(within(10, "instances", backend.instances("test.Work")).await, 3);

    // Broadcast: a one-way call reaches every instance, each once; a gather hears them all.
    WorkClient::from_service(backend.broadcasting()).poke().await.expect("broadcast");
    static POKES: MethodRef = MethodRef::dynamic("test.Work", "pokes", MethodKind::Unary, 0);
    // A broadcast is not acknowledged, so its handlers may still be starting: gather until all
    // three have counted it (the hang guard bounds the wait), then check that none counted two.
    let pokes = within(10, "every instance is poked", async {
        loop {
            let pokes: Vec<Result<u64, RpcError>> =
                backend.gather(&POKES, (), Duration::from_millis(500)).await.expect("gather");
            if pokes.len() == 3 && pokes.iter().all(|p| matches!(p, Ok(n) if *n >= 1)) {
                break pokes;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(pokes.iter().all(|p| matches!(p, Ok(1))), "each instance was poked once: {pokes:?}");
    static WHOAMI: MethodRef = MethodRef::dynamic("test.Work", "whoami", MethodKind::Unary, 0);
    let mut names: Vec<String> = backend
        .gather(&WHOAMI, (), Duration::from_millis(500))
        .await
        .expect("gather")
        .into_iter()
        .map(|r: Result<String, RpcError>| r.expect("reply"))
        .collect();
    names.sort();
    assert_eq!(names, ["w1", "w2", "w3"]);
    for instance in instances {
        instance.shutdown(Duration::from_secs(1)).await;
    }
    // Gone from discovery once stopped.
    assert_eq!(within(10, "instances after", backend.instances("test.Work")).await, 0);
}

async fn no_instance_is_a_retryable_error_at_once<B: Backend>() {
    let backend = B::start().await;
    let client = WorkClient::from_service(backend.channel(None));
    // A hang guard of 10 s; the answer comes in well under a millisecond.
    let err = within(10, "a call with no server", client.add(1, 2)).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable() && err.never_started(), "{err}");
    assert!(err.to_string().contains("no instance of `test.Work`"), "{err}");
    // An instance that stopped is no longer called.
    let server = backend.serve(WorkImpl::named("brief"), 1024).await;
    assert_eq!(within(10, "a call", client.add(1, 2)).await.unwrap(), 3);
    server.shutdown(Duration::from_secs(1)).await;
    let err = within(10, "a call after it stopped", client.add(1, 2)).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable { .. }), "{err}");
}

/// The service as an older client knows it: `add` on `i32`s.
#[service(name = "test.Work")]
trait WorkV0 {
    async fn add(&self, a: i32, b: i32) -> i32;
}

/// The service as a newer client knows it: a method the servers do not have yet.
#[service(name = "test.Work")]
trait WorkV2 {
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn subtract(&self, a: i64, b: i64) -> i64;
}

async fn schema_mismatches_are_caught<B: Backend>() {
    let backend = B::start().await;
    let server = backend.serve(WorkImpl::named("current"), 1024).await;
    let older = WorkV0Client::from_service(backend.channel(None));
    let err = within(10, "older client", older.add(1, 2)).await.unwrap_err();
    match &err {
        RpcError::SignatureMismatch { method, detail } => {
            assert_eq!(method, "test.Work.add");
            assert!(detail.contains("(i64,i64)->i64"), "{detail}");
        }
        other => panic!("expected a signature mismatch, got {other}"),
    }
    let newer = WorkV2Client::from_service(backend.channel(None));
    assert_eq!(within(10, "shared method", newer.add(1, 2)).await.unwrap(), 3);
    let err = within(10, "missing method", newer.subtract(3, 2)).await.unwrap_err();
    assert!(matches!(&err, RpcError::UnknownMethod(m) if m == "subtract"), "{err}");
    server.shutdown(Duration::from_secs(1)).await;
}

async fn deadlines_reach_the_server_and_stop_the_handler<B: Backend>() {
    let backend = B::start().await;
    let work = WorkImpl::named("slow");
    let server = backend.serve(work.clone(), 1024).await;
    let client = WorkClient::from_service(backend.channel(Some(Duration::from_millis(200))));
    let sleeping = work.sleeping.notified();
    let err = within(10, "a call past its deadline", client.sleep_ms(60_000)).await.unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded), "{err}");
    sleeping.await;
    // The server stopped the handler at the same deadline: a shutdown that would wait 30 s for
    // a running handler returns within the 10 s hang guard, and no handler slept to the end.
    within(10, "shutdown", server.shutdown(Duration::from_secs(30))).await;
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), 1);
    assert_eq!(work.sleeps_finished.load(Ordering::SeqCst), 0, "no handler slept to the end");
}

async fn a_busy_instance_refuses_calls_beyond_its_limit<B: Backend>() {
    let backend = B::start().await;
    let work = WorkImpl::named("busy");
    let server = backend.serve(work.clone(), 1).await;
    let client = WorkClient::from_service(backend.channel(None));
    let sleeping = work.sleeping.notified();
    let long = tokio::spawn({
        let client = client.clone();
        async move { client.sleep_ms(300).await }
    });
    within(10, "the first call starts", sleeping).await;
    let err = within(10, "a second call", client.add(1, 1)).await.unwrap_err();
    assert!(matches!(err, RpcError::Overloaded(_)) && err.is_retryable(), "{err}");
    assert_eq!(within(10, "the first call ends", long).await.unwrap().unwrap(), "busy");
    server.shutdown(Duration::from_secs(1)).await;
}

/// A call through the untyped seam: the same channel as a `tower::Service<Call>`.
async fn the_channel_is_a_tower_service_of_calls<B: Backend>() {
    use tower::ServiceExt;
    let backend = B::start().await;
    let server = backend.serve(WorkImpl::named("tower"), 1024).await;
    static ADD: MethodRef = MethodRef::dynamic("test.Work", "add", MethodKind::Unary, 0);
    let call = Call::new(&ADD, Format::Postcard, postcard::to_stdvec(&(5i64, 6i64)).unwrap());
    let reply = within(10, "oneshot", backend.channel(None).oneshot(call)).await.unwrap();
    assert_eq!(postcard::from_bytes::<i64>(&reply.body).unwrap(), 11);
    server.shutdown(Duration::from_secs(1)).await;
}
