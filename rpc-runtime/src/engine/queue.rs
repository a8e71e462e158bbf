//! The bounded queue between a connection's senders (the connection, its calls) and its writer.
//!
//! A `Vec` behind a mutex that the writer takes whole, rather than tokio's `mpsc`: the channel
//! allocates its first block of 32 slots when it is made (1.3 KiB of every idle connection at 40
//! bytes a slot), and this queue holds nothing until a frame is queued, and only what its
//! largest burst needed after. Sending is a lock and a push, and a wake-up only when the writer
//! may be waiting (the queue was empty); receiving swaps the whole queue out.
//!
//! While the writer waits, it leaves its sink (the connection's write half) here. The connection
//! *corks* the queue while it handles the frames of one read, and when it *uncorks* it writes what
//! they queued to that sink itself, without waiting: a reply to a cheap call then costs no
//! wake-up and no turn of the writer task. Whatever the sink does not take at once stays with it,
//! or goes back to the front of the queue, for the writer, which alone waits for the socket (and
//! so alone applies the write timeout).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

/// The shared state.
#[derive(Debug)]
struct Shared<T, S> {
    inner: Mutex<Inner<T, S>>,
    /// Something was queued, the sink came back with work, or the queue closed: the writer looks
    /// again.
    ready: Notify,
    /// Room was made, or the queue closed: waiting senders look again.
    room: Notify,
    /// The connection is handling a read's frames and will write what they queue when done
    /// (see [`Sender::uncork`]): the writer is not woken for them.
    corked: AtomicBool,
    capacity: usize,
}

#[derive(Debug)]
struct Inner<T, S> {
    items: Vec<T>,
    /// When the oldest of `items` was queued (for the writer's write timeout).
    since: Option<Instant>,
    senders: usize,
    /// No more frames are taken: every sender is gone, or the receiver closed it.
    closed: bool,
    /// The writer's sink, while it waits and no sender is writing to it.
    sink: Option<S>,
    /// A sender wrote to the sink and left something in it (or unflushed): the writer must send.
    flush_due: bool,
    /// Bytes a sender left in the sink, not yet written.
    held: usize,
    /// A sender's write to the sink failed: the writer stops with it.
    failed: Option<std::io::Error>,
    /// An emptied list a sender gave back, for the next uncork.
    spare: Vec<T>,
}

/// Why [`Sender::try_send`] did not queue a frame; the frame comes back.
#[derive(Debug)]
pub(crate) enum TrySendError<T> {
    /// The queue holds its capacity.
    Full(T),
    /// The receiver is gone or closed the queue.
    Closed(T),
}

/// Queues frames; the queue closes when the last sender is dropped.
#[derive(Debug)]
pub(crate) struct Sender<T, S> {
    shared: Arc<Shared<T, S>>,
}

/// Takes frames, in the order they were queued.
#[derive(Debug)]
pub(crate) struct Receiver<T, S> {
    shared: Arc<Shared<T, S>>,
}

/// What [`Receiver::take`] got.
#[derive(Debug)]
pub(crate) struct Taken<S> {
    /// The sink, back with the writer.
    pub(crate) sink: S,
    /// Frames moved into the caller's list; 0 with nothing due means the queue is closed and
    /// empty.
    pub(crate) frames: usize,
    /// When the oldest of them was queued.
    pub(crate) since: Option<Instant>,
    /// A sender left bytes in the sink (`held` of them) or unflushed: the writer must send.
    pub(crate) flush_due: bool,
    pub(crate) held: usize,
    /// A sender's write failed: the connection's write half is broken.
    pub(crate) failed: Option<std::io::Error>,
}

/// A queue that holds at most `capacity` frames (at least one).
pub(crate) fn channel<T, S>(capacity: usize) -> (Sender<T, S>, Receiver<T, S>) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            items: Vec::new(),
            since: None,
            senders: 1,
            closed: false,
            sink: None,
            flush_due: false,
            held: 0,
            failed: None,
            spare: Vec::new(),
        }),
        ready: Notify::new(),
        room: Notify::new(),
        corked: AtomicBool::new(false),
        capacity: capacity.max(1),
    });
    (Sender { shared: Arc::clone(&shared) }, Receiver { shared })
}

impl<T, S> Shared<T, S> {
    fn lock(&self) -> MutexGuard<'_, Inner<T, S>> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T, S> Inner<T, S> {
    /// Whether the writer has something to do (or must see the end, or a sender's failure).
    fn has_work(&self) -> bool {
        !self.items.is_empty() || self.flush_due || self.closed || self.failed.is_some()
    }
}

impl<T, S> Sender<T, S> {
    /// Queues `item` if there is room now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut inner = self.shared.lock();
        if inner.closed {
            return Err(TrySendError::Closed(item));
        }
        if inner.items.len() >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        let was_empty = inner.items.is_empty();
        // A corked queue is written when it is uncorked, microseconds from now: the clock is
        // read then, only if the frames go to the writer.
        let corked = self.shared.corked.load(Ordering::Relaxed);
        if was_empty && !corked {
            inner.since = Some(Instant::now());
        }
        inner.items.push(item);
        drop(inner);
        // The writer only waits on an empty queue; `notify_one` keeps the wake-up for it if it
        // is not waiting yet.
        if was_empty && !corked {
            self.shared.ready.notify_one();
        }
        Ok(())
    }

    /// Queues `item`, waiting for room; gives it back if the queue closes first. Cancel safe:
    /// a cancelled send queued nothing.
    pub(crate) async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before the attempt, so room made in between is not missed.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => item = back,
            }
            // Room comes from the writer: it must know there is work, corked or not.
            self.wake_writer();
            room.await;
        }
    }

    /// Refuses frames from now on: the writer writes what is queued and stops, even while
    /// senders remain.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        self.shared.room.notify_waiters();
    }

    /// Wakes the writer for what is queued, even while the queue is corked: for a sender about to
    /// wait for room, which only the writer makes.
    pub(crate) fn wake_writer(&self) {
        self.shared.ready.notify_one();
    }

    /// From now until [`uncork`](Self::uncork), frames queued do not wake the writer.
    pub(crate) fn cork(&self) {
        self.shared.corked.store(true, Ordering::Relaxed);
    }

    /// Ends a [`cork`](Self::cork). If frames were queued and the writer is waiting, hands them
    /// over with its sink, to be written by the caller, who must give the sink back with
    /// [`give_back`](Self::give_back); otherwise wakes the writer for them.
    pub(crate) fn uncork(&self) -> Option<(S, Vec<T>)> {
        self.shared.corked.store(false, Ordering::Relaxed);
        let mut inner = self.shared.lock();
        if inner.items.is_empty() {
            return None;
        }
        if !inner.flush_due && !inner.closed {
            if let Some(sink) = inner.sink.take() {
                let spare = std::mem::take(&mut inner.spare);
                let items = std::mem::replace(&mut inner.items, spare);
                inner.since = None;
                let full_before = items.len() >= self.shared.capacity;
                drop(inner);
                if full_before {
                    self.shared.room.notify_waiters();
                }
                return Some((sink, items));
            }
        }
        if inner.since.is_none() {
            inner.since = Some(Instant::now());
        }
        drop(inner);
        // The writer looks at the queue before it waits, and was woken already if its sink is
        // parked with work due: this wake-up is only a safety net, on a path off the hot one.
        self.shared.ready.notify_one();
        None
    }

    /// Returns the sink [`uncork`](Self::uncork) handed over, with the frames it did not take
    /// (they go back to the front of the queue), whether it wrote everything, how many bytes
    /// it holds, and the error if the write failed. Wakes the writer if it has work.
    pub(crate) fn give_back(
        &self,
        sink: S,
        mut rest: Vec<T>,
        done: bool,
        held: usize,
        failed: Option<std::io::Error>,
    ) {
        let mut inner = self.shared.lock();
        inner.sink = Some(sink);
        if rest.is_empty() {
            if inner.spare.capacity() == 0 {
                inner.spare = rest;
            }
        } else {
            // Frames go out in the order they were queued.
            rest.append(&mut inner.items);
            inner.items = rest;
            inner.since = Some(Instant::now());
        }
        inner.flush_due |= !done;
        inner.held += held;
        if failed.is_some() {
            inner.failed = failed;
        }
        let work = inner.has_work();
        drop(inner);
        if work {
            self.shared.ready.notify_one();
        }
    }
}

impl<T, S> Clone for Sender<T, S> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl<T, S> Drop for Sender<T, S> {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.senders -= 1;
        if inner.senders == 0 {
            inner.closed = true;
            drop(inner);
            self.shared.ready.notify_one();
        }
    }
}

impl<T, S> Receiver<T, S> {
    /// Leaves the writer's sink here while it waits, for [`Sender::uncork`] to write to.
    pub(crate) fn park(&mut self, sink: S) {
        self.shared.lock().sink = Some(sink);
    }

    /// Waits until there is work (frames queued, a sink left unflushed, a failed write, or the
    /// end) and the parked sink is back, then takes the sink and moves up to `limit` frames into
    /// `buf` (which should be empty: the whole queue is swapped into it when it fits).
    pub(crate) async fn take(&mut self, buf: &mut Vec<T>, limit: usize) -> Taken<S> {
        loop {
            if let Some(taken) = self.try_take(buf, limit) {
                return taken;
            }
            self.shared.ready.notified().await;
        }
    }

    /// [`take`](Self::take) if there is work and the sink is here.
    fn try_take(&mut self, buf: &mut Vec<T>, limit: usize) -> Option<Taken<S>> {
        let mut inner = self.shared.lock();
        if !inner.has_work() {
            return None;
        }
        let sink = inner.sink.take()?;
        let n = inner.items.len().min(limit.max(1));
        if n == inner.items.len() && buf.is_empty() {
            std::mem::swap(&mut inner.items, buf);
        } else {
            buf.extend(inner.items.drain(..n));
        }
        let since = if inner.items.is_empty() { inner.since.take() } else { inner.since };
        let taken = Taken {
            sink,
            frames: n,
            since,
            flush_due: std::mem::take(&mut inner.flush_due),
            held: std::mem::take(&mut inner.held),
            failed: inner.failed.take(),
        };
        let full_before = inner.items.len() + n >= self.shared.capacity;
        drop(inner);
        if full_before {
            self.shared.room.notify_waiters();
        }
        Some(taken)
    }

    /// Takes one queued frame, if any.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut inner = self.shared.lock();
        (!inner.items.is_empty()).then(|| inner.items.remove(0))
    }

    /// Refuses frames from now on; those already queued can still be taken.
    pub(crate) fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room.notify_waiters();
    }

    /// Bytes a sender left in the sink, and forgets them: for the writer's reckoning when it
    /// stops.
    pub(crate) fn take_held(&mut self) -> usize {
        std::mem::take(&mut self.shared.lock().held)
    }
}

impl<T, S> Drop for Receiver<T, S> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// What the writer does: parks its sink (here a number), then takes what is queued.
    async fn recv_many<T>(rx: &mut Receiver<T, u8>, got: &mut Vec<T>, limit: usize) -> usize {
        rx.park(0);
        rx.take(got, limit).await.frames
    }

    #[tokio::test(start_paused = true)]
    async fn frames_come_out_in_order_up_to_the_capacity_and_senders_wait_for_room() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        // A waiting sender gets in once the writer takes the queue.
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(3).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room yet");
        let mut got = Vec::new();
        assert_eq!(recv_many(&mut rx, &mut got, 64).await, 2);
        assert_eq!(got, [1, 2]);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap(), Ok(()));
        got.clear();
        assert_eq!(recv_many(&mut rx, &mut got, 64).await, 1);
        assert_eq!(got, [3]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_wakes_for_a_frame_and_sees_the_end_when_every_sender_is_gone() {
        let (tx, mut rx) = channel(8);
        let mut got = Vec::new();
        let receiving = tokio::spawn(async move {
            let n = recv_many(&mut rx, &mut got, 1).await;
            let later = recv_many(&mut rx, &mut got, 64).await;
            let end = recv_many(&mut rx, &mut got, 64).await;
            (n, later, end, got)
        });
        tokio::task::yield_now().await;
        tx.try_send("a").unwrap();
        tx.try_send("b").unwrap();
        let tx2 = tx.clone();
        drop(tx);
        tx2.try_send("c").unwrap();
        drop(tx2);
        let (n, later, end, got) =
            tokio::time::timeout(Duration::from_secs(1), receiving).await.unwrap().unwrap();
        assert_eq!((n, later, end), (1, 2, 0), "one at a time as asked, the rest, then the end");
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_queue_refuses_frames_and_frees_waiting_senders_but_keeps_what_it_holds() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await });
        tokio::task::yield_now().await;
        rx.close();
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap(), Err(2));
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.try_recv(), None);
        let mut got = Vec::new();
        assert_eq!(recv_many(&mut rx, &mut got, 64).await, 0);
    }

    /// Frames queued while corked do not wake the writer; uncorking hands them and the parked
    /// sink to the sender, who gives back the sink with what it could not write, and the writer
    /// then takes that first, before what was queued meanwhile.
    #[tokio::test(start_paused = true)]
    async fn an_uncorked_queue_is_written_by_the_sender_and_the_rest_goes_first_to_the_writer() {
        let (tx, mut rx) = channel::<&str, u8>(8);
        rx.park(7);
        let mut got = Vec::new();
        let mut take = Box::pin(rx.take(&mut got, 64));
        assert!(futures::poll!(take.as_mut()).is_pending(), "nothing queued");
        tx.cork();
        tx.try_send("a").unwrap();
        tx.try_send("b").unwrap();
        assert!(futures::poll!(take.as_mut()).is_pending(), "corked: the writer is not woken");
        let (sink, mut frames) = tx.uncork().expect("the writer is idle: the sender writes");
        assert_eq!((sink, frames.as_slice()), (7, &["a", "b"][..]));
        assert!(futures::poll!(take.as_mut()).is_pending(), "the sender holds the sink");
        tx.try_send("c").unwrap();
        frames.remove(0);
        tx.give_back(sink, frames, false, 3, None);
        let futures::task::Poll::Ready(taken) = futures::poll!(take.as_mut()) else {
            panic!("woken for the rest")
        };
        assert_eq!((taken.sink, taken.frames, taken.flush_due, taken.held), (7, 2, true, 3));
        assert!(taken.since.is_some());
        drop(take);
        assert_eq!(got, ["b", "c"], "what the sender left, then what was queued meanwhile");
    }

    /// Uncorking while the writer is busy (its sink is not parked) leaves the frames to it: it
    /// takes them when it comes back, before it waits.
    #[tokio::test(start_paused = true)]
    async fn uncorking_while_the_writer_is_busy_leaves_the_frames_to_it() {
        let (tx, mut rx) = channel::<u32, u8>(8);
        tx.cork();
        tx.try_send(1).unwrap();
        assert!(tx.uncork().is_none(), "no parked sink: the writer writes");
        rx.park(0);
        let mut got = Vec::new();
        let taken = tokio::time::timeout(Duration::from_secs(1), rx.take(&mut got, 64)).await.unwrap();
        assert_eq!((taken.frames, taken.flush_due), (1, false));
        assert_eq!(got, [1]);
    }

    /// A failed write by a sender reaches the writer, which stops with it.
    #[tokio::test(start_paused = true)]
    async fn a_senders_failed_write_reaches_the_writer() {
        let (tx, mut rx) = channel::<u32, u8>(8);
        rx.park(0);
        tx.cork();
        tx.try_send(1).unwrap();
        let (sink, _) = tx.uncork().expect("handed over");
        tx.give_back(sink, Vec::new(), true, 0, Some(std::io::ErrorKind::BrokenPipe.into()));
        let mut got = Vec::new();
        let taken = tokio::time::timeout(Duration::from_secs(1), rx.take(&mut got, 64)).await.unwrap();
        assert_eq!(taken.failed.map(|e| e.kind()), Some(std::io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn an_unused_queue_allocates_no_slots() {
        let (tx, rx) = channel::<[u8; 40], u8>(64);
        assert_eq!(rx.shared.lock().items.capacity(), 0);
        drop((tx, rx));
    }
}
