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

mod connection;
mod handler;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rpc_transport::framed::{ReceiveBudget, DEFAULT_MAX_FRAME_LEN};
use rpc_transport::{Connection, Listener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Service;

/// The limits and timeouts of a server. Every field has a finite default, pinned by a test.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The longest frame accepted or sent. Default 4 MiB.
    pub max_frame_len: usize,
    /// Handlers running at once per connection; when reached, the server stops reading that
    /// connection until one finishes (backpressure). Default 128.
    pub max_in_flight: usize,
    /// Connections served at once; past it, new ones get a goaway frame and are closed.
    /// Default 1024.
    pub max_connections: usize,
    /// A connection with no calls running and no frames arriving for this long is closed.
    /// Default 5 minutes.
    pub idle_timeout: Duration,
    /// A frame must arrive in full within this time of its first byte (slowloris). Default 30 s.
    pub frame_timeout: Duration,
    /// A new connection must send its preface within this time. Default 10 s.
    pub handshake_timeout: Duration,
    /// A write that blocks longer than this (the peer stopped reading) kills the connection.
    /// Default 30 s.
    pub write_timeout: Duration,
    /// Deadlines sent by clients are clamped to this. Default 24 hours.
    pub max_deadline: Duration,
    /// Response frames queued for writing per connection before handlers wait. Default 128.
    pub outbound_queue: usize,
    /// Pings and pongs a connection may send within one second with no request among them; one
    /// more closes the connection with a goaway saying "too many control frames". Requests reset
    /// the count, so keepalives beside real traffic are never cut off. (Cancels have their own
    /// rule: at most one per request received, plus 1024.) Default 1000.
    pub max_control_frames_per_sec: u32,
    /// Bytes of large frames (over 64 KiB) that all connections together may be receiving at
    /// once; a connection announcing a frame that does not fit gets a goaway (`Overloaded`) and
    /// is closed. Bounds what peers that announce maximal frames and trickle them can make the
    /// server hold, which would otherwise be `max_connections × max_frame_len`. Default 256 MiB.
    pub max_receive_budget: usize,
    /// Whether a call starts on its connection's task (default `true`), moving to a task of its
    /// own only at its first wait. A handler that finishes without waiting then costs no task,
    /// which makes cheap calls several times cheaper; but a handler that computes for long
    /// before its first `.await` holds up the reading of its connection meanwhile (other
    /// connections are unaffected). With `false`, every call gets its own task at once, so
    /// CPU-bound handlers on one connection run in parallel on a multi-threaded runtime.
    /// Either way, deadlines, cancellation, limits and panic isolation are the same.
    pub inline_handlers: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_in_flight: 128,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_deadline: Duration::from_secs(24 * 60 * 60),
            outbound_queue: 128,
            max_control_frames_per_sec: 1000,
            max_receive_budget: 256 * 1024 * 1024,
            inline_handlers: true,
        }
    }
}

/// Serves a [`Service`] on listeners or single connections.
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
pub struct Server<S> {
    service: Arc<S>,
    config: ServerConfig,
}

impl<S: Service> Server<S> {
    /// A server for `service` with the default [`ServerConfig`].
    pub fn new(service: S) -> Self {
        Server { service: Arc::new(service), config: ServerConfig::default() }
    }

    /// Replaces the whole configuration.
    pub fn config(&mut self, config: ServerConfig) -> &mut Self {
        self.config = config;
        self
    }

    /// The configuration in force.
    pub fn get_config(&self) -> &ServerConfig {
        &self.config
    }

    /// See [`ServerConfig::max_frame_len`].
    pub fn max_frame_len(&mut self, len: usize) -> &mut Self {
        self.config.max_frame_len = len;
        self
    }

    /// See [`ServerConfig::max_in_flight`].
    pub fn max_in_flight(&mut self, n: usize) -> &mut Self {
        self.config.max_in_flight = n.max(1);
        self
    }

    /// See [`ServerConfig::max_connections`].
    pub fn max_connections(&mut self, n: usize) -> &mut Self {
        self.config.max_connections = n.max(1);
        self
    }

    /// See [`ServerConfig::idle_timeout`].
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// See [`ServerConfig::frame_timeout`].
    pub fn frame_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.config.frame_timeout = timeout;
        self
    }

    /// See [`ServerConfig::handshake_timeout`].
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// See [`ServerConfig::write_timeout`].
    pub fn write_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.config.write_timeout = timeout;
        self
    }

    /// See [`ServerConfig::max_deadline`].
    pub fn max_deadline(&mut self, max: Duration) -> &mut Self {
        self.config.max_deadline = max;
        self
    }

    /// See [`ServerConfig::max_receive_budget`].
    pub fn max_receive_budget(&mut self, bytes: usize) -> &mut Self {
        self.config.max_receive_budget = bytes;
        self
    }

    /// See [`ServerConfig::inline_handlers`].
    pub fn inline_handlers(&mut self, yes: bool) -> &mut Self {
        self.config.inline_handlers = yes;
        self
    }

    /// Serves every connection `listener` accepts, on a spawned task, until shut down.
    ///
    /// The listener is dropped (removing a Unix socket or FIFO file) as soon as shutdown begins.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime.
    pub fn serve<L: Listener>(&self, listener: L) -> ServerHandle {
        let handle = ServerHandle::new();
        let signals = handle.signals();
        let tracker = handle.shared.tracker.clone();
        let service = Arc::clone(&self.service);
        let config = Arc::new(self.config.clone());
        handle.shared.tracker.spawn(async move {
            accept_loop(listener, service, config, signals, &tracker).await;
            tracker.close();
        });
        handle
    }

    /// Serves one connection on a spawned task; the handle completes when it closes.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime.
    pub fn serve_connection(&self, conn: Connection) -> ServerHandle {
        let handle = ServerHandle::new();
        let fut = connection::serve(
            conn,
            Arc::clone(&self.service),
            Arc::new(self.config.clone()),
            handle.signals(),
            None,
            ReceiveBudget::new(self.config.max_receive_budget),
        );
        handle.shared.tracker.spawn(fut);
        handle.shared.tracker.close();
        handle
    }
}

async fn accept_loop<L: Listener, S: Service>(
    mut listener: L,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    signals: Signals,
    tracker: &TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let budget = ReceiveBudget::new(config.max_receive_budget);
    let mut backoff = Duration::from_millis(5);
    let name = listener.describe();
    tracing::debug!(listener = %name, "serving");
    loop {
        let accepted = tokio::select! {
            _ = signals.stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(conn) => {
                backoff = Duration::from_millis(5);
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let fut = connection::serve(
                            conn,
                            Arc::clone(&service),
                            Arc::clone(&config),
                            signals.clone(),
                            Some(slot),
                            Arc::clone(&budget),
                        );
                        tracker.spawn(fut);
                    }
                    Err(_) => {
                        tracing::warn!(listener = %name, peer = %conn.peer(), limit = config.max_connections, "connection limit reached; refusing");
                        tracker.spawn(connection::refuse(conn, Arc::clone(&config)));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                tracing::debug!(listener = %name, "listener closed: {e}");
                break;
            }
            Err(e) => {
                // Typically EMFILE: retrying at once would spin; wait a little, longer each time.
                tracing::warn!(listener = %name, "accept failed: {e}");
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

/// The signals a server's tasks watch.
#[derive(Debug, Clone)]
pub(crate) struct Signals {
    /// Stop accepting; refuse new calls; close connections once their calls are done.
    pub(crate) stop: CancellationToken,
    /// The grace period is over: cancel what is still running.
    pub(crate) force: CancellationToken,
}

#[derive(Debug)]
struct HandleShared {
    signals: Signals,
    tracker: TaskTracker,
}

/// Controls a running server; await it to wait until the server stops.
///
/// Dropping the handle leaves the server running.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<HandleShared>,
}

impl ServerHandle {
    fn new() -> Self {
        let signals = Signals { stop: CancellationToken::new(), force: CancellationToken::new() };
        ServerHandle { shared: Arc::new(HandleShared { signals, tracker: TaskTracker::new() }) }
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
