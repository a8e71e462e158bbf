//! In-memory connections inside one process.
//!
//! Bytes still go through the same framing and encoding as every other transport, so a service
//! behaves exactly as it would over a socket; only the OS is left out.

use std::io;

use tokio::sync::mpsc;

use crate::{Connection, Listener, Peer};

/// Bytes each direction buffers before a writer waits for the reader, as a default OS pipe.
pub const BUFFER: usize = 64 * 1024;

/// Two connected ends.
pub fn pair() -> (Connection, Connection) {
    // Each direction is a duplex stream used one way only, like an OS pipe: dropping the writing
    // end gives the reader EOF, and dropping the reading end makes writes fail. (The halves of a
    // split `simplex` would not: the stream only closes when both halves are gone.)
    let (a_read, b_write) = tokio::io::duplex(BUFFER);
    let (b_read, a_write) = tokio::io::duplex(BUFFER);
    (Connection::new(a_read, a_write, Peer::Memory), Connection::new(b_read, b_write, Peer::Memory))
}

/// A listener and the handle that connects to it.
pub fn listener() -> (MemoryListener, MemoryConnector) {
    let (tx, rx) = mpsc::unbounded_channel();
    (MemoryListener { rx }, MemoryConnector { tx })
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
}

impl MemoryConnector {
    /// Makes a new connection to the listener.
    pub fn connect(&self) -> io::Result<Connection> {
        let (ours, theirs) = pair();
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
