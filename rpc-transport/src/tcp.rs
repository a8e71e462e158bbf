//! TCP: connect to an address, or bind a listener (port 0 picks a free port).
//!
//! Every stream gets `TCP_NODELAY`: RPC frames are small and latency-bound, and the framed writer
//! already coalesces what is ready to go.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpStream, ToSocketAddrs};

use crate::{Connection, Listener, Peer};

/// Connects to `addr` and returns the connection.
pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Connection> {
    from_stream(TcpStream::connect(addr).await?)
}

/// Wraps an already connected stream (setting `TCP_NODELAY`).
///
/// Fails if the stream's addresses cannot be read: `peer_addr()` fails with `ENOTCONN` once the
/// peer has reset. A listener does not call this; it uses the address `accept()` returned.
pub fn from_stream(stream: TcpStream) -> io::Result<Connection> {
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    Ok(from_accepted(stream, peer, local))
}

/// Wraps a stream whose addresses are already known; never fails.
///
/// A peer may reset between the kernel's accept and this call (a port scanner, a client killed
/// right after connecting, `SO_LINGER {1, 0}`): then setting `TCP_NODELAY` may fail, and the
/// first read reports the reset, which ends that connection alone.
fn from_accepted(stream: TcpStream, peer: SocketAddr, local: SocketAddr) -> Connection {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::trace!(%peer, "could not set TCP_NODELAY: {e}");
    }
    // Registered for readability only (see `socket.rs`).
    crate::socket::connection(stream.into_std(), Peer::Tcp(peer)).with_local(local.to_string())
}

/// Binds a listener to `addr`.
pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
    let inner = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = inner.local_addr()?;
    Ok(TcpListener { inner, local_addr })
}

/// A bound TCP listener.
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl TcpListener {
    /// The address the listener is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Wraps a tokio listener.
    pub fn from_tokio(inner: tokio::net::TcpListener) -> io::Result<Self> {
        let local_addr = inner.local_addr()?;
        Ok(TcpListener { inner, local_addr })
    }
}

impl Listener for TcpListener {
    async fn accept(&mut self) -> io::Result<Option<Connection>> {
        // A listening socket never ends on its own: every error here concerns one attempt.
        let (stream, peer) = self.inner.accept().await?;
        Ok(Some(from_accepted(stream, peer, self.local_addr)))
    }

    fn describe(&self) -> String {
        format!("tcp:{}", self.local_addr)
    }
}
