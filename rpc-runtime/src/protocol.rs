//! The wire protocol: connection preface, frame kinds and the envelope of each frame.
//!
//! `PROTOCOL.md` at the repository root is the normative description; this module implements
//! it. Every field is a LEB128 varint (the same encoding postcard uses for integers), a single
//! byte, or a varint-length-prefixed UTF-8 string; payloads are postcard and run to the end of
//! the frame.

use std::time::Duration;

use bytes::Bytes;
use rpc_transport::framed::FrameBuf;

use crate::RpcError;

/// Magic bytes, protocol version and a reserved byte, sent by both sides before any frame.
pub(crate) const PREFACE: [u8; 8] = [0x89, b'R', b'P', b'C', b'\r', b'\n', VERSION, 0];
/// The protocol version this build speaks.
pub(crate) const VERSION: u8 = 1;

/// Checks a peer's preface; the error says what the peer seems to speak.
pub(crate) fn check_preface(got: &[u8]) -> Result<(), RpcError> {
    if got[..6] != PREFACE[..6] {
        let shown = String::from_utf8_lossy(got).escape_debug().to_string();
        return Err(RpcError::Protocol(format!(
            "the peer does not speak this RPC protocol (expected preface {:02x?}, got {shown:?})",
            &PREFACE[..6]
        )));
    }
    if got[6] != VERSION {
        return Err(RpcError::Protocol(format!(
            "the peer speaks protocol version {}, this side speaks version {VERSION}",
            got[6]
        )));
    }
    Ok(())
}

mod kind {
    pub(super) const REQUEST: u8 = 1;
    pub(super) const RESPONSE: u8 = 2;
    pub(super) const ERROR: u8 = 3;
    pub(super) const CANCEL: u8 = 4;
    pub(super) const PING: u8 = 5;
    pub(super) const PONG: u8 = 6;
    pub(super) const GOAWAY: u8 = 7;
}

/// Request flag: a deadline (remaining time in microseconds) follows.
const FLAG_DEADLINE: u8 = 1;
/// Request flag: the caller wants no response.
const FLAG_ONEWAY: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_DEADLINE | FLAG_ONEWAY;

/// Error codes carried by error and goaway frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ErrorCode {
    UnknownMethod = 1,
    BadRequest = 2,
    Internal = 3,
    DeadlineExceeded = 4,
    Overloaded = 5,
    ShuttingDown = 6,
    Cancelled = 7,
    FrameTooLarge = 8,
    Protocol = 9,
    Idle = 10,
}

impl ErrorCode {
    pub(crate) fn from_u64(v: u64) -> Option<Self> {
        use ErrorCode::*;
        Some(match v {
            1 => UnknownMethod,
            2 => BadRequest,
            3 => Internal,
            4 => DeadlineExceeded,
            5 => Overloaded,
            6 => ShuttingDown,
            7 => Cancelled,
            8 => FrameTooLarge,
            9 => Protocol,
            10 => Idle,
            _ => return None,
        })
    }
}

/// A decoded frame. Payloads and strings borrow from the frame's buffer.
#[derive(Debug)]
pub(crate) enum Message {
    Request { id: u64, timeout: Option<Duration>, oneway: bool, method: Bytes, payload: Bytes },
    Response { id: u64, payload: Bytes },
    Error { id: u64, code: u64, message: String },
    Cancel { id: u64 },
    Ping { nonce: u64 },
    Pong,
    GoAway { code: u64, message: String },
}

/// Starts a request frame; the caller appends the postcard payload.
pub(crate) fn request_header(id: u64, method: &str, timeout: Option<Duration>, oneway: bool) -> FrameBuf {
    request_header_raw(id, method.as_bytes(), timeout, oneway)
}

/// [`request_header`] for a method name that may not be UTF-8 (for fuzzing and tests).
pub(crate) fn request_header_raw(
    id: u64,
    method: &[u8],
    timeout: Option<Duration>,
    oneway: bool,
) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(32 + method.len());
    buf.push(kind::REQUEST);
    put_varint(&mut buf, id);
    let flags = if timeout.is_some() { FLAG_DEADLINE } else { 0 } | if oneway { FLAG_ONEWAY } else { 0 };
    buf.push(flags);
    if let Some(t) = timeout {
        put_varint(&mut buf, u64::try_from(t.as_micros()).unwrap_or(u64::MAX));
    }
    put_bytes(&mut buf, method);
    buf
}

/// Starts a response frame; the caller appends the postcard payload.
pub(crate) fn response_header(id: u64) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(64);
    buf.push(kind::RESPONSE);
    put_varint(&mut buf, id);
    buf
}

pub(crate) fn error_frame(id: u64, error: &RpcError) -> FrameBuf {
    let (code, message) = error.to_wire();
    error_frame_raw(id, code as u64, &message)
}

pub(crate) fn error_frame_raw(id: u64, code: u64, message: &str) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(16 + message.len());
    buf.push(kind::ERROR);
    put_varint(&mut buf, id);
    put_varint(&mut buf, code);
    put_str(&mut buf, message);
    buf
}

pub(crate) fn cancel_frame(id: u64) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(12);
    buf.push(kind::CANCEL);
    put_varint(&mut buf, id);
    buf
}

pub(crate) fn ping_frame(nonce: u64, pong: bool) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(12);
    buf.push(if pong { kind::PONG } else { kind::PING });
    put_varint(&mut buf, nonce);
    buf
}

pub(crate) fn goaway_frame(code: ErrorCode, message: &str) -> FrameBuf {
    goaway_frame_raw(code as u64, message)
}

pub(crate) fn goaway_frame_raw(code: u64, message: &str) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(16 + message.len());
    buf.push(kind::GOAWAY);
    put_varint(&mut buf, code);
    put_str(&mut buf, message);
    buf
}

fn put_varint(buf: &mut FrameBuf, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_str(buf: &mut FrameBuf, s: &str) {
    put_bytes(buf, s.as_bytes());
}

fn put_bytes(buf: &mut FrameBuf, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Reads fields off the front of a frame body.
struct Cursor {
    body: Bytes,
    pos: usize,
}

impl Cursor {
    fn u8(&mut self, what: &str) -> Result<u8, RpcError> {
        let b = *self.body.get(self.pos).ok_or_else(|| truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, what: &str) -> Result<u64, RpcError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(RpcError::Protocol(format!("{what} overflows a 64-bit varint")));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RpcError::Protocol(format!("{what} overflows a 64-bit varint")))
    }

    fn bytes(&mut self, what: &str) -> Result<Bytes, RpcError> {
        let len = self.varint(what)?;
        let remaining = (self.body.len() - self.pos) as u64;
        if len > remaining {
            return Err(truncated(what));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(self.body.slice(start..self.pos))
    }

    fn string(&mut self, what: &str) -> Result<String, RpcError> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| RpcError::Protocol(format!("{what} is not valid UTF-8")))
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.body.slice(self.pos..);
        self.pos = self.body.len();
        rest
    }

    fn end(&self, what: &str) -> Result<(), RpcError> {
        if self.pos != self.body.len() {
            return Err(RpcError::Protocol(format!(
                "{} trailing bytes after the {what} frame",
                self.body.len() - self.pos
            )));
        }
        Ok(())
    }
}

fn truncated(what: &str) -> RpcError {
    RpcError::Protocol(format!("frame ends inside its {what}"))
}

/// Decodes a frame body into a message. On a request whose id was readable but whose envelope is
/// malformed, the error comes with the id so the server can answer that call alone.
pub(crate) fn decode(body: Bytes) -> Result<Message, (Option<u64>, RpcError)> {
    let mut c = Cursor { body, pos: 0 };
    let kind = c.u8("frame kind").map_err(|e| (None, e))?;
    let msg = match kind {
        kind::REQUEST => {
            let id = c.varint("request id").map_err(|e| (None, e))?;
            let with_id = |e| (Some(id), e);
            let flags = c.u8("request flags").map_err(with_id)?;
            if flags & !KNOWN_FLAGS != 0 {
                return Err((Some(id), RpcError::Protocol(format!("unknown request flags {flags:#04x}"))));
            }
            let timeout = if flags & FLAG_DEADLINE != 0 {
                Some(Duration::from_micros(c.varint("deadline").map_err(with_id)?))
            } else {
                None
            };
            let method = c.bytes("method name").map_err(with_id)?;
            let payload = c.rest();
            Message::Request { id, timeout, oneway: flags & FLAG_ONEWAY != 0, method, payload }
        }
        kind::RESPONSE => {
            let id = c.varint("response id").map_err(|e| (None, e))?;
            Message::Response { id, payload: c.rest() }
        }
        kind::ERROR => {
            let id = c.varint("error id").map_err(|e| (None, e))?;
            let code = c.varint("error code").map_err(|e| (Some(id), e))?;
            let message = c.string("error message").map_err(|e| (Some(id), e))?;
            c.end("error").map_err(|e| (Some(id), e))?;
            Message::Error { id, code, message }
        }
        kind::CANCEL => {
            let id = c.varint("cancel id").map_err(|e| (None, e))?;
            c.end("cancel").map_err(|e| (None, e))?;
            Message::Cancel { id }
        }
        kind::PING | kind::PONG => {
            let nonce = c.varint("ping nonce").map_err(|e| (None, e))?;
            c.end("ping").map_err(|e| (None, e))?;
            if kind == kind::PING {
                Message::Ping { nonce }
            } else {
                Message::Pong
            }
        }
        kind::GOAWAY => {
            let code = c.varint("goaway code").map_err(|e| (None, e))?;
            let message = c.string("goaway message").map_err(|e| (None, e))?;
            c.end("goaway").map_err(|e| (None, e))?;
            Message::GoAway { code, message }
        }
        other => return Err((None, RpcError::Protocol(format!("unknown frame kind {other}")))),
    };
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(buf: FrameBuf) -> Bytes {
        Bytes::copy_from_slice(buf.body())
    }

    #[test]
    fn request_round_trips() {
        let mut buf = request_header(300, "add", Some(Duration::from_millis(1500)), false);
        buf.extend_from_slice(&[1, 2, 3]);
        match decode(body(buf)).unwrap() {
            Message::Request { id, timeout, oneway, method, payload } => {
                assert_eq!((id, timeout, oneway), (300, Some(Duration::from_millis(1500)), false));
                assert_eq!(&method[..], b"add");
                assert_eq!(&payload[..], &[1, 2, 3]);
            }
            other => panic!("decoded {other:?}"),
        }
    }

    /// The worked example in PROTOCOL.md, byte for byte.
    #[test]
    fn protocol_md_example() {
        let mut req = request_header(1, "add", Some(Duration::from_secs(1)), false);
        crate::codec::encode_into(crate::codec::Format::Postcard, &mut req, &(1i64, 2i64), 1 << 20).unwrap();
        let frame = req.finish(1 << 20).unwrap();
        assert_eq!(frame.as_bytes(), [0, 0, 0, 0x0c, 1, 1, 1, 0xc0, 0x84, 0x3d, 3, b'a', b'd', b'd', 2, 4]);
        let mut resp = response_header(1);
        crate::codec::encode_into(crate::codec::Format::Postcard, &mut resp, &3i64, 1 << 20).unwrap();
        assert_eq!(resp.finish(1 << 20).unwrap().as_bytes(), [0, 0, 0, 3, 2, 1, 6]);
        assert_eq!(PREFACE, [0x89, 0x52, 0x50, 0x43, 0x0d, 0x0a, 0x01, 0x00]);
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let mut raw = vec![kind::CANCEL];
        raw.extend_from_slice(&[0xff; 11]);
        let err = decode(Bytes::from(raw)).unwrap_err().1;
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[test]
    fn malformed_request_reports_its_id() {
        let raw = vec![kind::REQUEST, 7, 0, 200];
        let (id, err) = decode(Bytes::from(raw)).unwrap_err();
        assert_eq!(id, Some(7));
        assert!(err.to_string().contains("method name"), "{err}");
    }

    #[test]
    fn preface_mismatch_names_the_version() {
        let mut other = PREFACE;
        other[6] = 9;
        let err = check_preface(&other).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
        let err = check_preface(b"GET / HT").unwrap_err().to_string();
        assert!(err.contains("does not speak"), "{err}");
    }
}
