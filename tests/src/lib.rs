//! Shared fixtures for the integration tests: a service with every method shape, an
//! implementation that reports what its handlers do, and a way to start it on each transport.
//!
//! # Reliability helpers
//!
//! The reliability suite (`tests/reliability_*.rs`) uses these modules:
//!
//! - [`alloc`]: a counting global allocator, so a test can state and check a memory budget.
//! - [`probe`]: the `Probe` service every reliability test serves, with counters a test can watch
//!   (handlers running, finished, dropped unfinished).
//! - [`fixture`]: starts a `Probe` server over TCP, a Unix socket or in-memory, and connects typed
//!   clients or raw peers to it.
//! - [`wire`]: the wire protocol written out by hand (preface, frames, envelopes), independent of
//!   the runtime's encoder, for byte-level tests; and [`wire::RawPeer`], a peer speaking it.
//! - [`logs`]: captures the `tracing` events of the current thread, to check logged reasons.
//! - [`panics`]: panics provoked on purpose, kept quiet so test logs show only real failures.
//! - `nats` (feature `nats`, on by default): a real `nats-server` per test, installed when
//!   missing, and the `Work` service of the NATS suite (`tests/nats_calls.rs`).
//! - [`fuzz`]: the bodies of the fuzz targets in `fuzz/`, shared with the tests that replay their
//!   corpus on stable.
//!
//! Reliability tests that measure memory or rely on paused time run on a current-thread runtime,
//! so every task of the test (client and server) runs, allocates and logs on the test's thread.

pub mod alloc;
pub mod fixture;
pub mod fuzz;
pub mod logs;
#[cfg(feature = "nats")]
pub mod nats;
pub mod panics;
pub mod probe;
pub mod relay;
pub mod spans;
pub mod streams;
pub mod wire;

/// A hang guard in seconds: fails the test if `fut` takes longer than `secs` (virtual seconds
/// under paused time, where an idle runtime jumps straight to the guard instead of hanging).
pub async fn within<F: std::future::Future>(secs: u64, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("hang guard: {what} did not finish within {secs} s"),
    }
}

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::transport::{memory, tcp, unix};
use rpc_runtime::{service, Server, ServerHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// A generous bound on anything a test waits for: a guard against hangs, never a timing check.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`HANG_GUARD`].
pub async fn guard<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still pending after {HANG_GUARD:?}"),
    }
}

/// An application error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MathError {
    /// Division by zero.
    DivisionByZero,
    /// The result does not fit.
    Overflow {
        /// The operation that overflowed.
        op: String,
    },
}

/// A nested message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Who ordered.
    pub customer: Customer,
    /// What.
    pub lines: Vec<Line>,
    /// How it is paid.
    pub payment: Payment,
    /// Free-form notes.
    pub notes: Option<String>,
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Item name.
    pub item: String,
    /// Quantity.
    pub quantity: u32,
    /// Price per item, in cents.
    pub cents: u64,
}

/// A payment method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payment {
    /// Cash.
    Cash,
    /// A card.
    Card {
        /// The last four digits.
        last4: [u8; 4],
    },
    /// An IOU.
    Iou(String),
}

/// The summary of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Total in cents.
    pub total_cents: u64,
    /// Items ordered.
    pub items: u32,
    /// The order, echoed back.
    pub order: Order,
}

/// A service with every method shape the framework supports.
#[service]
pub trait Kitchen {
    /// No arguments, unit result.
    async fn ping(&self);
    /// Two arguments.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Many arguments of many types.
    #[allow(clippy::too_many_arguments)]
    async fn many(&self, a: u8, b: u16, c: u32, d: u64, e: i128, f: f64, g: bool, h: char) -> String;
    /// An application error.
    async fn checked_div(&self, a: i64, b: i64) -> Result<i64, MathError>;
    /// Nested structs and enums.
    async fn order(&self, order: Order) -> Receipt;
    /// Collections.
    async fn collections(
        &self,
        values: Vec<u32>,
        label: Option<String>,
        counts: HashMap<String, u64>,
    ) -> (u64, Option<usize>, BTreeMap<String, u64>);
    /// A byte buffer, reversed.
    async fn reverse(&self, data: Vec<u8>) -> Vec<u8>;
    /// Returns `value` after yielding to the scheduler `yields` times, so concurrent calls finish
    /// in an order unrelated to the order they were made.
    async fn echo_after(&self, value: u64, yields: u32) -> u64;
    /// Never returns; reports when it starts and when its future is dropped.
    async fn hang(&self, tag: u64);
    /// Panics.
    async fn boom(&self, tag: u64) -> u64;
    /// Fire-and-forget: reports the line.
    #[oneway]
    async fn record(&self, line: String);
    /// Waits for the next `hang` call to start and returns its tag.
    async fn next_started(&self) -> u64;
    /// Waits for the next `hang` handler to be dropped and returns its tag.
    async fn next_dropped(&self) -> u64;
    /// Waits for the next line `record` receives.
    async fn next_record(&self) -> String;
}

/// The implementation of [`Kitchen`]. What its handlers do is observable through the service
/// itself (`next_started`, `next_dropped`, `next_record`), so tests observe a server in a child
/// process exactly as one in their own.
#[derive(Debug, Clone)]
pub struct KitchenImpl {
    started: mpsc::UnboundedSender<u64>,
    dropped: mpsc::UnboundedSender<u64>,
    records: mpsc::UnboundedSender<String>,
    events: Arc<Events>,
}

#[derive(Debug)]
struct Events {
    started: tokio::sync::Mutex<mpsc::UnboundedReceiver<u64>>,
    dropped: tokio::sync::Mutex<mpsc::UnboundedReceiver<u64>>,
    records: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Default for KitchenImpl {
    fn default() -> Self {
        Self::new()
    }
}

impl KitchenImpl {
    /// A new implementation with no events yet.
    pub fn new() -> KitchenImpl {
        let (started, started_rx) = mpsc::unbounded_channel();
        let (dropped, dropped_rx) = mpsc::unbounded_channel();
        let (records, records_rx) = mpsc::unbounded_channel();
        let events = Arc::new(Events {
            started: tokio::sync::Mutex::new(started_rx),
            dropped: tokio::sync::Mutex::new(dropped_rx),
            records: tokio::sync::Mutex::new(records_rx),
        });
        KitchenImpl { started, dropped, records, events }
    }
}

/// Reports its tag when dropped.
struct DropReport(u64, mpsc::UnboundedSender<u64>);

impl Drop for DropReport {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

impl Kitchen for KitchenImpl {
    async fn ping(&self) {}

    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn many(&self, a: u8, b: u16, c: u32, d: u64, e: i128, f: f64, g: bool, h: char) -> String {
        format!("{a} {b} {c} {d} {e} {f} {g} {h}")
    }

    async fn checked_div(&self, a: i64, b: i64) -> Result<i64, MathError> {
        if b == 0 {
            return Err(MathError::DivisionByZero);
        }
        a.checked_div(b).ok_or(MathError::Overflow { op: "div".into() })
    }

    async fn order(&self, order: Order) -> Receipt {
        Receipt {
            total_cents: order.lines.iter().map(|l| l.cents * u64::from(l.quantity)).sum(),
            items: order.lines.iter().map(|l| l.quantity).sum(),
            order,
        }
    }

    async fn collections(
        &self,
        values: Vec<u32>,
        label: Option<String>,
        counts: HashMap<String, u64>,
    ) -> (u64, Option<usize>, BTreeMap<String, u64>) {
        (values.iter().map(|&v| u64::from(v)).sum(), label.map(|l| l.len()), counts.into_iter().collect())
    }

    async fn reverse(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }

    async fn echo_after(&self, value: u64, yields: u32) -> u64 {
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        value
    }

    async fn hang(&self, tag: u64) {
        let _report = DropReport(tag, self.dropped.clone());
        let _ = self.started.send(tag);
        std::future::pending::<()>().await;
    }

    async fn boom(&self, tag: u64) -> u64 {
        if tag != u64::MAX {
            panics::deliberate(&format!("boom {tag}"));
        }
        tag
    }

    async fn record(&self, line: String) {
        let _ = self.records.send(line);
    }

    async fn next_started(&self) -> u64 {
        self.events.started.lock().await.recv().await.expect("the sender lives in self")
    }

    async fn next_dropped(&self) -> u64 {
        self.events.dropped.lock().await.recv().await.expect("the sender lives in self")
    }

    async fn next_record(&self) -> String {
        self.events.records.lock().await.recv().await.expect("the sender lives in self")
    }
}

/// The transports the shared suite runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP on loopback.
    Tcp,
    /// A Unix socket in a temporary directory.
    Unix,
    /// An in-memory pair of byte streams.
    Memory,
    /// An in-memory pair that carries whole messages natively (no framing).
    MemoryMessages,
    /// The server is a child process serving on its stdin/stdout.
    PipeChild,
    /// Two OS pipes inside this process.
    PipePair,
    /// Two FIFOs named by the test, opened by both sides.
    FifoPair,
    /// A FIFO listener on a well-known path; each client registers a private pair.
    FifoListener,
}

impl Transport {
    /// Whether the transport reaches its server through a listener that accepts many clients.
    pub fn has_listener(self) -> bool {
        matches!(
            self,
            Transport::Tcp
                | Transport::Unix
                | Transport::Memory
                | Transport::MemoryMessages
                | Transport::FifoListener
        )
    }
}

/// The path of the `kitchen-peer` helper binary, built by cargo next to the test binaries.
pub fn kitchen_peer() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/kitchen-peer
    let dir = exe.parent().and_then(|d| d.parent()).expect("the test binary lives in target/<profile>/deps");
    dir.join("kitchen-peer")
}

/// A running server and a client connected to it.
#[derive(Debug)]
pub struct Fixture {
    /// The client.
    pub client: KitchenClient,
    /// The server, when it runs in this process.
    pub server: Option<ServerHandle>,
    /// Makes more connections to the same server, for transports with a listener.
    pub connector: Option<Connector>,
    /// The server's process, for [`Transport::PipeChild`].
    pub child: Option<rpc_runtime::transport::pipe::Child>,
    /// Where FIFOs live, removed on drop.
    pub dir: Option<Arc<tempfile::TempDir>>,
}

/// Connects to a fixture's server.
#[derive(Debug, Clone)]
pub enum Connector {
    /// A TCP address.
    Tcp(std::net::SocketAddr),
    /// A Unix socket path (the directory lives as long as the connector).
    Unix(Arc<tempfile::TempDir>, std::path::PathBuf),
    /// An in-memory listener.
    Memory(memory::MemoryConnector),
    /// A FIFO listener's well-known path.
    Fifo(Arc<tempfile::TempDir>, std::path::PathBuf),
}

impl Connector {
    /// A new connection to the server.
    pub async fn connect(&self) -> std::io::Result<rpc_runtime::transport::Connection> {
        match self {
            Connector::Tcp(addr) => tcp::connect(addr).await,
            Connector::Unix(_, path) => unix::connect(path).await,
            Connector::Memory(c) => c.connect(),
            Connector::Fifo(_, path) => rpc_runtime::transport::fifo::connect(path).await,
        }
    }
}

/// The services every fixture server hosts: `Kitchen`, and `Streams` for the streaming suite.
pub fn kitchen_router(imp: KitchenImpl) -> rpc_runtime::Router {
    rpc_runtime::Router::new()
        .add_service(KitchenServer::new(imp))
        .add_service(streams::StreamsServer::new(streams::StreamsImpl::new()))
}

/// Starts a [`KitchenImpl`] server on `transport`, configured by `configure`, and connects a client.
pub async fn start_with(transport: Transport, configure: impl FnOnce(Server) -> Server) -> Fixture {
    use rpc_runtime::transport::{fifo, pipe};
    let imp = KitchenImpl::new();
    let server = configure(Server::new(kitchen_router(imp)));
    let fixture = |conn, server, connector, child, dir| Fixture {
        client: KitchenClient::new(conn),
        server,
        connector,
        child,
        dir,
    };
    match transport {
        Transport::PipeChild => {
            let mut cmd = tokio::process::Command::new(kitchen_peer());
            cmd.arg("serve-stdio");
            let (conn, child) = pipe::spawn(cmd).expect("spawn the kitchen-peer child");
            fixture(conn, None, None, Some(child), None)
        }
        Transport::PipePair => {
            let (ours, theirs) = pipe::pair().expect("pipe pair");
            fixture(ours, Some(server.serve_connection(theirs)), None, None, None)
        }
        Transport::FifoPair => {
            let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
            let (up, down) = (dir.path().join("up"), dir.path().join("down"));
            let (ours, theirs) = tokio::join!(fifo::open_pair(&down, &up), fifo::open_pair(&up, &down));
            let handle = server.serve_connection(theirs.expect("server side of the FIFO pair"));
            fixture(ours.expect("client side of the FIFO pair"), Some(handle), None, None, Some(dir))
        }
        Transport::FifoListener => {
            let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
            let path = dir.path().join("kitchen.fifo");
            let handle = server.serve(fifo::bind(&path).await.expect("bind fifo"));
            let connector = Connector::Fifo(Arc::clone(&dir), path);
            let conn = connector.connect().await.expect("connect fifo");
            fixture(conn, Some(handle), Some(connector), None, Some(dir))
        }
        Transport::Tcp | Transport::Unix | Transport::Memory | Transport::MemoryMessages => {
            let (handle, connector) = match transport {
                Transport::Tcp => {
                    let listener = tcp::bind("127.0.0.1:0").await.expect("bind tcp");
                    let addr = listener.local_addr();
                    (server.serve(listener), Connector::Tcp(addr))
                }
                Transport::Unix => {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("kitchen.sock");
                    let listener = unix::bind(&path).await.expect("bind unix");
                    (server.serve(listener), Connector::Unix(Arc::new(dir), path))
                }
                Transport::MemoryMessages => {
                    let (listener, connector) = memory::message_listener();
                    (server.serve(listener), Connector::Memory(connector))
                }
                _ => {
                    let (listener, connector) = memory::listener();
                    (server.serve(listener), Connector::Memory(connector))
                }
            };
            let conn = connector.connect().await.expect("connect");
            fixture(conn, Some(handle), Some(connector), None, None)
        }
    }
}

/// Starts a default server on `transport` and connects a client.
pub async fn start(transport: Transport) -> Fixture {
    start_with(transport, |s| s).await
}

/// Two connected ends over `transport`, the second to be played by hand as a (misbehaving)
/// server; the guard keeps listeners and directories alive. Not for [`Transport::PipeChild`],
/// whose server is a real process.
pub async fn raw_pair(
    transport: Transport,
) -> (rpc_runtime::transport::Connection, rpc_runtime::transport::Connection, Box<dyn std::any::Any + Send>) {
    use rpc_runtime::transport::{fifo, pipe, Listener};
    async fn accept_one<L: Listener>(
        mut l: L,
        c: Connector,
    ) -> (rpc_runtime::transport::Connection, rpc_runtime::transport::Connection, L) {
        let (client, server) = tokio::join!(c.connect(), l.accept());
        (client.expect("connect"), server.expect("accept").expect("the listener is open"), l)
    }
    match transport {
        Transport::Tcp => {
            let l = tcp::bind("127.0.0.1:0").await.expect("bind tcp");
            let addr = l.local_addr();
            let (c, s, l) = accept_one(l, Connector::Tcp(addr)).await;
            (c, s, Box::new(l))
        }
        Transport::Unix => {
            let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
            let path = dir.path().join("raw.sock");
            let l = unix::bind(&path).await.expect("bind unix");
            let (c, s, l) = accept_one(l, Connector::Unix(Arc::clone(&dir), path)).await;
            (c, s, Box::new((l, dir)))
        }
        Transport::Memory => {
            let (l, connector) = memory::listener();
            let (c, s, l) = accept_one(l, Connector::Memory(connector)).await;
            (c, s, Box::new(l))
        }
        Transport::FifoListener => {
            let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
            let path = dir.path().join("raw.fifo");
            let l = fifo::bind(&path).await.expect("bind fifo");
            let (c, s, l) = accept_one(l, Connector::Fifo(Arc::clone(&dir), path)).await;
            (c, s, Box::new((l, dir)))
        }
        Transport::PipePair => {
            let (c, s) = pipe::pair().expect("pipe pair");
            (c, s, Box::new(()))
        }
        Transport::FifoPair => {
            let dir = tempfile::tempdir().expect("tempdir");
            let (up, down) = (dir.path().join("up"), dir.path().join("down"));
            let (c, s) = tokio::join!(fifo::open_pair(&down, &up), fifo::open_pair(&up, &down));
            (c.expect("client side"), s.expect("server side"), Box::new(dir))
        }
        Transport::PipeChild => panic!("a child process is a real server; it cannot be played by hand"),
        Transport::MemoryMessages => panic!("a message transport has no bytes for a raw peer to speak"),
    }
}

/// The connection preface of protocol version 2.
pub use wire::PREFACE;
