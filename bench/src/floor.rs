//! The floor: a hand-written tokio length-prefixed echo with no RPC layer.
//!
//! The server runs one task per connection that reads a 4-byte big-endian length and the body,
//! and writes the same frame back; it flushes when no further request is already buffered, so a
//! pipelining client gets its responses batched into few writes, as any careful echo server
//! would. The client writes each request as a single buffer and reads through a buffer; for
//! calls in flight it pipelines: it keeps `window` requests outstanding and answers each batch
//! of responses with one write of as many new requests.

use std::io;

use rpc_runtime::transport::{BoxRead, BoxWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

use crate::endpoint::RawListener;
use crate::suite::Until;

const HEADER: usize = 4;
/// The same maximum frame length as this framework's default.
const MAX_FRAME: usize = 4 * 1024 * 1024;
const CLIENT_BUFFER: usize = 16 * 1024;

/// Accepts connections forever, one echo task each.
pub(crate) async fn serve(mut listener: RawListener) -> io::Result<()> {
    loop {
        let (r, w) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = echo(r, w).await;
        });
    }
}

/// Serves the one connection of a pipe, until it ends.
pub(crate) async fn serve_one(r: BoxRead, w: BoxWrite) -> io::Result<()> {
    echo(r, w).await
}

async fn echo(r: BoxRead, w: BoxWrite) -> io::Result<()> {
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut frame = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
        }
        // Header and body in one buffer, so a large frame goes back in one write.
        frame.clear();
        frame.extend_from_slice(&header);
        frame.resize(HEADER + len, 0);
        r.read_exact(&mut frame[HEADER..]).await?;
        w.write_all(&frame).await?;
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
}

/// A request frame: header and a `len`-byte body.
pub(crate) fn frame(len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + len);
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.extend((0..len).map(|i| i as u8));
    f
}

/// One client connection.
pub(crate) struct Conn {
    r: BufReader<BoxRead>,
    w: BoxWrite,
    body: Vec<u8>,
}

impl Conn {
    pub(crate) fn new((r, w): (BoxRead, BoxWrite)) -> Conn {
        Conn { r: BufReader::with_capacity(CLIENT_BUFFER, r), w, body: Vec::new() }
    }

    /// One round trip: sends `request` (a whole frame) and reads the echo.
    pub(crate) async fn call(&mut self, request: &[u8]) -> io::Result<()> {
        self.w.write_all(request).await?;
        self.read_response(request.len() - HEADER).await
    }

    async fn read_response(&mut self, expect: usize) -> io::Result<()> {
        let mut header = [0u8; HEADER];
        self.r.read_exact(&mut header).await?;
        let len = u32::from_be_bytes(header) as usize;
        if len != expect {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("echo of {len} bytes, sent {expect}"),
            ));
        }
        self.body.resize(len, 0);
        self.r.read_exact(&mut self.body).await?;
        Ok(())
    }

    /// Keeps `window` 16-byte requests outstanding until `until` says stop, then drains; returns
    /// the calls completed.
    pub(crate) async fn pipeline(&mut self, window: usize, until: Until) -> io::Result<u64> {
        const BODY: usize = 16;
        let burst = frame(BODY).repeat(window);
        let frame_len = HEADER + BODY;
        self.w.write_all(&burst).await?;
        let mut outstanding = window;
        let mut issued = window as u64;
        let mut done = 0u64;
        while outstanding > 0 {
            self.read_response(BODY).await?;
            let mut batch = 1;
            while batch < outstanding && self.r.buffer().len() >= frame_len {
                self.read_response(BODY).await?;
                batch += 1;
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
