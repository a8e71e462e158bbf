//! The sending half the runtime writes: frames to a byte stream, or their bodies as native
//! messages.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::mem;
use std::task::{ready, Context, Poll};

use bytes::Bytes;

use super::{Guard, MessageWrite};
use crate::framed::{Frame, FrameWriter, HEADER_LEN};
use crate::BoxWrite;

/// The sending half of a connection, as messages; made by
/// [`Connection::into_messages`](crate::Connection::into_messages).
///
/// The runtime hands it [`Frame`]s: a byte stream gets them as they are (header and body), a
/// native transport gets each body as one message. Sends are not cancellation safe: a cancelled
/// send may have written part of a batch, so the connection must be dropped afterwards.
pub struct MessageWriter {
    kind: Kind,
    /// Dropped with the second of the two halves.
    _guard: Option<Guard>,
}

enum Kind {
    /// The shared adapter of byte-stream transports, in line: the hot path has no further box.
    Framed(FrameWriter<BoxWrite>),
    Native(Native),
}

struct Native {
    sink: Box<dyn MessageWrite>,
    /// The preface, sent as the first message.
    preface: Option<Bytes>,
    /// A frame given in pieces by [`MessageWriter::poll_write_frames`], until it is whole.
    partial: Vec<u8>,
}

impl fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Framed(_) => "framed",
            Kind::Native(_) => "native",
        };
        f.debug_struct("MessageWriter").field("kind", &kind).finish_non_exhaustive()
    }
}

impl MessageWriter {
    pub(crate) fn framed(write: BoxWrite, guard: Option<Guard>) -> Self {
        MessageWriter { kind: Kind::Framed(FrameWriter::new(write)), _guard: guard }
    }

    pub(crate) fn native(sink: Box<dyn MessageWrite>, guard: Option<Guard>) -> Self {
        MessageWriter {
            kind: Kind::Native(Native { sink, preface: None, partial: Vec::new() }),
            _guard: guard,
        }
    }

    /// Whether the transport takes messages natively (rather than through framing).
    pub fn is_native(&self) -> bool {
        matches!(self.kind, Kind::Native(_))
    }

    /// Queues the connection preface to go before anything else: as unframed bytes on a byte
    /// stream, as the first message on a native transport. It goes with the next send or flush.
    pub fn queue_preface(&mut self, preface: &[u8]) {
        match &mut self.kind {
            Kind::Framed(writer) => writer.queue_raw(preface),
            Kind::Native(native) => native.preface = Some(Bytes::copy_from_slice(preface)),
        }
    }

    /// Sends every frame in `frames` (leaving it empty), small ones coalesced into one write on a
    /// byte stream, and flushes.
    pub async fn send(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        match &mut self.kind {
            Kind::Framed(writer) => writer.send(frames).await,
            Kind::Native(native) => {
                for frame in frames.drain(..) {
                    poll_fn(|cx| native.poll_ready(cx)).await?;
                    native.sink.start_send(frame.into_body())?;
                }
                poll_fn(|cx| native.poll_flush(cx)).await
            }
        }
    }

    /// Sends as much of `bytes` as the transport takes now; returns how much it took. `bytes`
    /// are frames laid end to end (as [`Frame::as_bytes`] gives them), or the rest of one that an
    /// earlier call took in part: a caller that coalesces frames into one buffer writes it with
    /// this, without waiting, and keeps what was not taken for later. A native transport takes
    /// whole messages, so it is handed each frame's body once all of it has been given.
    pub fn poll_write_frames(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.kind {
            Kind::Framed(writer) => writer.poll_write_frames(cx, bytes),
            Kind::Native(native) => native.poll_write_frames(cx, bytes),
        }
    }

    /// Sends `frames` without waiting for the transport: what it does not take at once is held
    /// here (on a byte stream) or left in `frames` (on a native transport, whole messages), to go
    /// first with the next send or flush. Returns whether everything taken went out and was
    /// flushed; if not, [`held`](Self::held) says how many bytes wait here. On an error, what it
    /// took is lost, as with a failed [`send`](Self::send).
    pub fn try_send(&mut self, frames: &mut Vec<Frame>) -> io::Result<bool> {
        match &mut self.kind {
            Kind::Framed(writer) => writer.try_send(frames),
            Kind::Native(native) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut taken = 0;
                for frame in frames.iter_mut() {
                    if native.poll_ready(&mut cx)?.is_pending() {
                        break;
                    }
                    let frame = mem::replace(frame, Frame::empty());
                    native.sink.start_send(frame.into_body())?;
                    taken += 1;
                }
                let all = taken == frames.len();
                frames.drain(..taken);
                Ok(all && native.poll_flush(&mut cx)?.is_ready())
            }
        }
    }

    /// Bytes that [`try_send`](Self::try_send) took and has not written yet.
    pub fn held(&self) -> usize {
        match &self.kind {
            Kind::Framed(writer) => writer.held(),
            Kind::Native(_) => 0,
        }
    }

    /// Flushes what was sent (and the preface, if nothing else went yet).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.kind {
            Kind::Framed(writer) => writer.poll_flush(cx),
            Kind::Native(native) => native.poll_flush(cx),
        }
    }

    /// Sends one whole frame, its tail included, from its own buffers (a vectored write on a
    /// byte stream; one message on a native transport); does not flush.
    pub async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        match &mut self.kind {
            Kind::Framed(writer) => writer.write_frame(frame).await,
            Kind::Native(native) => {
                poll_fn(|cx| native.poll_ready(cx)).await?;
                native.sink.start_send(frame.clone().into_body())
            }
        }
    }

    /// Sends all of `bytes` (laid out as for [`poll_write_frames`](Self::poll_write_frames)),
    /// waiting for the transport to take them; does not flush.
    pub async fn write_frames(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = poll_fn(|cx| self.poll_write_frames(cx, bytes)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Flushes what was sent.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Flushes and closes the sending half, so the peer sees the end.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Kind::Framed(writer) => writer.shutdown().await,
            Kind::Native(native) => {
                poll_fn(|cx| native.poll_preface(cx)).await?;
                poll_fn(|cx| native.sink.poll_close(cx)).await
            }
        }
    }
}

impl Native {
    /// Sends the preface if it has not gone yet.
    fn poll_preface(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.preface.is_some() {
            ready!(self.sink.poll_ready(cx))?;
            self.sink.start_send(self.preface.take().expect("checked"))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Room for one more message, after the preface.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_preface(cx))?;
        self.sink.poll_ready(cx)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_preface(cx))?;
        self.sink.poll_flush(cx)
    }

    fn poll_write_frames(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.poll_ready(cx))?;
        // A whole frame at the front, and none begun: its body goes at once.
        if self.partial.is_empty() {
            if let Some(len) = declared(bytes) {
                if bytes.len() >= HEADER_LEN + len {
                    self.sink.start_send(Bytes::copy_from_slice(&bytes[HEADER_LEN..HEADER_LEN + len]))?;
                    return Poll::Ready(Ok(HEADER_LEN + len));
                }
            }
        }
        // Otherwise gather up to the end of the header, or of the frame, and send it once whole.
        let want = match declared(&self.partial) {
            Some(len) => HEADER_LEN + len - self.partial.len(),
            None => HEADER_LEN - self.partial.len(),
        };
        let take = want.min(bytes.len());
        self.partial.extend_from_slice(&bytes[..take]);
        if declared(&self.partial).is_some_and(|len| self.partial.len() == HEADER_LEN + len) {
            let body = Bytes::from(mem::take(&mut self.partial)).slice(HEADER_LEN..);
            self.sink.start_send(body)?;
        }
        Poll::Ready(Ok(take))
    }
}

/// The body length in the header at the front of `bytes`, if all of the header is there.
fn declared(bytes: &[u8]) -> Option<usize> {
    let header: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(header) as usize)
}
