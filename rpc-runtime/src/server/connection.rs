//! One server connection: handshake, the read loop, and an orderly close.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use rpc_transport::framed::{Frame, FrameError, FrameReader, ReceiveBudget};
use rpc_transport::{BoxRead, Connection, Peer};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handler::{self, error_frame, panic_message, Call};
use super::{ServerConfig, Signals};
use crate::context::Context;
use crate::protocol::{self, ErrorCode, Message};
use crate::service::ResponseBuf;
use crate::{RpcError, Service};

/// A signal the connection's loop waits for besides its own work.
enum Event {
    /// The writer task ended (the peer is gone or stopped reading).
    WriterDead,
    /// Shutdown's grace period ran out.
    Force,
    /// Shutdown began.
    Stop,
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

/// How long closing waits for room in the outbound queue to send its goaway.
const GOAWAY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Refuses a connection past the connection limit: preface, goaway, close.
///
/// The close lingers: after sending, the server reads and discards what the client sends until
/// it hangs up or [`REFUSAL_LINGER`] passes. Closing a socket with unread input makes the kernel
/// send a reset, which can destroy the goaway before the client reads it.
pub(super) async fn refuse(conn: Connection, config: Arc<ServerConfig>) {
    let (mut read, write, _peer, _guard) = conn.into_parts();
    let (tx, rx) = mpsc::channel(1);
    let goaway = protocol::goaway_frame(ErrorCode::Overloaded, "the server's connection limit is reached");
    if let Ok(frame) = goaway.finish(config.max_frame_len) {
        let _ = tx.try_send(frame);
    }
    drop(tx);
    let linger = REFUSAL_LINGER.min(config.handshake_timeout);
    let _ = crate::writer::write_loop(write, &protocol::PREFACE, rx, linger).await;
    let mut sink = [0u8; 1024];
    let drain = async {
        use tokio::io::AsyncReadExt;
        while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(linger, drain).await;
}

/// How long a refused connection is kept open to let the client read why.
const REFUSAL_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves one connection until it closes.
pub(super) async fn serve<S: Service>(
    conn: Connection,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    signals: Signals,
    _slot: Option<OwnedSemaphorePermit>,
    budget: Arc<ReceiveBudget>,
) {
    let (read, write, peer, _guard) = conn.into_parts();
    let (tx, rx) = mpsc::channel(config.outbound_queue.max(1));
    let writer_dead = CancellationToken::new();
    let writer = tokio::spawn({
        let dead = writer_dead.clone();
        let write_timeout = config.write_timeout;
        let peer = peer.to_string();
        async move {
            if let Err(e) = crate::writer::write_loop(write, &protocol::PREFACE, rx, write_timeout).await {
                tracing::debug!(%peer, "closing connection: {e}");
            }
            dead.cancel();
        }
    });
    let mut reader = FrameReader::new(read, config.max_frame_len);
    reader.set_frame_timeout(Some(config.frame_timeout));
    reader.set_budget(Some(budget));
    let mut conn = ServerConn {
        slots: Arc::new(Semaphore::new(config.max_in_flight)),
        parked: VecDeque::new(),
        service,
        peer: Arc::new(peer),
        tx,
        running: HashMap::new(),
        tasks: JoinSet::new(),
        draining: false,
        control: ControlBudget { since: Instant::now(), count: 0 },
        cancel_credit: CANCEL_SLACK,
        config,
    };
    let close = conn.run(&mut reader, &signals, &writer_dead).await;
    conn.close(close, &signals).await;
    let ServerConn { tx, .. } = conn;
    drop(tx);
    let _ = writer.await;
}

/// Requests read while every handler slot is busy, waiting for one. Reading stops when this many
/// are waiting: that is the backpressure. Reading on until then lets the cancels and pings
/// queued behind a request through, so a cancel can always free a slot.
pub(crate) const PARKED_REQUESTS: usize = 8;

/// A decoded request waiting for a handler slot.
struct Parked {
    id: u64,
    handler: crate::service::Handler,
    deadline: Option<Instant>,
    oneway: bool,
}

struct ServerConn<S> {
    service: Arc<S>,
    config: Arc<ServerConfig>,
    peer: Arc<Peer>,
    tx: mpsc::Sender<Frame>,
    slots: Arc<Semaphore>,
    /// Running calls that a cancel, a deadline or the connection closing may stop, by request id.
    running: HashMap<u64, AbortHandle>,
    tasks: JoinSet<u64>,
    parked: VecDeque<Parked>,
    draining: bool,
    control: ControlBudget,
    /// Cancels this connection may still send: one per request received, plus [`CANCEL_SLACK`].
    cancel_credit: u64,
}

/// Cancels a connection may send beyond one per request it sent (E2).
const CANCEL_SLACK: u64 = 1024;

/// Counts pings and pongs since the last request, per one-second window (E2: a ping flood costs
/// the server a pong each without ever starting a call).
struct ControlBudget {
    since: Instant,
    count: u32,
}

impl<S: Service> ServerConn<S> {
    async fn run(
        &mut self,
        reader: &mut FrameReader<BoxRead>,
        signals: &Signals,
        writer_dead: &CancellationToken,
    ) -> Close {
        match tokio::time::timeout(self.config.handshake_timeout, reader.read_raw(protocol::PREFACE.len()))
            .await
        {
            Err(_) => return Close::Failed("no preface within the handshake timeout".into()),
            Ok(Ok(None)) => return Close::PeerClosed,
            Ok(Err(e)) => return Close::Failed(e.to_string()),
            Ok(Ok(Some(preface))) => {
                if let Err(e) = protocol::check_preface(&preface) {
                    // Our preface is already on its way, so a peer of another version learns ours.
                    return Close::Failed(e.to_string());
                }
            }
        }

        let idle_timeout = self.config.idle_timeout;
        let mut last_activity = Instant::now();
        // Made once and polled in place: a future made afresh on every turn of the loop would
        // register and unregister a waiter (or a timer) each time, for every frame. The three
        // signals sit in a FuturesUnordered, which polls only the one that was woken: polling
        // a waiting `cancelled()` future again takes two locks, on every wake-up of this task.
        let mut events: FuturesUnordered<Pin<Box<dyn Future<Output = Event> + Send + '_>>> =
            FuturesUnordered::new();
        events.push(Box::pin(async move {
            writer_dead.cancelled().await;
            Event::WriterDead
        }));
        events.push(Box::pin(async move {
            signals.force.cancelled().await;
            Event::Force
        }));
        events.push(Box::pin(async move {
            signals.stop.cancelled().await;
            Event::Stop
        }));
        let idle = tokio::time::sleep_until(last_activity + idle_timeout);
        tokio::pin!(idle);
        loop {
            if self.draining && self.tasks.is_empty() {
                return Close::Drained;
            }
            tokio::select! {
                biased;
                Some(event) = events.next() => match event {
                    Event::WriterDead => return Close::WriteFailed,
                    Event::Force => return Close::Forced,
                    Event::Stop => self.start_draining().await,
                },
                Some(done) = self.tasks.join_next() => {
                    self.reap(done);
                    last_activity = Instant::now();
                }
                permit = Arc::clone(&self.slots).acquire_owned(), if !self.parked.is_empty() => {
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
                    let busy = !self.tasks.is_empty() || !self.parked.is_empty() || reader.in_frame();
                    if !busy && last_activity + idle_timeout <= now {
                        return Close::GoAway(ErrorCode::Idle, format!("idle for {idle_timeout:?}"));
                    }
                    idle.as_mut().reset(if busy { now } else { last_activity } + idle_timeout);
                }
                frame = reader.read_frame(), if self.parked.len() < PARKED_REQUESTS => {
                    last_activity = Instant::now();
                    let mut frame = frame.map(Some);
                    // Frames that arrived in the same read are handled here, not each on its own
                    // turn of the loop.
                    loop {
                        match frame {
                            Ok(Some(Some(body))) => {
                                if let Some(close) = self.on_frame(body).await {
                                    return close;
                                }
                            }
                            Ok(Some(None)) => return Close::PeerClosed,
                            Ok(None) => break,
                            Err(e @ FrameError::TooLarge { .. }) => {
                                return Close::GoAway(ErrorCode::FrameTooLarge, e.to_string())
                            }
                            Err(e @ FrameError::Timeout { .. }) => return Close::GoAway(ErrorCode::Idle, e.to_string()),
                            Err(e @ FrameError::BudgetExhausted { .. }) => {
                                return Close::GoAway(ErrorCode::Overloaded, e.to_string())
                            }
                            Err(e) => return Close::Failed(e.to_string()),
                        }
                        if self.parked.len() >= PARKED_REQUESTS {
                            break;
                        }
                        frame = reader.next_buffered().map(|f| f.map(Some));
                    }
                }
            }
        }
    }

    /// Stops taking calls: tells the client, and refuses the ones still waiting for a slot (they
    /// never started, so they are safe to retry).
    async fn start_draining(&mut self) {
        self.draining = true;
        self.send_now(protocol::goaway_frame(ErrorCode::ShuttingDown, "the server is shutting down"));
        for parked in std::mem::take(&mut self.parked) {
            if !parked.oneway {
                self.reply(parked.id, &RpcError::ShuttingDown).await;
            }
        }
    }

    fn reap(&mut self, done: Result<u64, tokio::task::JoinError>) {
        if let Ok(id) = done {
            self.running.remove(&id);
        }
    }

    /// Handles one frame; `Some` closes the connection.
    async fn on_frame(&mut self, body: Bytes) -> Option<Close> {
        match protocol::decode(body) {
            Ok(Message::Request { id, timeout, oneway, method, payload }) => {
                self.control.count = 0;
                self.cancel_credit = self.cancel_credit.saturating_add(1);
                self.on_request(id, timeout, oneway, &method, &payload).await;
                None
            }
            Ok(Message::Cancel { id }) => {
                // A client cancels each call at most once, so cancels never outnumber requests by
                // more than the slack; a cancel of a call that already finished is normal.
                if self.cancel_credit == 0 {
                    return Some(Close::GoAway(
                        ErrorCode::Protocol,
                        format!("too many cancels: more than {CANCEL_SLACK} beyond one per request"),
                    ));
                }
                self.cancel_credit -= 1;
                // A running task's slot is freed when the runtime drops its future, not before.
                if let Some(task) = self.running.remove(&id) {
                    task.abort();
                } else {
                    self.parked.retain(|p| p.id != id);
                }
                None
            }
            Ok(Message::Ping { nonce }) => {
                // A pong that does not fit in the queue is dropped: pings never queue unboundedly.
                self.send_now(protocol::ping_frame(nonce, true));
                self.control_frame()
            }
            Ok(Message::Pong) => self.control_frame(),
            Ok(Message::Response { .. } | Message::Error { .. } | Message::GoAway { .. }) => Some(
                Close::GoAway(ErrorCode::Protocol, "a client sent a response, error or goaway frame".into()),
            ),
            Err((Some(id), e)) => {
                self.reply(id, &e).await;
                None
            }
            Err((None, e)) => Some(Close::GoAway(ErrorCode::Protocol, e.to_string())),
        }
    }

    /// Counts a control frame; `Some` closes a connection that sent too many of them.
    fn control_frame(&mut self) -> Option<Close> {
        let now = Instant::now();
        if now.duration_since(self.control.since) >= std::time::Duration::from_secs(1) {
            self.control = ControlBudget { since: now, count: 0 };
        }
        self.control.count += 1;
        let max = self.config.max_control_frames_per_sec;
        (self.control.count > max).then(|| {
            Close::GoAway(
                ErrorCode::Protocol,
                format!("too many control frames: more than {max} pings or pongs within one second, with no request"),
            )
        })
    }

    async fn on_request(
        &mut self,
        id: u64,
        timeout: Option<std::time::Duration>,
        oneway: bool,
        method: &[u8],
        payload: &[u8],
    ) {
        let fail = |e| if oneway { None } else { Some(e) };
        let Ok(method) = std::str::from_utf8(method) else {
            if let Some(e) = fail(RpcError::Protocol("the method name is not valid UTF-8".into())) {
                self.reply(id, &e).await;
            }
            return;
        };
        if self.draining {
            if let Some(e) = fail(RpcError::ShuttingDown) {
                self.reply(id, &e).await;
            }
            return;
        }
        if self.running.contains_key(&id) || self.parked.iter().any(|p| p.id == id) {
            tracing::warn!(peer = %self.peer, id, "ignored a request reusing the id of a call in flight");
            return;
        }
        let now = Instant::now();
        // Clamped, and checked: a forged `u64::MAX` must neither panic nor overflow.
        let deadline = timeout.and_then(|t| now.checked_add(t.min(self.config.max_deadline)));
        if deadline.is_some_and(|d| d <= now) {
            if let Some(e) = fail(RpcError::DeadlineExceeded) {
                self.reply(id, &e).await;
            }
            return;
        }
        let response = ResponseBuf {
            buf: protocol::response_header(id),
            max_frame_len: self.config.max_frame_len,
            // Protocol v1 is postcard only; the v2 handshake will choose per connection.
            format: crate::codec::Format::Postcard,
        };
        let prepared =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.service.call(method, payload, response)));
        let handler = match prepared {
            Ok(Ok(handler)) => handler,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, id, method, "refused a call: {e}");
                if let Some(e) = fail(e) {
                    self.reply(id, &e).await;
                }
                return;
            }
            Err(panic) => {
                tracing::error!(peer = %self.peer, id, method, "decoding the arguments panicked: {}", panic_message(&*panic));
                if let Some(e) = fail(RpcError::HandlerPanicked) {
                    self.reply(id, &e).await;
                }
                return;
            }
        };
        let parked = Parked { id, handler, deadline, oneway };
        // First come, first served: a request never overtakes one already waiting.
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) if self.parked.is_empty() => self.start(parked, permit).await,
            _ => self.parked.push_back(parked),
        }
    }

    /// Starts a call that has a slot: polls it once here, and gives it a task of its own only if
    /// it has to wait (see [`ServerConfig::inline_handlers`]).
    async fn start(&mut self, parked: Parked, permit: OwnedSemaphorePermit) {
        let Parked { id, handler, deadline, oneway } = parked;
        let cancellable = !oneway && !handler.run_to_completion;
        let method = handler.method;
        let context = Context { request_id: id, method, deadline, peer: Arc::clone(&self.peer) };
        let call = Call {
            handler,
            context,
            deadline,
            oneway,
            tx: self.tx.clone(),
            max_frame_len: self.config.max_frame_len,
            _slot: permit,
        };
        let mut run = Box::pin(handler::run(call));
        if self.config.inline_handlers {
            // The handler's own panics are caught inside `run`; this guards the connection
            // against anything else in it.
            let first = std::future::poll_fn(|cx| {
                Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(cx))))
            })
            .await;
            match first {
                Ok(Poll::Ready(_)) => return,
                Ok(Poll::Pending) => {}
                Err(panic) => {
                    tracing::error!(peer = %self.peer, id, method, "a call panicked: {}", panic_message(&*panic));
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
        let frame = error_frame(id, error, self.config.max_frame_len);
        let tx = self.tx.clone();
        async move {
            if let Ok(frame) = frame {
                let _ = tx.send(frame).await;
            }
        }
    }

    /// Sends a control frame if there is room; never waits.
    fn send_now(&self, buf: rpc_transport::framed::FrameBuf) {
        if let Ok(frame) = buf.finish(self.config.max_frame_len) {
            let _ = self.tx.try_send(frame);
        }
    }

    /// Ends the connection: tell the peer why if we can, fail or cancel what is left, and let
    /// one-way calls finish unless shutdown's grace is over.
    async fn close(&mut self, close: Close, signals: &Signals) {
        let peer = Arc::clone(&self.peer);
        match &close {
            Close::PeerClosed | Close::Drained => tracing::debug!(%peer, "connection closed"),
            Close::Forced => {
                tracing::debug!(%peer, "connection closed at the end of the shutdown grace period")
            }
            Close::WriteFailed => {}
            Close::GoAway(code, reason) => {
                tracing::info!(%peer, ?code, "closing connection: {reason}");
                // The queue may be full (of pongs, say): wait a little for room, so the peer
                // learns why, but never longer than a write may take.
                if let Ok(frame) = protocol::goaway_frame(*code, reason).finish(self.config.max_frame_len) {
                    let wait = self.config.write_timeout.min(GOAWAY_WAIT);
                    let _ = tokio::time::timeout(wait, self.tx.send(frame)).await;
                }
            }
            Close::Failed(reason) => tracing::info!(%peer, "closing connection: {reason}"),
        }
        // Calls still waiting for a slot never started.
        for parked in std::mem::take(&mut self.parked) {
            if !parked.oneway && matches!(close, Close::Forced) {
                if let Ok(frame) = error_frame(parked.id, &RpcError::ShuttingDown, self.config.max_frame_len)
                {
                    let _ = self.tx.try_send(frame);
                }
            }
        }
        let cancelled = RpcError::Cancelled("the server shut down before the call completed".into());
        for (id, task) in std::mem::take(&mut self.running) {
            task.abort();
            if matches!(close, Close::Forced) {
                if let Ok(frame) = error_frame(id, &cancelled, self.config.max_frame_len) {
                    let _ = self.tx.try_send(frame);
                }
            }
        }
        // What is left is one-way calls and calls that run to completion: they should not be cut
        // short by the caller hanging up, only by the end of a shutdown.
        loop {
            tokio::select! {
                done = self.tasks.join_next() => if done.is_none() { break },
                _ = signals.force.cancelled() => {
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }
}
