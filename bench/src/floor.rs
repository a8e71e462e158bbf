//! The floor: a hand-written echo of 4-byte-big-endian-length-prefixed frames, no RPC layer, as
//! fast as a careful hand-written echo can be, so that the ratios against it are honest.
//!
//! Both sides use blocking std I/O, one thread per connection (setup in [`crate::blocking`]):
//! on one core a blocking round trip is two context switches and four system calls, with no
//! readiness polling, no waker and no task hand-off. Each side reads into one large buffer and
//! handles every whole frame in it: the server writes all of them back with one `write` straight
//! from the receive buffer (an echo's response bytes are its request bytes, so there is nothing
//! to copy, not even a 64 KiB body), and the pipelining client answers each batch of responses
//! with one write of as many new requests. Nothing is allocated per frame.

use std::io::{self, ErrorKind, Read, Write};

use futures::future::BoxFuture;
use rpc_runtime::transport::{BoxRead, BoxWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blocking::{Reader, Writer};
use crate::suite::Until;

const HEADER: usize = 4;
/// The same maximum frame length as this framework's default.
const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Room for a 64 KiB frame and then some, so one read takes whatever the kernel has. Below
/// glibc's 128 KiB `mmap` threshold on purpose: with a 256 KiB buffer (which malloc maps with
/// `mmap`) the kernel's copies into it took twice the CPU time on this machine (64 KiB echo,
/// `perf stat` task-clock, pinned, every transport); the cause was not pinned down.
const BUFFER: usize = 120_000;

/// Serves one connection until the peer closes it: every read's whole frames go back in one write.
pub(crate) fn echo(mut r: Reader, mut w: Writer) -> io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    let mut filled = 0;
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(()),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        let (end, next) = whole_frames(&buf[..filled])?;
        if end > 0 {
            w.write_all(&buf[..end])?;
            buf.copy_within(end..filled, 0);
            filled -= end;
        }
        if next > buf.len() {
            buf.resize(next, 0);
        }
    }
}

/// [`echo`] on an event loop, for many connections at once.
pub(crate) fn echo_async(mut r: BoxRead, mut w: BoxWrite) -> BoxFuture<'static, io::Result<()>> {
    Box::pin(async move {
        let mut buf = vec![0u8; BUFFER];
        let mut filled = 0;
        loop {
            let n = r.read(&mut buf[filled..]).await?;
            if n == 0 {
                return if filled == 0 { Ok(()) } else { Err(ErrorKind::UnexpectedEof.into()) };
            }
            filled += n;
            let (end, next) = whole_frames(&buf[..filled])?;
            if end > 0 {
                w.write_all(&buf[..end]).await?;
                buf.copy_within(end..filled, 0);
                filled -= end;
            }
            if next > buf.len() {
                buf.resize(next, 0);
            }
        }
    })
}

/// The length of the whole frames at the start of `buf`, and the bytes the first incomplete frame
/// needs (header and body; 0 if `buf` ends on a frame boundary).
fn whole_frames(buf: &[u8]) -> io::Result<(usize, usize)> {
    let mut end = 0;
    while buf.len() - end >= HEADER {
        let len = u32::from_be_bytes(buf[end..end + HEADER].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(ErrorKind::InvalidData, "frame too large"));
        }
        if buf.len() - end < HEADER + len {
            return Ok((end, HEADER + len));
        }
        end += HEADER + len;
    }
    Ok((end, 0))
}

/// A request frame: header and a `len`-byte body.
pub(crate) fn frame(len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + len);
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.extend((0..len).map(|i| i as u8));
    f
}

/// Checks that the whole frames in `frames` are all echoes of `body`-byte requests; returns how many.
fn count_echoes(frames: &[u8], body: usize) -> io::Result<usize> {
    let frame_len = HEADER + body;
    let mut chunks = frames.chunks_exact(frame_len);
    if !chunks.remainder().is_empty() || chunks.any(|f| f[..HEADER] != (body as u32).to_be_bytes()) {
        return Err(io::Error::new(ErrorKind::InvalidData, "an echo of another length"));
    }
    Ok(frames.len() / frame_len)
}

/// One client connection, used from one thread at a time (its calls block).
pub(crate) struct Conn {
    r: Reader,
    w: Writer,
    buf: Vec<u8>,
    /// Bytes of `buf` received and not yet consumed (always from offset 0).
    filled: usize,
}

impl Conn {
    pub(crate) fn new((r, w): (Reader, Writer)) -> Conn {
        Conn { r, w, buf: vec![0u8; BUFFER], filled: 0 }
    }

    /// One round trip: sends `request` (a whole frame) and reads the echo.
    pub(crate) fn call(&mut self, request: &[u8]) -> io::Result<()> {
        self.w.write_all(request)?;
        let n = self.read_responses(request.len() - HEADER)?;
        if n != 1 {
            return Err(io::Error::new(ErrorKind::InvalidData, format!("{n} responses to one request")));
        }
        Ok(())
    }

    /// Reads until at least one whole response is buffered, consumes every whole response
    /// buffered (each must have a `body`-byte body), and returns how many.
    fn read_responses(&mut self, body: usize) -> io::Result<usize> {
        loop {
            let (end, next) = whole_frames(&self.buf[..self.filled])?;
            if end > 0 {
                let n = count_echoes(&self.buf[..end], body)?;
                self.buf.copy_within(end..self.filled, 0);
                self.filled -= end;
                return Ok(n);
            }
            if next > self.buf.len() {
                self.buf.resize(next, 0);
            }
            match self.r.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps `window` 16-byte requests outstanding until `until` says stop, then drains; returns
    /// the calls completed.
    pub(crate) fn pipeline(&mut self, window: usize, until: Until) -> io::Result<u64> {
        const BODY: usize = 16;
        let burst = frame(BODY).repeat(window);
        let frame_len = HEADER + BODY;
        self.w.write_all(&burst)?;
        let mut outstanding = window;
        let mut issued = window as u64;
        let mut done = 0u64;
        while outstanding > 0 {
            let batch = self.read_responses(BODY)?;
            if batch > outstanding {
                return Err(io::Error::new(ErrorKind::InvalidData, "more responses than requests"));
            }
            done += batch as u64;
            outstanding -= batch;
            let more = (0..batch).take_while(|i| until.more(issued + *i as u64)).count();
            if more > 0 {
                self.w.write_all(&burst[..more * frame_len])?;
                outstanding += more;
                issued += more as u64;
            }
        }
        Ok(done)
    }
}

/// A client connection on the runtime: for the many-connections figure (one task per connection,
/// pipelining as [`Conn::pipeline`] does), and for the sequential figure against a floor that
/// runs on tokio as ours does.
pub(crate) struct AsyncConn {
    r: BoxRead,
    w: BoxWrite,
    buf: Vec<u8>,
    filled: usize,
}

impl AsyncConn {
    pub(crate) fn new((r, w): (BoxRead, BoxWrite)) -> AsyncConn {
        AsyncConn { r, w, buf: vec![0u8; BUFFER], filled: 0 }
    }

    /// [`Conn::call`], on the runtime.
    pub(crate) async fn call(&mut self, request: &[u8]) -> io::Result<()> {
        self.w.write_all(request).await?;
        let n = self.read_responses(request.len() - HEADER).await?;
        if n != 1 {
            return Err(io::Error::new(ErrorKind::InvalidData, format!("{n} responses to one request")));
        }
        Ok(())
    }

    async fn read_responses(&mut self, body: usize) -> io::Result<usize> {
        loop {
            let (end, _) = whole_frames(&self.buf[..self.filled])?;
            if end > 0 {
                let n = count_echoes(&self.buf[..end], body)?;
                self.buf.copy_within(end..self.filled, 0);
                self.filled -= end;
                return Ok(n);
            }
            match self.r.read(&mut self.buf[self.filled..]).await? {
                0 => return Err(ErrorKind::UnexpectedEof.into()),
                n => self.filled += n,
            }
        }
    }

    /// [`Conn::pipeline`], on the runtime.
    pub(crate) async fn pipeline(&mut self, window: usize, until: Until) -> io::Result<u64> {
        const BODY: usize = 16;
        let burst = frame(BODY).repeat(window);
        let frame_len = HEADER + BODY;
        self.w.write_all(&burst).await?;
        let mut outstanding = window;
        let mut issued = window as u64;
        let mut done = 0u64;
        while outstanding > 0 {
            let batch = self.read_responses(BODY).await?;
            if batch > outstanding {
                return Err(io::Error::new(ErrorKind::InvalidData, "more responses than requests"));
            }
            done += batch as u64;
            outstanding -= batch;
            let more = (0..batch).take_while(|i| until.more(issued + *i as u64)).count();
            if more > 0 {
                self.w.write_all(&burst[..more * frame_len]).await?;
                outstanding += more;
                issued += more as u64;
            }
        }
        Ok(done)
    }
}
