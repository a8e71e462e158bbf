//! Reading frame envelopes: every length checked, nothing allocated beyond what the frame holds.

use std::time::Duration;

use bytes::Bytes;

use super::{kind, kind_from_byte, CallHead, Message, FLAG_DEADLINE, FLAG_METADATA};
use crate::metadata::check_bounds;
use crate::{Metadata, RpcError};

const CALL_FLAGS: u8 = FLAG_DEADLINE | FLAG_METADATA;
const REPLY_FLAGS: u8 = FLAG_METADATA;

/// Reads fields off the front of a frame body.
pub(super) struct Cursor {
    pub(super) body: Bytes,
    pub(super) pos: usize,
}

impl Cursor {
    pub(super) fn u8(&mut self, what: &str) -> Result<u8, RpcError> {
        let b = *self.body.get(self.pos).ok_or_else(|| truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn u64_le(&mut self, what: &str) -> Result<u64, RpcError> {
        let bytes = self.body.get(self.pos..self.pos + 8).ok_or_else(|| truncated(what))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
    }

    pub(super) fn varint(&mut self, what: &str) -> Result<u64, RpcError> {
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

    pub(super) fn bytes(&mut self, what: &str) -> Result<Bytes, RpcError> {
        let len = self.varint(what)?;
        let remaining = (self.body.len() - self.pos) as u64;
        if len > remaining {
            return Err(truncated(what));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(self.body.slice(start..self.pos))
    }

    pub(super) fn string(&mut self, what: &str) -> Result<String, RpcError> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| RpcError::Protocol(format!("{what} is not valid UTF-8")))
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.body.slice(self.pos..);
        self.pos = self.body.len();
        rest
    }

    pub(super) fn end(&self, what: &str) -> Result<(), RpcError> {
        if self.pos != self.body.len() {
            return Err(RpcError::Protocol(format!(
                "{} trailing bytes after the {what} frame",
                self.body.len() - self.pos
            )));
        }
        Ok(())
    }

    /// Metadata: a count, then that many key and value strings, within the bounds (checked as
    /// they are read, so a forged count or length costs nothing).
    fn metadata(&mut self) -> Result<Metadata, RpcError> {
        let count = self.varint("metadata count")?;
        check_bounds(usize::try_from(count).unwrap_or(usize::MAX), 0)?;
        let mut metadata = Metadata::new();
        let mut bytes = 0usize;
        for _ in 0..count {
            let key = self.string("metadata key")?;
            let value = self.string("metadata value")?;
            bytes += key.len() + value.len();
            check_bounds(0, bytes)?;
            metadata.push_raw(key, value);
        }
        Ok(metadata)
    }
}

pub(super) fn truncated(what: &str) -> RpcError {
    RpcError::Protocol(format!("frame ends inside its {what}"))
}

/// Decodes a frame body into a message. On a call whose id was readable but whose envelope is
/// malformed, the error comes with the id so the server can answer that call alone.
pub(crate) fn decode(body: Bytes) -> Result<Message, (Option<u64>, RpcError)> {
    let mut c = Cursor { body, pos: 0 };
    let kind = c.u8("frame kind").map_err(|e| (None, e))?;
    let no_id = |e| (None, e);
    let msg = match kind {
        kind::HELLO => Message::Hello(Box::new(super::hello::decode_body(&mut c).map_err(no_id)?)),
        kind::CALL => {
            let id = c.varint("call id").map_err(no_id)?;
            let (head, body) = call(&mut c, id).map_err(|e| (Some(id), e))?;
            Message::Call { head, body }
        }
        kind::REPLY => {
            let id = c.varint("reply id").map_err(no_id)?;
            let with_id = |e| (Some(id), e);
            let flags = c.u8("reply flags").map_err(with_id)?;
            if flags & !REPLY_FLAGS != 0 {
                return Err((Some(id), RpcError::Protocol(format!("unknown reply flags {flags:#04x}"))));
            }
            let metadata =
                if flags & FLAG_METADATA != 0 { c.metadata().map_err(with_id)? } else { Metadata::new() };
            Message::Reply { id, metadata, body: c.rest() }
        }
        kind::ERROR => {
            let id = c.varint("error id").map_err(no_id)?;
            let code = c.varint("error code").map_err(|e| (Some(id), e))?;
            let message = c.string("error message").map_err(|e| (Some(id), e))?;
            c.end("error").map_err(|e| (Some(id), e))?;
            Message::Error { id, code, message }
        }
        kind::ITEM => {
            let id = c.varint("item id").map_err(no_id)?;
            Message::Item { id, body: c.rest() }
        }
        kind::END | kind::CANCEL => {
            let what = if kind == kind::END { "end" } else { "cancel" };
            let id = c.varint(if kind == kind::END { "end id" } else { "cancel id" }).map_err(no_id)?;
            c.end(what).map_err(no_id)?;
            if kind == kind::END {
                Message::End { id }
            } else {
                Message::Cancel { id }
            }
        }
        kind::CREDIT => {
            let id = c.varint("credit id").map_err(no_id)?;
            let credit = c.varint("credit").map_err(no_id)?;
            c.end("credit").map_err(no_id)?;
            Message::Credit { id, credit }
        }
        kind::PING | kind::PONG => {
            let nonce = c.varint("ping nonce").map_err(no_id)?;
            c.end("ping").map_err(no_id)?;
            if kind == kind::PING {
                Message::Ping { nonce }
            } else {
                Message::Pong
            }
        }
        kind::GOAWAY => {
            let code = c.varint("goaway code").map_err(no_id)?;
            let message = c.string("goaway message").map_err(no_id)?;
            c.end("goaway").map_err(no_id)?;
            Message::GoAway { code, message }
        }
        other => return Err((None, RpcError::Protocol(format!("unknown frame kind {other}")))),
    };
    Ok(msg)
}

/// A call's envelope after its id, and its body.
fn call(c: &mut Cursor, id: u64) -> Result<(CallHead, Bytes), RpcError> {
    let kind_byte = c.u8("call kind")?;
    let kind = kind_from_byte(kind_byte)
        .ok_or_else(|| RpcError::Protocol(format!("unknown call kind {kind_byte}")))?;
    let flags = c.u8("call flags")?;
    if flags & !CALL_FLAGS != 0 {
        return Err(RpcError::Protocol(format!("unknown call flags {flags:#04x}")));
    }
    let format = c.u8("call format")?;
    let service = c.bytes("service name")?;
    let method = c.bytes("method name")?;
    let hash = c.u64_le("signature hash")?;
    let timeout =
        if flags & FLAG_DEADLINE != 0 { Some(Duration::from_micros(c.varint("deadline")?)) } else { None };
    let metadata = if flags & FLAG_METADATA != 0 { c.metadata()? } else { Metadata::new() };
    let head = CallHead { id, kind, format, service, method, hash, timeout, metadata };
    Ok((head, c.rest()))
}
