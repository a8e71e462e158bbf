//! In-memory connections inside one process, in two kinds.
//!
//! - [`pair`] and [`listener`]: two byte streams, so bytes go through the same framing as every
//!   other transport and a service behaves exactly as it would over a socket; only the OS is left
//!   out. A test can also speak the raw bytes to one end ([`Connection::into_parts`]).
//! - [`message_pair`] and [`message_listener`]: a transport that carries whole messages natively
//!   (see [`message`](crate::message)), with no framing at all; each direction is bounded in
//!   bytes, so a peer that does not read holds its sender back, like a socket does.

mod channel;

use std::io;

use tokio::sync::mpsc;

use crate::{Connection, Listener, Peer};

pub use channel::{MessageReceiver, MessageSender};

/// Bytes each direction buffers before a writer waits for the reader, as a default OS pipe.
pub const BUFFER: usize = 64 * 1024;

/// Two connected ends, each a pair of byte streams.
pub fn pair() -> (Connection, Connection) {
    // Each direction is a duplex stream used one way only, like an OS pipe: dropping the writing
    // end gives the reader EOF, and dropping the reading end makes writes fail. (The halves of a
    // split `simplex` would not: the stream only closes when both halves are gone.)
    let (a_read, b_write) = tokio::io::duplex(BUFFER);
    let (b_read, a_write) = tokio::io::duplex(BUFFER);
    (Connection::new(a_read, a_write, Peer::Memory), Connection::new(b_read, b_write, Peer::Memory))
}

/// Two connected ends that carry whole messages, each direction holding up to [`BUFFER`] bytes
/// of messages not yet received (and one more message, however long, when it starts below that).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use rpc_transport::framed::FrameBuf;
/// use rpc_transport::{memory, message::MessageLimits};
///
/// let (a, b) = memory::message_pair();
/// assert!(a.carries_messages());
/// let (_, mut writer, _) = a.into_messages(&MessageLimits::default());
/// let (mut reader, _, _) = b.into_messages(&MessageLimits::default());
/// let mut frame = FrameBuf::default();
/// frame.extend_from_slice(b"ping");
/// writer.send(&mut vec![frame.finish(64).unwrap()]).await?;
/// assert_eq!(&reader.recv().await.unwrap().unwrap()[..], b"ping");
/// drop(writer);
/// assert!(reader.recv().await.unwrap().is_none(), "the end, once the writer is gone");
/// # Ok(())
/// # }
/// ```
pub fn message_pair() -> (Connection, Connection) {
    let (a_tx, b_rx) = channel::channel(BUFFER);
    let (b_tx, a_rx) = channel::channel(BUFFER);
    (Connection::from_messages(a_rx, a_tx, Peer::Memory), Connection::from_messages(b_rx, b_tx, Peer::Memory))
}

/// A listener and the handle that connects to it, with byte-stream connections ([`pair`]).
pub fn listener() -> (MemoryListener, MemoryConnector) {
    listener_of(pair)
}

/// A listener and the handle that connects to it, with connections that carry whole messages
/// ([`message_pair`]).
pub fn message_listener() -> (MemoryListener, MemoryConnector) {
    listener_of(message_pair)
}

fn listener_of(pair: fn() -> (Connection, Connection)) -> (MemoryListener, MemoryConnector) {
    let (tx, rx) = mpsc::unbounded_channel();
    (MemoryListener { rx }, MemoryConnector { tx, pair })
}

/// Accepts connections made through its [`MemoryConnector`].
#[derive(Debug)]
pub struct MemoryListener {
    rx: mpsc::UnboundedReceiver<Connection>,
}

/// Connects to a [`MemoryListener`]; clone it to connect from many places.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    tx: mpsc::UnboundedSender<Connection>,
    /// Makes the two ends: of byte streams, or of messages.
    pair: fn() -> (Connection, Connection),
}

impl MemoryConnector {
    /// Makes a new connection to the listener.
    pub fn connect(&self) -> io::Result<Connection> {
        let (ours, theirs) = (self.pair)();
        self.tx.send(theirs).map_err(|_| {
            io::Error::new(io::ErrorKind::ConnectionRefused, "the in-memory listener was dropped")
        })?;
        Ok(ours)
    }
}

impl Listener for MemoryListener {
    /// `Ok(None)` once every connector is dropped.
    async fn accept(&mut self) -> io::Result<Option<Connection>> {
        Ok(self.rx.recv().await)
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
