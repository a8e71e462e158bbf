//! Stream sockets (TCP, Unix) registered with the runtime for readability only, and pipe write
//! ends not registered at all until a write finds them full.
//!
//! tokio's `TcpStream` and `UnixStream` register for readable *and* writable events, and the
//! kernel signals a socket writable again each time the peer reads what was sent: an RPC round
//! trip then woke each side twice, once for the reply and once for "you may write again",
//! an empty turn of the runtime (an `epoll_wait` and a driver pass) per call on each side.
//! Here a write goes straight to the socket; only a write that finds it full registers for
//! writability (on a duplicate of the descriptor, dropped again once the write went through), so
//! writable events are asked for only while they mean something.

use std::io::{self, Write as _};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::sys;

/// A connected stream socket of the standard library, in non-blocking mode.
pub(crate) trait StreamSocket: AsFd + AsRawFd + Send + Sync + Unpin + 'static {
    fn write_some(&self, buf: &[u8]) -> io::Result<usize>;
    fn write_some_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;
    fn shutdown_write(&self) -> io::Result<()>;
}

/// The standard library's sockets and files all write through `&T`; only how the write side is
/// shut down differs.
macro_rules! stream_socket {
    ($($ty:ty => |$s:ident| $shutdown:expr;)+) => {$(
        impl StreamSocket for $ty {
            fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_some_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn shutdown_write(&self) -> io::Result<()> {
                let $s = self;
                $shutdown
            }
        }
    )+};
}

stream_socket! {
    std::net::TcpStream => |s| s.shutdown(Shutdown::Write);
    std::os::unix::net::UnixStream => |s| s.shutdown(Shutdown::Write);
    // A pipe's (or FIFO's) write end: shutting it down is closing it, which the pipe transport's
    // `CloseOnShutdown` does by dropping it.
    std::fs::File => |_s| Ok(());
}

/// The reading half.
#[derive(Debug)]
pub(crate) struct SocketRead<S: StreamSocket>(Arc<AsyncFd<S>>);

/// The writing half.
#[derive(Debug)]
pub(crate) struct SocketWrite<S: StreamSocket> {
    target: Target<S>,
    /// Registered for writability while a write waits for room, on a duplicate descriptor.
    waiting: Option<AsyncFd<OwnedFd>>,
}

/// What a writing half writes to.
#[derive(Debug)]
enum Target<S: StreamSocket> {
    /// A socket whose reading half holds the registration.
    Shared(Arc<AsyncFd<S>>),
    /// A descriptor of its own (a pipe's write end), registered only while waiting.
    Own(S),
}

impl<S: StreamSocket> Target<S> {
    fn get(&self) -> &S {
        match self {
            Target::Shared(fd) => fd.get_ref(),
            Target::Own(s) => s,
        }
    }
}

/// Splits `socket` (non-blocking) into halves registered with the current runtime.
pub(crate) fn split<S: StreamSocket>(socket: S) -> io::Result<(SocketRead<S>, SocketWrite<S>)> {
    let socket = Arc::new(sys::register(socket, Interest::READABLE)?);
    Ok((SocketRead(Arc::clone(&socket)), SocketWrite { target: Target::Shared(socket), waiting: None }))
}

/// A pipe's or FIFO's write end, put in non-blocking mode.
pub(crate) fn pipe_writer(fd: OwnedFd) -> io::Result<SocketWrite<std::fs::File>> {
    sys::set_nonblocking(fd.as_fd())?;
    Ok(SocketWrite { target: Target::Own(std::fs::File::from(fd)), waiting: None })
}

impl<S: StreamSocket> AsFd for SocketWrite<S> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.target.get().as_fd()
    }
}

impl<S: StreamSocket> AsyncRead for SocketRead<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let room = buf.remaining();
            match guard.try_io(|socket| sys::read_into(socket.get_ref().as_fd(), buf)) {
                Ok(Ok(n)) => {
                    // Less than there was room for: the socket is drained, so the next read
                    // waits for the next event rather than finding it empty (as tokio's own
                    // streams do).
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Nothing there after all: readiness was cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl<S: StreamSocket> SocketWrite<S> {
    /// Runs `write` until it takes something or fails, waiting for room when the socket is full.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self.target.get()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => {
                    // Written (or failed): stop listening for room until the next full socket.
                    self.waiting = None;
                    return Poll::Ready(done);
                }
            }
            if self.waiting.is_none() {
                let dup = self.target.get().as_fd().try_clone_to_owned()?;
                self.waiting = Some(sys::register(dup, Interest::WRITABLE)?);
            }
            let waiting = self.waiting.as_ref().expect("set above");
            let mut guard = ready!(waiting.poll_write_ready(cx))?;
            // Room was signalled; if the write still finds none, wait for the next signal.
            guard.clear_ready();
        }
    }
}

impl<S: StreamSocket> AsyncWrite for SocketWrite<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |s| s.write_some(buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |s| s.write_some_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.target.get().shutdown_write() {
            // Already shut down, or the peer is gone: either way nothing more can be sent.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

/// A stream that could not be set up: every read and write fails with why, so the connection
/// ends at its first use with that error instead of anything panicking.
#[derive(Debug, Clone)]
pub(crate) struct Broken {
    kind: io::ErrorKind,
    why: String,
}

impl Broken {
    pub(crate) fn new(e: io::Error) -> Self {
        Broken { kind: e.kind(), why: format!("the socket could not be registered with the runtime: {e}") }
    }

    fn error(&self) -> io::Error {
        io::Error::new(self.kind, self.why.clone())
    }
}

impl AsyncRead for Broken {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.error()))
    }
}

impl AsyncWrite for Broken {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, _buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.error()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.error()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A connection over `socket`, registered for readability only; should that fail, one whose
/// first read and write report why.
pub(crate) fn connection<S: StreamSocket>(socket: io::Result<S>, peer: crate::Peer) -> crate::Connection {
    match socket.and_then(split) {
        Ok((r, w)) => crate::Connection::new(r, w, peer),
        Err(e) => {
            tracing::debug!("a socket could not be registered: {e}");
            let read = Broken::new(e);
            crate::Connection::new(read.clone(), read, peer)
        }
    }
}
