//! The message-level seam: what the RPC runtime reads and writes, whatever the transport.
//!
//! A connection moves whole messages to one peer. A transport provides them in one of two ways:
//!
//! - **as byte streams** ([`Connection::new`](crate::Connection::new)): TCP, Unix sockets, pipes,
//!   FIFOs. The [`framed`](crate::framed) adapter cuts the stream into messages with a 4-byte
//!   length header; the maximum length, the slow-frame timer and the shared receive budget live
//!   there.
//! - **natively** ([`Connection::from_messages`](crate::Connection::from_messages)): a channel, a
//!   broker, anything that already delivers messages whole. It implements [`MessageRead`] and
//!   [`MessageWrite`]; [`memory::message_pair`](crate::memory::message_pair) is one.
//!
//! Either way, [`Connection::into_messages`](crate::Connection::into_messages) hands the runtime a
//! [`MessageReader`] and a [`MessageWriter`], which apply the same [`MessageLimits`]: a native
//! message longer than the maximum gets the same
//! [`FrameError::TooLarge`](crate::framed::FrameError::TooLarge) as a framed one, and a large one
//! must find room in the same [`ReceiveBudget`]. Each half holds the connection's guard (a child
//! process, FIFO files), so it lives until both halves are dropped.
//!
//! The runtime writes [`Frame`](crate::framed::Frame)s: a message with 4 bytes of headroom in
//! front, so that encoding writes straight into the buffer a byte stream sends. A native writer
//! is handed the message without them.
//!
//! # A native message transport
//!
//! Two halves over Tokio channels, one message per channel item (a real transport bounds its
//! queue in bytes, as [`memory::message_pair`](crate::memory::message_pair) does):
//!
//! ```
//! use std::io;
//! use std::task::{Context, Poll};
//!
//! use bytes::Bytes;
//! use rpc_transport::framed::FrameBuf;
//! use rpc_transport::message::{MessageLimits, MessageRead, MessageWrite};
//! use rpc_transport::{Connection, Peer};
//! use tokio::sync::mpsc;
//! use tokio_util::sync::PollSender;
//!
//! struct Rx(mpsc::Receiver<Bytes>);
//!
//! impl MessageRead for Rx {
//!     fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
//!         self.0.poll_recv(cx).map(Ok)
//!     }
//! }
//!
//! struct Tx(PollSender<Bytes>);
//!
//! fn gone<E>(_: E) -> io::Error {
//!     io::ErrorKind::BrokenPipe.into()
//! }
//!
//! impl MessageWrite for Tx {
//!     fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
//!         self.0.poll_reserve(cx).map_err(gone)
//!     }
//!     fn start_send(&mut self, message: Bytes) -> io::Result<()> {
//!         self.0.send_item(message).map_err(gone)
//!     }
//!     fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
//!         Poll::Ready(Ok(()))
//!     }
//!     fn poll_close(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
//!         self.0.close();
//!         Poll::Ready(Ok(()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> io::Result<()> {
//! let (a_tx, b_rx) = mpsc::channel(16);
//! let (b_tx, a_rx) = mpsc::channel(16);
//! let peer = || Peer::Other { transport: "channel".into(), address: "demo".into() };
//! let a = Connection::from_messages(Rx(a_rx), Tx(PollSender::new(a_tx)), peer());
//! let b = Connection::from_messages(Rx(b_rx), Tx(PollSender::new(b_tx)), peer());
//!
//! let limits = MessageLimits::new(1024);
//! let (_a_read, mut a_write, _) = a.into_messages(&limits);
//! let (mut b_read, _b_write, _) = b.into_messages(&limits);
//! let mut frame = FrameBuf::default();
//! frame.extend_from_slice(b"hello");
//! a_write.send(&mut vec![frame.finish(1024).unwrap()]).await?;
//! assert_eq!(&b_read.recv().await.unwrap().unwrap()[..], b"hello");
//!
//! // The limits hold for native messages too.
//! let mut big = FrameBuf::default();
//! big.extend_from_slice(&[0; 2048]);
//! a_write.send(&mut vec![big.finish(4096).unwrap()]).await?;
//! assert!(b_read.recv().await.is_err(), "a message over the maximum is refused");
//! # Ok(())
//! # }
//! ```

mod reader;
mod writer;

use std::any::Any;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use crate::framed::{ReceiveBudget, DEFAULT_MAX_FRAME_LEN};

pub use reader::MessageReader;
pub use writer::MessageWriter;

/// The receiving half of a transport that carries whole messages.
///
/// Object safe, so that any transport fits in a [`Connection`](crate::Connection). The
/// [`MessageReader`] built on it enforces the [`MessageLimits`]; an implementation need not.
pub trait MessageRead: Send + Unpin + 'static {
    /// The next message: `Ready(Ok(None))` once the peer has closed its sending half and every
    /// message it sent has been received. Like every `poll_*` method, it registers the task to be
    /// woken when it returns `Pending`; it may be called with a no-op waker to take a message
    /// that has already arrived, and is then called again with a real one before the task waits.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>>;
}

/// The sending half of a transport that carries whole messages, shaped like a `futures` sink.
///
/// Object safe, so that any transport fits in a [`Connection`](crate::Connection). The transport
/// applies backpressure through [`poll_ready`](MessageWrite::poll_ready): a peer that does not
/// read must, sooner or later, make it return `Pending`, so that the sender's memory stays bounded.
pub trait MessageWrite: Send + Unpin + 'static {
    /// `Ready(Ok(()))` when the transport can take one more message.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Takes one message; called only after [`poll_ready`](MessageWrite::poll_ready) returned
    /// `Ready(Ok(()))`. An error means the connection is unusable (the peer is gone).
    fn start_send(&mut self, message: Bytes) -> io::Result<()>;

    /// Pushes the messages taken so far towards the peer.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Flushes and closes the sending half: the peer's reader sees the end after the last
    /// message.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// What a [`MessageReader`] enforces on what it receives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MessageLimits {
    /// The longest message accepted; a longer one is [`FrameError::TooLarge`].
    ///
    /// [`FrameError::TooLarge`]: crate::framed::FrameError::TooLarge
    pub max_message_len: usize,
    /// The budget that large messages, shared with other connections, must find room in; see
    /// [`ReceiveBudget`].
    pub receive_budget: Option<Arc<ReceiveBudget>>,
    /// How long a framed message may take from its first byte to its last (`None`: for ever).
    /// A native message arrives whole, so it has nothing to time.
    pub slow_message_timeout: Option<Duration>,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl MessageLimits {
    /// Messages up to `max_message_len` bytes, no budget and no timeout.
    pub fn new(max_message_len: usize) -> Self {
        MessageLimits { max_message_len, receive_budget: None, slow_message_timeout: None }
    }

    /// Makes messages longer than [`UNBUDGETED_FRAME_LEN`](crate::framed::UNBUDGETED_FRAME_LEN)
    /// find room in `budget` before they are accepted.
    pub fn receive_budget(mut self, budget: Arc<ReceiveBudget>) -> Self {
        self.receive_budget = Some(budget);
        self
    }

    /// Fails a framed message that takes longer than `timeout` from its first byte to its last
    /// with [`FrameError::Timeout`](crate::framed::FrameError::Timeout).
    pub fn slow_message_timeout(mut self, timeout: Duration) -> Self {
        self.slow_message_timeout = Some(timeout);
        self
    }
}

/// What keeps a connection's resources alive, shared by its two halves.
pub(crate) type Guard = Arc<dyn Any + Send + Sync>;
