//! The bounded queue between a connection's senders (the connection, its calls) and its writer.
//!
//! A `Vec` behind a mutex that the writer takes whole, rather than tokio's `mpsc`: the channel
//! allocates its first block of 32 slots when it is made (1.3 KiB of every idle connection at 40
//! bytes a slot), and this queue holds nothing until a frame is queued, and only what its
//! largest burst needed after. Sending is a lock and a push, and a wake-up only when the writer
//! may be waiting (the queue was empty); receiving swaps the whole queue out.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The shared state.
#[derive(Debug)]
struct Shared<T> {
    inner: Mutex<Inner<T>>,
    /// Something was queued, or the queue closed: the writer looks again.
    ready: Notify,
    /// Room was made, or the queue closed: waiting senders look again.
    room: Notify,
    capacity: usize,
}

#[derive(Debug)]
struct Inner<T> {
    items: Vec<T>,
    senders: usize,
    /// No more frames are taken: every sender is gone, or the receiver closed it.
    closed: bool,
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
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// Takes frames, in the order they were queued.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue that holds at most `capacity` frames (at least one).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner { items: Vec::new(), senders: 1, closed: false }),
        ready: Notify::new(),
        room: Notify::new(),
        capacity: capacity.max(1),
    });
    (Sender { shared: Arc::clone(&shared) }, Receiver { shared })
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Sender<T> {
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
        inner.items.push(item);
        drop(inner);
        // The writer only waits on an empty queue; `notify_one` keeps the wake-up for it if it
        // is not waiting yet.
        if was_empty {
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
            room.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Drop for Sender<T> {
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

impl<T> Receiver<T> {
    /// Waits for frames and moves up to `limit` of them into `buf` (which should be empty: the
    /// whole queue is swapped into it when it fits); returns how many, and 0 only once the queue
    /// is closed and empty.
    pub(crate) async fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        loop {
            {
                let mut inner = self.shared.lock();
                let n = inner.items.len().min(limit.max(1));
                if n > 0 {
                    if n == inner.items.len() && buf.is_empty() {
                        std::mem::swap(&mut inner.items, buf);
                    } else {
                        buf.extend(inner.items.drain(..n));
                    }
                    let full_before = inner.items.len() + n >= self.shared.capacity;
                    drop(inner);
                    if full_before {
                        self.shared.room.notify_waiters();
                    }
                    return n;
                }
                if inner.closed {
                    return 0;
                }
            }
            self.shared.ready.notified().await;
        }
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
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
        assert_eq!(rx.recv_many(&mut got, 64).await, 2);
        assert_eq!(got, [1, 2]);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap(), Ok(()));
        got.clear();
        assert_eq!(rx.recv_many(&mut got, 64).await, 1);
        assert_eq!(got, [3]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_wakes_for_a_frame_and_sees_the_end_when_every_sender_is_gone() {
        let (tx, mut rx) = channel(8);
        let mut got = Vec::new();
        let receiving = tokio::spawn(async move {
            let n = rx.recv_many(&mut got, 1).await;
            let later = rx.recv_many(&mut got, 64).await;
            let end = rx.recv_many(&mut got, 64).await;
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
        assert_eq!(rx.recv_many(&mut got, 64).await, 0);
    }

    #[test]
    fn an_unused_queue_allocates_no_slots() {
        let (tx, rx) = channel::<[u8; 40]>(64);
        assert_eq!(rx.shared.lock().items.capacity(), 0);
        drop((tx, rx));
    }
}
