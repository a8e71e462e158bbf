//! The wire protocol (version 2) written out by hand, for byte-level tests.
//!
//! A connection starts with an 8-byte preface and a HELLO frame from each side. Then every frame
//! is a 4-byte big-endian body length and the body. A body starts with a kind byte; integers are
//! LEB128 varints; strings are a varint length and bytes; hashes are 8 bytes little-endian;
//! bodies (postcard) run to the end:
//!
//! | kind | body after the kind byte |
//! | --- | --- |
//! | 1 hello | version, max frame, max calls, stream window, formats, services |
//! | 2 call | id, kind (0 unary, 1 oneway), flags (1 deadline, 2 metadata), format, service, method, hash, (deadline µs), (metadata), payload |
//! | 3 reply | id, flags, (metadata), payload |
//! | 4 error | id, code, message |
//! | 5 item | id, payload |
//! | 6 end / 7 cancel | id |
//! | 8 credit | id, n |
//! | 9 ping / 10 pong | nonce |
//! | 11 goaway | code, message |
//!
//! Calls built here name no service (the server's only one) and carry hash 0 (no signature
//! check), as a hand-written peer may. Nothing here calls the runtime's encoder or decoder:
//! these helpers are a second, independent reading of the protocol.

use std::io;
use std::time::Duration;

use rpc_runtime::transport::{BoxRead, BoxWrite, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The connection preface: magic, version 2, a reserved byte.
pub const PREFACE: [u8; 8] = [0x89, b'R', b'P', b'C', b'\r', b'\n', 2, 0];

/// A HELLO body: version 2, 4 MiB frames, no calls served, a window of 16, postcard, no services.
pub fn hello() -> Vec<u8> {
    let mut b = vec![1, 2];
    b.extend(varint(4 << 20));
    b.extend([0, 16, 1, 0]);
    b
}

/// What a hand-written peer sends first: the preface and a HELLO frame.
pub fn greeting() -> Vec<u8> {
    [&PREFACE[..], &frame(&hello())].concat()
}

/// Error codes of error and goaway frames.
pub mod code {
    /// Unknown method.
    pub const UNKNOWN_METHOD: u64 = 1;
    /// The request did not decode.
    pub const BAD_REQUEST: u64 = 2;
    /// The handler failed (panicked).
    pub const INTERNAL: u64 = 3;
    /// Deadline exceeded.
    pub const DEADLINE_EXCEEDED: u64 = 4;
    /// Overloaded.
    pub const OVERLOADED: u64 = 5;
    /// Shutting down; the call never started.
    pub const SHUTTING_DOWN: u64 = 6;
    /// Cancelled by the server.
    pub const CANCELLED: u64 = 7;
    /// A frame or message was too large.
    pub const FRAME_TOO_LARGE: u64 = 8;
    /// The peer broke the protocol.
    pub const PROTOCOL: u64 = 9;
    /// Idle or stalled connection.
    pub const IDLE: u64 = 10;
    /// No service of that name.
    pub const UNKNOWN_SERVICE: u64 = 11;
    /// The caller's signature hash differs from the server's.
    pub const SIGNATURE_MISMATCH: u64 = 12;
    /// A stream frame broke the stream rules.
    pub const STREAM_PROTOCOL: u64 = 13;
    /// Metadata over its bounds.
    pub const METADATA_TOO_LARGE: u64 = 14;
    /// A format the server does not speak.
    pub const UNSUPPORTED_FORMAT: u64 = 15;
}

/// A LEB128 varint.
pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A whole frame: the 4-byte big-endian length, then `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A call body (unary, postcard, no service name, hash 0).
pub fn request(id: u64, method: &str, deadline: Option<Duration>, payload: &[u8]) -> Vec<u8> {
    request_raw(id, method.as_bytes(), deadline.map(|d| d.as_micros() as u64), false, payload)
}

/// A call body naming `service` and carrying `hash`.
pub fn call(id: u64, service: &str, method: &str, hash: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![2];
    b.extend(varint(id));
    b.extend([0, 0, 0]);
    b.extend(varint(service.len() as u64));
    b.extend_from_slice(service.as_bytes());
    b.extend(varint(method.len() as u64));
    b.extend_from_slice(method.as_bytes());
    b.extend_from_slice(&hash.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// A call body of kind `kind` (0 unary, 1 one-way, 2 server stream, 3 client stream, 4
/// bidirectional), naming `service`, hash 0 (unchecked).
pub fn stream_call(id: u64, kind: u8, service: &str, method: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = call(id, service, method, 0, payload);
    b[1 + varint(id).len()] = kind;
    b
}

/// An `ITEM` body.
pub fn item(id: u64, payload: &[u8]) -> Vec<u8> {
    [vec![5], varint(id), payload.to_vec()].concat()
}

/// An `END` body.
pub fn end(id: u64) -> Vec<u8> {
    [vec![6], varint(id)].concat()
}

/// A `CREDIT` body.
pub fn credit(id: u64, credit: u64) -> Vec<u8> {
    [vec![8], varint(id), varint(credit)].concat()
}

/// A request body with every field under the caller's control.
pub fn request_raw(
    id: u64,
    method: &[u8],
    deadline_us: Option<u64>,
    oneway: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = vec![2];
    b.extend(varint(id));
    b.push(u8::from(oneway));
    b.push(u8::from(deadline_us.is_some()));
    b.push(0);
    b.push(0);
    b.extend(varint(method.len() as u64));
    b.extend_from_slice(method);
    b.extend_from_slice(&[0; 8]);
    if let Some(us) = deadline_us {
        b.extend(varint(us));
    }
    b.extend_from_slice(payload);
    b
}

/// A reply body (no metadata).
pub fn response(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![3];
    b.extend(varint(id));
    b.push(0);
    b.extend_from_slice(payload);
    b
}

/// An error body.
pub fn error(id: u64, code: u64, message: &str) -> Vec<u8> {
    let mut b = vec![4];
    b.extend(varint(id));
    b.extend(varint(code));
    b.extend(varint(message.len() as u64));
    b.extend_from_slice(message.as_bytes());
    b
}

/// A cancel body.
pub fn cancel(id: u64) -> Vec<u8> {
    let mut b = vec![7];
    b.extend(varint(id));
    b
}

/// A ping body.
pub fn ping(nonce: u64) -> Vec<u8> {
    let mut b = vec![9];
    b.extend(varint(nonce));
    b
}

/// A goaway body.
pub fn goaway(code: u64, message: &str) -> Vec<u8> {
    let mut b = vec![11];
    b.extend(varint(code));
    b.extend(varint(message.len() as u64));
    b.extend_from_slice(message.as_bytes());
    b
}

/// A decoded frame from the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A HELLO.
    Hello {
        /// Services and their methods' names.
        services: Vec<(String, Vec<String>)>,
    },
    /// A call.
    Request {
        /// Id.
        id: u64,
        /// Service name.
        service: String,
        /// Signature hash.
        hash: u64,
        /// Deadline in µs, if any.
        deadline_us: Option<u64>,
        /// Whether no response is wanted.
        oneway: bool,
        /// Method name.
        method: String,
        /// Arguments.
        payload: Vec<u8>,
    },
    /// A response.
    Response {
        /// Id.
        id: u64,
        /// Result.
        payload: Vec<u8>,
    },
    /// An error.
    Error {
        /// Id.
        id: u64,
        /// Code.
        code: u64,
        /// Message.
        message: String,
    },
    /// A cancel.
    Cancel {
        /// Id.
        id: u64,
    },
    /// A stream item.
    Item {
        /// Id.
        id: u64,
    },
    /// A stream's end.
    End {
        /// Id.
        id: u64,
    },
    /// Stream credit.
    Credit {
        /// Id.
        id: u64,
        /// Items.
        credit: u64,
    },
    /// A ping.
    Ping {
        /// Nonce.
        nonce: u64,
    },
    /// A pong.
    Pong {
        /// Nonce.
        nonce: u64,
    },
    /// A goaway.
    GoAway {
        /// Code.
        code: u64,
        /// Message.
        message: String,
    },
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().expect("frame ends early");
        self.0 = rest;
        *b
    }

    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return v;
            }
        }
        panic!("overlong varint from the runtime")
    }

    fn u64_le(&mut self) -> u64 {
        let (b, rest) = self.0.split_at(8);
        self.0 = rest;
        u64::from_le_bytes(b.try_into().unwrap())
    }

    fn string(&mut self) -> String {
        let len = self.varint() as usize;
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(s.to_vec()).expect("utf-8 from the runtime")
    }
}

/// Parses a frame body the runtime sent (panics on a malformed one: the runtime must not send it).
pub fn parse(body: &[u8]) -> Frame {
    let mut r = Reader(body);
    let frame = match r.byte() {
        1 => {
            assert_eq!(r.varint(), 2, "HELLO version");
            let (_max_frame, _calls, _window, _formats) = (r.varint(), r.varint(), r.varint(), r.varint());
            let services = (0..r.varint())
                .map(|_| {
                    let name = r.string();
                    let methods = (0..r.varint())
                        .map(|_| {
                            let m = r.string();
                            let _kind = r.byte();
                            let _hash = r.u64_le();
                            m
                        })
                        .collect();
                    (name, methods)
                })
                .collect();
            Frame::Hello { services }
        }
        2 => {
            let id = r.varint();
            let kind = r.byte();
            let flags = r.byte();
            let _format = r.byte();
            let service = r.string();
            let method = r.string();
            let hash = r.u64_le();
            let deadline_us = (flags & 1 != 0).then(|| r.varint());
            if flags & 2 != 0 {
                for _ in 0..r.varint() {
                    let _ = (r.string(), r.string());
                }
            }
            Frame::Request {
                id,
                service,
                hash,
                deadline_us,
                oneway: kind == 1,
                method,
                payload: std::mem::take(&mut r.0).to_vec(),
            }
        }
        3 => {
            let id = r.varint();
            let flags = r.byte();
            if flags & 2 != 0 {
                for _ in 0..r.varint() {
                    let _ = (r.string(), r.string());
                }
            }
            Frame::Response { id, payload: std::mem::take(&mut r.0).to_vec() }
        }
        4 => Frame::Error { id: r.varint(), code: r.varint(), message: r.string() },
        5 => {
            let id = r.varint();
            r.0 = &[];
            Frame::Item { id }
        }
        6 => Frame::End { id: r.varint() },
        7 => Frame::Cancel { id: r.varint() },
        8 => Frame::Credit { id: r.varint(), credit: r.varint() },
        9 => Frame::Ping { nonce: r.varint() },
        10 => Frame::Pong { nonce: r.varint() },
        11 => Frame::GoAway { code: r.varint(), message: r.string() },
        k => panic!("the runtime sent a frame of unknown kind {k}"),
    };
    assert!(r.0.is_empty(), "trailing bytes in a frame the runtime sent: {frame:?}");
    frame
}

/// How a stream the runtime wrote to us ended.
#[derive(Debug)]
pub enum End {
    /// A clean EOF between frames.
    Eof,
    /// EOF in the middle of a frame (the runtime must never do this).
    Torn(usize),
    /// A read error, such as a reset.
    Error(io::Error),
}

/// A peer that speaks the protocol byte by byte, for either side of a connection.
pub struct RawPeer {
    read: BoxRead,
    write: Option<BoxWrite>,
    /// A frame read in place of the HELLO (a refusal's goaway), for the next `next()`.
    pending: Option<Frame>,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for RawPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPeer").finish_non_exhaustive()
    }
}

impl RawPeer {
    /// Takes over a connection; nothing is sent yet.
    pub fn new(conn: Connection) -> RawPeer {
        let (read, write, _peer, guard) = conn.into_parts();
        RawPeer { read, write: Some(write), pending: None, _guard: guard }
    }

    /// The read half, write half (if not closed), peer and guard.
    #[allow(clippy::type_complexity)]
    pub fn into_inner(self) -> (BoxRead, Option<BoxWrite>, (), Option<Box<dyn std::any::Any + Send + Sync>>) {
        (self.read, self.write, (), self._guard)
    }

    /// Moves the write half into a new peer (which reads nothing), so one task can write while
    /// another reads.
    pub fn split_writer(&mut self) -> RawPeer {
        RawPeer { read: Box::new(tokio::io::empty()), write: self.write.take(), pending: None, _guard: None }
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let w = self.write.as_mut().expect("write side already closed");
        w.write_all(bytes).await?;
        w.flush().await
    }

    /// Sends a frame with this body.
    pub async fn send_frame(&mut self, body: &[u8]) -> io::Result<()> {
        self.send(&frame(body)).await
    }

    /// Sends our preface and HELLO, and checks the other side's.
    pub async fn handshake(&mut self) {
        self.send(&greeting()).await.expect("send preface and HELLO");
        self.expect_preface().await;
    }

    /// Reads the other side's preface and HELLO, and checks them. A server that refuses the
    /// connection sends a goaway in place of its HELLO: `next` returns it.
    pub async fn expect_preface(&mut self) {
        let mut got = [0u8; 8];
        self.read.read_exact(&mut got).await.expect("read preface");
        assert_eq!(got, PREFACE, "the runtime's preface");
        match self.next().await {
            Ok(Frame::Hello { .. }) => {}
            Ok(goaway @ Frame::GoAway { .. }) => self.pending = Some(goaway),
            other => panic!("expected the runtime's HELLO after its preface, got {other:?}"),
        }
    }

    /// Closes our write side (FIN); reading goes on.
    pub async fn close_write(&mut self) {
        if let Some(mut w) = self.write.take() {
            let _ = w.shutdown().await;
        }
    }

    /// The next frame, or how the stream ended.
    pub async fn next(&mut self) -> Result<Frame, End> {
        if let Some(frame) = self.pending.take() {
            return Ok(frame);
        }
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.read.read(&mut header[got..]).await {
                Ok(0) if got == 0 => return Err(End::Eof),
                Ok(0) => return Err(End::Torn(got)),
                Ok(n) => got += n,
                Err(e) => return Err(End::Error(e)),
            }
        }
        let len = u32::from_be_bytes(header) as usize;
        let mut body = vec![0u8; len];
        match self.read.read_exact(&mut body).await {
            Ok(_) => Ok(parse(&body)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(End::Torn(4)),
            Err(e) => Err(End::Error(e)),
        }
    }

    /// The next frame; panics if the stream ends.
    pub async fn expect_frame(&mut self) -> Frame {
        match self.next().await {
            Ok(f) => f,
            Err(end) => panic!("expected a frame, the stream ended: {end:?}"),
        }
    }

    /// Reads every frame until the stream ends; panics on a torn frame.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Ok(f) => frames.push(f),
                Err(End::Eof) | Err(End::Error(_)) => return frames,
                Err(End::Torn(n)) => panic!("the runtime tore a frame ({n} header bytes) after {frames:?}"),
            }
        }
    }

    /// Reads until the stream ends and returns the goaway it carried, if any.
    pub async fn goaway_then_close(&mut self) -> Option<(u64, String)> {
        self.until_closed().await.into_iter().find_map(|f| match f {
            Frame::GoAway { code, message } => Some((code, message)),
            _ => None,
        })
    }
}
