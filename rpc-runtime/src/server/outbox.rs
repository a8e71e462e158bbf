//! A connection's outgoing frames, bounded in bytes (H2): a response is charged to its
//! connection's budget and to the server-wide one when it is queued, and released when the writer
//! has written it to the socket.
//!
//! Only atomics on the path of a call: a lock is taken (to wait) only when a budget is full.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rpc_transport::framed::Frame;
use tokio::sync::Notify;

use crate::engine::queue::{self, TrySendError};
use rpc_transport::message::MessageWriter;
use tokio_util::sync::CancellationToken;

use super::log_limit::LogLimit;

/// Bytes of queued responses every connection may have whatever the server-wide budget holds:
/// small replies to a peer that reads them never wait behind peers that filled the server-wide
/// budget and stopped reading. Bounds memory at `max_response_budget + connections × this`
/// (128 MiB + 1024 × 64 KiB by default).
pub(crate) const RESERVED_PER_CONNECTION: usize = 64 * 1024;

/// Bytes charged against a limit, with a way to wait for room.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
    /// Tasks waiting for room; a release wakes them only if there are any.
    waiting: AtomicUsize,
    /// Frames encoded and waiting for room: while there are any, no call should start.
    blocked: AtomicUsize,
    room: Notify,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Self {
        ByteBudget {
            limit,
            used: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            blocked: AtomicUsize::new(0),
            room: Notify::new(),
        }
    }

    /// Bytes charged now.
    pub(crate) fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Whether nothing more fits (used up to the limit), or a frame is already waiting for room.
    pub(crate) fn is_full(&self) -> bool {
        self.in_use() >= self.limit || self.blocked.load(Ordering::Acquire) > 0
    }

    /// Whether `n` would fit now.
    fn has_room(&self, n: usize) -> bool {
        let used = self.in_use();
        used == 0 || used.saturating_add(n) <= self.limit
    }

    /// Charges `n` if it fits, or if nothing is charged (so one frame larger than the limit can
    /// still go, on its own).
    fn try_charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used.saturating_add(n) <= self.limit).then(|| used.saturating_add(n))
            })
            .is_ok()
    }

    /// Charges `n` whatever the limit: for a connection's reserve (see [`RESERVED_PER_CONNECTION`]).
    fn force_charge(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }
}

/// Counts a waiter on a [`ByteBudget`] for as long as it lives, so releases know to wake it.
struct Waiting<'a>(&'a ByteBudget);

impl<'a> Waiting<'a> {
    fn new(budget: &'a ByteBudget) -> Self {
        budget.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(budget)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a frame waiting for room on a [`ByteBudget`] for as long as it lives.
struct Blocked<'a>(&'a ByteBudget);

impl<'a> Blocked<'a> {
    fn new(budget: &'a ByteBudget) -> Self {
        budget.blocked.fetch_add(1, Ordering::AcqRel);
        Blocked(budget)
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::AcqRel);
        // Connections waiting for the budget to be "not full" must re-check.
        if self.0.waiting.load(Ordering::Acquire) > 0 {
            self.0.room.notify_waiters();
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotSent {
    /// The connection is closing or closed.
    Closed,
    /// No room in the budgets within the write timeout.
    NoRoom,
}

/// One connection's way to its writer: the queue and the two byte budgets; and the rate limit of
/// the log lines its peer can trigger (H7), shared by the connection and its calls.
#[derive(Debug)]
pub(crate) struct Outbox {
    log: Mutex<LogLimit>,
    tx: queue::Sender<Frame, MessageWriter>,
    conn: ByteBudget,
    server: Arc<ByteBudget>,
    write_timeout: Duration,
    /// Cancelled when the writer has stopped (or will): nothing sent now would be written.
    closed: CancellationToken,
}

impl Outbox {
    pub(crate) fn new(
        tx: queue::Sender<Frame, MessageWriter>,
        per_connection: usize,
        server: Arc<ByteBudget>,
        write_timeout: Duration,
        closed: CancellationToken,
    ) -> Self {
        let log = Mutex::new(LogLimit::new());
        Outbox { log, tx, conn: ByteBudget::new(per_connection), server, write_timeout, closed }
    }

    /// Whether this connection should start no call and read nothing: its own budget is full, or
    /// the server-wide one is and this connection has used up its reserve.
    pub(crate) fn is_full(&self) -> bool {
        self.conn.is_full() || (self.server.is_full() && self.conn.in_use() >= RESERVED_PER_CONNECTION)
    }

    /// Waits until `ready()` holds, re-checking after every release from either budget, or until
    /// the writer stops (`false`).
    async fn wait_until(&self, ready: impl Fn() -> bool) -> bool {
        loop {
            // Registered before the check, so a release between the two is not missed.
            let (conn, server) = (self.conn.room.notified(), self.server.room.notified());
            tokio::pin!(conn, server);
            conn.as_mut().enable();
            server.as_mut().enable();
            let _waiting = (Waiting::new(&self.conn), Waiting::new(&self.server));
            if ready() {
                return true;
            }
            tokio::select! {
                _ = conn => {}
                _ = server => {}
                _ = self.closed.cancelled() => return false,
            }
        }
    }

    /// Waits until neither budget is full, or the writer stops.
    pub(crate) async fn wait_for_room(&self) {
        self.wait_until(|| !self.is_full()).await;
    }

    /// Charges both budgets, or neither. Within its reserve a connection is charged to the
    /// server-wide budget even when that is full, so peers that fill the server-wide budget by
    /// not reading cannot hold up a connection whose responses are small and read (H2).
    fn try_charge(&self, n: usize) -> bool {
        if !self.conn.try_charge(n) {
            return false;
        }
        if self.conn.in_use() <= RESERVED_PER_CONNECTION {
            self.server.force_charge(n);
            return true;
        }
        if !self.server.try_charge(n) {
            // Silently: waking waiters here would wake this very caller, which waits on both
            // budgets, and it would spin.
            self.conn.used.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Returns `n` bytes to both budgets: called by the writer once they are written (or will
    /// never be).
    pub(crate) fn release(&self, n: usize) {
        self.conn.release(n);
        self.server.release(n);
    }

    /// Queues `frame`, waiting for room in the budgets and the queue, for at most the write
    /// timeout: a response waits for the peer to read, but not for ever.
    pub(crate) async fn send(&self, frame: Frame) -> Result<(), NotSent> {
        let n = frame.len();
        if !self.try_charge(n) {
            // Marked blocked on both budgets: the connection (and, for the server-wide budget,
            // every connection) starts no call and reads nothing while a response waits (H2).
            let server_short = !self.server.has_room(n);
            let _blocked = (Blocked::new(&self.conn), server_short.then(|| Blocked::new(&self.server)));
            // Room comes from the writer: it must know there is work, even while corked.
            self.tx.wake_writer();
            match tokio::time::timeout(self.write_timeout, self.wait_until(|| self.try_charge(n))).await {
                Ok(true) => {}
                Ok(false) => return Err(NotSent::Closed),
                Err(_) => return Err(NotSent::NoRoom),
            }
        }
        // The queue almost always has room: the timer (and the clock read and runtime handle it
        // takes) is made only when it has none.
        let frame = match self.tx.try_send(frame) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => {
                self.release(n);
                return Err(NotSent::Closed);
            }
            Err(TrySendError::Full(frame)) => frame,
        };
        match tokio::time::timeout(self.write_timeout, self.tx.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                self.release(n);
                Err(NotSent::Closed)
            }
            Err(_) => {
                self.release(n);
                Err(NotSent::NoRoom)
            }
        }
    }

    /// Queues `frame` only if there is room now (control frames: never worth waiting for).
    pub(crate) fn try_send(&self, frame: Frame) -> bool {
        let n = frame.len();
        if !self.try_charge(n) {
            return false;
        }
        if self.tx.try_send(frame).is_err() {
            self.release(n);
            return false;
        }
        true
    }

    /// From now until [`uncork`](Self::uncork), queued frames do not wake the writer: the
    /// connection is handling the frames of one read, and writes their replies together.
    pub(crate) fn cork(&self) {
        self.tx.cork();
    }

    /// Writes what was queued since [`cork`](Self::cork) straight to the socket if the writer is
    /// idle, as far as the socket takes it without waiting (the writer sends the rest); else
    /// wakes the writer for it.
    pub(crate) fn uncork(&self) {
        let Some((mut sink, mut frames)) = self.tx.uncork() else { return };
        let queued: usize = frames.iter().map(Frame::len).sum();
        // The queue hands the sink over only with nothing left in it to flush.
        debug_assert_eq!(sink.held(), 0);
        let result = sink.try_send(&mut frames);
        let left: usize = frames.iter().map(Frame::len).sum();
        let (done, held, failed) = match result {
            Ok(done) => (done, sink.held(), None),
            // Lost with the connection: the writer stops with this error.
            Err(e) => (true, 0, Some(e)),
        };
        // Written (or lost); what the sink holds is released by the writer once it is written,
        // and what it did not take is still queued.
        self.release(queued - left - held);
        self.tx.give_back(sink, frames, done, held, failed);
    }

    /// Ends the connection's writing: what is queued now is written, then the socket is shut
    /// down, even while calls that outlive the connection still hold this outbox (their sends
    /// fail from now on).
    pub(crate) fn finish(&self) {
        self.tx.close();
    }

    /// Closes the connection from a call's side: its response found no room within the write
    /// timeout, so the peer would otherwise wait for it until its own deadline.
    pub(crate) fn abandon(&self) {
        self.closed.cancel();
    }

    /// The connection's log rate limit (locked only to log).
    pub(crate) fn log(&self) -> MutexGuard<'_, LogLimit> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Frame {
        let mut buf = rpc_transport::framed::FrameBuf::with_capacity(len);
        buf.extend_from_slice(&vec![0; len]);
        buf.finish(usize::MAX).expect("frame")
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_bound_bytes_but_one_large_frame_always_fits_alone() {
        let (tx, mut rx) = queue::channel(16);
        let server = Arc::new(ByteBudget::new(1000));
        let outbox =
            Outbox::new(tx, 100, Arc::clone(&server), Duration::from_secs(30), CancellationToken::new());
        outbox.send(frame(500)).await.expect("larger than the connection's budget, but alone");
        assert!(outbox.is_full());
        assert!(!outbox.try_send(frame(10)), "no room for more");
        assert_eq!(outbox.send(frame(10)).await, Err(NotSent::NoRoom), "waits the write timeout");
        let first = rx.try_recv().expect("queued");
        outbox.release(first.len());
        assert_eq!(server.in_use(), 0);
        assert!(outbox.try_send(frame(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_server_budget_does_not_hold_up_small_replies_within_the_reserve() {
        const R: usize = RESERVED_PER_CONNECTION;
        let server = Arc::new(ByteBudget::new(2 * R));
        let (hog_tx, _hog_rx) = queue::channel(16);
        let hog = Outbox::new(
            hog_tx,
            1 << 20,
            Arc::clone(&server),
            Duration::from_secs(30),
            CancellationToken::new(),
        );
        hog.send(frame(2 * R)).await.expect("fills the server-wide budget");
        assert!(server.is_full());
        assert_eq!(hog.send(frame(10)).await, Err(NotSent::NoRoom), "the hog is over its reserve");

        let (tx, mut rx) = queue::channel(16);
        let honest =
            Outbox::new(tx, 1 << 20, Arc::clone(&server), Duration::from_secs(30), CancellationToken::new());
        assert!(!honest.is_full(), "a connection within its reserve keeps reading");
        honest.send(frame(16)).await.expect("within the reserve");
        let sent = rx.try_recv().expect("queued");
        honest.release(sent.len());
        assert_eq!(server.in_use(), 2 * R + 4, "the reserve's bytes were charged and returned");
    }

    /// A framed message writer over one end of an in-memory byte stream of `room` bytes.
    fn sink(room: usize) -> (MessageWriter, tokio::io::DuplexStream) {
        let (ours, peer) = tokio::io::duplex(room);
        let conn = rpc_transport::Connection::new(tokio::io::empty(), ours, rpc_transport::Peer::Memory);
        (conn.into_messages(&Default::default()).1, peer)
    }

    /// With the writer waiting (its sink parked), the replies queued while corked are written by
    /// the uncork itself, with no writer task at all, and their bytes leave both budgets. What
    /// the stream does not take stays charged, and is the writer's to send.
    #[tokio::test(start_paused = true)]
    async fn uncorking_writes_the_replies_itself_and_charges_what_the_socket_did_not_take() {
        use tokio::io::AsyncReadExt;

        let (tx, mut rx) = queue::channel(16);
        let server = Arc::new(ByteBudget::new(1 << 20));
        let outbox =
            Outbox::new(tx, 1 << 20, Arc::clone(&server), Duration::from_secs(30), CancellationToken::new());
        let (writer, mut peer) = sink(1 << 16);
        rx.park(writer);
        outbox.cork();
        assert!(outbox.try_send(frame(10)) && outbox.try_send(frame(20)));
        assert_eq!(server.in_use(), 38, "charged while queued");
        outbox.uncork();
        assert_eq!(server.in_use(), 0, "written, and released");
        let mut got = [0; 38];
        peer.read_exact(&mut got).await.expect("on the wire without a writer task");
        assert_eq!(&got[..4], &10u32.to_be_bytes());
        assert_eq!(&got[14..18], &20u32.to_be_bytes());

        // A stream with room for 8 bytes takes 8 of the 104: the rest stays charged.
        let (tx, mut rx) = queue::channel(16);
        let outbox =
            Outbox::new(tx, 1 << 20, Arc::clone(&server), Duration::from_secs(30), CancellationToken::new());
        let (writer, _peer) = sink(8);
        rx.park(writer);
        outbox.cork();
        assert!(outbox.try_send(frame(100)));
        outbox.uncork();
        assert_eq!(server.in_use(), 96, "what the stream did not take");
        let mut batch = Vec::new();
        let taken = rx.take(&mut batch, 64).await;
        assert!(taken.flush_due && taken.frames == 0);
        assert_eq!(taken.held, 96, "the writer sends, then releases, the rest");
    }
}
