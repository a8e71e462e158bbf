//! tower layers around generated clients: a timeout, a concurrency limit, a retry policy that
//! repeats only what is safe, and power-of-two-choices balancing over server processes fed by a
//! changing list of addresses.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rpc_runtime::intercept::RateLimit;
use rpc_runtime::retry::RetryPolicy;
use rpc_runtime::transport::{memory, tcp};
use rpc_runtime::{service, Call, Client, Router, RpcError, Server};
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::relay::RelayClient;
use rpc_tests::{fixture, within};
use tower::discover::Change;
use tower::load::{CompleteOnResponse, PendingRequests};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_timeout_layer_ends_a_call_with_its_error() {
    let (listener, connector) = memory::listener();
    let probe = ProbeImpl::default();
    let state = Arc::clone(&probe.state);
    let _server = Server::new(ProbeServer::new(probe)).serve(listener);
    let client = Client::new(connector.connect().unwrap());
    let layered = tower::ServiceBuilder::new().timeout(Duration::from_secs(2)).service(client);
    let probe = ProbeClient::from_service(layered);
    // `hold` waits until released, which never happens: the layer's timer ends it.
    let held = probe.hold(1).await;
    match held {
        Err(RpcError::Layer(e)) => assert!(e.is::<tower::timeout::error::Elapsed>(), "{e}"),
        other => panic!("{other:?}"),
    }
    // Dropping the call cancelled it on the server.
    within(30, "the cancel", state.wait_dropped(1)).await;
    assert_eq!(probe.add(1, 2).await.unwrap(), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_concurrency_limit_holds_calls_back_in_the_client() {
    let (listener, connector) = memory::listener();
    let probe = ProbeImpl::default();
    let state = Arc::clone(&probe.state);
    let _server = Server::new(ProbeServer::new(probe)).serve(listener);
    let client = Client::new(connector.connect().unwrap());
    let limited =
        ProbeClient::from_service(tower::ServiceBuilder::new().concurrency_limit(2).service(client));
    let calls: Vec<_> = (0..5)
        .map(|tag| {
            tokio::spawn({
                let limited = limited.clone();
                async move { limited.hold(tag).await }
            })
        })
        .collect();
    state.wait_running(2).await;
    fixture::settle().await;
    assert_eq!(state.running(), 2, "the layer let more than two calls through");
    state.release(5);
    let mut tags = Vec::new();
    for call in calls {
        tags.push(call.await.unwrap().unwrap());
    }
    tags.sort();
    assert_eq!(tags, vec![0, 1, 2, 3, 4]);
    assert_eq!(state.max_running.load(Ordering::SeqCst), 2);
}

/// Counts its calls; `get` is idempotent.
#[service]
pub trait Counter {
    /// Counts a call.
    async fn bump(&self) -> usize;
    /// Reads the count.
    #[rpc(idempotent)]
    async fn get(&self) -> usize;
}

#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl Counter for Count {
    async fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    async fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_retry_policy_repeats_a_refused_call_after_the_wait_it_was_given() {
    let count = Count::default();
    let router = Router::new()
        .add_service(CounterServer::new(count.clone()))
        .intercept(RateLimit::new(1, Duration::from_millis(100)));
    let (listener, connector) = memory::listener();
    let _server = Server::new(router).serve(listener);
    let client = Client::new(connector.connect().unwrap());
    let retrying = CounterClient::from_service(
        tower::ServiceBuilder::new().retry(RetryPolicy::new(2)).service(client.clone()),
    );
    let start = tokio::time::Instant::now();
    assert_eq!(retrying.bump().await.unwrap(), 1);
    // Refused by the rate limit (it never started), retried after the 100 ms it was told.
    assert_eq!(retrying.bump().await.unwrap(), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    // Without the policy, the same refusal reaches the caller.
    let plain = CounterClient::from_client(client);
    assert!(matches!(plain.bump().await, Err(RpcError::RateLimited { .. })));
    assert_eq!(count.0.load(Ordering::SeqCst), 2, "each call ran once");
    // The idempotent mark travels with the call, for the policy to see.
    static GET: &str = "get";
    let call_seen = Arc::new(std::sync::Mutex::new(None));
    let seen = Arc::clone(&call_seen);
    let spy = tower::service_fn(move |call: Call| {
        *seen.lock().unwrap() = Some((call.method.to_string(), call.idempotent));
        async { Err::<rpc_runtime::Reply, _>(RpcError::ShuttingDown) }
    });
    let _ = CounterClient::from_service(spy).get().await;
    assert_eq!(*call_seen.lock().unwrap(), Some((GET.to_string(), true)));
}

/// A `trace-server quiet` process: a `Relay` server whose `pid` says which process answered.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    fn spawn() -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trace-server"))
            .arg("quiet")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn trace-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("ready tcp ").expect(&line).parse().unwrap();
        Process { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Endpoint = PendingRequests<Client>;

async fn endpoint(addr: SocketAddr) -> Endpoint {
    PendingRequests::new(Client::new(tcp::connect(addr).await.unwrap()), CompleteOnResponse::default())
}

/// `n` calls of `pid()`, 8 at a time; how many each process answered.
async fn spread(
    client: &RelayClient<rpc_runtime::Layered<BalancedService>>,
    n: usize,
) -> HashMap<u32, usize> {
    let pids: Vec<u32> = futures::stream::iter(0..n)
        .map(|_| async { client.pid().await.unwrap() })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut counts = HashMap::new();
    for pid in pids {
        *counts.entry(pid).or_insert(0) += 1;
    }
    counts
}

type BalancedService = tower::buffer::Buffer<
    Call,
    <tower::balance::p2c::Balance<Discovered, Call> as tower::Service<Call>>::Future,
>;
type Discovered = mpsc::UnboundedReceiver<Result<Change<SocketAddr, Endpoint>, std::convert::Infallible>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancing_over_server_processes_follows_a_changing_list_of_addresses() {
    let mut servers: Vec<Process> = (0..3).map(|_| Process::spawn()).collect();
    let (mut changes, discovered): (_, Discovered) = mpsc::unbounded();
    for server in &servers {
        changes.send(Ok(Change::Insert(server.addr, endpoint(server.addr).await))).await.unwrap();
    }
    let balance = tower::balance::p2c::Balance::new(discovered);
    let client = RelayClient::from_service(tower::buffer::Buffer::new(balance, 64));

    within(60, "the balanced calls", async {
        let counts = spread(&client, 300).await;
        assert_eq!(counts.values().sum::<usize>(), 300);
        for server in &servers {
            assert!(
                counts.get(&server.pid()).copied().unwrap_or(0) > 0,
                "{} got no call: {counts:?}",
                server.pid()
            );
        }

        // One address leaves the list (then its process dies): no call goes there any more.
        changes.send(Ok(Change::Remove(servers[1].addr))).await.unwrap();
        let _ = servers[1].child.kill();
        let _ = servers[1].child.wait();
        let counts = spread(&client, 100).await;
        assert_eq!(counts.values().sum::<usize>(), 100);
        assert!(!counts.contains_key(&servers[1].pid()), "{counts:?}");

        // A new process joins the list and gets calls.
        let joined = Process::spawn();
        changes.send(Ok(Change::Insert(joined.addr, endpoint(joined.addr).await))).await.unwrap();
        let counts = spread(&client, 300).await;
        assert!(counts.get(&joined.pid()).copied().unwrap_or(0) > 0, "{counts:?}");
        assert!(!counts.contains_key(&servers[1].pid()), "{counts:?}");
    })
    .await;
}
