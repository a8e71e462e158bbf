//! The server side: an accept loop, one task per connection, and a task for every call that
//! has to wait.
//!
//! A call starts on its connection's task: a handler that finishes without waiting (most cheap
//! calls) is answered there, with no task of its own. At its first wait (I/O, a timer, a lock,
//! a full response queue) the call moves to a task of its own, and from then on runs
//! concurrently with the connection and with other calls. Set
//! [`ServerConfig::inline_handlers`] to `false` to give every call its own task from the start.
//!
//! [`Server::serve`] runs a [`Listener`]'s connections; [`Server::serve_connection`] runs a single
//! connection (a child process's stdin/stdout, say). Both return a [`ServerHandle`] for graceful
//! shutdown; awaiting the handle waits until the server has stopped.
//!
//! Every limit, its default and the threat it answers are listed in [`limits`](crate::limits).
//!
//! # Handler panics
//!
//! A panicking handler gives its caller `HandlerPanicked` and the connection carries on. But the
//! process's panic hook runs first, before the server catches the panic: by default it prints to
//! stderr on every panic (the server cannot rate-limit it), and with `RUST_BACKTRACE=1` it also
//! captures a backtrace, which costs milliseconds of CPU each. A peer that can make a handler panic
//! can make the process print. To bound the cost, install a quiet hook with
//! [`std::panic::set_hook`], leave `RUST_BACKTRACE` unset in production, and return errors
//! rather than panic. The server's own log line for each panic is rate-limited per connection.

mod connection;
mod handler;
mod log_limit;
mod outbox;
mod registry;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rpc_transport::framed::{Frame, ReceiveBudget, DEFAULT_MAX_FRAME_LEN};
use rpc_transport::{Connection, Listener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::log_limit::{limited, LogLimit};
use self::outbox::ByteBudget;
use self::registry::Registry;
use crate::engine::{handshake, limits};
use crate::protocol;
use crate::router::Router;

/// The limits and timeouts of a server. Every field has a finite default, pinned by a test; the
/// threat each one answers is listed in the crate's [`limits`](crate::limits) documentation.
///
/// Build one from [`ServerConfig::default()`] with the by-value `with_*` setters (one per field),
/// or assign fields of a default value; hand it to [`Server::with_config`]. The same setters exist
/// on [`Server`] itself, without the `with_` prefix.
///
/// ```
/// # use rpc_runtime::ServerConfig;
/// # use std::time::Duration;
/// let config = ServerConfig::default().with_max_in_flight(16).with_idle_timeout(Duration::from_secs(60));
/// assert_eq!(config.max_in_flight, 16);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The longest frame accepted or sent. Default 4 MiB.
    pub max_frame_len: usize,
    /// Handlers running at once per connection; when reached, the server stops reading that
    /// connection until one finishes (backpressure). Default 128.
    pub max_in_flight: usize,
    /// Connections served at once. At the cap, the connection idle longest (no calls running)
    /// is sent a goaway and closed to make room; if none is idle, the newcomer gets a goaway
    /// instead. Default 1024.
    pub max_connections: usize,
    /// Connections served at once from one peer: one IP address over TCP, one user id over a
    /// Unix socket (other transports have no peer identity to count). Past it, the newcomer gets
    /// a goaway. Default 256: a quarter of `max_connections`, so filling the server takes at
    /// least four peers, while a client's pool of a few hundred connections still fits.
    pub max_connections_per_peer: usize,
    /// A connection with no calls running and no requests or partial frames arriving for this
    /// long is closed. Pings and pongs do not count as activity while no call is running: a
    /// keepalive keeps a busy connection, not an empty one. Default 5 minutes.
    pub idle_timeout: Duration,
    /// A frame must arrive in full within this time of its first byte (slowloris). Default 30 s.
    pub frame_timeout: Duration,
    /// A new connection must send its preface within this time. Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection whose oldest queued outgoing frame has waited this long without being
    /// completely written (the peer stopped reading, or reads too slowly to keep up) is closed.
    /// Measured on the oldest frame of the batch being written, not restarted per write.
    /// Default 30 s.
    pub write_timeout: Duration,
    /// Deadlines sent by clients are clamped to this. Default 24 hours.
    pub max_deadline: Duration,
    /// The deadline of a one-way call that carries none (its caller does not wait, so nobody
    /// else would bound it). Calls marked run-to-completion ignore deadlines. Default 60 s.
    pub oneway_deadline: Duration,
    /// Response frames queued for writing per connection before handlers wait. Default 128.
    pub outbound_queue: usize,
    /// Bytes of encoded responses (and other outgoing frames) one connection may have queued
    /// and not yet written to its socket. When full, the connection's handlers wait for room
    /// (bounded by `write_timeout`), and the server starts no new call and reads nothing more
    /// from that connection until the peer reads. A single frame larger than this is still sent,
    /// on its own. Default 8 MiB: two maximal frames, so a large response can be written while
    /// the next is encoded.
    pub response_budget_per_connection: usize,
    /// Bytes of queued outgoing frames all connections together may hold; the same rules as
    /// `response_budget_per_connection` apply when it is full. Default 128 MiB: sixteen
    /// connections that never read hold it all, and are cut after `write_timeout`.
    pub max_response_budget: usize,
    /// Pings and pongs a connection may send: a bucket of this many, refilled at this many per
    /// second, whatever the requests do. One more closes the connection with a goaway saying
    /// "too many control frames". A keepalive every few seconds never comes near it. (Cancels
    /// have their own rule: at most one per request received, plus 1024.) Default 1000.
    pub max_control_frames_per_sec: u32,
    /// Protocol violations a connection may commit (a request reusing the id of a call in
    /// flight, a frame the protocol forbids that does not already close the connection) before
    /// it is closed with a goaway. Default 8.
    pub max_protocol_violations: u32,
    /// Bytes of large frames (over 64 KiB) that all connections together may be receiving at
    /// once. A connection announcing a frame that does not fit waits a moment for room; if none
    /// frees, the connection that has held its reservation longest is shed (goaway,
    /// `Overloaded`), not the newcomer. Bounds what peers that announce maximal frames and trickle
    /// them can make the server hold, which would otherwise be `max_connections × max_frame_len`.
    /// Default 256 MiB.
    pub max_receive_budget: usize,
    /// Calls still running after their connection closed (one-way calls and calls that run to
    /// completion) that the server keeps, across all connections. A connection whose peer leaves
    /// frees its slot and socket at once; its remaining calls run on detached if they fit here,
    /// and are cancelled (and logged) if they do not. Default 1024.
    pub max_detached_calls: usize,
    /// Whether a call starts on its connection's task (default `true`), moving to a task of its
    /// own only at its first wait. A handler that finishes without waiting then costs no task,
    /// which makes cheap calls several times cheaper; but a handler that computes for long
    /// before its first `.await` holds up the reading of its connection meanwhile (other
    /// connections are unaffected). With `false`, every call gets its own task at once, so
    /// CPU-bound handlers on one connection run in parallel on a multi-threaded runtime.
    /// Either way, deadlines, cancellation, limits and panic isolation are the same.
    pub inline_handlers: bool,
}

/// The defaults live with the rules that enforce them, in `engine::limits`.
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_in_flight: limits::MAX_IN_FLIGHT,
            max_connections: limits::MAX_CONNECTIONS,
            max_connections_per_peer: limits::MAX_CONNECTIONS_PER_PEER,
            idle_timeout: limits::IDLE_TIMEOUT,
            frame_timeout: limits::FRAME_TIMEOUT,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            write_timeout: limits::WRITE_TIMEOUT,
            max_deadline: limits::MAX_DEADLINE,
            oneway_deadline: limits::ONEWAY_DEADLINE,
            outbound_queue: limits::OUTBOUND_QUEUE,
            response_budget_per_connection: limits::RESPONSE_BUDGET_PER_CONNECTION,
            max_response_budget: limits::MAX_RESPONSE_BUDGET,
            max_control_frames_per_sec: limits::MAX_CONTROL_FRAMES_PER_SEC,
            max_protocol_violations: limits::MAX_PROTOCOL_VIOLATIONS,
            max_receive_budget: limits::MAX_RECEIVE_BUDGET,
            max_detached_calls: limits::MAX_DETACHED_CALLS,
            inline_handlers: true,
        }
    }
}

/// One by-value setter per field on [`ServerConfig`] (`with_x`) and on [`Server`] (`x`).
macro_rules! setters {
    ($($field:ident / $with:ident: $ty:ty $(=> $fix:expr)?;)*) => {
        impl ServerConfig {
            $(
                #[doc = concat!("Sets [`ServerConfig::", stringify!($field), "`].")]
                #[must_use]
                pub fn $with(mut self, value: $ty) -> Self {
                    $(let value = $fix(value);)?
                    self.$field = value;
                    self
                }
            )*
        }
        impl Server {
            $(
                #[doc = concat!("Sets [`ServerConfig::", stringify!($field), "`].")]
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.config = self.config.$with(value);
                    self
                }
            )*
        }
    };
}

/// Counts of zero would stop a server from ever serving: they mean one.
fn at_least_one(n: usize) -> usize {
    n.max(1)
}

setters! {
    max_frame_len / with_max_frame_len: usize;
    max_in_flight / with_max_in_flight: usize => at_least_one;
    max_connections / with_max_connections: usize => at_least_one;
    max_connections_per_peer / with_max_connections_per_peer: usize => at_least_one;
    idle_timeout / with_idle_timeout: Duration;
    frame_timeout / with_frame_timeout: Duration;
    handshake_timeout / with_handshake_timeout: Duration;
    write_timeout / with_write_timeout: Duration;
    max_deadline / with_max_deadline: Duration;
    oneway_deadline / with_oneway_deadline: Duration;
    outbound_queue / with_outbound_queue: usize => at_least_one;
    response_budget_per_connection / with_response_budget_per_connection: usize;
    max_response_budget / with_max_response_budget: usize;
    max_control_frames_per_sec / with_max_control_frames_per_sec: u32;
    max_protocol_violations / with_max_protocol_violations: u32;
    max_receive_budget / with_max_receive_budget: usize;
    max_detached_calls / with_max_detached_calls: usize;
    inline_handlers / with_inline_handlers: bool;
}

/// Serves a [`Service`](crate::Service), or a [`Router`] of several, on listeners or single connections.
///
/// # Examples
///
/// ```
/// # use rpc_runtime::{service, Server, transport::memory};
/// #[service]
/// trait Echo {
///     async fn echo(&self, s: String) -> String;
/// }
/// struct Impl;
/// impl Echo for Impl {
///     async fn echo(&self, s: String) -> String { s }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (listener, connector) = memory::listener();
/// let server = Server::new(EchoServer::new(Impl)).max_in_flight(16).serve(listener);
/// let client = EchoClient::new(connector.connect().unwrap());
/// assert_eq!(client.echo("hi".into()).await.unwrap(), "hi");
/// server.shutdown(std::time::Duration::from_secs(1)).await;
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    router: Arc<Router>,
    config: ServerConfig,
}

impl Server {
    /// A server for `services`, one generated `{Trait}Server` or a [`Router`] of several, with
    /// the default [`ServerConfig`]; configure it with the by-value setters,
    /// `Server::new(svc).max_in_flight(8)`.
    pub fn new(services: impl Into<Router>) -> Self {
        Server { router: Arc::new(services.into()), config: ServerConfig::default() }
    }

    /// The services this server hosts.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Replaces the whole configuration.
    #[must_use]
    pub fn with_config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves every connection `listener` accepts, on a spawned task, until shut down.
    ///
    /// The listener is dropped (removing a Unix socket or FIFO file) as soon as shutdown begins.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime.
    pub fn serve<L: Listener>(&self, listener: L) -> ServerHandle {
        let (handle, shared) = self.start();
        let tracker = handle.shared.tracker.clone();
        handle.shared.tracker.spawn(async move {
            accept_loop(listener, shared).await;
            tracker.close();
        });
        handle
    }

    /// Serves one connection on a spawned task; the handle completes when it closes (and the
    /// calls it left, if any, have ended).
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime.
    pub fn serve_connection(&self, conn: Connection) -> ServerHandle {
        let (handle, shared) = self.start();
        // Alone in its registry, the connection is never refused.
        if let Ok(slot) = shared.registry.admit(conn.peer()) {
            handle.shared.tracker.spawn(connection::serve(conn, shared, slot));
        }
        handle.shared.tracker.close();
        handle
    }

    /// The state every connection of one `serve` shares, and its handle.
    fn start(&self) -> (ServerHandle, Arc<Shared>) {
        let config = self.config.clone();
        let registry = Registry::new(config.max_connections, config.max_connections_per_peer);
        let detached = Arc::new(Semaphore::new(config.max_detached_calls));
        let handle = ServerHandle::new(
            Arc::clone(&registry),
            Arc::clone(&detached),
            config.max_detached_calls,
            self.router.health().clone(),
        );
        let hello = hello_frame(&self.router, &config);
        let shared = Arc::new(Shared {
            router: Arc::clone(&self.router),
            hello,
            signals: handle.signals(),
            tracker: handle.shared.tracker.clone(),
            receive: ReceiveBudget::new(config.max_receive_budget),
            responses: Arc::new(ByteBudget::new(config.max_response_budget)),
            detached,
            registry,
            config,
        });
        (handle, shared)
    }
}

/// The HELLO every connection of a server sends after its preface, built once.
fn hello_frame(router: &Router, config: &ServerConfig) -> Option<Frame> {
    let limit = config.max_frame_len.max(protocol::MIN_MAX_FRAME_LEN as usize);
    let calls = config.max_in_flight as u64;
    handshake::hello_frame(config.max_frame_len, calls, router.advertise(), limit)
}

/// What every connection of a server shares.
pub(crate) struct Shared {
    pub(crate) router: Arc<Router>,
    /// The HELLO, written after the preface on every connection.
    pub(crate) hello: Option<Frame>,
    pub(crate) config: ServerConfig,
    pub(crate) signals: Signals,
    /// Tracks every task, so shutdown waits for detached calls too.
    pub(crate) tracker: TaskTracker,
    pub(crate) receive: Arc<ReceiveBudget>,
    /// Bytes of outgoing frames queued on all connections (H2).
    pub(crate) responses: Arc<ByteBudget>,
    /// One permit per call still running after its connection closed (H4).
    pub(crate) detached: Arc<Semaphore>,
    pub(crate) registry: Arc<Registry>,
}

async fn accept_loop<L: Listener>(mut listener: L, shared: Arc<Shared>) {
    let config = &shared.config;
    let signals = &shared.signals;
    let mut backoff = Duration::from_millis(5);
    let mut failures = 0u32;
    let mut log = LogLimit::new();
    let name = listener.describe();
    tracing::debug!(listener = %name, "serving");
    loop {
        let accepted = tokio::select! {
            _ = signals.stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(Some(conn)) => {
                backoff = Duration::from_millis(5);
                failures = 0;
                match shared.registry.admit(conn.peer()) {
                    Ok(slot) => {
                        shared.tracker.spawn(connection::serve(conn, Arc::clone(&shared), slot));
                    }
                    Err(why) => {
                        limited!(log, warn, listener = %name, peer = %conn.peer(), ?why, limit = config.max_connections, per_peer = config.max_connections_per_peer, "connection limit reached; refusing");
                        shared.tracker.spawn(connection::refuse(conn, Arc::new(config.clone()), why));
                    }
                }
            }
            Ok(None) => {
                tracing::debug!(listener = %name, "listener closed");
                break;
            }
            Err(e) => {
                // One attempt failed. A peer that reset before it was accepted is its own
                // problem: go straight on. Running out of descriptors or memory (or a run of
                // failures, whatever they are) would make retrying at once spin: wait a little,
                // longer each time.
                failures = failures.saturating_add(1);
                if !is_resource_exhaustion(&e) && failures < ACCEPT_FAILURES_BEFORE_BACKOFF {
                    limited!(log, debug, listener = %name, "accept failed for one peer: {e}");
                    continue;
                }
                limited!(log, warn, listener = %name, "accept failed: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = signals.stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
}

/// Failed accepts in a row, of any kind, before the accept loop starts to back off: enough for a
/// burst of peers that reset before they were accepted, few enough that a listener failing on
/// every call does not spin.
const ACCEPT_FAILURES_BEFORE_BACKOFF: u32 = 64;

/// Whether an accept failed for want of descriptors, buffers or memory, which retrying at once
/// cannot fix.
fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// The signals a server's tasks watch.
#[derive(Debug, Clone)]
pub(crate) struct Signals {
    /// Stop accepting; refuse new calls; close connections once their calls are done.
    pub(crate) stop: Arc<CancellationToken>,
    /// The grace period is over: cancel what is still running.
    pub(crate) force: CancellationToken,
}

#[derive(Debug)]
struct HandleShared {
    signals: Signals,
    tracker: TaskTracker,
    registry: Arc<Registry>,
    detached: Arc<Semaphore>,
    max_detached: usize,
    /// The router's health, set not serving when shutdown begins.
    health: crate::introspection::Health,
}

/// Controls a running server; await it to wait until the server stops.
///
/// Dropping the handle leaves the server running.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<HandleShared>,
}

impl ServerHandle {
    fn new(
        registry: Arc<Registry>,
        detached: Arc<Semaphore>,
        max_detached: usize,
        health: crate::introspection::Health,
    ) -> Self {
        let signals = Signals { stop: Arc::new(CancellationToken::new()), force: CancellationToken::new() };
        let tracker = TaskTracker::new();
        let shared = HandleShared { signals, tracker, registry, detached, max_detached, health };
        ServerHandle { shared: Arc::new(shared) }
    }

    /// Connections being served now (each holds a slot of [`ServerConfig::max_connections`]).
    pub fn connections(&self) -> usize {
        self.shared.registry.len()
    }

    /// Calls still running after their connection closed (see
    /// [`ServerConfig::max_detached_calls`]).
    pub fn detached_calls(&self) -> usize {
        self.shared.max_detached.saturating_sub(self.shared.detached.available_permits())
    }

    fn signals(&self) -> Signals {
        self.shared.signals.clone()
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    ///
    /// Accepting stops at once (the listener is dropped). On every connection, new calls are
    /// refused with [`crate::RpcError::ShuttingDown`] (they never started, so callers may retry
    /// elsewhere) and calls in flight may finish within `grace`; after it, they are cancelled and
    /// their callers get [`crate::RpcError::Cancelled`]. Calling it again, or concurrently, is
    /// harmless: every call returns once the server has stopped.
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared.health.shutting_down();
        shared.signals.stop.cancel();
        tokio::select! {
            _ = shared.tracker.wait() => {}
            _ = tokio::time::sleep(grace) => {
                shared.signals.force.cancel();
                shared.tracker.wait().await;
            }
        }
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.signals.stop.is_cancelled()
    }

    /// Waits until the server has stopped (after a shutdown, the listener failing for good, or
    /// for a single connection, that connection closing).
    pub async fn wait(&self) {
        self.shared.tracker.wait().await;
    }
}

impl IntoFuture for ServerHandle {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.wait().await })
    }
}
