//! The calls awaiting a response: a table of slots indexed by request id, each holding the
//! waiting call's waker and, once it arrives, its reply.
//!
//! A call's slot is `table[id & mask]`. Ids are handed out in order, skipping any whose slot is
//! taken by a call still running, so an id is never reused and a lookup is one index and one
//! compare: no hashing, and no channel allocated per call (a map of oneshots cost about a tenth
//! of a call). The table doubles when half full; doubling keeps every id in a slot of its own,
//! since two ids that differ in their low bits still do with one bit more.
//!
//! Deadlines are kept here too, not by a timer per call: a slot holds its call's deadline, and
//! the connection's reader waits for the earliest one (see [`super::deadlines`]), failing the
//! calls whose deadline has passed. A call makes the reader re-arm only when its deadline is
//! earlier than the one the reader waits for, which with one timeout per client is rare.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures::task::AtomicWaker;
use tokio::time::Instant;

use crate::RpcError;

pub(crate) type Reply = Result<Bytes, RpcError>;

/// The first table's size, allocated on the first call (an idle connection holds none).
const FIRST_TABLE: usize = 16;

/// Pending calls, plus whether the connection can still take new ones.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
    /// The next request id: shared by calls and one-way calls, which need unique ids too.
    next_id: AtomicU64,
    /// `State::used`, readable without the lock.
    used: AtomicUsize,
    /// Woken when the connection closes or starts refusing calls.
    unusable: tokio::sync::Notify,
    /// The reader, woken when a call's deadline is earlier than the one it waits for.
    rearm: AtomicWaker,
    rearm_due: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Empty, or a power of two long.
    table: Vec<Slot>,
    /// Slots in use: calls registered and not yet finished with their reply.
    used: usize,
    /// Set when the connection died: every new call fails with this at once.
    closed: Option<RpcError>,
    /// Set when the server said goaway: new calls fail with this, pending ones carry on.
    refusing: Option<RpcError>,
    /// The instant the reader's deadline timer is set for: no later than the earliest deadline
    /// of a waiting call (`None`: no call has one).
    timer_at: Option<Instant>,
    /// The credit the server's HELLO gives each stream of arguments, once it has arrived.
    peer_window: Option<u64>,
}

/// One call's place in the table; `id == 0` when free (ids start at 1).
#[derive(Debug, Default)]
struct Slot {
    id: u64,
    waker: Option<Waker>,
    reply: Option<Reply>,
    deadline: Option<Instant>,
    /// The reply is the deadline passing: the server should be told to stop the call.
    expired: bool,
    /// A streaming call's items and credits (boxed: most calls are unary).
    stream: Option<Box<StreamSlot>>,
}

/// One streaming call's state on the client. A stream of results ends with the slot's `reply`:
/// `Ok` (empty) for the server's `END`, `Err` for its `ERROR`, the deadline or the connection;
/// the items queued before it are delivered first.
#[derive(Debug, Default)]
pub(crate) struct StreamSlot {
    /// The server sends items (a server or bidirectional stream).
    receives: bool,
    /// The client sends items (a client or bidirectional stream).
    sends: bool,
    /// Items received and not yet taken: at most `window`, by the credit rule.
    items: std::collections::VecDeque<Bytes>,
    /// Items the server may still send: the window, plus grants, minus items received.
    recv_credit: u64,
    /// Our window (our HELLO's `stream_window`).
    window: u64,
    /// Items taken since the last grant.
    consumed: u64,
    /// Items the client may still send; 0 until the server's HELLO says its window.
    send_credit: u64,
    /// The task sending the client's items, waiting for credit.
    send_waker: Option<Waker>,
}

impl StreamSlot {
    pub(crate) fn new(kind: crate::describe::MethodKind, window: u64) -> Box<StreamSlot> {
        use crate::describe::MethodKind::*;
        Box::new(StreamSlot {
            receives: matches!(kind, ServerStream | Bidi),
            sends: matches!(kind, ClientStream | Bidi),
            recv_credit: window,
            window,
            ..StreamSlot::default()
        })
    }
}

/// A stream frame from the server that broke the stream rules: the connection is closed.
pub(crate) type StreamRuleBroken = RpcError;

impl Slot {
    /// The call's reply came (or it failed): wakes whoever waits on it.
    fn finish(&mut self, reply: Reply, wakers: &mut Vec<Waker>) {
        self.reply = Some(reply);
        wakers.extend(self.waker.take());
        if let Some(stream) = &mut self.stream {
            wakers.extend(stream.send_waker.take());
        }
    }
}

impl State {
    fn slot(&mut self, id: u64) -> Option<&mut Slot> {
        let mask = self.table.len().wrapping_sub(1);
        self.table.get_mut(id as usize & mask).filter(|s| s.id == id && id != 0)
    }

    /// Doubles the table, moving every call to its slot in the larger one.
    fn grow(&mut self) {
        let len = (self.table.len() * 2).max(FIRST_TABLE);
        let mut table: Vec<Slot> = std::iter::repeat_with(Slot::default).take(len).collect();
        for slot in self.table.drain(..).filter(|s| s.id != 0) {
            let i = slot.id as usize & (len - 1);
            table[i] = slot;
        }
        self.table = table;
    }
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the table half-updated (each operation
        // writes a slot whole), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An id for a one-way call: unique, but with no slot (nothing comes back).
    pub(crate) fn oneway_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a call that fails with [`RpcError::DeadlineExceeded`] at `deadline`, and
    /// returns its id, unless the connection is closed or refusing new calls.
    pub(crate) fn register(&self, deadline: Option<Instant>) -> Result<u64, RpcError> {
        self.register_with(deadline, None)
    }

    /// [`register`](Self::register) for a streaming call.
    pub(crate) fn register_stream(
        &self,
        deadline: Option<Instant>,
        stream: Box<StreamSlot>,
    ) -> Result<u64, RpcError> {
        self.register_with(deadline, Some(stream))
    }

    fn register_with(
        &self,
        deadline: Option<Instant>,
        mut stream: Option<Box<StreamSlot>>,
    ) -> Result<u64, RpcError> {
        let mut state = self.lock();
        // Under the same lock as `set_peer_window`, so a HELLO arriving now is counted once.
        if let Some(stream) = stream.as_mut().filter(|s| s.sends) {
            stream.send_credit = state.peer_window.unwrap_or(0);
        }
        if let Some(err) = state.closed.as_ref().or(state.refusing.as_ref()) {
            return Err(err.clone());
        }
        if 2 * (state.used + 1) > state.table.len() {
            state.grow();
        }
        let mask = state.table.len() - 1;
        // At most half the slots are taken, so a free one comes within a few ids.
        loop {
            let id = self.oneway_id();
            let slot = &mut state.table[id as usize & mask];
            if slot.id == 0 {
                slot.id = id;
                slot.deadline = deadline;
                slot.stream = stream;
                state.used += 1;
                self.used.store(state.used, Ordering::Relaxed);
                let rearm = deadline.is_some_and(|d| state.timer_at.is_none_or(|t| d < t));
                if rearm {
                    state.timer_at = deadline;
                    drop(state);
                    self.rearm_due.store(true, Ordering::Release);
                    self.rearm.wake();
                }
                return Ok(id);
            }
        }
    }

    /// Ready with the instant the deadline timer should now be set for, when a call's deadline
    /// came earlier than the one it was set for.
    pub(crate) fn poll_rearm(&self, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.rearm.register(cx.waker());
        if self.rearm_due.swap(false, Ordering::AcqRel) {
            Poll::Ready(self.lock().timer_at)
        } else {
            Poll::Pending
        }
    }

    /// Fails every waiting call whose deadline is at or before `now`, and returns the instant
    /// the deadline timer should be set for next.
    pub(crate) fn expire(&self, now: Instant) -> Option<Instant> {
        let mut wakers = Vec::new();
        let next = {
            let mut state = self.lock();
            let mut next: Option<Instant> = None;
            for slot in state.table.iter_mut().filter(|s| s.id != 0 && s.reply.is_none()) {
                match slot.deadline {
                    Some(d) if d <= now => {
                        slot.finish(Err(RpcError::DeadlineExceeded), &mut wakers);
                        slot.expired = true;
                    }
                    Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                    None => {}
                }
            }
            state.timer_at = next;
            next
        };
        for waker in wakers {
            waker.wake();
        }
        next
    }

    /// Delivers a reply; `false` if no call with that id is waiting (it gave up, or the id is
    /// bogus), in which case the reply is dropped.
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        let mut wakers = Vec::new();
        {
            let mut state = self.lock();
            match state.slot(id) {
                Some(slot) if slot.reply.is_none() => slot.finish(reply, &mut wakers),
                _ => return false,
            }
        }
        for waker in wakers {
            waker.wake();
        }
        true
    }

    /// Takes the call's reply if it has come (and whether it is the deadline passing), or
    /// records `waker` to be woken when it does.
    fn poll_reply(&self, id: u64, cx: &mut Context<'_>) -> Poll<(Reply, bool)> {
        let mut state = self.lock();
        let closed = state.closed.clone();
        let Some(slot) = state.slot(id) else {
            // Not registered (cannot happen: only `Reply` takes a slot away).
            let err = closed.unwrap_or_else(|| RpcError::closed("the call was forgotten"));
            return Poll::Ready((Err(err), false));
        };
        if let Some(reply) = slot.reply.take() {
            let expired = slot.expired;
            *slot = Slot::default();
            state.used -= 1;
            self.used.store(state.used, Ordering::Relaxed);
            return Poll::Ready((reply, expired));
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Forgets a call that gave up; returns whether the server may still be running it (no
    /// reply came, or only the deadline's).
    pub(crate) fn remove(&self, id: u64) -> bool {
        let mut state = self.lock();
        let Some(slot) = state.slot(id) else { return false };
        let waiting = slot.reply.is_none() || slot.expired;
        let slot = std::mem::take(slot);
        state.used -= 1;
        self.used.store(state.used, Ordering::Relaxed);
        drop(state);
        // The waker and any reply are dropped outside the lock.
        drop(slot);
        waiting
    }

    /// The reply to call `id` (registered with [`register`](Self::register)), and whether it is
    /// the deadline passing; the slot is freed when it is taken. Dropping the future leaves the
    /// slot in use: free it with [`remove`](Self::remove).
    pub(crate) fn reply(&self, id: u64) -> ReplyFuture<'_> {
        ReplyFuture { in_flight: self, id }
    }

    /// Queues an item of stream `id`. A frame for a call that is no longer waiting (it ended, or
    /// gave up) is discarded; an item on a call that is not a stream of results, or beyond the
    /// credit granted, breaks the stream rules.
    pub(crate) fn push_item(&self, id: u64, body: Bytes) -> Result<(), StreamRuleBroken> {
        let waker = {
            let mut state = self.lock();
            let Some(slot) = state.slot(id).filter(|s| s.reply.is_none()) else { return Ok(()) };
            let Some(stream) = slot.stream.as_mut().filter(|s| s.receives) else {
                return Err(RpcError::Protocol(format!(
                    "the server sent a stream frame (ITEM) for call {id}, which has no stream of results"
                )));
            };
            if stream.recv_credit == 0 {
                return Err(RpcError::Protocol(format!(
                    "the server sent an ITEM for stream {id} beyond the credit granted"
                )));
            }
            stream.recv_credit -= 1;
            stream.items.push_back(body);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The server's `END` of stream `id`: its results end after the items queued.
    pub(crate) fn end_stream(&self, id: u64) -> Result<(), StreamRuleBroken> {
        {
            let mut state = self.lock();
            let Some(slot) = state.slot(id).filter(|s| s.reply.is_none()) else { return Ok(()) };
            if !slot.stream.as_ref().is_some_and(|s| s.receives) {
                return Err(RpcError::Protocol(format!(
                    "the server sent a stream frame (END) for call {id}, which has no stream of results"
                )));
            }
        }
        self.complete(id, Ok(Bytes::new()));
        Ok(())
    }

    /// The server grants `credit` more items on stream `id`.
    pub(crate) fn grant(&self, id: u64, credit: u64) -> Result<(), StreamRuleBroken> {
        let waker = {
            let mut state = self.lock();
            let Some(slot) = state.slot(id).filter(|s| s.reply.is_none()) else { return Ok(()) };
            let Some(stream) = slot.stream.as_mut().filter(|s| s.sends) else {
                return Err(RpcError::Protocol(format!(
                    "the server sent a stream frame (CREDIT) for call {id}, which has no stream of arguments"
                )));
            };
            match stream.send_credit.checked_add(credit).filter(|c| *c <= crate::stream::credit::MAX_CREDIT) {
                Some(c) => stream.send_credit = c,
                None => {
                    return Err(RpcError::Protocol(format!(
                        "the server's CREDIT for stream {id} takes the outstanding grant past 2^32 - 1"
                    )))
                }
            }
            stream.send_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The server's HELLO arrived: every stream of arguments gets its window of credit.
    pub(crate) fn set_peer_window(&self, window: u64) {
        let window = window.min(crate::stream::credit::MAX_CREDIT);
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            state.peer_window = Some(window);
            state
                .table
                .iter_mut()
                .filter_map(|s| s.stream.as_mut().filter(|st| st.sends))
                .filter_map(|st| {
                    st.send_credit += window;
                    st.send_waker.take()
                })
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Takes one unit of credit to send an item on stream `id`: `Ready(false)` when the call has
    /// ended (its reply came, it failed or it was dropped), so nothing more should be sent.
    pub(crate) fn poll_send_credit(&self, id: u64, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.lock();
        let Some(slot) = state.slot(id).filter(|s| s.reply.is_none()) else { return Poll::Ready(false) };
        let Some(stream) = slot.stream.as_mut() else { return Poll::Ready(false) };
        if stream.send_credit > 0 {
            stream.send_credit -= 1;
            return Poll::Ready(true);
        }
        if !stream.send_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            stream.send_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The next result of stream `id`: an item, and how many items to grant the server now (0,
    /// or half a window once that many have been taken); or the end (`None`, or the error that
    /// ended it, with whether that was the deadline), which frees the slot.
    pub(crate) fn poll_item(&self, id: u64, cx: &mut Context<'_>) -> Poll<StreamNext> {
        let mut state = self.lock();
        let closed = state.closed.clone();
        let Some(slot) = state.slot(id) else {
            let err = closed.unwrap_or_else(|| RpcError::closed("the call was forgotten"));
            return Poll::Ready(StreamNext::Failed(err, false));
        };
        if let Some(stream) = slot.stream.as_mut() {
            if let Some(item) = stream.items.pop_front() {
                stream.consumed += 1;
                let mut grant = 0;
                if slot.reply.is_none()
                    && stream.consumed >= crate::stream::credit::grant_batch(stream.window)
                {
                    grant = stream.consumed;
                    stream.recv_credit += grant;
                    stream.consumed = 0;
                }
                return Poll::Ready(StreamNext::Item(item, grant));
            }
        }
        if let Some(reply) = slot.reply.take() {
            let expired = slot.expired;
            *slot = Slot::default();
            state.used -= 1;
            self.used.store(state.used, Ordering::Relaxed);
            return Poll::Ready(match reply {
                Ok(_) => StreamNext::End,
                Err(e) => StreamNext::Failed(e, expired),
            });
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Ends a call from the client's side with `err` (its stream of arguments failed), unless
    /// it already ended.
    pub(crate) fn fail(&self, id: u64, err: RpcError) {
        self.complete(id, Err(err));
    }

    /// Fails every pending call and every later one with `err`.
    pub(crate) fn close(&self, err: RpcError) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            // A server that refused the whole connection (connection limit) started none of its
            // calls: say so, whatever error the teardown itself produced.
            let err = match &state.refusing {
                Some(refused @ RpcError::Overloaded(_)) => refused.clone(),
                _ => err,
            };
            // The first cause wins: later errors are consequences of it.
            let err = state.closed.get_or_insert(err).clone();
            let mut wakers = Vec::new();
            for slot in state.table.iter_mut().filter(|s| s.id != 0 && s.reply.is_none()) {
                slot.finish(Err(err.clone()), &mut wakers);
            }
            wakers
        };
        for waker in wakers {
            waker.wake();
        }
        self.unusable.notify_waiters();
    }

    /// Refuses later calls with `err`; pending ones still get their responses.
    pub(crate) fn refuse_new(&self, err: RpcError) {
        self.lock().refusing.get_or_insert(err);
        self.unusable.notify_waiters();
    }

    /// Waits until new calls can no longer use this connection, and says why.
    pub(crate) async fn unusable(&self) -> RpcError {
        loop {
            let notified = self.unusable.notified();
            if let Some(reason) = self.closed_reason() {
                return reason;
            }
            notified.await;
        }
    }

    /// Why the connection is unusable, if it is.
    pub(crate) fn closed_reason(&self) -> Option<RpcError> {
        let state = self.lock();
        state.closed.clone().or_else(|| state.refusing.clone())
    }

    /// Whether at most one call is registered (a hint: read without the lock).
    pub(crate) fn at_most_one(&self) -> bool {
        self.used.load(Ordering::Relaxed) <= 1
    }

    /// How many calls await a response.
    pub(crate) fn len(&self) -> usize {
        let state = self.lock();
        state.table.iter().filter(|s| s.id != 0 && s.reply.is_none()).count()
    }
}

/// What [`InFlight::poll_item`] found.
#[derive(Debug)]
pub(crate) enum StreamNext {
    /// An item, and the credit to grant the server now (0 for none).
    Item(Bytes, u64),
    /// The server's `END`.
    End,
    /// The error that ended the stream, and whether it was the deadline (the server may still
    /// be running the call).
    Failed(RpcError, bool),
}

/// Waits for one call's reply; see [`InFlight::reply`].
pub(crate) struct ReplyFuture<'a> {
    in_flight: &'a InFlight,
    id: u64,
}

impl Future for ReplyFuture<'_> {
    type Output = (Reply, bool);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Reply, bool)> {
        self.in_flight.poll_reply(self.id, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids stay unique and findable while the table grows under calls that never finish, and
    /// a freed slot is reused by a later id.
    #[test]
    fn ids_are_unique_and_found_across_growth() {
        let in_flight = InFlight::default();
        let ids: Vec<u64> = (0..100).map(|_| in_flight.register(None).expect("open")).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no id handed out twice");
        assert_eq!(in_flight.len(), 100);
        for &id in &ids {
            assert!(in_flight.complete(id, Ok(Bytes::from(id.to_be_bytes().to_vec()))), "{id} found");
            assert!(!in_flight.complete(id, Ok(Bytes::new())), "{id} answered once only");
        }
        assert_eq!(in_flight.len(), 0, "answered calls no longer wait");
        let waker = futures::task::noop_waker();
        for &id in &ids {
            let reply = in_flight.poll_reply(id, &mut Context::from_waker(&waker));
            assert!(
                matches!(reply, Poll::Ready((Ok(b), false)) if b[..] == id.to_be_bytes()),
                "{id}'s own reply"
            );
        }
        assert_eq!(in_flight.lock().used, 0);
        let table = in_flight.lock().table.len();
        for _ in 0..1000 {
            let id = in_flight.register(None).expect("open");
            assert!(in_flight.remove(id), "still waiting");
        }
        assert_eq!(in_flight.lock().table.len(), table, "freed slots are reused");
        assert!(!in_flight.complete(12345678, Ok(Bytes::new())), "an unknown id is dropped");
    }

    /// Closing fails the calls waiting and refuses new ones with the first cause.
    #[test]
    fn close_fails_every_waiting_call() {
        let in_flight = InFlight::default();
        let (a, b) = (in_flight.register(None).expect("open"), in_flight.register(None).expect("open"));
        assert!(in_flight.complete(a, Ok(Bytes::from_static(b"done"))));
        in_flight.close(RpcError::closed("first"));
        in_flight.close(RpcError::closed("second"));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            matches!(in_flight.poll_reply(a, &mut cx), Poll::Ready((Ok(_), false))),
            "answered before the close"
        );
        assert!(
            matches!(in_flight.poll_reply(b, &mut cx), Poll::Ready((Err(RpcError::ConnectionClosed(m)), false)) if &*m == "first")
        );
        assert!(matches!(in_flight.register(None), Err(RpcError::ConnectionClosed(m)) if &*m == "first"));
    }

    /// Only calls whose deadline has passed fail; the timer moves to the earliest deadline left,
    /// and a call with an earlier deadline than the timer's asks for a re-arm.
    #[test]
    fn expiry_fails_only_the_calls_past_their_deadline() {
        let in_flight = InFlight::default();
        let now = Instant::now();
        let secs = |n| now + std::time::Duration::from_secs(n);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let late = in_flight.register(Some(secs(10))).expect("open");
        assert!(matches!(in_flight.poll_rearm(&mut cx), Poll::Ready(Some(t)) if t == secs(10)));
        let later = in_flight.register(Some(secs(20))).expect("open");
        assert!(in_flight.poll_rearm(&mut cx).is_pending(), "a later deadline needs no re-arm");
        let soon = in_flight.register(Some(secs(5))).expect("open");
        let never = in_flight.register(None).expect("open");
        assert!(matches!(in_flight.poll_rearm(&mut cx), Poll::Ready(Some(t)) if t == secs(5)));
        assert_eq!(in_flight.expire(secs(5)), Some(secs(10)), "the next deadline");
        assert!(matches!(
            in_flight.poll_reply(soon, &mut cx),
            Poll::Ready((Err(RpcError::DeadlineExceeded), true))
        ));
        assert!(in_flight.complete(late, Ok(Bytes::new())));
        assert_eq!(in_flight.expire(secs(10)), Some(secs(20)), "an answered call does not expire");
        assert!(matches!(in_flight.poll_reply(late, &mut cx), Poll::Ready((Ok(_), false))));
        assert_eq!(in_flight.expire(secs(30)), None, "no deadline left");
        assert!(in_flight.remove(later), "expired but not taken: the server should hear a cancel");
        assert!(in_flight.poll_reply(never, &mut cx).is_pending(), "a call without a deadline waits");
    }

    /// A stream's items wait in its slot up to the credit granted; taking them grants more; an
    /// item beyond the credit breaks the rules; the server's END comes after the queued items.
    /// A stream of arguments gets the server's window once its HELLO arrives, however the two
    /// race.
    #[test]
    fn stream_slots_keep_the_credit_rules() {
        use crate::describe::MethodKind;
        let in_flight = InFlight::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let id = in_flight.register_stream(None, StreamSlot::new(MethodKind::ServerStream, 2)).expect("open");
        in_flight.push_item(id, Bytes::from_static(b"a")).expect("within the window");
        in_flight.push_item(id, Bytes::from_static(b"b")).expect("within the window");
        assert!(in_flight.push_item(id, Bytes::from_static(b"c")).is_err(), "beyond the credit");
        assert!(
            matches!(in_flight.poll_item(id, &mut cx), Poll::Ready(StreamNext::Item(b, 1)) if &b[..] == b"a")
        );
        in_flight.push_item(id, Bytes::from_static(b"c")).expect("granted again");
        assert!(in_flight.grant(id, 1).is_err(), "no stream of arguments to grant credit for");
        in_flight.end_stream(id).expect("a stream of results");
        assert!(in_flight.grant(id, 1).is_ok(), "a frame for a stream that ended is discarded");
        for want in [&b"b"[..], b"c"] {
            assert!(
                matches!(in_flight.poll_item(id, &mut cx), Poll::Ready(StreamNext::Item(b, _)) if &b[..] == want)
            );
        }
        assert!(matches!(in_flight.poll_item(id, &mut cx), Poll::Ready(StreamNext::End)));
        assert_eq!(in_flight.lock().used, 0, "the slot is freed at the end");

        let before =
            in_flight.register_stream(None, StreamSlot::new(MethodKind::ClientStream, 16)).expect("open");
        assert!(in_flight.poll_send_credit(before, &mut cx).is_pending(), "no credit before the HELLO");
        in_flight.set_peer_window(1);
        let after = in_flight.register_stream(None, StreamSlot::new(MethodKind::Bidi, 16)).expect("open");
        for id in [before, after] {
            assert!(matches!(in_flight.poll_send_credit(id, &mut cx), Poll::Ready(true)));
            assert!(in_flight.poll_send_credit(id, &mut cx).is_pending(), "one item of credit each");
        }
        assert!(in_flight.grant(after, u64::from(u32::MAX)).is_ok());
        assert!(in_flight.grant(after, 1).is_err(), "past 2^32 - 1");
        in_flight.fail(before, RpcError::DeadlineExceeded);
        assert!(
            matches!(in_flight.poll_send_credit(before, &mut cx), Poll::Ready(false)),
            "an ended call sends no more"
        );
    }
}
