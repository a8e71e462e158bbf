//! One direction of an in-memory message connection: a queue of messages bounded in bytes.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::message::{MessageRead, MessageWrite};

/// The sending end of one direction of [`message_pair`](super::message_pair).
pub struct MessageSender {
    shared: Arc<Shared>,
}

/// The receiving end of one direction of [`message_pair`](super::message_pair).
pub struct MessageReceiver {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Bytes of queued messages at which the sender waits.
    capacity: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// Bytes of the messages in `queue`.
    queued: usize,
    receiver: Option<Waker>,
    sender: Option<Waker>,
    /// The sender closed or was dropped: the receiver sees the end after the queue.
    sender_gone: bool,
    /// The receiver was dropped: sends fail.
    receiver_gone: bool,
}

/// A direction that holds up to `capacity` bytes of unreceived messages before the sender waits.
pub(super) fn channel(capacity: usize) -> (MessageSender, MessageReceiver) {
    let shared = Arc::new(Shared { state: Mutex::default(), capacity });
    (MessageSender { shared: Arc::clone(&shared) }, MessageReceiver { shared })
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole, so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the in-memory peer closed its receiving end")
}

impl MessageWrite for MessageSender {
    /// Ready while fewer than the capacity's bytes wait: one message, however long, may then go,
    /// so a message longer than the capacity is not stuck for ever.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Poll::Ready(Err(broken()));
        }
        if state.queued < self.shared.capacity {
            return Poll::Ready(Ok(()));
        }
        if !state.sender.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.sender = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn start_send(&mut self, message: Bytes) -> io::Result<()> {
        let waker = {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Err(broken());
            }
            state.queued += message.len();
            state.queue.push_back(message);
            state.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl MessageSender {
    fn close(&self) {
        let waker = {
            let mut state = self.shared.lock();
            state.sender_gone = true;
            state.receiver.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for MessageSender {
    fn drop(&mut self) {
        self.close();
    }
}

impl MessageRead for MessageReceiver {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let (message, waker) = {
            let mut state = self.shared.lock();
            match state.queue.pop_front() {
                Some(message) => {
                    state.queued -= message.len();
                    (message, state.sender.take())
                }
                None if state.sender_gone => return Poll::Ready(Ok(None)),
                None => {
                    if !state.receiver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        state.receiver = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Ok(Some(message)))
    }
}

impl Drop for MessageReceiver {
    fn drop(&mut self) {
        let (queue, waker) = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.queued = 0;
            (std::mem::take(&mut state.queue), state.sender.take())
        };
        // Messages nobody will read are freed now, not when the sender goes.
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for MessageSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageSender").field("capacity", &self.shared.capacity).finish_non_exhaustive()
    }
}

impl fmt::Debug for MessageReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageReceiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn noop() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    /// The sender waits once the capacity's bytes are queued, and goes on as the receiver takes
    /// them: a receiver that never reads holds its sender at the bound.
    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes() {
        let (mut tx, mut rx) = channel(100);
        for _ in 0..2 {
            assert!(tx.poll_ready(&mut noop()).is_ready());
            tx.start_send(Bytes::from(vec![0; 60])).unwrap();
        }
        assert!(tx.poll_ready(&mut noop()).is_pending(), "120 bytes wait: no more until some are read");
        assert_eq!(rx.shared.lock().queued, 120);
        let first = poll_fn(|cx| rx.poll_recv(cx)).await.unwrap().unwrap();
        assert_eq!(first.len(), 60);
        assert!(tx.poll_ready(&mut noop()).is_ready(), "room again once 60 were read");
    }

    /// A message longer than the capacity still goes when the queue is below it.
    #[tokio::test]
    async fn a_message_longer_than_the_capacity_is_not_stuck() {
        let (mut tx, mut rx) = channel(10);
        assert!(tx.poll_ready(&mut noop()).is_ready());
        tx.start_send(Bytes::from(vec![1; 50])).unwrap();
        assert!(tx.poll_ready(&mut noop()).is_pending());
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await.unwrap().unwrap().len(), 50);
    }

    /// Messages queued before the sender closes are received, then the end.
    #[tokio::test]
    async fn the_receiver_sees_every_message_then_the_end() {
        let (mut tx, mut rx) = channel(100);
        tx.start_send(Bytes::from_static(b"a")).unwrap();
        tx.start_send(Bytes::from_static(b"b")).unwrap();
        drop(tx);
        assert_eq!(&poll_fn(|cx| rx.poll_recv(cx)).await.unwrap().unwrap()[..], b"a");
        assert_eq!(&poll_fn(|cx| rx.poll_recv(cx)).await.unwrap().unwrap()[..], b"b");
        assert!(poll_fn(|cx| rx.poll_recv(cx)).await.unwrap().is_none());
    }

    /// Once the receiver is gone, a waiting sender is woken and every send fails.
    #[tokio::test]
    async fn sends_fail_once_the_receiver_is_gone() {
        let (mut tx, rx) = channel(1);
        tx.start_send(Bytes::from_static(b"full")).unwrap();
        let waiting = tokio::spawn(async move {
            let ready = poll_fn(|cx| tx.poll_ready(cx)).await;
            (ready.map_err(|e| e.kind()), tx.start_send(Bytes::from_static(b"x")).map_err(|e| e.kind()))
        });
        tokio::task::yield_now().await;
        drop(rx);
        let (ready, send) = waiting.await.unwrap();
        assert_eq!(ready, Err(io::ErrorKind::BrokenPipe));
        assert_eq!(send, Err(io::ErrorKind::BrokenPipe));
    }
}
