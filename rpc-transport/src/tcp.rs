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
pub fn from_stream(stream: TcpStream) -> io::Result<Connection> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    let (r, w) = stream.into_split();
    Ok(Connection::new(r, w, Peer::Tcp(peer)).with_local(local.to_string()))
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
    async fn accept(&mut self) -> io::Result<Connection> {
        let (stream, _) = self.inner.accept().await?;
        from_stream(stream)
    }

    fn describe(&self) -> String {
        format!("tcp:{}", self.local_addr)
    }
}
