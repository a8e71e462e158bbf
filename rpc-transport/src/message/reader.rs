//! The receiving half the runtime reads: framed bytes or native messages, under one set of limits.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{Guard, MessageLimits, MessageRead};
use crate::framed::{FrameError, FrameReader, ReceiveBudget, UNBUDGETED_FRAME_LEN};
use crate::BoxRead;

/// The receiving half of a connection, as messages; made by
/// [`Connection::into_messages`](crate::Connection::into_messages).
///
/// [`recv`](MessageReader::recv) is cancellation safe: a message received but not yet returned
/// stays in the reader.
pub struct MessageReader {
    kind: Kind,
    /// Dropped with the second of the two halves.
    _guard: Option<Guard>,
}

enum Kind {
    /// The shared adapter of byte-stream transports, in line: the hot path has no further box.
    Framed(FrameReader<BoxRead>),
    Native(Native),
}

struct Native {
    source: Box<dyn MessageRead>,
    max: usize,
    budget: Option<Arc<ReceiveBudget>>,
    /// A message taken from the source that still waits for room in the budget.
    pending: Option<Bytes>,
}

impl fmt::Debug for MessageReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Framed(_) => "framed",
            Kind::Native(_) => "native",
        };
        f.debug_struct("MessageReader").field("kind", &kind).finish_non_exhaustive()
    }
}

impl MessageReader {
    pub(crate) fn framed(read: BoxRead, limits: &MessageLimits, guard: Option<Guard>) -> Self {
        let mut reader = FrameReader::new(read, limits.max_message_len);
        reader.set_frame_timeout(limits.slow_message_timeout);
        reader.set_budget(limits.receive_budget.clone());
        MessageReader { kind: Kind::Framed(reader), _guard: guard }
    }

    pub(crate) fn native(source: Box<dyn MessageRead>, limits: &MessageLimits, guard: Option<Guard>) -> Self {
        let native = Native {
            source,
            max: limits.max_message_len,
            budget: limits.receive_budget.clone(),
            pending: None,
        };
        MessageReader { kind: Kind::Native(native), _guard: guard }
    }

    /// Whether the transport delivers messages natively (rather than through framing).
    pub fn is_native(&self) -> bool {
        matches!(self.kind, Kind::Native(_))
    }

    /// The longest message accepted.
    pub fn max_message_len(&self) -> usize {
        match &self.kind {
            Kind::Framed(reader) => reader.max_frame_len(),
            Kind::Native(native) => native.max,
        }
    }

    /// Reads the peer's connection preface: `len` unframed bytes on a byte stream, the first
    /// message on a native transport (whatever its length: the caller checks it). `Ok(None)` when
    /// the peer closed before sending anything.
    pub async fn recv_preface(&mut self, len: usize) -> Result<Option<Bytes>, FrameError> {
        match &mut self.kind {
            Kind::Framed(reader) => reader.read_raw(len).await,
            Kind::Native(native) => native.recv().await,
        }
    }

    /// The next message; `Ok(None)` when the peer closed cleanly between messages.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, FrameError> {
        match &mut self.kind {
            Kind::Framed(reader) => reader.read_frame().await,
            Kind::Native(native) => native.recv().await,
        }
    }

    /// The next message if it has already arrived, without waiting: a caller that got one
    /// message can take the others that came with it and handle them as a batch. `Ok(None)`
    /// when none is ready now (call [`recv`](MessageReader::recv) to wait).
    pub fn next_buffered(&mut self) -> Result<Option<Bytes>, FrameError> {
        match &mut self.kind {
            Kind::Framed(reader) => reader.next_buffered(),
            Kind::Native(native) => native.next_buffered(),
        }
    }

    /// Whether part of a message has arrived and the rest is awaited (a native message arrives
    /// whole, so never for one).
    pub fn in_message(&self) -> bool {
        match &self.kind {
            Kind::Framed(reader) => reader.in_frame(),
            Kind::Native(_) => false,
        }
    }

    /// Reads and discards whatever arrives until the peer closes or the transport fails. A side
    /// that refuses a connection lingers like this: closing a socket with unread input makes the
    /// kernel reset it, which can destroy the refusal before the peer reads it.
    pub async fn discard_all(&mut self) {
        match &mut self.kind {
            Kind::Framed(reader) => {
                let mut sink = [0u8; 1024];
                while matches!(reader.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
            }
            Kind::Native(native) => {
                native.pending = None;
                while matches!(poll_fn(|cx| native.source.poll_recv(cx)).await, Ok(Some(_))) {}
            }
        }
    }
}

impl Native {
    async fn recv(&mut self) -> Result<Option<Bytes>, FrameError> {
        let message = match self.pending.take() {
            Some(message) => message,
            None => match poll_fn(|cx| self.source.poll_recv(cx)).await? {
                Some(message) => message,
                None => return Ok(None),
            },
        };
        self.check(message).await.map(Some)
    }

    fn next_buffered(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.pending.is_some() {
            return Ok(None);
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.source.poll_recv(&mut cx) {
            Poll::Ready(Ok(Some(message))) => {
                let len = message.len();
                if len > self.max {
                    return Err(FrameError::TooLarge { declared: len as u64, max: self.max });
                }
                if self.needs_budget(len) {
                    // Waiting for room is `recv`'s to do.
                    self.pending = Some(message);
                    return Ok(None);
                }
                Ok(Some(message))
            }
            Poll::Ready(Err(e)) => Err(e.into()),
            // The end, like a wait, is for `recv` to report.
            Poll::Ready(Ok(None)) | Poll::Pending => Ok(None),
        }
    }

    fn needs_budget(&self, len: usize) -> bool {
        self.budget.is_some() && len > UNBUDGETED_FRAME_LEN
    }

    /// The same rules as a framed message's: the maximum length, then room in the budget. The
    /// message is kept while it waits for room, so a cancelled `recv` loses nothing.
    async fn check(&mut self, message: Bytes) -> Result<Bytes, FrameError> {
        let len = message.len();
        if len > self.max {
            return Err(FrameError::TooLarge { declared: len as u64, max: self.max });
        }
        if self.needs_budget(len) {
            let budget = Arc::clone(self.budget.as_ref().expect("checked"));
            self.pending = Some(message);
            budget.admit(len).await?;
            return Ok(self.pending.take().expect("kept while waiting"));
        }
        Ok(message)
    }
}
