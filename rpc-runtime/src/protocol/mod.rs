//! The wire protocol (version 2): connection preface, frame kinds and the envelope of each frame.
//!
//! `PROTOCOL.md` at the repository root is the normative description; this module implements
//! it. Every field is a LEB128 varint (the same encoding postcard uses for integers), a single
//! byte, 8 little-endian bytes (a signature hash), or a varint-length-prefixed UTF-8 string;
//! bodies run to the end of the frame.

mod decode;
mod encode;
mod hello;

use std::time::Duration;

use bytes::Bytes;

pub(crate) use decode::decode;
pub(crate) use encode::*;
pub(crate) use hello::{decode_hello, encode_hello, MIN_MAX_FRAME_LEN};

use crate::describe::MethodKind;
use crate::hello::Hello;
use crate::{Metadata, RpcError};

/// Magic bytes, protocol version and a reserved byte, sent by both sides before any frame.
pub(crate) const PREFACE: [u8; 8] = [0x89, b'R', b'P', b'C', b'\r', b'\n', VERSION, 0];
/// The protocol version this build speaks.
pub(crate) const VERSION: u8 = 2;

/// Checks a peer's preface; the error says what the peer seems to speak.
pub(crate) fn check_preface(got: &[u8]) -> Result<(), RpcError> {
    // A native message transport delivers the preface as a message of any length.
    if got.len() != PREFACE.len() || got[..6] != PREFACE[..6] {
        let shown = String::from_utf8_lossy(got).escape_debug().to_string();
        return Err(RpcError::Protocol(format!(
            "the peer does not speak this RPC protocol (expected preface {:02x?}, got {shown:?})",
            &PREFACE[..6]
        )));
    }
    if got[6] != VERSION {
        return Err(RpcError::Protocol(format!(
            "the peer speaks protocol version {}, this side speaks version {VERSION}; upgrade the older side",
            got[6]
        )));
    }
    Ok(())
}

/// Frame kinds: the first byte of every frame body.
pub(crate) mod kind {
    pub(crate) const HELLO: u8 = 1;
    pub(crate) const CALL: u8 = 2;
    pub(crate) const REPLY: u8 = 3;
    pub(crate) const ERROR: u8 = 4;
    pub(crate) const ITEM: u8 = 5;
    pub(crate) const END: u8 = 6;
    pub(crate) const CANCEL: u8 = 7;
    pub(crate) const CREDIT: u8 = 8;
    pub(crate) const PING: u8 = 9;
    pub(crate) const PONG: u8 = 10;
    pub(crate) const GOAWAY: u8 = 11;
}

/// Call flag: a deadline (remaining time in microseconds) follows the hash.
const FLAG_DEADLINE: u8 = 1;
/// Call and reply flag: metadata follows.
const FLAG_METADATA: u8 = 2;

/// A call's kind byte.
pub(crate) fn kind_byte(kind: MethodKind) -> u8 {
    match kind {
        MethodKind::Unary => 0,
        MethodKind::Oneway => 1,
        MethodKind::ServerStream => 2,
        MethodKind::ClientStream => 3,
        MethodKind::Bidi => 4,
    }
}

fn kind_from_byte(b: u8) -> Option<MethodKind> {
    Some(match b {
        0 => MethodKind::Unary,
        1 => MethodKind::Oneway,
        2 => MethodKind::ServerStream,
        3 => MethodKind::ClientStream,
        4 => MethodKind::Bidi,
        _ => return None,
    })
}

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
    UnknownService = 11,
    SignatureMismatch = 12,
    StreamProtocol = 13,
    MetadataTooLarge = 14,
    UnsupportedFormat = 15,
    Unauthenticated = 16,
    PermissionDenied = 17,
    RateLimited = 18,
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
            11 => UnknownService,
            12 => SignatureMismatch,
            13 => StreamProtocol,
            14 => MetadataTooLarge,
            15 => UnsupportedFormat,
            16 => Unauthenticated,
            17 => PermissionDenied,
            18 => RateLimited,
            _ => return None,
        })
    }
}

/// A decoded call's envelope. Names and the body borrow from the frame's buffer.
#[derive(Debug)]
pub(crate) struct CallHead {
    pub(crate) id: u64,
    pub(crate) kind: MethodKind,
    pub(crate) format: u8,
    pub(crate) service: Bytes,
    pub(crate) method: Bytes,
    pub(crate) hash: u64,
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata: Metadata,
}

/// A decoded frame. Bodies and names borrow from the frame's buffer.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a call is the common frame: boxing it costs an allocation each
pub(crate) enum Message {
    Hello(Box<Hello>),
    Call { head: CallHead, body: Bytes },
    Reply { id: u64, metadata: Metadata, body: Bytes },
    Error { id: u64, code: u64, message: String },
    Item { id: u64, body: Bytes },
    End { id: u64 },
    Cancel { id: u64 },
    Credit { id: u64, credit: u64 },
    Ping { nonce: u64 },
    Pong,
    GoAway { code: u64, message: String },
}

impl Message {
    /// The id of the stream a stream frame (item, end, credit) names.
    pub(crate) fn stream_id(&self) -> Option<u64> {
        match self {
            Message::Item { id, .. } | Message::End { id } | Message::Credit { id, .. } => Some(*id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
