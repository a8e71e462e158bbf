//! Call semantics: context, deadline propagation, cancellation (including through a relay and
//! under a full slot limit), run-to-completion handlers, limits, graceful shutdown, keepalive,
//! idle timeout and reconnection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::transport::framed::{FrameReader, FrameWriter};
use rpc_runtime::transport::{memory, tcp, unix, Peer};
use rpc_runtime::{service, Client, Context, RpcError, Server};
use rpc_tests::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

/// What a handler saw of its call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallInfo {
    /// The request id.
    pub request_id: u64,
    /// The time left until the deadline, if there was one.
    pub remaining: Option<Duration>,
    /// The peer, as displayed.
    pub peer: String,
    /// The method's wire name.
    pub method: String,
}

/// A service for observing calls.
#[service]
pub trait Hop {
    /// Reports this call's context.
    async fn whoami(&self) -> CallInfo;
    /// Calls `whoami` on the next server and returns what it saw.
    async fn relay(&self) -> CallInfo;
    /// Calls `hold` on the next server.
    async fn relay_hold(&self, tag: u64);
    /// Holds a slot until cancelled, or until the gate opens; counted by the gauge.
    async fn hold(&self, tag: u64);
    /// Like `hold`, but is not stopped by cancellation or deadlines.
    #[rpc(run_to_completion)]
    async fn persist(&self, tag: u64);
    /// Sleeps for `ms` milliseconds of (possibly paused) tokio time.
    async fn nap(&self, ms: u64) -> u64;
    /// Returns `len` bytes; counted by the gauge's `max` field as a running total of calls.
    async fn blob(&self, len: u32) -> Vec<u8>;
}

#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

#[derive(Debug, Clone)]
struct HopImpl {
    next: Option<HopClient>,
    gauge: Arc<Gauge>,
    gate: Arc<Semaphore>,
    started: mpsc::UnboundedSender<u64>,
    ended: mpsc::UnboundedSender<(u64, &'static str)>,
}

struct Observed {
    started: mpsc::UnboundedReceiver<u64>,
    ended: mpsc::UnboundedReceiver<(u64, &'static str)>,
    gauge: Arc<Gauge>,
    gate: Arc<Semaphore>,
}

fn hop(next: Option<HopClient>) -> (HopImpl, Observed) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let gauge = Arc::new(Gauge::default());
    let gate = Arc::new(Semaphore::new(0));
    let imp =
        HopImpl { next, gauge: gauge.clone(), gate: gate.clone(), started: started_tx, ended: ended_tx };
    (imp, Observed { started, ended, gauge, gate })
}

/// Counts a running handler and reports how it ended.
struct Held<'a> {
    imp: &'a HopImpl,
    tag: u64,
    how: &'static str,
}

impl<'a> Held<'a> {
    fn new(imp: &'a HopImpl, tag: u64) -> Self {
        let now = imp.gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        imp.gauge.max.fetch_max(now, Ordering::SeqCst);
        let _ = imp.started.send(tag);
        Held { imp, tag, how: "dropped" }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.imp.gauge.now.fetch_sub(1, Ordering::SeqCst);
        let _ = self.imp.ended.send((self.tag, self.how));
    }
}

impl Hop for HopImpl {
    async fn whoami(&self) -> CallInfo {
        let ctx = Context::current().expect("handlers run with a context");
        CallInfo {
            request_id: ctx.request_id(),
            remaining: ctx.deadline().map(|d| d.saturating_duration_since(tokio::time::Instant::now())),
            peer: ctx.peer().to_string(),
            method: ctx.method().to_string(),
        }
    }

    async fn relay(&self) -> CallInfo {
        self.next.as_ref().expect("a next hop").whoami().await.expect("the inner call succeeds")
    }

    async fn relay_hold(&self, tag: u64) {
        let _held = Held::new(self, tag);
        let _ = self.next.as_ref().expect("a next hop").hold(tag).await;
    }

    async fn hold(&self, tag: u64) {
        let mut held = Held::new(self, tag);
        let _permit = self.gate.acquire().await;
        held.how = "completed";
    }

    async fn persist(&self, tag: u64) {
        self.hold(tag).await
    }

    async fn nap(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    async fn blob(&self, len: u32) -> Vec<u8> {
        self.gauge.max.fetch_add(1, Ordering::SeqCst);
        vec![7; len as usize]
    }
}

/// Serves `imp` on a fresh TCP port and returns a client to it.
async fn serve_tcp(
    imp: HopImpl,
    configure: impl FnOnce(Server) -> Server,
) -> (HopClient, rpc_runtime::ServerHandle) {
    let listener = tcp::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let server = configure(Server::new(HopServer::new(imp)));
    let handle = server.serve(listener);
    (HopClient::new(tcp::connect(addr).await.unwrap()), handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_reports_request_id_deadline_method_and_peer() {
    let (imp, _obs) = hop(None);
    let listener = tcp::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let _server = Server::new(HopServer::new(imp.clone())).serve(listener);
    let conn = tcp::connect(addr).await.unwrap();
    let local = conn.local().unwrap();
    let client = HopClient::new(conn);
    let first = client.with_timeout(Duration::from_secs(5)).whoami().await.unwrap();
    let second = client.with_timeout(None).whoami().await.unwrap();
    assert_eq!(first.method, "whoami");
    assert_eq!(first.peer, format!("tcp:{local}"));
    assert!(second.request_id > first.request_id, "{first:?} {second:?}");
    let remaining = first.remaining.expect("the deadline travelled with the call");
    assert!(remaining <= Duration::from_secs(5) && remaining > Duration::ZERO, "{remaining:?}");
    assert_eq!(second.remaining, None, "no timeout, no deadline");
    assert!(Context::current().is_none(), "no context outside a handler");

    // Over a Unix socket, the peer is the calling process, with its credentials.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctx.sock");
    let _unix_server = Server::new(HopServer::new(imp)).serve(unix::bind(&path).await.unwrap());
    let unix_client = HopClient::new(unix::connect(&path).await.unwrap());
    let info = unix_client.whoami().await.unwrap();
    let me = std::fs::metadata(dir.path()).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap();
    let expected = Peer::Unix { uid: Some(me), gid: None, pid: Some(std::process::id() as i32) }.to_string();
    assert_eq!(info.peer, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_propagates_through_two_hops() {
    let (leaf, _leaf_obs) = hop(None);
    let (leaf_client, _c) = serve_tcp(leaf, |s| s).await;
    assert_eq!(
        leaf_client.as_client().timeout(),
        Some(Duration::from_secs(30)),
        "the middle hop's own default"
    );
    let (middle, _middle_obs) = hop(Some(leaf_client));
    let (client, _b) = serve_tcp(middle, |s| s).await;
    let seen = client.with_timeout(Duration::from_secs(3)).relay().await.unwrap();
    let remaining = seen.remaining.expect("the leaf saw a deadline");
    // Without propagation the leaf would see the middle hop's 30 s default.
    assert!(remaining <= Duration::from_secs(3), "the leaf saw {remaining:?}");
    assert!(remaining > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_outer_call_cancels_the_inner_one() {
    let (leaf, mut leaf_obs) = hop(None);
    let (leaf_client, _c) = serve_tcp(leaf, |s| s).await;
    let (middle, mut middle_obs) = hop(Some(leaf_client));
    let (client, _b) = serve_tcp(middle, |s| s).await;
    let call = tokio::spawn(async move { client.with_timeout(None).relay_hold(7).await });
    assert_eq!(guard("middle starts", middle_obs.started.recv()).await, Some(7));
    assert_eq!(guard("leaf starts", leaf_obs.started.recv()).await, Some(7));
    call.abort();
    assert_eq!(guard("middle dropped", middle_obs.ended.recv()).await, Some((7, "dropped")));
    assert_eq!(guard("leaf dropped", leaf_obs.ended.recv()).await, Some((7, "dropped")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_then_cancel_floods_never_exceed_the_slot_limit() {
    let (imp, mut obs) = hop(None);
    let (client, _server) = serve_tcp(imp, |s| s.max_in_flight(4)).await;
    let client = client.with_timeout(None);
    for tag in 0..10_000 {
        // Polled once (the request is queued), then dropped (the cancel follows it).
        let _ = tokio::time::timeout(Duration::ZERO, client.hold(tag)).await;
    }
    // The server reads a connection in order: once a later call is answered, every request and
    // cancel of the flood has been processed, so no handler of the flood can start any more.
    assert_eq!(guard("a call after the flood", client.nap(0)).await.unwrap(), 0);
    let mut started = 0;
    while obs.started.try_recv().is_ok() {
        started += 1;
    }
    // Every handler that started is dropped; none is left running.
    for _ in 0..started {
        let (_, how) = guard("handlers end", obs.ended.recv()).await.unwrap();
        assert_eq!(how, "dropped");
    }
    assert!(
        obs.gauge.max.load(Ordering::SeqCst) <= 4,
        "ran {} at once",
        obs.gauge.max.load(Ordering::SeqCst)
    );
    assert_eq!(obs.gauge.now.load(Ordering::SeqCst), 0);
    assert_eq!(client.as_client().in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_frees_a_slot_when_every_slot_is_busy() {
    let (imp, mut obs) = hop(None);
    let (client, _server) = serve_tcp(imp, |s| s.max_in_flight(2)).await;
    let client = client.with_timeout(None);
    let first = tokio::spawn({
        let c = client.clone();
        async move { c.hold(1).await }
    });
    let _second = tokio::spawn({
        let c = client.clone();
        async move { c.hold(2).await }
    });
    let mut started = vec![
        guard("start", obs.started.recv()).await.unwrap(),
        guard("start", obs.started.recv()).await.unwrap(),
    ];
    started.sort();
    assert_eq!(started, [1, 2]);
    // Both slots are busy: the third call waits for one, and the server must still read the
    // cancel of the first call behind it.
    let third = tokio::spawn({
        let c = client.clone();
        async move { c.hold(3).await }
    });
    first.abort();
    assert_eq!(guard("first dropped", obs.ended.recv()).await, Some((1, "dropped")));
    assert_eq!(guard("third starts in the freed slot", obs.started.recv()).await, Some(3));
    obs.gate.add_permits(1);
    let (tag, how) = guard("a held call completes", obs.ended.recv()).await.unwrap();
    assert_eq!(how, "completed");
    assert!(tag == 2 || tag == 3);
    obs.gate.add_permits(1);
    guard("third returns", third).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_handlers_outlive_their_caller() {
    let (imp, mut obs) = hop(None);
    let (client, _server) = serve_tcp(imp, |s| s).await;
    let result = client.with_timeout(Duration::from_millis(100)).persist(5).await;
    assert!(matches!(result, Err(RpcError::DeadlineExceeded)), "{result:?}");
    assert_eq!(guard("persist starts", obs.started.recv()).await, Some(5));
    assert!(obs.ended.try_recv().is_err(), "neither the deadline nor the cancel stopped it");
    obs.gate.add_permits(1);
    assert_eq!(guard("persist completes", obs.ended.recv()).await, Some((5, "completed")));
    // Its late response reaches a client that gave up on it: dropped quietly, misrouted to no one.
    assert_eq!(client.nap(3).await.unwrap(), 3);
    assert_eq!(client.as_client().in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_finish_within_the_grace_period() {
    let (imp, mut obs) = hop(None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.sock");
    let server = Server::new(HopServer::new(imp)).serve(unix::bind(&path).await.unwrap());
    let client = HopClient::new(unix::connect(&path).await.unwrap()).with_timeout(None);
    let calls: Vec<_> = (0..3)
        .map(|tag| {
            let c = client.clone();
            tokio::spawn(async move { c.hold(tag).await })
        })
        .collect();
    for _ in 0..3 {
        guard("calls start", obs.started.recv()).await.unwrap();
    }
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(Duration::from_secs(60)).await }
    });
    // New calls are refused with a retryable error once the server has said goaway.
    let refused = guard("a new call is refused", async {
        loop {
            match client.nap(0).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        }
    })
    .await;
    assert!(matches!(refused, RpcError::ShuttingDown), "{refused:?}");
    assert!(refused.is_retryable());
    assert!(!shutdown.is_finished(), "shutdown waits for the calls in flight");
    obs.gate.add_permits(3);
    for call in calls {
        guard("in-flight call", call).await.unwrap().unwrap();
    }
    guard("shutdown", shutdown).await.unwrap();
    assert!(!path.exists(), "the socket file is removed");
    assert!(unix::connect(&path).await.is_err(), "nothing listens any more");
    guard("a second shutdown is harmless", server.shutdown(Duration::from_secs(60))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_still_running_after_the_grace_period_are_cancelled() {
    let (imp, mut obs) = hop(None);
    let (client, server) = serve_tcp(imp, |s| s).await;
    let client = client.with_timeout(None);
    let calls: Vec<_> = (0..2)
        .map(|tag| {
            let c = client.clone();
            tokio::spawn(async move { c.hold(tag).await })
        })
        .collect();
    for _ in 0..2 {
        guard("calls start", obs.started.recv()).await.unwrap();
    }
    guard("shutdown", server.shutdown(Duration::from_millis(50))).await;
    for call in calls {
        let result = guard("cancelled call", call).await.unwrap();
        assert!(matches!(result, Err(RpcError::Cancelled(_))), "{result:?}");
    }
    for _ in 0..2 {
        assert_eq!(guard("handlers dropped", obs.ended.recv()).await.unwrap().1, "dropped");
    }
    guard("shutdown again", server.shutdown(Duration::from_millis(50))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_with_a_retryable_error() {
    let (imp, mut obs) = hop(None);
    let listener = tcp::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let _server = Server::new(HopServer::new(imp)).max_connections(2).serve(listener);
    let a = HopClient::new(tcp::connect(addr).await.unwrap());
    let b = HopClient::new(tcp::connect(addr).await.unwrap());
    assert_eq!(a.nap(0).await.unwrap(), 0);
    assert_eq!(b.nap(0).await.unwrap(), 0);
    // A call running on each: neither is idle, so neither can be evicted to make room (H6).
    let held: Vec<_> = [(&a, 1), (&b, 2)]
        .into_iter()
        .map(|(client, tag)| {
            let client = client.clone();
            tokio::spawn(async move { client.hold(tag).await })
        })
        .collect();
    for _ in 0..2 {
        guard("a held call to start", obs.started.recv()).await.expect("started");
    }
    let c = HopClient::new(tcp::connect(addr).await.unwrap());
    let refused = guard("third connection", c.nap(0)).await;
    assert!(
        matches!(&refused, Err(RpcError::Overloaded(m)) if m.contains("connection limit")),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().is_retryable(), "the call never started");
    // Once a connection closes, its slot is reused.
    held[0].abort();
    drop(a);
    let served = guard("a slot frees", async {
        loop {
            let d = HopClient::new(tcp::connect(addr).await.unwrap());
            if let Ok(v) = d.nap(0).await {
                break v;
            }
        }
    })
    .await;
    assert_eq!(served, 0);
}

/// Plays a server that completes the handshake, reads requests and never answers anything.
async fn silent_server(mut listener: memory::MemoryListener) {
    use rpc_runtime::transport::Listener;
    let (read, write, _, _g) = listener.accept().await.unwrap().unwrap().into_parts();
    let mut reader = FrameReader::new(read, 1 << 20);
    let mut writer = FrameWriter::new(write);
    writer.queue_raw(&rpc_tests::wire::greeting());
    writer.send(&mut Vec::new()).await.unwrap();
    assert_eq!(&reader.read_raw(8).await.unwrap().unwrap()[..], &PREFACE);
    reader.read_frame().await.unwrap().unwrap(); // the HELLO
    while let Ok(Some(_)) = reader.read_frame().await {}
}

#[tokio::test(start_paused = true)]
async fn keepalive_detects_a_silent_server() {
    let (listener, connector) = memory::listener();
    tokio::spawn(silent_server(listener));
    let client = HopClient::from_client(
        Client::builder()
            .timeout(None)
            .keepalive(Duration::from_secs(10))
            .build(connector.connect().unwrap()),
    );
    let started = tokio::time::Instant::now();
    let result = client.nap(1).await;
    match result {
        Err(RpcError::ConnectionClosed(m)) => assert!(m.contains("keepalive"), "{m}"),
        other => panic!("expected a keepalive failure, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(20) && waited < Duration::from_secs(21), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn keepalive_does_not_cut_a_slow_call_to_a_live_server() {
    let (imp, _obs) = hop(None);
    let (listener, connector) = memory::listener();
    let _server = Server::new(HopServer::new(imp)).serve(listener);
    let client = HopClient::from_client(
        Client::builder().timeout(None).keepalive(Duration::from_secs(1)).build(connector.connect().unwrap()),
    );
    assert_eq!(client.nap(60_000).await.unwrap(), 60_000);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed_with_a_reason() {
    let (imp, _obs) = hop(None);
    let (listener, connector) = memory::listener();
    let _server = Server::new(HopServer::new(imp)).idle_timeout(Duration::from_secs(10)).serve(listener);
    let client = HopClient::new(connector.connect().unwrap());
    assert_eq!(client.nap(1).await.unwrap(), 1);
    // A call that lasts longer than the idle timeout does not count as idle.
    assert_eq!(client.nap(15_000).await.unwrap(), 15_000);
    tokio::time::advance(Duration::from_secs(11)).await;
    let result = client.nap(1).await;
    match result {
        Err(RpcError::ConnectionClosed(m)) => assert!(m.contains("idle"), "{m}"),
        other => panic!("expected the idle connection to be closed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_fails_calls_at_the_break_and_never_replays_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("re.sock");
    let client = KitchenClient::from_client(Client::reconnecting({
        let path = path.clone();
        move || unix::connect(path.clone())
    }));

    // The first server reads one call and dies without answering.
    let mut first = unix::bind(&path).await.unwrap();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.hang(99).await }
    });
    {
        use rpc_runtime::transport::Listener;
        let (read, write, _, _g) =
            guard("first connection", first.accept()).await.unwrap().unwrap().into_parts();
        let mut reader = FrameReader::new(read, 1 << 20);
        let mut writer = FrameWriter::new(write);
        writer.queue_raw(&rpc_tests::wire::greeting());
        writer.send(&mut Vec::new()).await.unwrap();
        reader.read_raw(8).await.unwrap();
        reader.read_frame().await.unwrap().unwrap(); // the HELLO
        guard("the request", reader.read_frame()).await.unwrap().unwrap();
    }
    drop(first);
    let failed = guard("the pending call", pending).await.unwrap();
    assert!(matches!(failed, Err(RpcError::ConnectionClosed(_))), "{failed:?}");

    // A new server; the next call reconnects to it, and the failed call is not replayed.
    let second = Server::new(KitchenServer::new(KitchenImpl::new())).serve(unix::bind(&path).await.unwrap());
    assert_eq!(guard("call after the break", client.add(2, 3)).await.unwrap(), 5);
    // Had `hang(99)` been replayed on this server, it would have started by now: the server reads
    // a connection in order, and `add` was answered.
    let replayed = tokio::time::timeout(Duration::from_millis(200), client.next_started()).await;
    assert!(replayed.is_err(), "the call in flight at the break was replayed: {replayed:?}");

    // With no server at all, a fail-fast handle's reconnect attempt fails with the connect error
    // (naming the socket), and a call during the backoff that follows fails at once with the
    // same error, saying when the next attempt is.
    second.shutdown(Duration::from_secs(5)).await;
    guard("the client sees the server go", client.as_client().closed()).await;
    let fail_fast = KitchenClient::from_client(Client::builder().wait_for_ready(false).build_reconnecting({
        let path = path.clone();
        move || unix::connect(path.clone())
    }));
    let no_server = guard("call with no server", fail_fast.add(1, 1)).await;
    match &no_server {
        Err(e @ RpcError::Unavailable { .. }) => {
            assert!(e.to_string().contains(path.to_str().unwrap()), "names the socket: {e}");
            assert!(e.never_started());
        }
        other => panic!("{other:?}"),
    }
    let during_backoff = guard("call during backoff", fail_fast.add(1, 1)).await;
    assert!(matches!(during_backoff, Err(RpcError::Unavailable { .. })), "{during_backoff:?}");
}

/// A connector whose availability the test switches: while down it refuses, as a socket with no
/// listener does; it counts the attempts.
#[derive(Clone)]
struct Switch {
    up: Arc<std::sync::atomic::AtomicBool>,
    attempts: Arc<AtomicUsize>,
    connector: memory::MemoryConnector,
}

impl Switch {
    /// A server on an in-memory listener, down until switched on.
    fn new() -> Switch {
        let (imp, _obs) = hop(None);
        let (listener, connector) = memory::listener();
        tokio::spawn(async move { Server::new(HopServer::new(imp)).serve(listener).wait().await });
        Switch { up: Arc::default(), attempts: Arc::default(), connector }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    fn client(&self, builder: &rpc_runtime::ClientBuilder) -> HopClient {
        let switch = self.clone();
        HopClient::from_client(builder.build_reconnecting(move || {
            switch.attempts.fetch_add(1, Ordering::SeqCst);
            let result = if switch.up.load(Ordering::SeqCst) {
                switch.connector.connect()
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "switched off"))
            };
            async move { result }
        }))
    }
}

/// Wait-for-ready (the default): a call made while the server is down waits through the backoff
/// and succeeds on the first attempt after the server is back, not up to 5 s later. Attempts at
/// 0, 50, 150 ms fail (backoff 50, 100, 200 ms); the server is back at 200 ms; the attempt at
/// 350 ms connects.
#[tokio::test(start_paused = true)]
async fn wait_for_ready_connects_on_the_first_attempt_after_the_server_is_back() {
    let switch = Switch::new();
    let client = switch.client(&Client::builder());
    let t0 = tokio::time::Instant::now();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.nap(0).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(switch.attempts(), 3);
    assert!(!call.is_finished(), "the call waits instead of failing with a stale error");
    switch.set(true);
    assert_eq!(call.await.unwrap().unwrap(), 0);
    assert_eq!(t0.elapsed(), Duration::from_millis(350), "the next attempt connected");
    assert_eq!(switch.attempts(), 4);
}

/// Wait-for-ready stops waiting when the next attempt would come after the call's deadline: the
/// call fails then with the connect error and when the next attempt is, not `DeadlineExceeded`.
#[tokio::test(start_paused = true)]
async fn wait_for_ready_gives_up_when_the_next_attempt_is_past_the_deadline() {
    let switch = Switch::new();
    let client = switch.client(Client::builder().timeout(Duration::from_secs(1)));
    let t0 = tokio::time::Instant::now();
    // Attempts at 0, 50, 150, 350 and 750 ms; the next would be at 1550 ms, past the deadline.
    match client.nap(0).await {
        Err(RpcError::Unavailable { source, retry_in }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            assert_eq!(retry_in, Duration::from_millis(800));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(t0.elapsed(), Duration::from_millis(750));
    assert_eq!(switch.attempts(), 5);
}

/// Fail fast (`wait_for_ready(false)`): during the backoff a call fails at once, saying when the
/// next attempt is, and makes no attempt of its own; once the backoff has passed, the next call
/// connects.
#[tokio::test(start_paused = true)]
async fn fail_fast_says_when_the_next_attempt_is() {
    let switch = Switch::new();
    let client = switch.client(Client::builder().wait_for_ready(false));
    let retry_in = |r: Result<u64, RpcError>| match r {
        Err(e @ RpcError::Unavailable { retry_in, .. }) => {
            assert!(e.to_string().contains("next connection attempt in"), "{e}");
            retry_in
        }
        other => panic!("expected Unavailable, got {other:?}"),
    };
    assert_eq!(retry_in(client.nap(0).await), Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(20)).await;
    switch.set(true);
    assert_eq!(retry_in(client.nap(0).await), Duration::from_millis(30), "still backing off");
    assert_eq!(switch.attempts(), 1, "a call during the backoff makes no attempt");
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(client.nap(0).await.unwrap(), 0);
    assert_eq!(switch.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_disconnected_not_buffered() {
    use rpc_runtime::transport::framed::FrameBuf;
    let (imp, obs) = hop(None);
    let (listener, connector) = memory::listener();
    let write_timeout = Duration::from_secs(5);
    let _server = Server::new(HopServer::new(imp)).write_timeout(write_timeout).serve(listener);
    let (read, write, _, _g) = connector.connect().unwrap().into_parts();
    let mut writer = FrameWriter::new(write);
    writer.queue_raw(&rpc_tests::wire::greeting());
    // 20,000 calls asking for 64 KiB each (1.25 GiB of responses; the requests alone are 5 times
    // the pipe's buffer), and this side never reads.
    let sender = tokio::spawn(async move {
        for id in 1..=20_000u64 {
            let mut req = FrameBuf::with_capacity(16);
            // 65536 as a varint: the size of the response to make.
            req.extend_from_slice(&rpc_tests::wire::request(id, "blob", None, &[0x80, 0x80, 0x04]));
            let frame = req.finish(1 << 20).unwrap();
            if writer.send(&mut vec![frame]).await.is_err() {
                return id;
            }
        }
        20_001
    });
    // Past the write timeout, the server gives up on this peer; until then it stops reading.
    tokio::time::advance(write_timeout * 2).await;
    let stopped_at = guard("the server stops reading, then drops the connection", sender).await.unwrap();
    assert!(stopped_at <= 20_000, "the server read every request instead of pushing back");
    let handled = obs.gauge.max.load(Ordering::SeqCst);
    // Bounded by the handler slots (each holding its response), the outbound queue and the
    // writer's batch (128 + 128 + 64), not by the 20,000 requests.
    assert!(handled <= 128 + 128 + 64, "{handled} responses were produced for a peer that reads nothing");
    // What the server did send is still readable, then EOF: the connection was closed.
    let mut reader = FrameReader::new(read, 1 << 20);
    reader.read_raw(8).await.unwrap();
    reader.read_frame().await.unwrap().unwrap(); // the HELLO
    let mut frames = 0;
    while let Ok(Some(_)) = guard("drain", reader.read_frame()).await {
        frames += 1;
    }
    assert!(frames <= 2, "at most the pipe buffer's worth of responses was in flight: {frames}");
}

/// A raw request frame: `timeout_us` as sent on the wire, arguments already postcard-encoded.
fn raw_request(
    id: u8,
    timeout_us: Option<u64>,
    method: &str,
    args: &[u8],
) -> rpc_runtime::transport::framed::Frame {
    let mut req = rpc_runtime::transport::framed::FrameBuf::with_capacity(32);
    req.extend_from_slice(&rpc_tests::wire::request_raw(
        id.into(),
        method.as_bytes(),
        timeout_us,
        false,
        args,
    ));
    req.finish(1 << 20).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_deadlines_are_clamped_or_refused_without_panicking() {
    let (imp, _obs) = hop(None);
    let (client, _server) = serve_tcp(imp, |s| s.max_deadline(Duration::from_secs(60))).await;
    let addr = match client.as_client().peer() {
        Some(Peer::Tcp(addr)) => addr,
        other => panic!("{other:?}"),
    };
    let (read, write, _, _g) = tcp::connect(addr).await.unwrap().into_parts();
    let mut reader = FrameReader::new(read, 1 << 20);
    let mut writer = FrameWriter::new(write);
    writer.queue_raw(&rpc_tests::wire::greeting());
    let mut frames = vec![
        raw_request(1, Some(0), "nap", &[0]),                    // already expired
        raw_request(2, Some(u64::MAX), "whoami", &[]),           // ~584,000 years
        raw_request(3, Some(u64::MAX / 1_000_000), "nap", &[0]), // u64::MAX seconds' worth of µs
    ];
    writer.send(&mut frames).await.unwrap();
    reader.read_raw(8).await.unwrap();
    reader.read_frame().await.unwrap().unwrap(); // the HELLO
    let mut replies = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let body = guard("reply", reader.read_frame()).await.unwrap().unwrap();
        replies.insert(body[1], body);
    }
    // Deadline 0: refused as expired, without running the handler.
    assert_eq!(replies[&1][0], 4, "an error frame");
    assert_eq!(replies[&1][2], 4, "DEADLINE_EXCEEDED");
    // Huge deadlines: served, with the deadline clamped to the server's maximum.
    assert_eq!(replies[&2][0], 3, "a reply frame");
    // Kind, id, flags, then the body.
    let info: CallInfo = postcard::from_bytes(&replies[&2][3..]).unwrap();
    let remaining = info.remaining.expect("a clamped deadline");
    assert!(remaining <= Duration::from_secs(60), "clamped to max_deadline: {remaining:?}");
    assert_eq!(replies[&3][0], 3, "a reply frame");
    // The server is unharmed.
    assert_eq!(client.nap(0).await.unwrap(), 0);
}
