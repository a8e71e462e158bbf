//! What only a broker has, through a real NATS broker (`nats-server`, started per test by
//! `rpc_tests::nats::Broker`): the headers on the wire (forged ones, the server's own deadline
//! check), the broker's payload limit, no broker at all, and a broker restart. The behaviour the
//! embedded bus shares (balancing over worker processes, broadcast and gather, discovery,
//! schema mismatches, deadlines, limits) is `calls_over_backends.rs`, run over both.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::nats::async_nats::{self, HeaderMap};
use rpc_runtime::nats::{self, NatsChannel, NatsConnection, NatsServer};
use rpc_runtime::RpcError;
use rpc_tests::nats::{Broker, WorkClient, WorkImpl, WorkServer};
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
async fn no_broker_is_a_retryable_error_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = within(10, "connect", nats::connect(format!("nats://127.0.0.1:{port}"))).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_enforces_the_deadline_header_itself() {
    let broker = Broker::start();
    let connection = connect(&broker).await;
    let work = WorkImpl::named("slow");
    let server = serve(&connection, work.clone()).await;

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
    // Each client restores its subscriptions on the new connection in the background: until the
    // instance's method subscriptions are back, a call is refused with the retryable
    // `Unavailable` that says the instance is resubscribing (its service API answered first).
    // That is the documented answer, so the caller retries, after a round trip (PING/PONG) on
    // each connection rather than a sleep; the call must then succeed.
    let after = within(30, "a call after the restart", async {
        let mut refusals = 0;
        loop {
            match client.add(20, 22).await {
                Err(e @ RpcError::Unavailable { .. }) if refusals < 100 => {
                    assert!(e.to_string().contains("resubscribing"), "{e}");
                    refusals += 1;
                    server_connection.client().flush().await.unwrap();
                    connection.client().flush().await.unwrap();
                }
                other => break other,
            }
        }
    })
    .await;
    assert_eq!(after.unwrap_or_else(|e| panic!("a call after the restart: {e:?}")), 42);
    server.shutdown(Duration::from_secs(1)).await;
}

/// "No responders" for a method an instance lists in the service API (it has the method, but not
/// a subscription on the caller's subject: here another prefix; after a broker restart, an
/// instance still resubscribing) is a retryable `Unavailable`, not `UnknownMethod`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_lists_the_method_but_is_not_subscribed_is_unavailable_not_unknown() {
    let broker = Broker::start();
    let server_connection = connect(&broker).await;
    let server = NatsServer::new(WorkServer::new(WorkImpl::named("elsewhere")))
        .prefix("elsewhere")
        .serve(&server_connection)
        .await
        .expect("serve");
    let connection = connect(&broker).await;
    let client = WorkClient::from_service(NatsChannel::new(&connection));
    let err = within(10, "a call on the default prefix", client.add(1, 2)).await.unwrap_err();
    assert!(matches!(err, RpcError::Unavailable { .. }), "{err}");
    assert!(err.is_retryable() && err.never_started(), "{err}");
    assert!(err.to_string().contains("lists the method"), "{err}");
    server.shutdown(Duration::from_secs(1)).await;
}
