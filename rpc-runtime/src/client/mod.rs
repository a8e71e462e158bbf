//! The client side: one connection, many concurrent calls multiplexed by request id.
//!
//! A [`Client`] owns two background tasks: a writer that coalesces queued frames into as few
//! writes as possible, and a reader that routes each response to its waiting call through the
//! in-flight table. Dropping the last clone of a client closes the connection.

mod deadlines;
mod in_flight;
mod outgoing;
mod reader;
mod reconnect;
mod stream;
mod tower;

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rpc_transport::framed::{Frame, FrameBuf, DEFAULT_MAX_FRAME_LEN};
use rpc_transport::message::MessageLimits;
use rpc_transport::{Connection, Peer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::call::MethodRef;
use crate::codec::{self, Format};
use crate::context::Context;
use crate::engine::handshake;
use crate::hello::Hello;
use crate::{protocol, Metadata, RpcError};
use in_flight::InFlight;
use outgoing::Outgoing;
use reconnect::Reconnector;

/// The default per-call timeout: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default bound on frames queued for writing before callers wait.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 1024;
/// The default time a write may take before the connection is declared dead.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for a [`Client`]; build one with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    timeout: Option<Duration>,
    max_frame_len: usize,
    outbound_queue: usize,
    write_timeout: Duration,
    keepalive: Option<Duration>,
    wait_for_ready: bool,
    format: Format,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            timeout: Some(DEFAULT_TIMEOUT),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            keepalive: None,
            wait_for_ready: true,
            format: Format::Postcard,
        }
    }
}

impl ClientBuilder {
    /// The default deadline of every call, from the moment it is made (`None`: no deadline).
    pub fn timeout(&mut self, timeout: impl Into<Option<Duration>>) -> &mut Self {
        self.timeout = timeout.into();
        self
    }

    /// The longest frame this client sends or accepts.
    pub fn max_frame_len(&mut self, len: usize) -> &mut Self {
        self.max_frame_len = len;
        self
    }

    /// How many frames may wait to be written before new calls wait for room.
    pub fn outbound_queue(&mut self, frames: usize) -> &mut Self {
        self.outbound_queue = frames.max(1);
        self
    }

    /// How long one write may block (the server stopped reading) before the connection is
    /// declared dead and every pending call fails.
    pub fn write_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.write_timeout = timeout;
        self
    }

    /// Detects a server that went silent (a half-open connection, a stopped process): when calls
    /// are waiting and nothing has arrived for `interval`, send a ping; if nothing arrives within
    /// another `interval`, fail every pending call and close. Off by default: each call's
    /// deadline already bounds how long it waits. Choose an interval longer than the server may
    /// take to read a frame when all its handler slots are busy.
    pub fn keepalive(&mut self, interval: impl Into<Option<Duration>>) -> &mut Self {
        self.keepalive = interval.into();
        self
    }

    /// Whether a reconnecting client's call waits for the connection while the client backs
    /// off after a failed connect (on by default), gRPC's *wait-for-ready*.
    ///
    /// On: a call made during the backoff waits for the next attempt, and for the ones after it
    /// should that fail too, as long as the next attempt comes before the call's deadline; when it
    /// would not, the call fails at once with [`RpcError::Unavailable`] carrying the last attempt's
    /// error. So a call never fails with a stale error while it still has time, and a server that
    /// comes back is used by the first attempt after it does. A call without a deadline waits
    /// until a connection is made. On by default because a reconnecting client exists to ride
    /// out outages, and every call's deadline (30 s by default) already bounds its wait.
    ///
    /// Off (fail fast, gRPC's default): a call made during the backoff fails at once with
    /// [`RpcError::Unavailable`], whose `retry_in` says when the next attempt is; useful when a
    /// caller would rather try another server at once. Clients on a fixed connection ignore it.
    pub fn wait_for_ready(&mut self, wait: bool) -> &mut Self {
        self.wait_for_ready = wait;
        self
    }

    /// The format calls are encoded in: [`Format::Postcard`] (the default), or
    /// [`Format::Json`] (cargo feature `json`) to talk to a server in another language or to
    /// read the traffic. The server answers in the format of each call.
    pub fn format(&mut self, format: Format) -> &mut Self {
        self.format = format;
        self
    }

    /// Starts a client on `conn`.
    ///
    /// # Panics
    ///
    /// Panics, naming the caller, if called outside a Tokio runtime: the client's reader and
    /// writer are Tokio tasks. Build it inside `#[tokio::main]`, a task, or
    /// [`Runtime::enter`](tokio::runtime::Runtime::enter).
    #[track_caller]
    pub fn build(&self, conn: Connection) -> Client {
        require_runtime("ClientBuilder::build");
        self.client(Link::Fixed(Arc::new(self.start(conn))))
    }

    /// A client that connects with `connect` on its first call, and again on the first call
    /// after the connection breaks.
    ///
    /// Calls in flight when a connection breaks fail with [`RpcError::ConnectionClosed`]; they
    /// are never replayed, since they may have run. After a failed attempt the next one waits for
    /// a backoff (50 ms, doubling up to 5 s); calls made meanwhile wait for it, or fail at once
    /// with [`RpcError::Unavailable`], as [`wait_for_ready`](ClientBuilder::wait_for_ready) says.
    /// A server that says it is shutting down also makes the next call reconnect. This does not
    /// need a Tokio runtime; the calls do.
    pub fn build_reconnecting<F, Fut>(&self, connect: F) -> Client
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Connection>> + Send + 'static,
    {
        self.client(Link::Reconnecting(Arc::new(Reconnector::new(self.clone(), connect))))
    }

    fn client(&self, link: Link) -> Client {
        Client { link, timeout: self.timeout, explicit_timeout: false, metadata: None }
    }

    /// Starts the reader and writer tasks of one connection.
    fn start(&self, conn: Connection) -> Shared {
        let end_reason = conn.end_reason();
        // Both halves hold the transport's guard (a child process, FIFO files).
        let (reader, write, peer) = conn.into_messages(&MessageLimits::new(self.max_frame_len));
        let in_flight = Arc::new(InFlight::default());
        let out = Arc::new(Outgoing::new(self.outbound_queue));
        // Our HELLO is the first frame; calls follow without waiting for the server's.
        if let Some(frame) = handshake::hello_frame(self.max_frame_len, 0, Vec::new(), self.max_frame_len) {
            // Before any call can queue one, and the writer holds the write half until it has
            // written the preface and taken this.
            let _ = out.push_now(frame);
        }
        let server_hello = Arc::new(OnceLock::new());

        let writer_in_flight = Arc::clone(&in_flight);
        let writer_out = Arc::clone(&out);
        let write_timeout = self.write_timeout;
        let writer_end_reason = end_reason.clone();
        tokio::spawn(async move {
            let written = outgoing::write_loop(&writer_out, write, &protocol::PREFACE, write_timeout).await;
            if let Err(e) = written {
                // A peer that stopped reading is alive: only a failed write says it may have ended.
                let end = writer_end_reason.as_ref().filter(|_| e.kind() != io::ErrorKind::TimedOut);
                let reason = reader::with_end_reason(format!("write failed: {e}"), end).await;
                writer_in_flight.close(RpcError::closed(reason));
            }
        });
        let parts = reader::ReaderParts {
            in_flight: Arc::clone(&in_flight),
            out: Arc::clone(&out),
            keepalive: self.keepalive,
            max_frame_len: self.max_frame_len,
            end_reason,
            hello: Arc::clone(&server_hello),
        };
        let reader_task = tokio::spawn(reader::read_loop(reader, parts));
        Shared {
            in_flight,
            out,
            max_frame_len: self.max_frame_len,
            format: self.format,
            hello: server_hello,
            reader: reader_task.abort_handle(),
            peer,
        }
    }
}

/// A connection to a server, shared by every clone; calls from many tasks run concurrently.
///
/// Generated `{Trait}Client` types wrap one of these. Each call is framed, queued for the writer
/// task and awaited through the in-flight table; responses may arrive in any order.
///
/// # Deadlines
///
/// Every call has a deadline: the client's timeout from the moment the call is made, covering
/// queueing, writing and waiting. Inside a handler, a call with the client's default timeout
/// inherits the handler's own deadline when that is sooner; a timeout set explicitly with
/// [`Client::with_timeout`] is used as given. The remaining time travels to the server, which
/// stops the handler when it passes.
///
/// # Cancellation
///
/// Dropping a call's future cancels the call: it leaves the in-flight table and, if the request
/// was already queued, a cancel frame tells the server to drop the handler.
#[derive(Clone)]
pub struct Client {
    link: Link,
    timeout: Option<Duration>,
    explicit_timeout: bool,
    /// Sent with every call made through this handle.
    metadata: Option<Arc<Metadata>>,
}

/// A connection borrowed from a fixed client or held for the length of one call.
enum SharedRef<'a> {
    Borrowed(&'a Shared),
    Owned(Arc<Shared>),
}

impl std::ops::Deref for SharedRef<'_> {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        match self {
            SharedRef::Borrowed(shared) => shared,
            SharedRef::Owned(shared) => shared,
        }
    }
}

/// How a client reaches its connection.
#[derive(Clone)]
enum Link {
    /// One connection for the client's whole life.
    Fixed(Arc<Shared>),
    /// Whatever connection is current, re-established after a break.
    Reconnecting(Arc<Reconnector>),
}

struct Shared {
    in_flight: Arc<InFlight>,
    /// Frames waiting for the writer task.
    out: Arc<Outgoing>,
    max_frame_len: usize,
    /// How calls and results are encoded on this connection.
    format: Format,
    /// The server's HELLO, once it has arrived.
    hello: Arc<OnceLock<Hello>>,
    reader: AbortHandle,
    peer: Peer,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Ending the queue ends the writer, which closes our write side; the reader would otherwise
        // wait for the server to close its side.
        self.out.end();
        self.reader.abort();
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer())
            .field("reconnecting", &matches!(self.link, Link::Reconnecting(_)))
            .field("timeout", &self.timeout)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Client {
    /// Starts a client on `conn` with default settings.
    ///
    /// # Panics
    ///
    /// Panics, naming the caller, if called outside a Tokio runtime (see
    /// [`ClientBuilder::build`]).
    #[track_caller]
    pub fn new(conn: Connection) -> Client {
        require_runtime("Client::new");
        ClientBuilder::default().build(conn)
    }

    /// Settings for a new client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with default settings that connects with `connect`, and reconnects after the
    /// connection breaks; see [`ClientBuilder::build_reconnecting`].
    pub fn reconnecting<F, Fut>(connect: F) -> Client
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Connection>> + Send + 'static,
    {
        ClientBuilder::default().build_reconnecting(connect)
    }

    /// A handle on the same connection whose calls use `timeout` as their deadline (`None`: no
    /// deadline), overriding any deadline inherited from an enclosing handler.
    pub fn with_timeout(&self, timeout: impl Into<Option<Duration>>) -> Client {
        Client {
            link: self.link.clone(),
            timeout: timeout.into(),
            explicit_timeout: true,
            metadata: self.metadata.clone(),
        }
    }

    /// A handle on the same connection whose calls carry `metadata` (trace context,
    /// credentials); the server's handlers read it from [`Context::metadata`].
    ///
    /// Fails with [`RpcError::MetadataTooLarge`] if it is over the bounds every server enforces.
    pub fn with_metadata(&self, metadata: Metadata) -> Result<Client, RpcError> {
        metadata.check()?;
        let metadata = (!metadata.is_empty()).then(|| Arc::new(metadata));
        Ok(Client { metadata, ..self.clone() })
    }

    /// The metadata this handle's calls carry.
    pub fn metadata(&self) -> &Metadata {
        static EMPTY: Metadata = Metadata::new();
        self.metadata.as_deref().unwrap_or(&EMPTY)
    }

    /// The server's HELLO on the current connection (its services with their methods'
    /// signature hashes, its limits and formats), once it has arrived: see [`Hello`].
    pub fn server_hello(&self) -> Option<Hello> {
        self.current().and_then(|s| s.hello.get().cloned())
    }

    /// The timeout this handle gives each call.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The server's end of the current connection (`None` if a reconnecting client has none).
    pub fn peer(&self) -> Option<Peer> {
        self.current().map(|s| s.peer.clone())
    }

    /// How many calls on the current connection are waiting for a response.
    pub fn in_flight(&self) -> usize {
        self.current().map_or(0, |s| s.in_flight.len())
    }

    /// Why new calls on the current connection fail at once, if it is closed or the server
    /// refuses new calls. (A reconnecting client will try a new connection instead.)
    pub fn closed_reason(&self) -> Option<RpcError> {
        match self.current() {
            Some(s) => s.in_flight.closed_reason(),
            None => Some(RpcError::closed("not connected")),
        }
    }

    /// Waits until the current connection can take no new calls (it closed, or the server said it
    /// is shutting down) and returns why. A reconnecting client would make a new connection on
    /// its next call; with no connection yet, this returns at once.
    pub async fn closed(&self) -> RpcError {
        match self.current() {
            Some(shared) => shared.in_flight.unusable().await,
            None => RpcError::closed("not connected"),
        }
    }

    /// The connection a new call uses: the fixed one (borrowed, no reference count touched), or
    /// a reconnecting client's current one, made anew if it broke.
    async fn connection(&self, deadline: Option<Instant>) -> Result<SharedRef<'_>, RpcError> {
        match &self.link {
            Link::Fixed(shared) => Ok(SharedRef::Borrowed(shared)),
            Link::Reconnecting(r) => match r.usable() {
                Some(shared) => Ok(SharedRef::Owned(shared)),
                // Boxed: connecting is rare, and its future would otherwise make every call's
                // larger (past the allocator's fast size classes).
                None => Ok(SharedRef::Owned(Box::pin(r.connection(deadline)).await?)),
            },
        }
    }

    fn current(&self) -> Option<Arc<Shared>> {
        match &self.link {
            Link::Fixed(shared) => Some(Arc::clone(shared)),
            Link::Reconnecting(r) => r.peek(),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline_from(Instant::now())
    }

    /// The deadline of a call made at `now`.
    fn deadline_from(&self, now: Instant) -> Option<Instant> {
        let own = self.timeout.and_then(|t| now.checked_add(t));
        if self.explicit_timeout {
            return own;
        }
        match (own, Context::inherited_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Calls `method` with `args` (a tuple, encoded in the connection's format) and decodes the
    /// response.
    pub async fn call<A, R>(&self, method: &MethodRef, args: &A) -> Result<R, RpcError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned + 'static,
    {
        let encode =
            |shared: &Shared, id, deadline| shared.encode(id, method, args, deadline, self.metadata());
        let (format, payload) = self.round_trip(self.deadline(), encode).await?;
        // A `Vec<u8>` result arrives as a byte string in one copy (see `codec::Decoded`).
        // A `Bytes` result is read as a view of the reply (see `codec::decode_from`); the test
        // is on a constant, so other results do not pay for making the reply known.
        if std::any::TypeId::of::<R>() == std::any::TypeId::of::<bytes::Bytes>() {
            return codec::decode_from::<codec::Decoded<R>>(format, &payload).map(|d| d.0);
        }
        codec::decode::<codec::Decoded<R>>(format, &payload).map(|d| d.0)
    }

    /// Sends a one-way call: returns once the request is queued for writing, ahead of any call
    /// made after it on this client; the server sends nothing back.
    pub async fn notify<A>(&self, method: &MethodRef, args: &A) -> Result<(), RpcError>
    where
        A: Serialize + ?Sized,
    {
        let encode =
            |shared: &Shared, id, deadline| shared.encode(id, method, args, deadline, self.metadata());
        self.send_only(self.deadline(), encode).await
    }

    /// Sends one call whose frame `encode` builds (given the connection, the call's id and its
    /// deadline) and waits for its reply, within `deadline`: the result's format and payload.
    async fn round_trip<E>(&self, deadline: Option<Instant>, encode: E) -> Result<(Format, Bytes), RpcError>
    where
        E: FnOnce(&Shared, u64, Option<Instant>) -> Result<Frame, RpcError>,
    {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(RpcError::DeadlineExceeded);
        }
        // Sending: done at once when the connection is up and the queue has room. What may wait
        // (connecting, room) is boxed, with a timer for the deadline: kept inline, it would make
        // every call's future several times larger, and futures are moved (into a task, a
        // `FuturesUnordered`) by value.
        let mut call = match self.try_start(deadline, encode)? {
            Sending::Sent(call) => call,
            Sending::Full(mut call, frame) => {
                Box::pin(within(deadline, call.shared.send(frame))).await?;
                call.sent = true;
                call
            }
            Sending::NotConnected(encode) => {
                Box::pin(within(deadline, self.connect_and_start(deadline, encode))).await?
            }
        };
        // Waiting: the connection fails the call at its deadline (see `InFlight`).
        let (reply, expired) = call.shared.in_flight.reply(call.id).await;
        // An expired call is still running on the server: dropping `call` cancels it there.
        call.expired = expired;
        call.done = !expired;
        Ok((call.shared.format, reply?))
    }

    /// Registers a call and queues its request, if that needs no waiting.
    fn try_start<E>(&self, deadline: Option<Instant>, encode: E) -> Result<Sending<'_, E>, RpcError>
    where
        E: FnOnce(&Shared, u64, Option<Instant>) -> Result<Frame, RpcError>,
    {
        let shared = match &self.link {
            Link::Fixed(shared) => SharedRef::Borrowed(shared),
            Link::Reconnecting(r) => match r.usable() {
                Some(shared) => SharedRef::Owned(shared),
                None => return Ok(Sending::NotConnected(encode)),
            },
        };
        let id = shared.in_flight.register(deadline)?;
        let mut call = PendingGuard { shared, id, sent: false, done: false, expired: false };
        let frame = encode(&call.shared, id, deadline)?;
        // The only call waiting writes its request itself (no wake-up of the writer); with
        // others waiting, the writer's one write for all of them is cheaper.
        let alone = call.shared.in_flight.at_most_one();
        match call.shared.out.try_push(frame, alone) {
            Ok(None) => {
                call.sent = true;
                Ok(Sending::Sent(call))
            }
            Ok(Some(frame)) => Ok(Sending::Full(call, frame)),
            Err(_) => Err(call.shared.closed_error()),
        }
    }

    /// Waits for a connection, registers a call and queues its request.
    async fn connect_and_start<E>(
        &self,
        deadline: Option<Instant>,
        encode: E,
    ) -> Result<PendingGuard<'_>, RpcError>
    where
        E: FnOnce(&Shared, u64, Option<Instant>) -> Result<Frame, RpcError>,
    {
        let shared = self.connection(deadline).await?;
        let id = shared.in_flight.register(deadline)?;
        let mut call = PendingGuard { shared, id, sent: false, done: false, expired: false };
        let frame = encode(&call.shared, id, deadline)?;
        call.shared.send(frame).await?;
        call.sent = true;
        Ok(call)
    }

    /// Sends one call that expects no reply; returns once it is queued for writing.
    async fn send_only<E>(&self, deadline: Option<Instant>, encode: E) -> Result<(), RpcError>
    where
        E: FnOnce(&Shared, u64, Option<Instant>) -> Result<Frame, RpcError>,
    {
        let send = async {
            let shared = self.connection(deadline).await?;
            let shared: &Shared = &shared;
            if let Some(err) = shared.in_flight.closed_reason() {
                return Err(err);
            }
            let id = shared.in_flight.oneway_id();
            let frame = encode(shared, id, deadline)?;
            shared.send(frame).await
        };
        within(deadline, send).await
    }
}

/// Runs `fut`, failing with [`RpcError::DeadlineExceeded`] at `deadline`; the timer is made only
/// if `fut` does not finish on its first poll (a tenth of a cheap call's cost when made always).
async fn within<T>(
    deadline: Option<Instant>,
    fut: impl Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    // Boxed, and made on the first poll that finds `fut` waiting: kept inline, the timer would
    // make every call's future larger.
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Some(deadline) = deadline else { return Poll::Pending };
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).map(|()| Err(RpcError::DeadlineExceeded))
    })
    .await
}

impl Shared {
    fn encode<A: Serialize + ?Sized>(
        &self,
        id: u64,
        method: &MethodRef,
        args: &A,
        deadline: Option<Instant>,
        metadata: &Metadata,
    ) -> Result<Frame, RpcError> {
        let max = self.max_frame_len;
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let target = protocol::Target {
            service: method.service().as_bytes(),
            method: method.method().as_bytes(),
            kind: method.kind(),
            hash: method.signature_hash(),
        };
        let mut buf = protocol::call_header(id, target, self.format, remaining, metadata);
        codec::encode_into(self.format, &mut buf, args, max)?;
        finish(buf, max)
    }

    /// Queues `frame` for the writer, waiting for room if the queue is full.
    async fn send(&self, frame: Frame) -> Result<(), RpcError> {
        match self.out.try_push(frame, false) {
            Ok(None) => Ok(()),
            // Boxed: waiting is rare, and its future would make every call's larger.
            Ok(Some(frame)) => Box::pin(self.out.push(frame)).await.map_err(|_| self.closed_error()),
            Err(_) => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> RpcError {
        self.in_flight.closed_reason().unwrap_or_else(|| RpcError::closed("the connection's writer stopped"))
    }

    /// Whether new calls can use this connection.
    fn is_usable(&self) -> bool {
        self.in_flight.closed_reason().is_none()
    }
}

/// Panics with a message naming `what` and its caller when there is no Tokio runtime, rather
/// than deep inside `tokio::spawn`.
#[track_caller]
fn require_runtime(what: &str) {
    if tokio::runtime::Handle::try_current().is_err() {
        panic!(
            "{what} must be called from within a Tokio runtime (inside `#[tokio::main]`, a task, or \
             `Runtime::enter`): a client runs its reader and writer as Tokio tasks"
        );
    }
}

pub(crate) fn finish(buf: FrameBuf, max: usize) -> Result<Frame, RpcError> {
    buf.finish(max).map_err(|e| RpcError::FrameTooLarge { len: e.len, max: e.max })
}

/// How far [`Client::try_start`] got.
enum Sending<'a, E> {
    /// The request is queued.
    Sent(PendingGuard<'a>),
    /// The call is registered; its request waits for room in the queue.
    Full(PendingGuard<'a>, Frame),
    /// A reconnecting client has no usable connection now; `E` encodes the request once it has.
    NotConnected(E),
}

/// A registered call; cleans up after one that is dropped before its response arrives, or
/// whose deadline passed, telling the server to stop it.
struct PendingGuard<'a> {
    shared: SharedRef<'a>,
    id: u64,
    sent: bool,
    /// The response came: nothing to clean up.
    done: bool,
    /// The deadline passed and the slot is already freed.
    expired: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let running = self.expired || self.shared.in_flight.remove(self.id);
        if !running || !self.sent {
            return;
        }
        let Ok(frame) = protocol::cancel_frame(self.id).finish(self.shared.max_frame_len) else { return };
        // Past the queue's bound if need be: a lost cancel would leave the handler running to
        // its deadline, and there is at most one per call.
        let _ = self.shared.out.push_now(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Building a client outside a Tokio runtime panics with a message that says what to do,
    /// not from deep inside `tokio::spawn`.
    #[test]
    fn building_outside_a_runtime_panics_clearly() {
        for build in [(|| drop(Client::new(rpc_transport::memory::pair().0))) as fn(), || {
            drop(Client::builder().build(rpc_transport::memory::pair().0))
        }] {
            let panic = std::panic::catch_unwind(build).expect_err("no runtime, no client");
            let message = panic.downcast_ref::<String>().expect("a formatted message");
            assert!(message.contains("must be called from within a Tokio runtime"), "{message}");
            assert!(message.contains("#[tokio::main]"), "{message}");
        }
        // A reconnecting client connects on its first call, so it can be built anywhere.
        drop(Client::reconnecting(|| async { rpc_transport::memory::listener().1.connect() }));
    }
}
