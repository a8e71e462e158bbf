//! Internals exposed for fuzz targets, property tests and their replay tests. Not a public API:
//! no semver guarantees, and nothing here is needed to use the framework.
//!
//! The surface is the smallest that lets code outside this crate drive the two decoders a peer's
//! bytes reach before any user code: the frame envelope ([`decode_envelope`], the inverse
//! [`encode_envelope`]) and the payload codec ([`decode_payload`], [`encode_payload`]).

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::protocol::{self, Message};
use crate::RpcError;

/// The connection preface both sides send first.
pub const PREFACE: [u8; 8] = protocol::PREFACE;

/// An owned copy of a decoded frame body, one variant per frame kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// A call; `timeout` is the remaining time the caller allows, in whole microseconds.
    Request {
        /// Request id.
        id: u64,
        /// Remaining time, if the caller set a deadline.
        timeout: Option<Duration>,
        /// Whether the caller wants no response.
        oneway: bool,
        /// The method's wire name (not checked to be UTF-8 at this layer).
        method: Vec<u8>,
        /// The postcard-encoded arguments.
        payload: Vec<u8>,
    },
    /// A successful result.
    Response {
        /// Request id.
        id: u64,
        /// The postcard-encoded result.
        payload: Vec<u8>,
    },
    /// A failed call.
    Error {
        /// Request id.
        id: u64,
        /// Error code.
        code: u64,
        /// Error message.
        message: String,
    },
    /// Cancels a call.
    Cancel {
        /// Request id.
        id: u64,
    },
    /// A keepalive probe.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// The answer to a ping (its nonce is not kept).
    Pong {
        /// The nonce, re-encoded as given.
        nonce: u64,
    },
    /// The sender will close the connection or refuse new calls.
    GoAway {
        /// Error code.
        code: u64,
        /// Why.
        message: String,
    },
}

/// Decodes a frame body exactly as a server or client does. `Err` carries the request id when
/// the decoder could read one, and the error's text.
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, (Option<u64>, String)> {
    match protocol::decode(Bytes::copy_from_slice(body)) {
        Ok(Message::Request { id, timeout, oneway, method, payload }) => {
            Ok(Envelope::Request { id, timeout, oneway, method: method.to_vec(), payload: payload.to_vec() })
        }
        Ok(Message::Response { id, payload }) => Ok(Envelope::Response { id, payload: payload.to_vec() }),
        Ok(Message::Error { id, code, message }) => Ok(Envelope::Error { id, code, message }),
        Ok(Message::Cancel { id }) => Ok(Envelope::Cancel { id }),
        Ok(Message::Ping { nonce }) => Ok(Envelope::Ping { nonce }),
        // The decoder drops a pong's nonce; report it as 0 so round trips compare equal.
        Ok(Message::Pong) => Ok(Envelope::Pong { nonce: 0 }),
        Ok(Message::GoAway { code, message }) => Ok(Envelope::GoAway { code, message }),
        Err((id, e)) => Err((id, e.to_string())),
    }
}

/// Encodes a frame body (without the 4-byte length header) with the same functions a peer uses.
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    let buf = match envelope {
        Envelope::Request { id, timeout, oneway, method, payload } => {
            let mut buf = protocol::request_header_raw(*id, method, *timeout, *oneway);
            buf.extend_from_slice(payload);
            buf
        }
        Envelope::Response { id, payload } => {
            let mut buf = protocol::response_header(*id);
            buf.extend_from_slice(payload);
            buf
        }
        Envelope::Error { id, code, message } => protocol::error_frame_raw(*id, *code, message),
        Envelope::Cancel { id } => protocol::cancel_frame(*id),
        Envelope::Ping { nonce } => protocol::ping_frame(*nonce, false),
        Envelope::Pong { nonce } => protocol::ping_frame(*nonce, true),
        Envelope::GoAway { code, message } => protocol::goaway_frame_raw(*code, message),
    };
    buf.body().to_vec()
}

/// Decodes a payload as the runtime does (strict, depth- and element-bounded).
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    crate::codec::decode(crate::codec::Format::Postcard, bytes)
}

/// Encodes a payload as the runtime does, failing past `max` bytes.
pub fn encode_payload<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, RpcError> {
    let mut buf = rpc_transport::framed::FrameBuf::default();
    crate::codec::encode_into(crate::codec::Format::Postcard, &mut buf, value, max)?;
    Ok(buf.body().to_vec())
}

/// Decodes a payload in `format` as the runtime does (strict, depth- and element-bounded).
pub fn decode_payload_as<T: DeserializeOwned>(format: crate::Format, bytes: &[u8]) -> Result<T, RpcError> {
    crate::codec::decode(format, bytes)
}

/// Encodes a payload in `format` as the runtime does, failing past `max` bytes.
pub fn encode_payload_as<T: Serialize + ?Sized>(
    format: crate::Format,
    value: &T,
    max: usize,
) -> Result<Vec<u8>, RpcError> {
    let mut buf = rpc_transport::framed::FrameBuf::default();
    crate::codec::encode_into(format, &mut buf, value, max)?;
    Ok(buf.body().to_vec())
}

/// Encodes a method's arguments (a tuple) in `format`, as a client does: each `Vec<u8>`
/// argument through the byte fast path, no arguments as an empty tuple.
pub fn encode_args_as<A: crate::codec::WireArgs>(
    format: crate::Format,
    args: &A,
    max: usize,
) -> Result<Vec<u8>, RpcError> {
    encode_payload_as(format, &crate::codec::ArgsRef(args), max)
}

/// Decodes a method's arguments (a tuple) in `format`, as a server does.
pub fn decode_args_as<A: crate::codec::WireArgs>(format: crate::Format, bytes: &[u8]) -> Result<A, RpcError> {
    crate::codec::decode::<crate::codec::Args<A>>(format, bytes).map(|a| a.0)
}

/// Encodes a method's result in `format`, as a server does (a `Vec<u8>` through the fast path).
pub fn encode_result_as<R: Serialize + 'static>(
    format: crate::Format,
    value: &R,
    max: usize,
) -> Result<Vec<u8>, RpcError> {
    encode_payload_as(format, &crate::codec::Arg(value), max)
}

/// Decodes a method's result in `format`, as a client does.
pub fn decode_result_as<R: DeserializeOwned + 'static>(
    format: crate::Format,
    bytes: &[u8],
) -> Result<R, RpcError> {
    crate::codec::decode::<crate::codec::Decoded<R>>(format, bytes).map(|d| d.0)
}
