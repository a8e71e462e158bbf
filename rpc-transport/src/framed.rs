//! Length-prefixed framing with a maximum frame length.
//!
//! A frame is a 4-byte big-endian body length followed by the body. The reader checks a declared
//! length against the maximum from the 4-byte header alone, and grows its buffer only as bytes
//! actually arrive (in steps of at most [`READ_CHUNK`]), so a forged length never causes a large
//! allocation: memory per connection is bounded by what the peer really sent.
//!
//! tokio-util's `LengthDelimitedCodec` reserves the declared length up front; with many
//! connections each announcing a maximal frame, that is `connections × max` of address space.
//! This reader avoids it, and also exposes whether a frame is partially received
//! ([`FrameReader::in_frame`]) so that a server can time out a peer that stalls mid-frame.
//!
//! # Cancellation safety
//!
//! [`FrameReader::read_frame`] and [`FrameReader::read_raw`] are cancellation safe: bytes read
//! before a cancellation stay in the reader's buffer. [`FrameWriter::send`] is not: a cancelled
//! send may have written part of a frame, so the connection must be dropped afterwards.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;
/// The default maximum frame body length: 4 MiB, as gRPC's default maximum message size.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;
/// The most the reader grows its buffer by in one step: 65 KiB, so that a 64 KiB payload and
/// the envelope of the message carrying it arrive in one read.
pub const READ_CHUNK: usize = 65 * 1024;
/// Frames up to this size are coalesced into one buffer before writing; larger ones are written
/// directly from their own buffer, without a copy.
const COALESCE_LIMIT: usize = 16 * 1024;
/// The reader's first allocation and smallest growth step; small so that idle connections stay
/// cheap (4 KiB here was a third of what an idle server connection held).
const INITIAL_READ_CAPACITY: usize = 1024;
/// Room left after the frame being read, for the header of the next one.
const READ_SLACK: usize = 64;

/// Why a frame could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a frame longer than the maximum.
    TooLarge {
        /// The length the header declared.
        declared: u64,
        /// The maximum this side accepts.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    UnexpectedEof {
        /// Bytes of the frame (header included) that had arrived.
        received: usize,
        /// Bytes the frame needed (header included), when the header was complete.
        expected: Option<usize>,
    },
    /// A frame was started but not completed within the frame timeout (a stalled or
    /// deliberately slow peer).
    Timeout {
        /// Bytes of the frame (header included) that had arrived.
        received: usize,
        /// How long a frame may take.
        limit: Duration,
    },
    /// The peer announced a frame larger than [`UNBUDGETED_FRAME_LEN`] and the
    /// [`ReceiveBudget`] shared with other connections has no room for it now.
    BudgetExhausted {
        /// The length the header declared.
        declared: u64,
        /// The size of the shared budget.
        budget: usize,
    },
    /// This connection's frame was shed from the shared [`ReceiveBudget`]: another connection
    /// needed room, none freed within [`SHED_AFTER`], and this frame had held its reservation
    /// longest.
    Shed {
        /// The length the header declared.
        declared: u64,
        /// Bytes of the frame (header included) that had arrived.
        received: usize,
        /// The size of the shared budget.
        budget: usize,
    },
    /// The underlying stream failed.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { declared, max } => {
                write!(f, "frame of {declared} bytes exceeds the maximum frame length of {max} bytes")
            }
            FrameError::UnexpectedEof { received, expected: Some(expected) } => {
                write!(f, "unexpected end of stream mid-frame ({received} of {expected} bytes received)")
            }
            FrameError::UnexpectedEof { received, expected: None } => {
                write!(f, "unexpected end of stream mid-frame ({received} header bytes received)")
            }
            FrameError::Timeout { received, limit } => {
                write!(
                    f,
                    "frame not completed within the frame timeout of {limit:?} ({received} bytes received)"
                )
            }
            FrameError::BudgetExhausted { declared, budget } => write!(
                f,
                "frame of {declared} bytes does not fit in the receive budget of {budget} bytes shared by all connections"
            ),
            FrameError::Shed { declared, received, budget } => write!(
                f,
                "frame of {declared} bytes ({received} received) shed from the receive budget of {budget} bytes shared by all connections: another connection needed room, and this frame had held its reservation longest"
            ),
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Frames up to this long are received without reserving from a [`ReceiveBudget`]: with a cap on
/// connections, they are bounded anyway, and checking them would cost every small call.
pub const UNBUDGETED_FRAME_LEN: usize = 64 * 1024;

/// How long a reservation in a [`ReceiveBudget`] may be held before a frame that does not fit
/// sheds it to make room (and how long that frame then waits for the room, at most).
pub const SHED_AFTER: Duration = Duration::from_secs(1);

/// Bytes of large frames being received, shared by the readers of many connections (a server's).
///
/// A frame's length caps what one connection can make the process buffer; a connection cap bounds
/// how many connections there are; but `connections × max frame length` is still large (4 GiB
/// with 1024 connections and 4 MiB frames) if every peer announces a maximal frame and fills it.
/// A reader given a budget reserves the declared length of every frame longer than
/// [`UNBUDGETED_FRAME_LEN`] before buffering its body, and returns it when the frame is complete
/// or the reader is dropped.
///
/// Fairness (H5): each connection's share is one frame at a time. When a frame does not fit, the
/// reservation held longest (a peer trickling its frame, typically: honest large frames complete
/// in moments) is shed once it has been held for [`SHED_AFTER`] (at once if it already has; until
/// then room may free as frames complete), its reader failing with [`FrameError::Shed`], and the
/// newcomer waits for the room that frees. Only if that does not come within [`SHED_AFTER`] does
/// the newcomer fail, with [`FrameError::BudgetExhausted`].
/// So peers that announce large frames and trickle them cannot starve an honest large call.
#[derive(Debug)]
pub struct ReceiveBudget {
    limit: usize,
    used: AtomicUsize,
    /// Readers holding a reservation, oldest first (only frames over [`UNBUDGETED_FRAME_LEN`]
    /// come here, so the lock is off the path of small calls).
    holders: Mutex<Holders>,
    room: Notify,
}

#[derive(Debug, Default)]
struct Holders {
    next: u64,
    /// Id, when the reservation was made, and how to shed it; oldest first.
    list: VecDeque<(u64, Instant, Arc<ShedSignal>)>,
}

/// Set and notified when a holder is shed.
#[derive(Debug, Default)]
struct ShedSignal {
    shed: AtomicBool,
    notify: Notify,
}

impl ReceiveBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ReceiveBudget {
            limit,
            used: AtomicUsize::new(0),
            holders: Mutex::new(Holders::default()),
            room: Notify::new(),
        })
    }

    /// The budget's size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn holders(&self) -> std::sync::MutexGuard<'_, Holders> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Reserves `n` bytes, waiting and shedding the oldest holder as described on the type.
    async fn reserve(&self, n: usize) -> Result<(u64, Arc<ShedSignal>), FrameError> {
        let exhausted = || FrameError::BudgetExhausted { declared: n as u64, budget: self.limit };
        if n > self.limit {
            return Err(exhausted());
        }
        let mut shed_one = false;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_reserve(n) {
                let signal = Arc::new(ShedSignal::default());
                let mut holders = self.holders();
                let id = holders.next;
                holders.next += 1;
                holders.list.push_back((id, Instant::now(), Arc::clone(&signal)));
                return Ok((id, signal));
            }
            // When the oldest holder not yet shed will have held its reservation for SHED_AFTER.
            let due = self
                .holders()
                .list
                .iter()
                .find(|(_, _, s)| !s.shed.load(Ordering::Acquire))
                .map(|h| h.1 + SHED_AFTER);
            match due {
                // Until then, room may free as frames complete; a holder older than that is
                // trickling its frame, and is shed at once rather than making the newcomer wait.
                Some(due) if !shed_one => {
                    if Instant::now() < due && tokio::time::timeout_at(due, room.as_mut()).await.is_ok() {
                        continue;
                    }
                    shed_one = true;
                    self.shed_oldest();
                }
                // Waiting for the room a shed holder frees (or, once that came and went, for any).
                _ => {
                    if tokio::time::timeout(SHED_AFTER, room).await.is_err() {
                        return Err(exhausted());
                    }
                }
            }
        }
    }

    /// Waits, as [`reserve`](Self::reserve) does, until `n` bytes fit, and gives them back at
    /// once: for a message that arrived whole (a message transport's), which has nothing left to
    /// buffer but must still find room, or fail as a frame would.
    pub(crate) async fn admit(&self, n: usize) -> Result<(), FrameError> {
        let (id, _) = self.reserve(n).await?;
        self.release(n, id);
        Ok(())
    }

    /// Sheds the holder that has held its reservation longest, among those not already shed.
    fn shed_oldest(&self) {
        let holders = self.holders();
        if let Some((_, _, signal)) = holders.list.iter().find(|(_, _, s)| !s.shed.load(Ordering::Acquire)) {
            signal.shed.store(true, Ordering::Release);
            signal.notify.notify_one();
        }
    }

    fn release(&self, n: usize, id: u64) {
        self.holders().list.retain(|(h, _, _)| *h != id);
        self.used.fetch_sub(n, Ordering::AcqRel);
        self.room.notify_waiters();
    }
}

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
    frame_timeout: Option<Duration>,
    /// When the first byte of the frame now being received arrived.
    partial_since: Option<Instant>,
    reservation: Reservation,
    /// How much to reserve for a read that starts a frame: the last frame's length (within
    /// [`INITIAL_READ_CAPACITY`]..=[`READ_CHUNK`]), so a run of large frames takes one read each.
    start_step: usize,
}

/// Bytes reserved from a shared [`ReceiveBudget`] for the frame being received, given back on
/// drop. A separate type so that [`FrameReader`] itself has no `Drop` and can be taken apart.
#[derive(Debug, Default)]
struct Reservation {
    budget: Option<Arc<ReceiveBudget>>,
    reserved: usize,
    /// The holder's id in the budget and its shed signal, while `reserved > 0`.
    holder: Option<(u64, Arc<ShedSignal>)>,
}

impl Reservation {
    fn release(&mut self) {
        if let (Some(budget), Some((id, _))) = (&self.budget, self.holder.take()) {
            budget.release(self.reserved, id);
        }
        self.reserved = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a stream, accepting frame bodies up to `max_frame_len` bytes.
    pub fn new(inner: R, max_frame_len: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            max: max_frame_len,
            frame_timeout: None,
            partial_since: None,
            reservation: Reservation::default(),
            start_step: INITIAL_READ_CAPACITY,
        }
    }

    /// Makes frames longer than [`UNBUDGETED_FRAME_LEN`] reserve their length from `budget`
    /// before their body is buffered.
    pub fn set_budget(&mut self, budget: Option<Arc<ReceiveBudget>>) {
        self.release_budget();
        self.reservation.budget = budget;
    }

    /// Returns what the frame being received had reserved.
    fn release_budget(&mut self) {
        self.reservation.release();
    }

    /// The length to reserve before buffering more of the frame being received, if it needs a
    /// reservation and has none yet.
    fn needs_reservation(&self) -> Option<usize> {
        let len = self.declared_len()?;
        (self.reservation.budget.is_some()
            && len > UNBUDGETED_FRAME_LEN
            && len <= self.max
            && self.reservation.holder.is_none()
            && self.buf.len() < HEADER_LEN + len)
            .then_some(len)
    }

    /// Limits how long a frame may take from its first byte to its last; a peer that stalls
    /// mid-frame then gets [`FrameError::Timeout`]. `None` (the default) waits forever.
    pub fn set_frame_timeout(&mut self, timeout: Option<Duration>) {
        self.frame_timeout = timeout;
    }

    /// The maximum body length this reader accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max
    }

    /// Whether part of a frame has arrived and the rest is still awaited.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Reads exactly `n` unframed bytes (a connection preface, say); `Ok(None)` on a clean EOF
    /// before the first byte.
    pub async fn read_raw(&mut self, n: usize) -> Result<Option<Bytes>, FrameError> {
        while self.buf.len() < n {
            if !self.fill(n - self.buf.len()).await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::UnexpectedEof { received: self.buf.len(), expected: Some(n) })
                };
            }
        }
        let raw = self.buf.split_to(n).freeze();
        self.partial_since = (!self.buf.is_empty()).then(Instant::now);
        Ok(Some(raw))
    }

    /// Reads the next frame body; `Ok(None)` when the stream ends cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(frame) = self.try_decode()? {
                return Ok(Some(frame));
            }
            if let Some(len) = self.needs_reservation() {
                let budget = Arc::clone(self.reservation.budget.as_ref().expect("checked"));
                // No await between the reservation and recording it: cancellation safe.
                let holder = budget.reserve(len).await?;
                self.reservation.reserved = len;
                self.reservation.holder = Some(holder);
            }
            let want = match self.declared_len() {
                Some(len) => HEADER_LEN + len - self.buf.len(),
                None => HEADER_LEN - self.buf.len(),
            };
            if !self.fill(want).await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::UnexpectedEof {
                        received: self.buf.len(),
                        expected: self.declared_len().map(|l| l + HEADER_LEN),
                    })
                };
            }
        }
    }

    /// The next frame body if it has already arrived in full, without reading: a caller that
    /// got one frame can take the others that came with it in the same read.
    pub fn next_buffered(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.try_decode()
    }

    /// The body length in the buffered header, if the whole header is there.
    fn declared_len(&self) -> Option<usize> {
        (self.buf.len() >= HEADER_LEN)
            .then(|| u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize)
    }

    fn try_decode(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.declared_len() else { return Ok(None) };
        if len > self.max {
            return Err(FrameError::TooLarge { declared: len as u64, max: self.max });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.release_budget();
        self.start_step = (HEADER_LEN + len + READ_SLACK).clamp(INITIAL_READ_CAPACITY, READ_CHUNK);
        self.buf.advance(HEADER_LEN);
        let frame = self.buf.split_to(len).freeze();
        // Bytes of the next frame may already be here; its clock starts now.
        self.partial_since = (!self.buf.is_empty()).then(Instant::now);
        Ok(Some(frame))
    }

    /// Reads more bytes into the buffer, growing it by at most [`READ_CHUNK`] even when more
    /// is wanted. Returns `false` on EOF.
    async fn fill(&mut self, want: usize) -> Result<bool, FrameError> {
        // The buffer grows by at most a chunk, as bytes arrive. A new frame starts with room for
        // one as long as the last; the slack reads the next frame's header with this one, and a
        // read that leaves room tells tokio the socket is drained, which saves the read that
        // would only have found it empty.
        let step = if self.buf.is_empty() {
            self.start_step
        } else {
            (want + READ_SLACK).clamp(INITIAL_READ_CAPACITY, READ_CHUNK)
        };
        let shed = self.reservation.holder.as_ref().map(|(_, s)| Arc::clone(s));
        let declared = self.declared_len().unwrap_or(0) as u64;
        let budget = self.reservation.budget.as_ref().map_or(0, |b| b.limit());
        let (inner, buf) = (&mut self.inner, &mut self.buf);
        let read = async move {
            let Some(signal) = shed else { return Ok(read_into(inner, buf, step).await?) };
            let notified = signal.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !signal.shed.load(Ordering::Acquire) {
                tokio::select! {
                    read = read_into(inner, buf, step) => return Ok(read?),
                    _ = notified => {}
                }
            }
            Err(FrameError::Shed { declared, received: buf.len(), budget })
        };
        let read = match (self.partial_since, self.frame_timeout) {
            (Some(since), Some(limit)) => match tokio::time::timeout_at(since + limit, read).await {
                Ok(read) => read?,
                Err(_) => return Err(FrameError::Timeout { received: self.buf.len(), limit }),
            },
            _ => read.await?,
        };
        if self.partial_since.is_none() && !self.buf.is_empty() {
            self.partial_since = Some(Instant::now());
        }
        Ok(read != 0)
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped stream, dropping any bytes buffered but not yet returned as a frame.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The wrapped stream, for reading past the framing (a refusing side discarding input).
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// A complete frame (header and body), ready to write.
///
/// The end of the body may be a shared buffer of its own (the [tail](Self::tail), set by
/// [`FrameBuf::set_tail`]): a large byte payload is written from where it already is, in the
/// same vectored write as the bytes before it, rather than copied into the frame.
#[derive(Debug, Clone)]
pub struct Frame {
    head: Vec<u8>,
    /// Boxed, and `None` rather than an empty `Bytes`: most frames have none, and every frame is
    /// moved several times on its way out (a `Bytes` inline doubled the frame's size, which cost
    /// about 100 instructions per call).
    tail: Option<Box<Bytes>>,
}

impl Frame {
    /// The frame's bytes up to its tail, header included: the whole frame when it has no tail.
    pub fn as_bytes(&self) -> &[u8] {
        &self.head
    }

    /// The end of the body held apart from the rest (empty for most frames).
    #[inline]
    pub fn tail(&self) -> &[u8] {
        self.tail.as_deref().map_or(&[], |t| &t[..])
    }

    /// The frame's length in bytes, header and tail included.
    #[inline]
    pub fn len(&self) -> usize {
        self.head.len() + self.tail().len()
    }

    /// Whether the frame has no bytes at all (never true of a finished frame: it has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No bytes at all: what is left in place of a frame moved out of a list.
    pub(crate) fn empty() -> Frame {
        Frame { head: Vec::new(), tail: None }
    }

    /// The frame's body as a message: without a copy, unless it has a tail to join.
    pub(crate) fn into_body(self) -> Bytes {
        let Some(tail) = self.tail.as_deref() else {
            return Bytes::from(self.head).slice(HEADER_LEN..);
        };
        let mut body = Vec::with_capacity(self.len() - HEADER_LEN);
        body.extend_from_slice(&self.head[HEADER_LEN..]);
        body.extend_from_slice(tail);
        body.into()
    }
}

/// What is left of `frame` once `written` bytes of it are out: the rest of the head, and of the
/// tail.
fn frame_rest(frame: &Frame, written: usize) -> (&[u8], &[u8]) {
    let head = frame.head.get(written..).unwrap_or_default();
    let tail = frame.tail();
    let tail = tail.get(written.saturating_sub(frame.head.len())..).unwrap_or_default();
    (head, tail)
}

/// Writes all of `parts` (what was batched, a frame's head, its tail), in order, with as few
/// vectored writes as the stream allows; no allocation.
pub(crate) async fn write_all_parts<W: AsyncWrite + Unpin>(
    inner: &mut W,
    mut parts: [&[u8]; 3],
) -> io::Result<()> {
    while parts.iter().any(|p| !p.is_empty()) {
        let slices = parts.map(io::IoSlice::new);
        let mut n = std::future::poll_fn(|cx| Pin::new(&mut *inner).poll_write_vectored(cx, &slices)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for part in parts.iter_mut() {
            let take = n.min(part.len());
            *part = &part[take..];
            n -= take;
        }
    }
    Ok(())
}

/// Reads what `inner` has into `buf`, first making room for `step` more bytes when it is full or
/// a large frame starts.
///
/// While nothing has arrived, an empty buffer sized for small frames gives its memory back: a
/// connection waiting for its next small frame holds no read buffer at all. One that is reading
/// large frames keeps its buffer, so that the next frame reuses it (once the last one is dropped,
/// `BytesMut::reserve` reclaims the allocation) rather than allocating, and page-faulting in,
/// as much again.
async fn read_into<R: AsyncRead + Unpin>(
    inner: &mut R,
    buf: &mut BytesMut,
    step: usize,
) -> io::Result<usize> {
    use std::future::Future;
    std::future::poll_fn(|cx| {
        // Full, or starting a large frame with too little room: small frames use up what is
        // left first (reserving while earlier frames still share the buffer allocates anew).
        let spare = buf.capacity() - buf.len();
        if spare == 0 || (buf.is_empty() && step > INITIAL_READ_CAPACITY && spare < step) {
            buf.reserve(step);
        }
        let read = std::pin::pin!(inner.read_buf(&mut *buf));
        match read.poll(cx) {
            Poll::Pending if buf.is_empty() && step <= INITIAL_READ_CAPACITY => {
                *buf = BytesMut::new();
                Poll::Pending
            }
            other => other,
        }
    })
    .await
}

/// A frame being built: the header is reserved at the front, the body is appended after it.
///
/// Building the body in place lets encoders write straight into the buffer that goes to the
/// socket, with no intermediate copy.
///
/// A plain `Vec<u8>` underneath: its `push` and `extend_from_slice` inline into the encoder, so a
/// byte array serialized element by element costs a store per byte, not a `memcpy` call.
#[derive(Debug, Clone)]
pub struct FrameBuf {
    buf: Vec<u8>,
    /// The end of the body, kept apart (see [`Frame`]).
    tail: Option<Box<Bytes>>,
}

/// An outgoing frame was longer than the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The body length of the frame.
    pub len: usize,
    /// The maximum allowed.
    pub max: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame of {} bytes exceeds the maximum frame length of {} bytes", self.len, self.max)
    }
}

impl std::error::Error for FrameTooLarge {}

impl Default for FrameBuf {
    fn default() -> Self {
        Self::with_capacity(64)
    }
}

impl FrameBuf {
    /// An empty frame whose body can grow to `capacity` bytes without reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + capacity);
        buf.extend_from_slice(&[0; HEADER_LEN]);
        FrameBuf { buf, tail: None }
    }

    /// The body written so far, up to its tail (all of it when it has none).
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buf[HEADER_LEN..]
    }

    /// The body's length, tail included.
    #[inline]
    pub fn body_len(&self) -> usize {
        self.buf.len() - HEADER_LEN + self.tail().len()
    }

    /// Ends the body with `tail`, written from its own buffer rather than copied. Nothing can be
    /// appended after it: the body is complete.
    pub fn set_tail(&mut self, tail: Bytes) {
        self.tail = Some(Box::new(tail));
    }

    /// The tail set by [`set_tail`](Self::set_tail), if any (empty otherwise).
    #[inline]
    pub fn tail(&self) -> &[u8] {
        self.tail.as_deref().map_or(&[], |t| &t[..])
    }

    /// The whole body, tail included, copied into one buffer.
    pub fn body_to_vec(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.body_len());
        body.extend_from_slice(self.body());
        body.extend_from_slice(self.tail());
        body
    }

    /// Appends bytes to the body.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends one byte to the body.
    #[inline]
    pub fn push(&mut self, byte: u8) {
        self.buf.push(byte);
    }

    /// Discards the body from byte `len` on (and the tail).
    pub fn truncate_body(&mut self, len: usize) {
        self.buf.truncate(HEADER_LEN + len);
        self.tail = None;
    }

    /// Writes the header; fails if the body is longer than `max_frame_len`.
    #[inline]
    pub fn finish(mut self, max_frame_len: usize) -> Result<Frame, FrameTooLarge> {
        let len = self.body_len();
        if len > max_frame_len || len > u32::MAX as usize {
            return Err(FrameTooLarge { len, max: max_frame_len });
        }
        self.buf[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(Frame { head: self.buf, tail: self.tail })
    }
}

/// Writes frames to a byte stream, coalescing small ones into a single write.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    batch: BytesMut,
    /// A large frame that [`try_send`](Self::try_send) began and the stream did not take whole,
    /// with how much of it was written: it goes next, right after `batch`.
    pending: Option<(Frame, usize)>,
    /// How much of `batch` is written (it is cleared once all of it is).
    sent: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a stream.
    pub fn new(inner: W) -> Self {
        FrameWriter { inner, batch: BytesMut::new(), pending: None, sent: 0 }
    }

    /// Queues unframed bytes (a connection preface) to go out before the next frames.
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.batch.extend_from_slice(bytes);
    }

    /// Writes every frame in `frames` (leaving it empty) and flushes: what
    /// [`try_send`](Self::try_send) takes at once, then the rest as the stream takes it.
    pub async fn send(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        while !self.try_send(frames)? {
            std::future::poll_fn(|cx| self.poll_flush(cx)).await?;
            if frames.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Writes one frame from its own buffers (head and tail), after any bytes queued with
    /// [`queue_raw`](Self::queue_raw), in one vectored write where the stream allows; does not
    /// flush.
    pub async fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        // What a non-blocking send left goes first (the batch may be written in part).
        if self.pending.is_some() || self.sent > 0 {
            std::future::poll_fn(|cx| self.poll_write_queued(cx)).await?;
        }
        write_all_parts(&mut self.inner, [&self.batch, &frame.head, frame.tail()]).await?;
        self.batch.clear();
        Ok(())
    }

    /// Writes as much of `bytes` as the stream takes now, after any bytes queued with
    /// [`queue_raw`](Self::queue_raw); returns how much of `bytes` it took. `bytes` are whole
    /// frames, or the rest of one that an earlier call took in part: a caller that coalesces
    /// frames itself writes them without waiting, and leaves what the stream did not take for
    /// later.
    pub fn poll_write_frames(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_write_queued(cx))?;
        Pin::new(&mut self.inner).poll_write(cx, bytes)
    }

    /// Writes what [`queue_raw`](Self::queue_raw) queued, then flushes the stream.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_queued(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Writes what is held here: the batch, then the rest of a pending large frame (in one
    /// vectored write where the stream allows).
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.batch.len() && self.pending.is_none() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.batch[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        while let Some((frame, written)) = &mut self.pending {
            let unsent = &self.batch[self.sent..];
            let (head, tail) = frame_rest(frame, *written);
            if unsent.is_empty() && head.is_empty() && tail.is_empty() {
                self.pending = None;
                break;
            }
            let slices = [io::IoSlice::new(unsent), io::IoSlice::new(head), io::IoSlice::new(tail)];
            let mut n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_batch = n.min(unsent.len());
            self.sent += from_batch;
            n -= from_batch;
            *written += n;
        }
        // All written: cleared rather than advanced, so that its capacity is the allocation's,
        // and a burst of large responses does not pin a large batch buffer for the life of the
        // connection.
        self.batch.clear();
        self.sent = 0;
        if self.batch.capacity() > 4 * COALESCE_LIMIT {
            self.batch = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `frames` without waiting for the stream: small ones are coalesced as
    /// [`send`](Self::send) does, large ones go from their own buffers, and whatever the stream
    /// does not take at once stays held here, to go first with the next send, write or flush.
    /// Frames it did not start stay in `frames` (it starts none once the stream is full).
    ///
    /// Returns whether everything it took was written and flushed (if not, [`held`](Self::held)
    /// says how much waits here). On an error, what it took is lost, as with a failed
    /// [`send`](Self::send).
    pub fn try_send(&mut self, frames: &mut Vec<Frame>) -> io::Result<bool> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if self.poll_write_queued(&mut cx).is_pending() {
            return Ok(false);
        }
        let mut taken = 0;
        for frame in frames.iter_mut() {
            taken += 1;
            if frame.tail.is_none() && frame.head.len() <= COALESCE_LIMIT {
                self.batch.extend_from_slice(&frame.head);
                continue;
            }
            // Written after the batch; moved out (leaving an empty frame to be drained).
            let large = std::mem::replace(frame, Frame::empty());
            self.pending = Some((large, 0));
            if let Poll::Ready(result) = self.poll_write_queued(&mut cx) {
                result?;
            } else {
                break;
            }
        }
        frames.drain(..taken);
        match self.poll_write_queued(&mut cx) {
            Poll::Ready(result) => result?,
            Poll::Pending => return Ok(false),
        }
        match Pin::new(&mut self.inner).poll_flush(&mut cx) {
            Poll::Ready(result) => result.map(|()| true),
            Poll::Pending => Ok(false),
        }
    }

    /// Bytes taken by [`try_send`](Self::try_send) and not yet written.
    pub fn held(&self) -> usize {
        self.batch.len() - self.sent
            + self.pending.as_ref().map_or(0, |(frame, written)| frame.len() - written)
    }

    /// The wrapped stream, dropping any bytes queued but not yet written.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Flushes and shuts down the write side, so the peer sees EOF.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that counts the reads that returned bytes.
    struct Counting<R> {
        inner: R,
        reads: usize,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                self.reads += 1;
            }
            Poll::Ready(Ok(()))
        }
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.resize(HEADER_LEN + len, 9);
        bytes
    }

    #[tokio::test]
    async fn a_reader_waiting_between_small_frames_holds_no_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(rx, 1 << 20);
        tx.write_all(&frame(16)).await.unwrap();
        assert_eq!(reader.read_frame().await.unwrap().unwrap().len(), 16);
        // Nothing more has arrived: one poll finds nothing and gives the buffer back.
        let waiting = tokio::time::timeout(Duration::ZERO, reader.read_frame()).await;
        assert!(waiting.is_err(), "no frame was sent");
        assert_eq!(reader.buf.capacity(), 0, "an idle reader holds no read buffer");
        tx.write_all(&frame(3)).await.unwrap();
        assert_eq!(reader.read_frame().await.unwrap().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_run_of_64_kib_frames_takes_one_read_each() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(Counting { inner: rx, reads: 0 }, 1 << 20);
        let len = 64 * 1024 + 40;
        for round in 0..4 {
            tx.write_all(&frame(len)).await.unwrap();
            let before = reader.get_ref().reads;
            let got = reader.read_frame().await.unwrap().unwrap();
            assert_eq!(got.len(), len);
            let reads = reader.get_ref().reads - before;
            // The first frame's length is learnt from its header (a small first read); after
            // that, each frame of the same size arrives in one read.
            if round == 0 {
                assert_eq!(reads, 2, "a small first read, then the rest");
            } else {
                assert_eq!(reads, 1, "round {round}");
            }
            drop(got);
        }
    }

    /// A frame of `len` body bytes of `byte`, the last `tail` of them held apart.
    fn built(len: usize, tail: usize, byte: u8) -> Frame {
        let mut buf = FrameBuf::with_capacity(len);
        buf.extend_from_slice(&vec![byte; len - tail]);
        if tail > 0 {
            buf.set_tail(Bytes::from(vec![byte; tail]));
        }
        buf.finish(usize::MAX).expect("frame")
    }

    fn wire(frames: &[Frame]) -> Vec<u8> {
        frames.iter().flat_map(|f| [f.as_bytes(), f.tail()].concat()).collect()
    }

    /// Without waiting: small frames go in one write; a stream that takes only part of what it
    /// is given leaves the rest held in the writer, frames it did not start stay with the
    /// caller, and the next send writes what was held first, so the order on the wire is kept.
    #[tokio::test]
    async fn a_send_without_waiting_keeps_what_the_stream_did_not_take_and_the_order() {
        let (tx, mut rx) = tokio::io::duplex(1 << 20);
        let mut writer = FrameWriter::new(tx);
        let small = vec![built(10, 0, 1), built(20, 0, 2)];
        let mut frames = small.clone();
        assert!(writer.try_send(&mut frames).unwrap(), "all written");
        assert!(frames.is_empty());
        assert_eq!(writer.held(), 0);
        let mut got = vec![0; wire(&small).len()];
        rx.read_exact(&mut got).await.unwrap();
        assert_eq!(got, wire(&small));

        // A stream with room for 100 bytes: a frame with a 50 KiB tail is begun, and the frame
        // after it is left to the caller.
        let (tx, mut rx) = tokio::io::duplex(100);
        let mut writer = FrameWriter::new(tx);
        let all = vec![built(8, 0, 3), built(50 * 1024, 40 * 1024, 4), built(5, 0, 5)];
        let mut frames = all.clone();
        assert!(!writer.try_send(&mut frames).unwrap(), "the stream is full");
        assert_eq!(frames.len(), 1, "the last frame was not started");
        assert_eq!(frames[0].as_bytes(), all[2].as_bytes());
        let expected = wire(&all);
        assert_eq!(writer.held(), expected.len() - 100 - frames[0].len(), "all but what the stream took");
        assert!(!writer.try_send(&mut frames).unwrap(), "still full: nothing new is started");
        assert_eq!(frames.len(), 1);
        let reading = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            rx.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expected, "the order frames were given in");
        });
        writer.send(&mut frames).await.unwrap();
        assert_eq!(writer.held(), 0);
        reading.await.unwrap();
    }

    /// A burst of small frames over four times the coalescing limit leaves no large batch
    /// buffer behind, whichever way it was sent.
    #[tokio::test]
    async fn a_large_burst_does_not_pin_its_batch_buffer() {
        let burst = || (0..5).map(|i| built(16_000, 0, i)).collect::<Vec<_>>();
        let (tx, mut rx) = tokio::io::duplex(1 << 20);
        let mut writer = FrameWriter::new(tx);
        assert!(writer.try_send(&mut burst()).unwrap(), "all written at once");
        assert_eq!(writer.batch.capacity(), 0, "after a send without waiting");
        writer.send(&mut burst()).await.unwrap();
        assert_eq!(writer.batch.capacity(), 0, "after a send");
        let mut got = vec![0; 2 * wire(&burst()).len()];
        rx.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [wire(&burst()), wire(&burst())].concat());
    }
}
