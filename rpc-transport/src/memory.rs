//! In-memory connections inside one process.
//!
//! Bytes still go through the same framing and encoding as every other transport, so a service
//! behaves exactly as it would over a socket; only the OS is left out. Each direction is a
//! bounded pipe that behaves like an OS pipe when an end goes away: dropping (or shutting down)
//! the writing end gives the reader EOF once the buffered bytes are read, and dropping the
//! reading end makes writes fail with `BrokenPipe`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::{Connection, Listener, Peer};

/// Bytes each direction buffers before a writer waits for the reader, as a default OS pipe.
pub const BUFFER: usize = 64 * 1024;

/// Two connected ends.
pub fn pair() -> (Connection, Connection) {
    let (a_read, b_write) = pipe(BUFFER);
    let (b_read, a_write) = pipe(BUFFER);
    (Connection::new(a_read, a_write, Peer::Memory), Connection::new(b_read, b_write, Peer::Memory))
}

#[derive(Debug, Default)]
struct Shared {
    buf: BytesMut,
    write_closed: bool,
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

#[derive(Debug)]
struct Pipe {
    shared: Mutex<Shared>,
    capacity: usize,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Every critical section leaves the state consistent, so a poisoned lock is still usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn pipe(capacity: usize) -> (PipeReader, PipeWriter) {
    let pipe = Arc::new(Pipe { shared: Mutex::new(Shared::default()), capacity });
    (PipeReader(Arc::clone(&pipe)), PipeWriter(pipe))
}

/// The reading end of one direction of an in-memory connection.
#[derive(Debug)]
struct PipeReader(Arc<Pipe>);

/// The writing end of one direction of an in-memory connection.
#[derive(Debug)]
struct PipeWriter(Arc<Pipe>);

impl AsyncRead for PipeReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.lock();
        if s.buf.is_empty() {
            if s.write_closed {
                return Poll::Ready(Ok(()));
            }
            s.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = s.buf.len().min(out.remaining());
        out.put_slice(&s.buf[..n]);
        s.buf.advance(n);
        if let Some(w) = s.writer.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.read_closed = true;
        s.buf = BytesMut::new();
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }
}

impl PipeWriter {
    fn close(&self) {
        let mut s = self.0.lock();
        s.write_closed = true;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0.lock();
        if s.read_closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the in-memory peer closed")));
        }
        if s.write_closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "write side shut down")));
        }
        let room = self.0.capacity - s.buf.len();
        if room == 0 {
            s.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        s.buf.extend_from_slice(&data[..n]);
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.close();
    }
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
    async fn accept(&mut self) -> io::Result<Connection> {
        self.rx.recv().await.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "every in-memory connector was dropped")
        })
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn dropping_the_writer_gives_eof_after_the_data() {
        let (mut r, mut w) = pipe(8);
        w.write_all(b"abc").await.unwrap();
        drop(w);
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
    }

    #[tokio::test]
    async fn dropping_the_reader_breaks_the_pipe() {
        let (r, mut w) = pipe(4);
        let blocked = tokio::spawn(async move { w.write_all(&[0; 16]).await });
        tokio::task::yield_now().await;
        drop(r);
        let err = blocked.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn a_full_pipe_waits_for_the_reader() {
        let (mut r, mut w) = pipe(4);
        let writer = tokio::spawn(async move {
            w.write_all(&[7; 10]).await.unwrap();
        });
        let mut got = [0u8; 10];
        r.read_exact(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, [7; 10]);
    }
}
