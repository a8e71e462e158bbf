//! Writing frame envelopes: each function starts a frame whose body the caller may extend.

use std::time::Duration;

use rpc_transport::framed::FrameBuf;

use super::{kind, kind_byte, ErrorCode, FLAG_DEADLINE, FLAG_METADATA};
use crate::codec::Format;
use crate::describe::MethodKind;
use crate::{Metadata, RpcError};

/// The identity of the method a call names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) service: &'a [u8],
    pub(crate) method: &'a [u8],
    pub(crate) kind: MethodKind,
    pub(crate) hash: u64,
}

/// Starts a call frame; the caller appends the encoded arguments.
pub(crate) fn call_header(
    id: u64,
    target: Target<'_>,
    format: Format,
    timeout: Option<Duration>,
    metadata: &Metadata,
) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(48 + target.service.len() + target.method.len());
    buf.push(kind::CALL);
    put_varint(&mut buf, id);
    buf.push(kind_byte(target.kind));
    let flags = if timeout.is_some() { FLAG_DEADLINE } else { 0 }
        | if metadata.is_empty() { 0 } else { FLAG_METADATA };
    buf.push(flags);
    buf.push(format_byte(format));
    put_bytes(&mut buf, target.service);
    put_bytes(&mut buf, target.method);
    buf.extend_from_slice(&target.hash.to_le_bytes());
    if let Some(t) = timeout {
        put_varint(&mut buf, u64::try_from(t.as_micros()).unwrap_or(u64::MAX));
    }
    if !metadata.is_empty() {
        put_metadata(&mut buf, metadata);
    }
    buf
}

/// Starts a reply frame; the caller appends the encoded result.
pub(crate) fn reply_header(id: u64) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(64);
    buf.push(kind::REPLY);
    put_varint(&mut buf, id);
    buf.push(0);
    buf
}

/// Starts a reply frame that carries metadata.
pub(crate) fn reply_header_with(id: u64, metadata: &Metadata) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(64 + metadata.byte_len());
    buf.push(kind::REPLY);
    put_varint(&mut buf, id);
    if metadata.is_empty() {
        buf.push(0);
    } else {
        buf.push(FLAG_METADATA);
        put_metadata(&mut buf, metadata);
    }
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

/// Starts a stream item frame; the caller appends the encoded item.
pub(crate) fn item_header(id: u64) -> FrameBuf {
    id_frame(kind::ITEM, id)
}

pub(crate) fn end_frame(id: u64) -> FrameBuf {
    id_frame(kind::END, id)
}

pub(crate) fn credit_frame(id: u64, credit: u64) -> FrameBuf {
    let mut buf = id_frame(kind::CREDIT, id);
    put_varint(&mut buf, credit);
    buf
}

pub(crate) fn cancel_frame(id: u64) -> FrameBuf {
    id_frame(kind::CANCEL, id)
}

/// A frame that is its kind and one varint (cancel, end).
fn id_frame(kind: u8, id: u64) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(12);
    buf.push(kind);
    put_varint(&mut buf, id);
    buf
}

pub(crate) fn ping_frame(nonce: u64, pong: bool) -> FrameBuf {
    id_frame(if pong { kind::PONG } else { kind::PING }, nonce)
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

/// A format's byte in a call frame.
pub(crate) const fn format_byte(format: Format) -> u8 {
    match format {
        Format::Postcard => 0,
        Format::Json => 1,
    }
}

/// The format a call frame's byte names, if this build knows it.
pub(crate) fn format_from_byte(b: u8) -> Option<Format> {
    match b {
        0 => Some(Format::Postcard),
        1 => Some(Format::Json),
        _ => None,
    }
}

fn put_metadata(buf: &mut FrameBuf, metadata: &Metadata) {
    put_varint(buf, metadata.len() as u64);
    for (k, v) in metadata.iter() {
        put_str(buf, k);
        put_str(buf, v);
    }
}

pub(crate) fn put_varint(buf: &mut FrameBuf, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_str(buf: &mut FrameBuf, s: &str) {
    put_bytes(buf, s.as_bytes());
}

pub(crate) fn put_bytes(buf: &mut FrameBuf, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}
