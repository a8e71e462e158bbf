//! The same `#[service]` through a real NATS broker (`nats-server`, started per test by
//! `rpc_tests::nats::Broker`): balanced calls over worker processes, broadcast and gather,
//! discovery, typed errors for every fault the binding names, deadlines, and a broker restart.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::nats::async_nats::{self, HeaderMap};
use rpc_runtime::nats::{self, NatsChannel, NatsConnection, NatsServer};
use rpc_runtime::{service, Call, Format, Layered, MethodRef, RpcError};
use rpc_tests::nats::{Broker, WorkClient, WorkImpl, WorkServer, WorkerProcess};
use rpc_tests::within;

async fn connect(broker: &Broker) -> NatsConnection {
    within(10, "connect to the broker", nats::connect(broker.url())).await.expect("connect")
}

async fn serve(connection: &NatsConnection, work: WorkImpl) -> nats::NatsServerHandle {
    NatsServer::new(WorkServer::new(work)).serve(connection).await.expect("serve")
}

/// The error code and message of an error reply from the service API's headers.
fn error_code(reply: &async_nats::Message) -> Option<(String, String)> {
    let h = reply.headers.as_ref()?;
    let code = h.get("Nats-Service-Error-Code")?.as_str().to_owned();
    Some((code, h.get("Nats-Service-Error").map(|v| v.as_str().to_owned()).unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_calls_through_the_broker() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let work = WorkImpl::named("solo");
    let server = serve(&connection, work.clone()).await;
    let client = WorkClient::from_service(NatsChannel::new(&connection));
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

    // JSON on the wire: the server answers in the call's format.
    let json =
        WorkClient::with_channel(Layered::new(NatsChannel::new(&connection)).with_format(Format::Json));
    assert_eq!(within(10, "json call", json.add(40, 2)).await.unwrap(), 42);

    // Metadata travels as headers and reaches the handler's context.
    let traced = tower::ServiceBuilder::new()
        .map_request(|mut call: Call| {
            call.metadata.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
            call
        })
        .service(NatsChannel::new(&connection));
    let traced = WorkClient::from_service(traced);
    let seen = within(10, "metadata call", traced.metadata("traceparent".into())).await.unwrap();
    assert_eq!(seen.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_calls_and_all_hear_broadcasts() {
    let broker = Broker::start();
    let url = broker.url();
    let workers: Vec<WorkerProcess> =
        ["w1", "w2", "w3"].iter().map(|name| WorkerProcess::start(&url, name, false)).collect();
    let connection = connect(&broker).await;
    let channel = NatsChannel::new(&connection);
    let client = WorkClient::from_service(channel.clone());

    // Balanced: each call goes to one worker; over 90 calls, each worker serves some (the
    // chance that a random split leaves one out is 3 * (2/3)^90, about 1e-15).
    let calls = (0..90).map(|_| client.whoami());
    let names = within(30, "90 calls", futures::future::join_all(calls)).await;
    let mut served = BTreeMap::<String, usize>::new();
    for name in names {
        *served.entry(name.expect("call")).or_default() += 1;
    }
    assert_eq!(served.keys().collect::<Vec<_>>(), ["w1", "w2", "w3"], "{served:?}");
    assert_eq!(served.values().sum::<usize>(), 90);

    // Discovery: the service API lists the three instances with their methods.
    let found =
        within(10, "instances", nats::instances(&connection, "test.Work", Duration::from_millis(500)))
            .await
            .expect("instances");
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().all(|i| i.methods.iter().any(|m| m == "add")), "{found:?}");
    assert!(found.iter().all(|i| i.metadata.get("rpc.service").map(String::as_str) == Some("test.Work")));

    // Broadcast: a one-way call reaches every worker; a gather then hears each one once.
    WorkClient::from_service(channel.broadcasting()).poke().await.expect("broadcast");
    static POKES: MethodRef = MethodRef::dynamic("test.Work", "pokes", MethodKind::Unary, 0);
    let pokes: Vec<Result<u64, RpcError>> =
        within(10, "gather", channel.gather_method(&POKES, (), Duration::from_millis(500)))
            .await
            .expect("gather");
    assert_eq!(pokes.len(), 3, "{pokes:?}");
    assert!(pokes.iter().all(|p| matches!(p, Ok(1))), "each worker was poked once: {pokes:?}");
    static WHOAMI: MethodRef = MethodRef::dynamic("test.Work", "whoami", MethodKind::Unary, 0);
    let mut names: Vec<String> = channel
        .gather_method(&WHOAMI, (), Duration::from_millis(500))
        .await
        .expect("gather")
        .into_iter()
        .map(|r| r.expect("reply"))
        .collect();
    names.sort();
    assert_eq!(names, ["w1", "w2", "w3"]);
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_a_retryable_error_at_once() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let client = WorkClient::from_service(NatsChannel::new(&connection));
    let started = std::time::Instant::now();
    // A hang guard of 10 s; the broker answers "no responders" in well under a millisecond.
    let err = within(10, "a call with no server", client.add(1, 2)).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable() && err.never_started(), "{err}");
    assert!(err.to_string().contains("no instance of `test.Work`"), "{err}");
    eprintln!("no responders reported after {:?}", started.elapsed());

    // No broker at all: connecting fails with the same typed error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = nats::connect(format!("nats://127.0.0.1:{port}")).await.unwrap_err();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_mismatches_are_caught_over_nats() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let server = serve(&connection, WorkImpl::named("current")).await;
    let older = WorkV0Client::from_service(NatsChannel::new(&connection));
    let err = within(10, "older client", older.add(1, 2)).await.unwrap_err();
    match &err {
        RpcError::SignatureMismatch { method, detail } => {
            assert_eq!(method, "test.Work.add");
            assert!(detail.contains("(i64,i64)->i64"), "{detail}");
        }
        other => panic!("expected a signature mismatch, got {other}"),
    }
    let newer = WorkV2Client::from_service(NatsChannel::new(&connection));
    assert_eq!(within(10, "shared method", newer.add(1, 2)).await.unwrap(), 3);
    let err = within(10, "missing method", newer.subtract(3, 2)).await.unwrap_err();
    assert!(matches!(&err, RpcError::UnknownMethod(m) if m == "subtract"), "{err}");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_reach_the_server_and_stop_the_handler() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let work = WorkImpl::named("slow");
    let server = serve(&connection, work.clone()).await;

    // The caller's deadline: the caller gives up, and so does the server.
    let client =
        WorkClient::from_service(NatsChannel::new(&connection).with_timeout(Duration::from_millis(200)));
    let err = within(10, "a call past its deadline", client.sleep_ms(60_000)).await.unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded), "{err}");

    // The server enforces the deadline of the header itself: a raw request that waits longer
    // than its `Rpc-Timeout-Us` gets the server's DEADLINE_EXCEEDED (code 4).
    let raw = connection.client();
    let body = postcard::to_stdvec(&(60_000u64,)).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("Rpc-Timeout-Us", "100000");
    let reply = within(
        10,
        "raw request",
        raw.request_with_headers("rpc.test.Work.sleep_ms", headers, body.clone().into()),
    )
    .await
    .expect("reply");
    assert_eq!(error_code(&reply).map(|(c, _)| c).as_deref(), Some("4"));
    assert_eq!(work.sleeps_finished.load(Ordering::SeqCst), 0, "no handler slept to the end");

    // A deadline already spent: refused without running the handler.
    let started_before = work.sleeps_started.load(Ordering::SeqCst);
    let mut headers = HeaderMap::new();
    headers.insert("Rpc-Timeout-Us", "0");
    let reply = within(
        10,
        "expired request",
        raw.request_with_headers("rpc.test.Work.sleep_ms", headers, body.into()),
    )
    .await
    .expect("reply");
    assert_eq!(error_code(&reply).map(|(c, _)| c).as_deref(), Some("4"));
    assert_eq!(work.sleeps_started.load(Ordering::SeqCst), started_before, "the handler did not run");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_broker_limit_are_typed_errors_for_that_call() {
    let broker = Broker::start_with(Some(64 * 1024));
    let connection = connect(&broker).await;
    assert_eq!(connection.max_payload(), 64 * 1024);
    let server = serve(&connection, WorkImpl::named("small")).await;
    let client = WorkClient::from_service(NatsChannel::new(&connection));
    // A request too large: refused before sending, with the sizes.
    let err = within(10, "large request", client.echo(vec![1; 100_000])).await.unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { len, max: 65_536 } if len > 100_000), "{err}");
    // A reply too large: the server says so instead of the reply.
    let err = within(10, "large reply", client.blob(100_000)).await.unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { len, max: 65_536 } if len > 100_000), "{err}");
    // Both were errors of those calls only.
    assert_eq!(within(10, "a call after", client.echo(vec![1; 1000])).await.unwrap().len(), 1000);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_get_named_errors_and_the_server_carries_on() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let server = serve(&connection, WorkImpl::named("target")).await;
    let raw = connection.client();
    let add = postcard::to_stdvec(&(1i64, 2i64)).unwrap();
    let cases: [(&str, &str, Vec<u8>, &str, &str); 5] = [
        ("Rpc-Timeout-Us", "soon", add.clone(), "9", "Rpc-Timeout-Us"),
        ("Rpc-Signature", "not-hex", add.clone(), "9", "Rpc-Signature"),
        ("Rpc-Format", "xml", add.clone(), "2", "xml"),
        ("Rpc-Call-Id", "1", vec![0xff; 3], "2", ""),
        ("Rpc-Signature", "0000000000000001", add.clone(), "12", "test.Work.add"),
    ];
    for (header, value, body, code, says) in cases {
        let mut headers = HeaderMap::new();
        headers.insert(header, value);
        let reply =
            within(10, "forged request", raw.request_with_headers("rpc.test.Work.add", headers, body.into()))
                .await
                .expect("a reply");
        let (got, message) = error_code(&reply).expect("an error reply");
        assert_eq!(got, code, "{header}: {value}: {message}");
        assert!(message.contains(says), "{header}: {message}");
    }
    // Garbage with no reply subject: nothing to answer, nothing breaks.
    raw.publish("rpc.test.Work.add", vec![0xff; 10].into()).await.unwrap();
    let client = WorkClient::from_service(NatsChannel::new(&connection));
    assert_eq!(within(10, "a good call after", client.add(2, 2)).await.unwrap(), 4);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_instance_refuses_calls_beyond_its_limit() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let work = WorkImpl::named("busy");
    let server =
        NatsServer::new(WorkServer::new(work.clone())).max_concurrent(1).serve(&connection).await.unwrap();
    let client = WorkClient::from_service(NatsChannel::new(&connection));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_fails_pending_calls_and_the_client_reconnects() {
    let mut broker = Broker::start();
    let server_connection = connect(&broker).await;
    let work = WorkImpl::named("survivor");
    let server = serve(&server_connection, work.clone()).await;
    let connection = connect(&broker).await;
    let client = WorkClient::from_service(NatsChannel::new(&connection));

    let sleeping = work.sleeping.notified();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.sleep_ms(60_000).await }
    });
    within(10, "the call starts", sleeping).await;
    broker.kill();
    let err = within(10, "the pending call fails", pending).await.unwrap().unwrap_err();
    assert!(matches!(err, RpcError::ConnectionClosed(_)), "{err}");
    assert!(!err.never_started(), "the call may have run");
    // While the broker is down, a new call fails at once and says it never started.
    let err = within(10, "a call while down", client.add(1, 1)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    broker.restart();
    within(30, "the server reconnects", server_connection.wait_connected()).await.unwrap();
    within(30, "the client reconnects", connection.wait_connected()).await.unwrap();
    assert_eq!(within(10, "a call after the restart", client.add(20, 22)).await.unwrap(), 42);
    server.shutdown(Duration::from_secs(1)).await;
}

/// A call through the untyped seam: the same channel as a `tower::Service<Call>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_is_a_tower_service_of_calls() {
    use tower::ServiceExt;
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let server = serve(&connection, WorkImpl::named("tower")).await;
    static ADD: MethodRef = MethodRef::dynamic("test.Work", "add", MethodKind::Unary, 0);
    let call = Call::new(&ADD, Format::Postcard, postcard::to_stdvec(&(5i64, 6i64)).unwrap());
    let reply = within(10, "oneshot", NatsChannel::new(&connection).oneshot(call)).await.unwrap();
    assert_eq!(postcard::from_bytes::<i64>(&reply.body).unwrap(), 11);
    server.shutdown(Duration::from_secs(1)).await;
}
