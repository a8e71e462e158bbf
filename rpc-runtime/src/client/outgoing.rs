//! The client's outgoing frames: callers append their frame to a shared queue, and the writer
//! task takes everything queued at once and writes it.
//!
//! A caller copies its (small) frame into the queue's coalescing buffer, under a lock it holds for
//! that copy only, and wakes the writer only if the writer is waiting. There is no channel between
//! them: a bounded channel cost about 460 instructions a call, and the writer copied each frame
//! into its batch anyway. Large frames are queued whole, never copied, and written from their own
//! buffer. The queue is bounded in frames ([`ClientBuilder::outbound_queue`]): a caller waits for
//! the writer to take what is queued when it is full.
//!
//! [`ClientBuilder::outbound_queue`]: super::ClientBuilder::outbound_queue

use std::future::Future;
use std::io;
use std::mem;
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Duration;

use rpc_transport::framed::Frame;
use rpc_transport::BoxWrite;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Frames up to this size are copied into the coalescing buffer; larger ones are queued whole.
const COALESCE_LIMIT: usize = 16 * 1024;
/// The writer keeps its emptied coalescing buffer for the next batch only up to this capacity,
/// so that an idle connection holds little.
const SPARE_LIMIT: usize = 4 * 1024;

/// The writer has stopped: nothing queued now would be written.
#[derive(Debug)]
pub(super) struct Stopped;

/// Frames waiting for the writer, shared by the callers, the reader and the writer.
#[derive(Debug)]
pub(super) struct Outgoing {
    queue: Mutex<Queue>,
    /// Woken when the writer takes what is queued (for callers waiting for room) or stops.
    room: Notify,
    /// The most frames queued before callers wait.
    limit: usize,
}

#[derive(Debug, Default)]
struct Queue {
    segments: Vec<Segment>,
    /// Frames in `segments`.
    frames: usize,
    /// An empty coalescing buffer the writer gave back, for the next batch.
    spare: Vec<u8>,
    /// The writer, when it found nothing to write.
    writer: Option<Waker>,
    /// Callers waiting for room.
    waiting: usize,
    state: State,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Open,
    /// The client is gone: write what is queued, then shut the write side down.
    Ended,
    /// The writer stopped (a write failed or timed out).
    Stopped,
}

/// Bytes to write, in order: small frames coalesced into one buffer, or one large frame.
#[derive(Debug)]
enum Segment {
    Small(Vec<u8>),
    Large(Frame),
}

impl Segment {
    fn bytes(&self) -> &[u8] {
        match self {
            Segment::Small(bytes) => bytes,
            Segment::Large(frame) => frame.as_bytes(),
        }
    }
}

impl Queue {
    /// Appends `frame`, and returns the writer's waker if it waits for one.
    fn append(&mut self, frame: Frame) -> Option<Waker> {
        let bytes = frame.as_bytes();
        if bytes.len() > COALESCE_LIMIT {
            self.segments.push(Segment::Large(frame));
        } else if let Some(Segment::Small(buf)) = self.segments.last_mut() {
            buf.extend_from_slice(bytes);
        } else {
            let mut buf = mem::take(&mut self.spare);
            buf.extend_from_slice(bytes);
            self.segments.push(Segment::Small(buf));
        }
        self.frames += 1;
        self.writer.take()
    }
}

impl Outgoing {
    pub(super) fn new(limit: usize) -> Self {
        Outgoing { queue: Mutex::default(), room: Notify::new(), limit: limit.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Every update leaves the queue whole, so a poisoned lock is still safe to use.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `frame` if there is room; gives it back if the queue is full.
    pub(super) fn try_push(&self, frame: Frame) -> Result<Option<Frame>, Stopped> {
        let waker = {
            let mut queue = self.lock();
            if queue.state == State::Stopped {
                return Err(Stopped);
            }
            if queue.frames >= self.limit {
                return Ok(Some(frame));
            }
            queue.append(frame)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(None)
    }

    /// Queues `frame`, waiting for room.
    pub(super) async fn push(&self, frame: Frame) -> Result<(), Stopped> {
        let Some(mut frame) = self.try_push(frame)? else { return Ok(()) };
        // Counted before the room is checked again, so the writer's next take wakes us.
        self.lock().waiting += 1;
        let _waiting = scopeguard(|| self.lock().waiting -= 1);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(frame)? {
                None => return Ok(()),
                Some(back) => frame = back,
            }
            room.await;
        }
    }

    /// Queues `frame` whatever the bound: for a cancel, which a caller must not wait to send
    /// (it is dropped) and which is bounded anyway, by the calls made.
    pub(super) fn push_now(&self, frame: Frame) -> Result<(), Stopped> {
        let waker = {
            let mut queue = self.lock();
            if queue.state == State::Stopped {
                return Err(Stopped);
            }
            queue.append(frame)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The client is gone: the writer writes what is queued and shuts the write side down.
    pub(super) fn end(&self) {
        let waker = {
            let mut queue = self.lock();
            if queue.state == State::Open {
                queue.state = State::Ended;
            }
            queue.writer.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Marks the writer stopped: what is queued is dropped, and pushes fail from now on.
    fn stop(&self) {
        let dropped = {
            let mut queue = self.lock();
            queue.state = State::Stopped;
            queue.frames = 0;
            mem::take(&mut queue.segments)
        };
        drop(dropped);
        self.room.notify_waiters();
    }

    /// Takes what is queued into `batch` (which must be empty), giving back `spare`; `false` when
    /// the client is gone and nothing is left.
    async fn take(&self, batch: &mut Vec<Segment>, spare: &mut Option<Vec<u8>>) -> bool {
        let mut spare = spare.take();
        let taken = std::future::poll_fn(|cx| {
            let mut queue = self.lock();
            if let Some(buf) = spare.take() {
                if queue.spare.capacity() == 0 {
                    queue.spare = buf;
                }
            }
            if !queue.segments.is_empty() {
                mem::swap(&mut queue.segments, batch);
                queue.frames = 0;
                return Poll::Ready(Some(queue.waiting > 0));
            }
            if queue.state != State::Open {
                return Poll::Ready(None);
            }
            if !queue.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                queue.writer = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        match taken {
            Some(waiting) => {
                if waiting {
                    self.room.notify_waiters();
                }
                true
            }
            None => false,
        }
    }
}

/// Writes the preface, then whatever is queued on `out`, each batch in as few writes as it has
/// segments and one flush. Ends when the client is gone (then shuts the write side down so the
/// server sees EOF) or when a write fails or blocks for longer than `write_timeout` (a server
/// that stopped reading); either way, `out` refuses frames from then on.
pub(super) async fn write_loop(
    out: &Outgoing,
    mut writer: BoxWrite,
    preface: &[u8],
    write_timeout: Duration,
) -> io::Result<()> {
    let mut batch = vec![Segment::Small(preface.to_vec())];
    let result = loop {
        let written = {
            let mut write = std::pin::pin!(write_batch(&mut writer, &batch));
            // Most batches are written at once: the timer is armed only when the socket is full.
            match std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
                Poll::Ready(done) => done,
                Poll::Pending => match tokio::time::timeout_at(Instant::now() + write_timeout, write).await {
                    Ok(done) => done,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("a write blocked for {write_timeout:?} (write timeout): the server is not reading"),
                    )),
                },
            }
        };
        if let Err(e) = written {
            break Err(e);
        }
        let mut spare = None;
        for segment in batch.drain(..) {
            if let Segment::Small(mut buf) = segment {
                if buf.capacity() <= SPARE_LIMIT {
                    buf.clear();
                    spare = Some(buf);
                }
            }
        }
        if !out.take(&mut batch, &mut spare).await {
            let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
            break Ok(());
        }
    };
    out.stop();
    result
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

async fn write_batch(writer: &mut BoxWrite, batch: &[Segment]) -> io::Result<()> {
    for segment in batch {
        writer.write_all(segment.bytes()).await?;
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_transport::framed::FrameBuf;

    fn frame(len: usize, byte: u8) -> Frame {
        let mut buf = FrameBuf::with_capacity(len);
        buf.extend_from_slice(&vec![byte; len]);
        buf.finish(usize::MAX).expect("frame")
    }

    /// Frames come out in the order they were queued, small ones coalesced and large ones whole;
    /// a full queue gives the frame back until the writer takes the batch.
    #[tokio::test]
    async fn frames_are_written_in_order_and_the_bound_holds() {
        let out = Outgoing::new(3);
        let frames = [frame(10, 1), frame(COALESCE_LIMIT + 1, 2), frame(20, 3)];
        for f in frames.clone() {
            assert!(out.try_push(f).expect("open").is_none());
        }
        assert!(out.try_push(frame(1, 4)).expect("open").is_some(), "full: the frame comes back");
        out.push_now(frame(5, 5)).expect("a cancel goes whatever the bound");
        let mut batch = Vec::new();
        assert!(out.take(&mut batch, &mut None).await);
        assert_eq!(batch.len(), 3, "small, large, small (the cancel coalesced with the last)");
        let written: Vec<u8> = batch.iter().flat_map(|s| s.bytes().to_vec()).collect();
        let mut expected: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        expected.extend_from_slice(frame(5, 5).as_bytes());
        assert_eq!(written, expected);
        assert!(out.try_push(frame(1, 4)).expect("open").is_none(), "room again");
        out.end();
        batch.clear();
        assert!(out.take(&mut batch, &mut None).await, "what was queued before the end is written");
        batch.clear();
        assert!(!out.take(&mut batch, &mut None).await, "then the writer ends");
        out.stop();
        assert!(out.try_push(frame(1, 4)).is_err());
        assert!(out.push(frame(1, 4)).await.is_err());
    }
}
