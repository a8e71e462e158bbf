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
//! While the writer is idle it leaves the write half in the queue, and a caller that finds nothing
//! queued writes its small frame itself, without blocking: a sequential call then costs no
//! wake-up and no turn of the writer task. Whatever such a write cannot take at once (the socket
//! is full) goes to the front of the queue for the writer, which alone waits on the socket, and so
//! alone applies the write timeout.
//!
//! [`ClientBuilder::outbound_queue`]: super::ClientBuilder::outbound_queue

use std::future::Future;
use std::io;
use std::mem;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rpc_transport::framed::Frame;
use rpc_transport::message::MessageWriter;
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
pub(super) struct Outgoing {
    queue: Mutex<Queue>,
    /// Woken when the writer takes what is queued (for callers waiting for room) or stops.
    room: Notify,
    /// The most frames queued before callers wait.
    limit: usize,
}

#[derive(Default)]
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
    /// The write half, while the writer is idle and no caller is writing to it.
    sink: Option<MessageWriter>,
    /// A caller wrote its frame but could not flush it: the writer must.
    flush_due: bool,
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

impl Queue {
    /// Appends `frame`, and returns the writer's waker if it waits for one.
    fn append(&mut self, frame: Frame) -> Option<Waker> {
        let bytes = frame.as_bytes();
        // A frame with a tail (a large byte payload) is written from its own buffers.
        if frame.len() > COALESCE_LIMIT || !frame.tail().is_empty() {
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

    /// Queues `frame` if there is room; gives it back if the queue is full. With `write`, and if
    /// nothing is queued and the writer is idle, writes it at once instead. (Callers pass it when
    /// theirs is the only call waiting: with many, one write for all of them is cheaper.)
    pub(super) fn try_push(&self, frame: Frame, write: bool) -> Result<Option<Frame>, Stopped> {
        let waker = {
            let mut queue = self.lock();
            if queue.state == State::Stopped {
                return Err(Stopped);
            }
            if queue.frames >= self.limit {
                return Ok(Some(frame));
            }
            let direct = write
                && queue.state == State::Open
                && queue.segments.is_empty()
                && !queue.flush_due
                && frame.len() <= COALESCE_LIMIT
                && frame.tail().is_empty();
            match if direct { queue.sink.take() } else { None } {
                Some(sink) => {
                    drop(queue);
                    self.write_now(sink, &frame);
                    return Ok(None);
                }
                None => queue.append(frame),
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(None)
    }

    /// Writes `frame` to `sink` as far as the socket takes it without waiting, then gives the
    /// sink back, with the rest of the frame at the front of the queue for the writer.
    fn write_now(&self, mut sink: MessageWriter, frame: &Frame) {
        let bytes = frame.as_bytes();
        // Whatever waits is the writer's: it polls again with its own waker.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut written = 0;
        while written < bytes.len() {
            match sink.poll_write_frames(&mut cx, &bytes[written..]) {
                Poll::Ready(Ok(n)) if n > 0 => written += n,
                // Would block, or failed: the writer tries again, and reports a failure.
                _ => break,
            }
        }
        let flushed = written == bytes.len() && matches!(sink.poll_flush(&mut cx), Poll::Ready(Ok(())));
        let waker = {
            let mut queue = self.lock();
            if written < bytes.len() {
                // Before anything queued meanwhile: frames go out in the order they were queued.
                queue.segments.insert(0, Segment::Small(bytes[written..].to_vec()));
                queue.frames += 1;
            } else if !flushed {
                queue.flush_due = true;
            }
            queue.sink = Some(sink);
            let work = !queue.segments.is_empty() || queue.flush_due || queue.state != State::Open;
            if work {
                queue.writer.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues `frame`, waiting for room.
    pub(super) async fn push(&self, frame: Frame) -> Result<(), Stopped> {
        let Some(mut frame) = self.try_push(frame, false)? else { return Ok(()) };
        // Counted before the room is checked again, so the writer's next take wakes us.
        self.lock().waiting += 1;
        let _waiting = scopeguard(|| self.lock().waiting -= 1);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(frame, false)? {
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

    /// Leaves `sink` to callers until there is work, then takes it back with what is queued into
    /// `batch` (which must be empty), giving back `spare`. `Ok` with the sink to write the batch
    /// to; `Err` with the sink to shut down when the client is gone and nothing is left.
    async fn take(
        &self,
        sink: MessageWriter,
        batch: &mut Vec<Segment>,
        spare: Option<Vec<u8>>,
    ) -> Result<MessageWriter, MessageWriter> {
        {
            let mut queue = self.lock();
            queue.sink = Some(sink);
            if let Some(buf) = spare {
                if queue.spare.capacity() == 0 {
                    queue.spare = buf;
                }
            }
        }
        let (sink, more, waiting) = std::future::poll_fn(|cx| {
            let mut queue = self.lock();
            let work = !queue.segments.is_empty() || queue.flush_due;
            // A caller writing now has the sink, and hands it back with a wake-up.
            if work || queue.state != State::Open {
                if let Some(sink) = queue.sink.take() {
                    mem::swap(&mut queue.segments, batch);
                    queue.frames = 0;
                    queue.flush_due = false;
                    return Poll::Ready((sink, work, queue.waiting > 0));
                }
            }
            if !queue.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                queue.writer = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        if waiting {
            self.room.notify_waiters();
        }
        if more {
            Ok(sink)
        } else {
            Err(sink)
        }
    }
}

/// Writes the preface, then whatever is queued on `out`, each batch in as few writes as it has
/// segments and one flush (on a native message transport, a message per frame). Ends when the
/// client is gone (then shuts the write side down so the server sees EOF) or when a write fails
/// or blocks for longer than `write_timeout` (a server that stopped reading); either way, `out`
/// refuses frames from then on.
pub(super) async fn write_loop(
    out: &Outgoing,
    mut writer: MessageWriter,
    preface: &[u8],
    write_timeout: Duration,
) -> io::Result<()> {
    // Goes out with the first batch's flush, before anything queued.
    writer.queue_preface(preface);
    let mut batch = Vec::new();
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
        writer = match out.take(writer, &mut batch, spare).await {
            Ok(writer) => writer,
            Err(mut writer) => {
                let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
                break Ok(());
            }
        };
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

async fn write_batch(writer: &mut MessageWriter, batch: &[Segment]) -> io::Result<()> {
    for segment in batch {
        match segment {
            Segment::Small(bytes) => writer.write_frames(bytes).await?,
            Segment::Large(frame) => writer.write_frame(frame).await?,
        }
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_transport::framed::FrameBuf;
    use tokio::io::AsyncReadExt;

    fn frame(len: usize, byte: u8) -> Frame {
        let mut buf = FrameBuf::with_capacity(len);
        buf.extend_from_slice(&vec![byte; len]);
        buf.finish(usize::MAX).expect("frame")
    }

    /// A framed message writer over one end of an in-memory byte stream.
    fn writer(sink: tokio::io::DuplexStream) -> MessageWriter {
        let conn = rpc_transport::Connection::new(tokio::io::empty(), sink, rpc_transport::Peer::Memory);
        conn.into_messages(&Default::default()).1
    }

    fn bytes(batch: &[Segment]) -> Vec<u8> {
        let mut out = Vec::new();
        for segment in batch {
            match segment {
                Segment::Small(bytes) => out.extend_from_slice(bytes),
                Segment::Large(frame) => {
                    out.extend_from_slice(frame.as_bytes());
                    out.extend_from_slice(frame.tail());
                }
            }
        }
        out
    }

    /// While the writer holds the write half, frames queue in order, small ones coalesced and
    /// large ones whole; a full queue gives the frame back until the writer takes the batch.
    #[tokio::test]
    async fn frames_are_queued_in_order_and_the_bound_holds() {
        let out = Outgoing::new(3);
        let (sink, _peer) = tokio::io::duplex(1 << 20);
        let frames = [frame(10, 1), frame(COALESCE_LIMIT + 1, 2), frame(20, 3)];
        for f in frames.clone() {
            assert!(out.try_push(f, true).expect("open").is_none());
        }
        assert!(out.try_push(frame(1, 4), true).expect("open").is_some(), "full: the frame comes back");
        out.push_now(frame(5, 5)).expect("a cancel goes whatever the bound");
        let mut batch = Vec::new();
        let Ok(sink) = out.take(writer(sink), &mut batch, None).await else { panic!("work") };
        assert_eq!(batch.len(), 3, "small, large, small (the cancel coalesced with the last)");
        let mut expected: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        expected.extend_from_slice(frame(5, 5).as_bytes());
        assert_eq!(bytes(&batch), expected);
        assert!(out.try_push(frame(1, 4), true).expect("open").is_none(), "room again");
        out.end();
        batch.clear();
        let Ok(sink) = out.take(sink, &mut batch, None).await else {
            panic!("what was queued before the end is written")
        };
        assert_eq!(bytes(&batch), frame(1, 4).as_bytes());
        batch.clear();
        assert!(out.take(sink, &mut batch, None).await.is_err(), "then the writer ends");
        out.stop();
        assert!(out.try_push(frame(1, 4), true).is_err());
        assert!(out.push(frame(1, 4)).await.is_err());
    }

    /// An idle writer leaves the write half to callers: a frame pushed when nothing is queued is
    /// written by the caller at once; what the stream does not take goes to the front of the
    /// queue, ahead of frames queued after it, and the writer is woken for it.
    #[tokio::test]
    async fn a_caller_writes_while_the_writer_is_idle_and_the_writer_takes_the_rest() {
        let out = Outgoing::new(16);
        let (sink, mut peer) = tokio::io::duplex(64);
        let mut batch = Vec::new();
        let mut take = Box::pin(out.take(writer(sink), &mut batch, None));
        assert!(futures::poll!(take.as_mut()).is_pending(), "nothing to write: the writer is idle");

        let small = frame(10, 1);
        assert!(out.try_push(small.clone(), true).expect("open").is_none());
        let mut got = vec![0; small.as_bytes().len()];
        peer.read_exact(&mut got).await.expect("written by the caller");
        assert_eq!(got, small.as_bytes());
        assert!(futures::poll!(take.as_mut()).is_pending(), "the writer was not needed");

        let (large, after) = (frame(100, 2), frame(5, 3));
        assert!(out.try_push(large.clone(), true).expect("open").is_none());
        assert!(out.try_push(after.clone(), true).expect("open").is_none());
        let futures::task::Poll::Ready(Ok(_sink)) = futures::poll!(take.as_mut()) else {
            panic!("the writer is woken for the rest")
        };
        drop(take);
        let mut first = vec![0; 64];
        peer.read_exact(&mut first).await.expect("as much as the stream took");
        first.extend(bytes(&batch));
        let mut expected = large.as_bytes().to_vec();
        expected.extend_from_slice(after.as_bytes());
        assert_eq!(first, expected, "the rest of the frame, then the frame queued after it");
    }
}
