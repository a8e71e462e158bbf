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
use crate::{Metadata, RpcError};

/// The connection preface both sides send first.
pub const PREFACE: [u8; 8] = protocol::PREFACE;

/// One service in a HELLO: its name, and its methods as (name, kind byte, hash).
pub type AdvertisedEntry = (String, Vec<(String, u8, u64)>);

/// An owned copy of a decoded frame body, one variant per frame kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// The first frame each way.
    Hello {
        /// Longest frame the sender accepts.
        max_frame_len: u64,
        /// Calls it serves at once.
        max_concurrent_calls: u64,
        /// Stream window, in items.
        stream_window: u64,
        /// Format bit set.
        formats: u64,
        /// Services: name, then methods as (name, kind byte, hash).
        services: Vec<AdvertisedEntry>,
    },
    /// A call; `timeout` is the remaining time the caller allows, in whole microseconds.
    Call {
        /// Call id.
        id: u64,
        /// Kind byte (0 unary, 1 one-way, 2-4 streams).
        kind: u8,
        /// Format byte.
        format: u8,
        /// The service's wire name (not checked to be UTF-8 at this layer).
        service: Vec<u8>,
        /// The method's wire name (not checked to be UTF-8 at this layer).
        method: Vec<u8>,
        /// Signature hash.
        hash: u64,
        /// Remaining time, if the caller set a deadline.
        timeout: Option<Duration>,
        /// Metadata pairs.
        metadata: Vec<(String, String)>,
        /// The encoded arguments.
        payload: Vec<u8>,
    },
    /// A successful result.
    Reply {
        /// Call id.
        id: u64,
        /// Metadata pairs.
        metadata: Vec<(String, String)>,
        /// The encoded result.
        payload: Vec<u8>,
    },
    /// A failed call.
    Error {
        /// Call id.
        id: u64,
        /// Error code.
        code: u64,
        /// Error message.
        message: String,
    },
    /// A stream item.
    Item {
        /// Stream id.
        id: u64,
        /// The encoded item.
        payload: Vec<u8>,
    },
    /// The end of one side of a stream.
    End {
        /// Stream id.
        id: u64,
    },
    /// Cancels a call.
    Cancel {
        /// Call id.
        id: u64,
    },
    /// Grants stream credit.
    Credit {
        /// Stream id.
        id: u64,
        /// Items granted.
        credit: u64,
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

fn pairs(metadata: &Metadata) -> Vec<(String, String)> {
    metadata.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn metadata(pairs: &[(String, String)]) -> Metadata {
    pairs.iter().cloned().collect()
}

/// Decodes a frame body exactly as a server or client does. `Err` carries the call id when
/// the decoder could read one, and the error's text.
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, (Option<u64>, String)> {
    match protocol::decode(Bytes::copy_from_slice(body)) {
        Ok(Message::Hello(h)) => Ok(Envelope::Hello {
            max_frame_len: h.max_frame_len,
            max_concurrent_calls: h.max_concurrent_calls,
            stream_window: h.stream_window,
            formats: h.formats,
            services: h
                .services
                .iter()
                .map(|s| {
                    let methods = s
                        .methods
                        .iter()
                        .map(|m| (m.name.clone(), protocol::kind_byte(m.kind), m.signature_hash))
                        .collect();
                    (s.name.clone(), methods)
                })
                .collect(),
        }),
        Ok(Message::Call { head, body }) => Ok(Envelope::Call {
            id: head.id,
            kind: protocol::kind_byte(head.kind),
            format: head.format,
            service: head.service.to_vec(),
            method: head.method.to_vec(),
            hash: head.hash,
            timeout: head.timeout,
            metadata: pairs(&head.metadata),
            payload: body.to_vec(),
        }),
        Ok(Message::Reply { id, metadata, body }) => {
            Ok(Envelope::Reply { id, metadata: pairs(&metadata), payload: body.to_vec() })
        }
        Ok(Message::Error { id, code, message }) => Ok(Envelope::Error { id, code, message }),
        Ok(Message::Item { id, body }) => Ok(Envelope::Item { id, payload: body.to_vec() }),
        Ok(Message::End { id }) => Ok(Envelope::End { id }),
        Ok(Message::Cancel { id }) => Ok(Envelope::Cancel { id }),
        Ok(Message::Credit { id, credit }) => Ok(Envelope::Credit { id, credit }),
        Ok(Message::Ping { nonce }) => Ok(Envelope::Ping { nonce }),
        // The decoder drops a pong's nonce; report it as 0 so round trips compare equal.
        Ok(Message::Pong) => Ok(Envelope::Pong { nonce: 0 }),
        Ok(Message::GoAway { code, message }) => Ok(Envelope::GoAway { code, message }),
        Err((id, e)) => Err((id, e.to_string())),
    }
}

/// Encodes a frame body (without the 4-byte length header) with the same functions a peer uses.
/// A kind or format byte the encoder has no name for is written as the nearest valid one, so
/// every encoded envelope is one a peer could send.
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    let buf = match envelope {
        Envelope::Hello { max_frame_len, max_concurrent_calls, stream_window, formats, services } => {
            let hello = crate::hello::Hello {
                version: u64::from(protocol::VERSION),
                max_frame_len: *max_frame_len,
                max_concurrent_calls: *max_concurrent_calls,
                stream_window: *stream_window,
                formats: *formats,
                services: services
                    .iter()
                    .map(|(name, methods)| crate::hello::AdvertisedService {
                        name: name.clone(),
                        methods: methods
                            .iter()
                            .map(|(name, kind, hash)| crate::hello::AdvertisedMethod {
                                name: name.clone(),
                                kind: kind_of(*kind),
                                signature_hash: *hash,
                            })
                            .collect(),
                    })
                    .collect(),
            };
            protocol::encode_hello(&hello)
        }
        Envelope::Call { id, kind, format, service, method, hash, timeout, metadata: md, payload } => {
            let target = protocol::Target { service, method, kind: kind_of(*kind), hash: *hash };
            let format = protocol::format_from_byte(*format).unwrap_or(crate::Format::Postcard);
            let mut buf = protocol::call_header(*id, target, format, *timeout, &metadata(md));
            buf.extend_from_slice(payload);
            buf
        }
        Envelope::Reply { id, metadata: md, payload } => {
            let mut buf = protocol::reply_header_with(*id, &metadata(md));
            buf.extend_from_slice(payload);
            buf
        }
        Envelope::Error { id, code, message } => protocol::error_frame_raw(*id, *code, message),
        Envelope::Item { id, payload } => {
            let mut buf = protocol::item_header(*id);
            buf.extend_from_slice(payload);
            buf
        }
        Envelope::End { id } => protocol::end_frame(*id),
        Envelope::Cancel { id } => protocol::cancel_frame(*id),
        Envelope::Credit { id, credit } => protocol::credit_frame(*id, *credit),
        Envelope::Ping { nonce } => protocol::ping_frame(*nonce, false),
        Envelope::Pong { nonce } => protocol::ping_frame(*nonce, true),
        Envelope::GoAway { code, message } => protocol::goaway_frame_raw(*code, message),
    };
    buf.body_to_vec()
}

fn kind_of(byte: u8) -> crate::describe::MethodKind {
    use crate::describe::MethodKind::*;
    [Unary, Oneway, ServerStream, ClientStream, Bidi][usize::from(byte.min(4))]
}

/// Decodes a payload as the runtime does (strict, depth- and element-bounded).
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    crate::codec::decode(crate::codec::Format::Postcard, bytes)
}

/// Encodes a payload as the runtime does, failing past `max` bytes.
pub fn encode_payload<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, RpcError> {
    let mut buf = rpc_transport::framed::FrameBuf::default();
    crate::codec::encode_into(crate::codec::Format::Postcard, &mut buf, value, max)?;
    Ok(buf.body_to_vec())
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
    Ok(buf.body_to_vec())
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
