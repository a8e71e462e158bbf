//! One server connection: handshake, the read loop, and an orderly close.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use rpc_transport::framed::FrameError;
use rpc_transport::message::{MessageLimits, MessageReader};
use rpc_transport::{Connection, Peer};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handler::{self, error_frame, panic_message, Call};
use super::log_limit::limited;
use super::outbox::Outbox;
use super::registry::{Refused, Slot};
use super::{ServerConfig, Shared};
use crate::codec::Format;
use crate::context::Context;
use crate::describe::MethodKind;
use crate::engine::goaway::{self, GOAWAY_WAIT};
use crate::engine::handshake::{self, HandshakeError, PeerLimits};
use crate::engine::limits::{
    self, Breach, CancelCredit, ControlBudget, Violations, PARKED_REQUESTS, PEER_CAP_LINGER, REFUSAL_LINGER,
};
use crate::engine::{keepalive, Event, Role, State};
use crate::protocol::{self, ErrorCode, Message};
use crate::service::ResponseBuf;
use crate::stream::credit::SendCredit;
use crate::stream::io::{Incoming, StreamIo};
use crate::RpcError;

/// This end of every connection served here.
const ROLE: Role = Role::Server;

/// A signal the connection's loop waits for besides its own work.
enum Signal {
    /// The writer task ended (the peer is gone or stopped reading).
    WriterDead,
    /// Shutdown's grace period ran out.
    Force,
    /// Shutdown began.
    Stop,
    /// The server evicted this idle connection to make room for a new one (H6).
    Evicted,
}

impl From<Breach> for Close {
    fn from(breach: Breach) -> Close {
        Close::GoAway(breach.code, breach.message)
    }
}

/// Why a connection ended.
enum Close {
    /// The peer closed its side.
    PeerClosed,
    /// Shutdown drained every call.
    Drained,
    /// Shutdown's grace period ran out.
    Forced,
    /// The writer failed (peer gone or not reading); nothing more can be sent.
    WriteFailed,
    /// We are closing the connection for a reason the peer should hear.
    GoAway(ErrorCode, String),
    /// The connection failed in a way the peer cannot be told about.
    Failed(String),
}

/// Refuses a connection past the connection limit: preface, goaway, close.
///
/// The close lingers: after sending, the server reads and discards what the client sends until
/// it hangs up or [`REFUSAL_LINGER`] passes. Closing a socket with unread input makes the kernel
/// send a reset, which can destroy the goaway before the client reads it.
pub(super) async fn refuse(conn: Connection, config: Arc<ServerConfig>, why: Refused) {
    let (mut read, write, _peer) = conn.into_messages(&MessageLimits::new(config.max_frame_len));
    let (tx, rx) = crate::engine::queue::channel(1);
    let reason = match why {
        Refused::Full => "the server's connection limit is reached",
        Refused::PeerCap => "the server's limit of connections from one peer is reached",
    };
    if let Some(frame) = goaway::frame(ErrorCode::Overloaded, reason, config.max_frame_len) {
        let _ = tx.try_send(frame);
    }
    drop(tx);
    // A peer over its own cap is reconnecting in a loop, typically: a short linger keeps what
    // its refusals cost the server (a task and a socket each) small, and still lets it read why.
    let linger = match why {
        Refused::Full => REFUSAL_LINGER,
        Refused::PeerCap => PEER_CAP_LINGER,
    }
    .min(config.handshake_timeout);
    let _ = crate::engine::writer::write_loop(write, &protocol::PREFACE, rx, linger).await;
    let _ = tokio::time::timeout(linger, read.discard_all()).await;
}

/// Serves one connection until it closes.
///
/// Returns as soon as the connection is closed, freeing its slot and socket: calls that must
/// outlive it (one-way, run-to-completion) go on detached, within the server's limit (H4).
pub(super) async fn serve(conn: Connection, shared: Arc<Shared>, slot: Slot) {
    let config = &shared.config;
    // The frame timeout and the receive budget are the transport's to apply (framed or not).
    let limits = limits::message_limits(config, &shared.receive);
    // Both halves hold the transport's guard, so it lives as long as either is in use.
    let (mut reader, write, peer) = conn.into_messages(&limits);
    let (tx, rx) = crate::engine::queue::channel(config.outbound_queue.max(1));
    let writer_dead = CancellationToken::new();
    let outbox = Arc::new(Outbox::new(
        tx,
        config.response_budget_per_connection,
        Arc::clone(&shared.responses),
        config.write_timeout,
        writer_dead.clone(),
    ));
    let writer = tokio::spawn({
        let dead = writer_dead.clone();
        let outbox = Arc::clone(&outbox);
        let write_timeout = config.write_timeout;
        let peer = peer.to_string();
        let hello = shared.hello.clone();
        async move {
            let written = |n| outbox.release(n);
            let greeting = crate::engine::writer::Greeting { preface: &protocol::PREFACE, hello };
            let result =
                crate::engine::writer::write_frames(write, greeting, rx, write_timeout, written).await;
            if let Err(e) = result {
                tracing::debug!(%peer, "closing connection: {e}");
            }
            dead.cancel();
        }
    });
    let mut conn = ServerConn {
        slots: Arc::new(Semaphore::new(config.max_in_flight)),
        parked: VecDeque::new(),
        peer: Arc::new(peer),
        outbox,
        running: HashMap::new(),
        tasks: JoinSet::new(),
        state: State::Handshaking,
        control: ControlBudget::new(config.max_control_frames_per_sec),
        cancel_credit: CancelCredit::new(),
        violations: Violations::new(config.max_protocol_violations),
        max_reply_len: config.max_frame_len,
        peer_window: crate::hello::DEFAULT_STREAM_WINDOW,
        streams: HashMap::new(),
        highest_id: 0,
        last_request: Instant::now(),
        slot,
        shared: Arc::clone(&shared),
    };
    let close = conn.run(&mut reader, &writer_dead).await;
    conn.close(close).await;
    // Write what is queued (a goaway, say) and close the socket, even though detached calls may
    // still hold the outbox.
    conn.outbox.finish();
    let _ = writer.await;
    // Only now: closing the read side first could make the peer's writes fail before it has
    // read the goaway.
    drop(reader);
}

/// A decoded request waiting for a handler slot.
struct Parked {
    id: u64,
    handler: crate::service::Handler,
    stream: Option<(Arc<StreamIo>, Arc<SendCredit>)>,
    deadline: Option<Instant>,
    oneway: bool,
    metadata: crate::Metadata,
}

struct ServerConn {
    shared: Arc<Shared>,
    /// The longest reply this connection may send: ours, or the client's HELLO's if smaller.
    max_reply_len: usize,
    peer: Arc<Peer>,
    outbox: Arc<Outbox>,
    slots: Arc<Semaphore>,
    /// Running calls that a cancel, a deadline or the connection closing may stop, by request id.
    running: HashMap<u64, AbortHandle>,
    tasks: JoinSet<u64>,
    parked: VecDeque<Parked>,
    /// Handshaking until the client's HELLO is read, draining once shutdown began.
    state: State,
    /// Pings and pongs this connection may still send.
    control: ControlBudget,
    /// Cancels this connection may still send.
    cancel_credit: CancelCredit,
    /// Protocol violations so far (H7).
    violations: Violations,
    /// The connection's place in the server's registry (caps, eviction, idleness).
    slot: Slot,
    /// When the last request arrived.
    last_request: Instant,
    /// The credit the client's HELLO gives each stream of results.
    peer_window: u64,
    /// Open streams, by call id: see [`StreamEntry`].
    streams: HashMap<u64, StreamEntry>,
    /// The highest call id seen: a stream frame for a higher one names a stream never opened.
    highest_id: u64,
}

/// The connection's side of one streaming call: the rules the client's stream frames must keep
/// (PROTOCOL.md, Streams).
struct StreamEntry {
    kind: MethodKind,
    /// The credit the client was given at first (our HELLO's `stream_window`).
    window: u64,
    /// Where the client's items go; `None` once it sent `END` (or for a server stream).
    incoming: Option<mpsc::Sender<Bytes>>,
    /// Items received so far.
    received: u64,
    /// Credit granted beyond the first window, by the handler's side as it takes items.
    granted: Arc<AtomicU64>,
    /// The client's credit for the items the handler returns.
    credit: Arc<SendCredit>,
}

impl StreamEntry {
    fn client_sends(&self) -> bool {
        matches!(self.kind, MethodKind::ClientStream | MethodKind::Bidi)
    }

    fn server_sends(&self) -> bool {
        matches!(self.kind, MethodKind::ServerStream | MethodKind::Bidi)
    }
}

impl ServerConn {
    async fn run(&mut self, reader: &mut MessageReader, writer_dead: &CancellationToken) -> Close {
        let shared = Arc::clone(&self.shared);
        let signals = &shared.signals;
        let evicted = self.slot.evicted.clone();
        let timeout = Some(self.shared.config.handshake_timeout);
        match handshake::run(reader, ROLE, timeout).await {
            Ok(hello) => {
                if let Some(hello) = hello {
                    let limits = PeerLimits::new(&hello, self.max_reply_len);
                    self.max_reply_len = limits.max_frame_len;
                    self.peer_window = limits.stream_window;
                }
                self.state = self.state.on(Event::HelloReceived);
            }
            Err(HandshakeError::Closed) => return Close::PeerClosed,
            Err(e) => {
                return match e.goaway_code() {
                    Some(code) => Close::GoAway(code, e.to_string()),
                    None => Close::Failed(e.to_string()),
                }
            }
        }

        let idle_timeout = self.shared.config.idle_timeout;
        let mut last_activity = Instant::now();
        // Made once and polled in place: a future made afresh on every turn of the loop would
        // register and unregister a waiter (or a timer) each time, for every frame. The three
        // signals sit in a FuturesUnordered, which polls only the one that was woken: polling
        // a waiting `cancelled()` future again takes two locks, on every wake-up of this task.
        let mut events: FuturesUnordered<Pin<Box<dyn Future<Output = Signal> + Send + '_>>> =
            FuturesUnordered::new();
        events.push(Box::pin(async move {
            writer_dead.cancelled().await;
            Signal::WriterDead
        }));
        events.push(Box::pin(async move {
            signals.force.cancelled().await;
            Signal::Force
        }));
        events.push(Box::pin(async move {
            signals.stop.cancelled().await;
            Signal::Stop
        }));
        events.push(Box::pin(async move {
            evicted.cancelled().await;
            Signal::Evicted
        }));
        let idle = tokio::time::sleep_until(last_activity + idle_timeout);
        tokio::pin!(idle);
        loop {
            if self.state == State::Draining && self.tasks.is_empty() {
                return Close::Drained;
            }
            tokio::select! {
                biased;
                Some(signal) = events.next() => match signal {
                    Signal::WriterDead => return Close::WriteFailed,
                    Signal::Force => return Close::Forced,
                    Signal::Stop => self.start_draining().await,
                    Signal::Evicted => {
                        return Close::GoAway(
                            ErrorCode::Idle,
                            "closed while idle to make room: the server's connection limit is reached".into(),
                        )
                    }
                },
                Some(done) = self.tasks.join_next() => {
                    self.reap(done);
                    last_activity = Instant::now();
                    if self.tasks.is_empty() && self.parked.is_empty() {
                        self.slot.activity.idle_since_now();
                    }
                }
                // Responses waiting for the peer to read: start nothing, read nothing (H2).
                _ = self.outbox.wait_for_room(), if self.outbox.is_full() => {}
                permit = Arc::clone(&self.slots).acquire_owned(), if !self.parked.is_empty() && !self.outbox.is_full() => {
                    let permit = permit.expect("the semaphore is never closed");
                    if let Some(parked) = self.parked.pop_front() {
                        self.start(parked, permit).await;
                    }
                }
                _ = &mut idle => {
                    // The timer moves only when it fires, rather than on every frame: a busy
                    // connection pushes it a full period on, an idle one closes once it has been
                    // quiet for the whole period since its last frame or finished call.
                    let now = Instant::now();
                    let busy = !self.tasks.is_empty() || !self.parked.is_empty() || reader.in_message();
                    if !busy && last_activity + idle_timeout <= now {
                        return Close::GoAway(ErrorCode::Idle, format!("idle for {idle_timeout:?}"));
                    }
                    idle.as_mut().reset(if busy { now } else { last_activity } + idle_timeout);
                }
                frame = reader.recv(), if self.parked.len() < PARKED_REQUESTS && !self.outbox.is_full() => {
                    // The replies of the calls in this read are written together when it is
                    // handled, here rather than by the writer task if it is idle.
                    self.outbox.cork();
                    // In line rather than a method of its own: a future of its own made every
                    // connection's task larger (0.2 KiB more per idle connection, measured).
                    let closed = 'read: {
                        let mut frame = frame.map(Some);
                        // Frames that arrived in the same read are handled here, not each on its
                        // own turn of the loop.
                        loop {
                            match frame {
                                Ok(Some(Some(body))) => match self.on_frame(body).await {
                                    Ok(Activity::Request) => last_activity = self.last_request,
                                    Ok(Activity::Call) => last_activity = Instant::now(),
                                    Ok(Activity::Control) => {}
                                    Err(close) => break 'read Some(close),
                                },
                                Ok(Some(None)) => break 'read Some(Close::PeerClosed),
                                Ok(None) => break 'read None,
                                Err(e) => break 'read Some(read_failed(e)),
                            }
                            if self.parked.len() >= PARKED_REQUESTS || self.outbox.is_full() {
                                break 'read None;
                            }
                            frame = reader.next_buffered().map(|f| f.map(Some));
                        }
                    };
                    self.outbox.uncork();
                    if let Some(close) = closed {
                        return close;
                    }
                }
            }
        }
    }

    /// Stops taking calls: tells the client, and refuses the ones still waiting for a slot (they
    /// never started, so they are safe to retry).
    async fn start_draining(&mut self) {
        self.state = self.state.on(Event::GoAway);
        tracing::debug!(peer = %self.peer, state = %self.state, "shutdown began");
        let max = self.shared.config.max_frame_len;
        if let Some(frame) = goaway::frame(ErrorCode::ShuttingDown, "the server is shutting down", max) {
            self.outbox.try_send(frame);
        }
        for parked in std::mem::take(&mut self.parked) {
            if !parked.oneway {
                self.reply(parked.id, &RpcError::ShuttingDown).await;
            }
        }
    }

    fn reap(&mut self, done: Result<u64, tokio::task::JoinError>) {
        if let Ok(id) = done {
            self.running.remove(&id);
            self.end_stream(id);
        }
    }

    /// Forgets a stream whose call ended: later frames for it are discarded.
    fn end_stream(&mut self, id: u64) {
        // Most calls are not streams: skip hashing their id.
        if self.streams.is_empty() {
            return;
        }
        if let Some(entry) = self.streams.remove(&id) {
            entry.credit.close();
        }
    }

    /// Checks one stream frame against the stream rules and acts on it.
    async fn on_stream_frame(&mut self, msg: Message) -> Result<Activity, Close> {
        let id = msg.stream_id().unwrap_or_default();
        let Some(entry) = self.streams.get_mut(&id) else {
            let live = self.running.contains_key(&id) || self.parked.iter().any(|p| p.id == id);
            if id <= self.highest_id && !live {
                // A stream that has ended (a race with its END, ERROR or CANCEL), or a call that
                // has finished: discarded.
                return Ok(Activity::Control);
            }
            let what = if live { "a unary or one-way call" } else { "never opened" };
            let message = format!("a stream frame for call {id}, which is not an open stream ({what})");
            return self.stream_violation(id, &message, false).await.map(|()| Activity::Control);
        };
        let broken = match msg {
            Message::Item { body, .. } => {
                if !entry.client_sends() {
                    Some("an ITEM from the client on a server stream")
                } else if let Some(tx) = &entry.incoming {
                    entry.received += 1;
                    let granted = entry.granted.load(Ordering::Acquire);
                    if !limits::item_within_credit(entry.received, entry.window, granted) {
                        Some("an ITEM beyond the credit granted")
                    } else {
                        // Within the credit there is room (the queue holds a window); a handler
                        // that dropped its stream of arguments discards the rest.
                        let _ = tx.try_send(body);
                        None
                    }
                } else {
                    Some("an ITEM after the client's END")
                }
            }
            Message::End { .. } => {
                if !entry.client_sends() {
                    Some("an END from the client on a server stream")
                } else if entry.incoming.take().is_none() {
                    Some("an END after the client's END")
                } else {
                    None
                }
            }
            Message::Credit { credit, .. } => {
                if !entry.server_sends() {
                    Some("a CREDIT from the client on a client stream")
                } else if entry.credit.grant(credit).is_err() {
                    Some("a CREDIT that takes the outstanding grant past 2^32 - 1")
                } else {
                    None
                }
            }
            _ => None,
        };
        match broken {
            None => Ok(Activity::Call),
            Some(rule) => {
                let message = format!("stream {id}: {rule}");
                self.stream_violation(id, &message, true).await.map(|()| Activity::Call)
            }
        }
    }

    /// A stream frame that broke a rule: counted as a violation, answered with `ERROR` code 13
    /// for the stream, which ends (its handler is dropped) if it was open.
    async fn stream_violation(&mut self, id: u64, message: &str, open: bool) -> Result<(), Close> {
        self.violation_of(ErrorCode::StreamProtocol, id, message)?;
        if open {
            self.end_stream(id);
            if let Some(task) = self.running.remove(&id) {
                task.abort();
            }
            self.parked.retain(|p| p.id != id);
        }
        let frame = protocol::error_frame_raw(id, ErrorCode::StreamProtocol as u64, message);
        if let Ok(frame) = frame.finish(self.shared.config.max_frame_len) {
            let _ = self.outbox.send(frame).await;
        }
        Ok(())
    }

    /// Handles one frame: what kind of activity it was, or why the connection must close.
    async fn on_frame(&mut self, body: Bytes) -> Result<Activity, Close> {
        match protocol::decode(body) {
            Ok(Message::Call { head, body }) => {
                self.cancel_credit.on_request();
                self.highest_id = self.highest_id.max(head.id);
                self.on_request(head, &body).await?;
                Ok(Activity::Request)
            }
            Ok(Message::Cancel { id }) => {
                // A cancel of a call that already finished is normal; a flood is not.
                self.cancel_credit.take()?;
                // A running task's slot is freed when the runtime drops its future, not before.
                if let Some(task) = self.running.remove(&id) {
                    task.abort();
                } else {
                    self.parked.retain(|p| p.id != id);
                }
                // On a stream, a cancel ends both directions.
                self.end_stream(id);
                Ok(Activity::Call)
            }
            Ok(Message::Ping { nonce }) => {
                self.control.take()?;
                // A pong that does not fit in the queue is dropped: pings never queue unboundedly.
                if let Some(frame) = keepalive::pong(nonce, self.shared.config.max_frame_len) {
                    self.outbox.try_send(frame);
                }
                Ok(Activity::Control)
            }
            Ok(Message::Pong) => self.control.take().map(|()| Activity::Control).map_err(Close::from),
            Ok(
                m @ (Message::Reply { .. }
                | Message::Error { .. }
                | Message::GoAway { .. }
                | Message::Hello(_)),
            ) => Err(Close::GoAway(ErrorCode::Protocol, ROLE.forbidden(&m).into())),
            Ok(msg @ (Message::Item { .. } | Message::End { .. } | Message::Credit { .. })) => {
                self.on_stream_frame(msg).await
            }
            Err((Some(id), e)) => {
                self.violation(id, &e.to_string())?;
                self.reply(id, &e).await;
                Ok(Activity::Call)
            }
            Err((None, e)) => Err(Close::GoAway(ErrorCode::Protocol, e.to_string())),
        }
    }

    /// Counts a protocol violation that does not by itself close the connection; `Err` once there
    /// have been more than [`ServerConfig::max_protocol_violations`] (H7).
    fn violation(&mut self, id: u64, what: &str) -> Result<(), Close> {
        self.violation_of(ErrorCode::Protocol, id, what)
    }

    /// [`violation`](Self::violation) of a named rule: the goaway carries its code.
    fn violation_of(&mut self, code: ErrorCode, id: u64, what: &str) -> Result<(), Close> {
        self.violations.count(code, what)?;
        limited!(self.outbox.log(), warn, peer = %self.peer, id, "protocol violation: {what}");
        Ok(())
    }

    async fn on_request(&mut self, head: protocol::CallHead, payload: &Bytes) -> Result<(), Close> {
        let now = Instant::now();
        self.last_request = now;
        let protocol::CallHead { id, kind, format, service, method, hash, timeout, metadata } = head;
        let oneway = kind == crate::describe::MethodKind::Oneway;
        let fail = |e| if oneway { None } else { Some(e) };
        let Some(format) = protocol::format_from_byte(format).filter(|f| Format::available().contains(f))
        else {
            if let Some(e) =
                fail(RpcError::Decode(format!("the call's format {format} is not one this server speaks")))
            {
                self.reply(id, &e).await;
            }
            return Ok(());
        };
        if !self.state.takes_calls() {
            if let Some(e) = fail(RpcError::ShuttingDown) {
                self.reply(id, &e).await;
            }
            return Ok(());
        }
        if self.running.contains_key(&id) || self.parked.iter().any(|p| p.id == id) {
            return self.violation(id, "ignored a request reusing the id of a call in flight");
        }
        if self.tasks.is_empty() {
            self.slot.activity.idle_since(now);
        }
        let config = &self.shared.config;
        // One-way calls have nobody waiting to bound them: the server gives them a deadline.
        let timeout = timeout.or(oneway.then_some(config.oneway_deadline));
        // Clamped, and checked: a forged `u64::MAX` must neither panic nor overflow.
        let deadline = timeout.and_then(|t| now.checked_add(t.min(config.max_deadline)));
        if deadline.is_some_and(|d| d <= now) {
            if let Some(e) = fail(RpcError::DeadlineExceeded) {
                self.reply(id, &e).await;
            }
            return Ok(());
        }
        let stream = self.open_stream(id, kind);
        let response = ResponseBuf {
            buf: protocol::reply_header(id),
            max_frame_len: self.max_reply_len,
            format,
            stream: stream.as_ref().map(|(io, _, _)| Arc::clone(io)),
        };
        // The arguments are decoded here; a `Bytes` among them is a view of the frame.
        let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| {
            crate::codec::with_source(payload, || {
                self.shared
                    .router
                    .prepare(&service, &method, kind, hash, payload, response, &self.peer, &metadata)
            })
        }));
        let handler = match prepared {
            Ok(Ok(handler)) => handler,
            Ok(Err(e)) => {
                let method = String::from_utf8_lossy(&method);
                limited!(self.outbox.log(), debug, peer = %self.peer, id, %method, "refused a call: {e}");
                if let Some(e) = fail(e) {
                    self.reply(id, &e).await;
                }
                return Ok(());
            }
            Err(panic) => {
                let method = String::from_utf8_lossy(&method);
                limited!(self.outbox.log(), error, peer = %self.peer, id, %method, "decoding the arguments panicked: {}", panic_message(&*panic));
                if let Some(e) = fail(RpcError::HandlerPanicked) {
                    self.reply(id, &e).await;
                }
                return Ok(());
            }
        };
        let stream = stream.map(|(io, credit, entry)| {
            self.streams.insert(id, entry);
            (io, credit)
        });
        let parked = Parked { id, handler, stream, deadline, oneway, metadata };
        // First come, first served: a request never overtakes one already waiting.
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) if self.parked.is_empty() && !self.outbox.is_full() => {
                self.start(parked, permit).await
            }
            _ => self.parked.push_back(parked),
        }
        Ok(())
    }

    /// A streaming call's channels and the rules' state; `None` for other calls.
    fn open_stream(
        &self,
        id: u64,
        kind: MethodKind,
    ) -> Option<(Arc<StreamIo>, Arc<SendCredit>, StreamEntry)> {
        let (client_sends, server_sends) = match kind {
            MethodKind::ServerStream => (false, true),
            MethodKind::ClientStream => (true, false),
            MethodKind::Bidi => (true, true),
            MethodKind::Unary | MethodKind::Oneway => return None,
        };
        let window = crate::hello::DEFAULT_STREAM_WINDOW;
        let granted = Arc::new(AtomicU64::new(0));
        let credit = Arc::new(SendCredit::new(if server_sends { self.peer_window } else { 0 }));
        let (tx, incoming) = if client_sends {
            let (tx, rx) = mpsc::channel(window as usize);
            let (outbox, granted, max) =
                (Arc::clone(&self.outbox), Arc::clone(&granted), self.shared.config.max_frame_len);
            let grant = move |n: u64| {
                // Counted before the frame leaves, so the client can never be ahead of the count.
                granted.fetch_add(n, Ordering::AcqRel);
                let Ok(frame) = protocol::credit_frame(id, n).finish(max) else { return };
                if !outbox.try_send(frame.clone()) {
                    // No room now: a lost grant would stall the stream, so it waits for room.
                    let outbox = Arc::clone(&outbox);
                    tokio::spawn(async move {
                        let _ = outbox.send(frame).await;
                    });
                }
            };
            (Some(tx), Some(Incoming { items: rx, window, grant: Box::new(grant) }))
        } else {
            (None, None)
        };
        let io = Arc::new(StreamIo::new(id, incoming));
        let entry =
            StreamEntry { kind, window, incoming: tx, received: 0, granted, credit: Arc::clone(&credit) };
        Some((io, credit, entry))
    }

    /// Starts a call that has a slot: polls it once here, and gives it a task of its own only if
    /// it has to wait (see [`ServerConfig::inline_handlers`]).
    async fn start(&mut self, parked: Parked, permit: OwnedSemaphorePermit) {
        let Parked { id, handler, stream, deadline, oneway, mut metadata } = parked;
        let handler = crate::trace::traced_handler(handler, &*self.peer, id, &mut metadata);
        let cancellable = !oneway && !handler.run_to_completion;
        let method = handler.method;
        let context = Context {
            request_id: id,
            method,
            deadline,
            peer: Arc::clone(&self.peer),
            metadata,
            shutdown: Some(self.shared.signals.stop.clone()),
        };
        let call = Call {
            stream,
            handler,
            context,
            deadline,
            oneway,
            outbox: Arc::clone(&self.outbox),
            max_frame_len: self.max_reply_len,
            _slot: permit,
        };
        let mut run = Box::pin(handler::run(call));
        // Busy before the handler first runs: it may tell others it started.
        self.slot.activity.busy();
        if self.shared.config.inline_handlers {
            // The handler's own panics are caught inside `run`; this guards the connection
            // against anything else in it.
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(cx))))
            })
            .await;
            match first {
                Ok(Poll::Ready(_)) => {
                    self.end_stream(id);
                    if self.tasks.is_empty() {
                        self.slot.activity.idle_since(self.last_request);
                    }
                    return;
                }
                Ok(Poll::Pending) => {}
                Err(panic) => {
                    self.end_stream(id);
                    if self.tasks.is_empty() {
                        self.slot.activity.idle_since(self.last_request);
                    }
                    limited!(self.outbox.log(), error, peer = %self.peer, id, method, "a call panicked: {}", panic_message(&*panic));
                    if !oneway {
                        self.reply(id, &RpcError::HandlerPanicked).await;
                    }
                    return;
                }
            }
        }
        let task = self.tasks.spawn(run);
        if cancellable {
            self.running.insert(id, task);
        }
    }

    /// Sends an error for one call, waiting for room in the outbound queue.
    ///
    /// The future owns what it needs, so no borrow of the connection is held across the wait.
    fn reply(&self, id: u64, error: &RpcError) -> impl std::future::Future<Output = ()> + Send + 'static {
        let frame = error_frame(id, error, self.shared.config.max_frame_len);
        let outbox = Arc::clone(&self.outbox);
        async move {
            if let Ok(frame) = frame {
                let _ = outbox.send(frame).await;
            }
        }
    }

    /// Ends the connection: tell the peer why if we can, fail or cancel what is left, and hand
    /// one-way and run-to-completion calls to a detached task (they should not be cut short by
    /// the caller hanging up, only by the end of a shutdown or the server's limit on such work).
    async fn close(&mut self, close: Close) {
        let peer = Arc::clone(&self.peer);
        let max_frame_len = self.shared.config.max_frame_len;
        // The state it was in when it closed, for the log.
        let state = self.state;
        self.state = state.on(Event::Closed);
        match &close {
            Close::PeerClosed | Close::Drained => tracing::debug!(%peer, %state, "connection closed"),
            Close::Forced => {
                tracing::debug!(%peer, %state, "connection closed at the end of the shutdown grace period")
            }
            Close::WriteFailed => {}
            Close::GoAway(code, reason) => {
                tracing::info!(%peer, %state, ?code, "closing connection: {reason}");
                // The queue may be full (of pongs, say): wait a little for room, so the peer
                // learns why, but never longer than a write may take.
                if let Some(frame) = goaway::frame(*code, reason, max_frame_len) {
                    let wait = self.shared.config.write_timeout.min(GOAWAY_WAIT);
                    let _ = tokio::time::timeout(wait, self.outbox.send(frame)).await;
                }
            }
            Close::Failed(reason) => tracing::info!(%peer, %state, "closing connection: {reason}"),
        }
        let suppressed = self.outbox.log().take_suppressed();
        if suppressed > 0 {
            tracing::warn!(%peer, suppressed, "log lines this peer triggered were suppressed by the rate limit");
        }
        // Calls still waiting for a slot never started.
        for parked in std::mem::take(&mut self.parked) {
            if !parked.oneway && matches!(close, Close::Forced) {
                if let Ok(frame) = error_frame(parked.id, &RpcError::ShuttingDown, max_frame_len) {
                    self.outbox.try_send(frame);
                }
            }
        }
        let cancelled = RpcError::Cancelled("the server shut down before the call completed".into());
        for (id, task) in std::mem::take(&mut self.running) {
            task.abort();
            if matches!(close, Close::Forced) {
                if let Ok(frame) = error_frame(id, &cancelled, max_frame_len) {
                    self.outbox.try_send(frame);
                }
            }
        }
        if matches!(close, Close::Forced) {
            self.tasks.abort_all();
        }
        while self.tasks.try_join_next().is_some() {}
        let left = self.tasks.len();
        if left == 0 {
            return;
        }
        let tasks = std::mem::take(&mut self.tasks);
        let detached = &self.shared.detached;
        match u32::try_from(left).ok().and_then(|n| Arc::clone(detached).try_acquire_many_owned(n).ok()) {
            Some(permits) => {
                tracing::debug!(%peer, calls = left, "the connection closed; its remaining calls go on detached");
                self.shared.tracker.spawn(run_detached(tasks, permits, self.shared.signals.force.clone()));
            }
            None => {
                tracing::warn!(%peer, calls = left, "the connection closed and the server's limit on detached calls is reached: cancelling its remaining calls");
                drop(tasks);
            }
        }
    }
}

/// Why a connection closes when reading a frame failed.
fn read_failed(e: FrameError) -> Close {
    match e {
        FrameError::TooLarge { .. } => Close::GoAway(ErrorCode::FrameTooLarge, e.to_string()),
        FrameError::Timeout { .. } => Close::GoAway(ErrorCode::Idle, e.to_string()),
        FrameError::BudgetExhausted { .. } | FrameError::Shed { .. } => {
            Close::GoAway(ErrorCode::Overloaded, e.to_string())
        }
        e => Close::Failed(e.to_string()),
    }
}

/// What a connection is doing when a frame arrives, for its idle timer.
enum Activity {
    /// A request, at `last_request` (read once, for both).
    Request,
    /// A cancel, a stream frame: activity that keeps a connection open.
    Call,
    /// A ping or pong: keeps a connection with calls running open, not an empty one (H6).
    Control,
}

/// Runs the calls a closed connection left, holding one permit of the server's detached-call
/// limit per call and returning each as its call ends; cancels them all when shutdown's grace
/// period is over.
async fn run_detached(mut tasks: JoinSet<u64>, permits: OwnedSemaphorePermit, force: CancellationToken) {
    let mut permits = Some(permits);
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                None => break,
                Some(_) => {
                    // Give back this call's permit at once, not when the last one ends.
                    if let Some(p) = permits.as_mut() {
                        if p.num_permits() > 1 {
                            drop(p.split(1));
                        } else {
                            permits = None;
                        }
                    }
                }
            },
            _ = force.cancelled() => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
}
