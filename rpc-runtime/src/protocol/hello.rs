//! The HELLO frame: written once per connection, read with every count and length bounded.

use rpc_transport::framed::FrameBuf;

use super::decode::Cursor;
use super::encode::{put_str, put_varint};
use super::{kind, kind_byte, kind_from_byte, VERSION};
use crate::hello::{AdvertisedMethod, AdvertisedService, Hello};
use crate::RpcError;

/// The smallest maximum frame length a peer may advertise: below it not even an error frame
/// with a useful message fits.
pub(crate) const MIN_MAX_FRAME_LEN: u64 = 1024;
/// The most services a HELLO may list.
const MAX_SERVICES: u64 = 256;
/// The most methods a HELLO may list, over all its services.
const MAX_METHODS: u64 = 4096;
/// The longest service or method name a HELLO may carry.
const MAX_NAME_LEN: usize = 256;

/// The HELLO frame for `hello`.
pub(crate) fn encode_hello(hello: &Hello) -> FrameBuf {
    let mut buf = FrameBuf::with_capacity(64);
    buf.push(kind::HELLO);
    put_varint(&mut buf, hello.version);
    put_varint(&mut buf, hello.max_frame_len);
    put_varint(&mut buf, hello.max_concurrent_calls);
    put_varint(&mut buf, hello.stream_window);
    put_varint(&mut buf, hello.formats);
    put_varint(&mut buf, hello.services.len() as u64);
    for service in &hello.services {
        put_str(&mut buf, &service.name);
        put_varint(&mut buf, service.methods.len() as u64);
        for method in &service.methods {
            put_str(&mut buf, &method.name);
            buf.push(kind_byte(method.kind));
            buf.extend_from_slice(&method.signature_hash.to_le_bytes());
        }
    }
    buf
}

/// Decodes a whole HELLO frame body (kind byte included).
pub(crate) fn decode_hello(body: bytes::Bytes) -> Result<Hello, RpcError> {
    let mut c = Cursor { body, pos: 0 };
    match c.u8("frame kind")? {
        kind::HELLO => decode_body(&mut c),
        other => {
            Err(RpcError::Protocol(format!("expected a HELLO frame first, got a frame of kind {other}")))
        }
    }
}

/// A HELLO after its kind byte.
pub(super) fn decode_body(c: &mut Cursor) -> Result<Hello, RpcError> {
    let bad = |what: String| RpcError::Protocol(format!("malformed HELLO: {what}"));
    let version = c.varint("HELLO version")?;
    if version != u64::from(VERSION) {
        return Err(bad(format!("version {version} in a version {VERSION} connection")));
    }
    let max_frame_len = c.varint("HELLO max frame")?;
    if max_frame_len < MIN_MAX_FRAME_LEN {
        return Err(bad(format!(
            "advertised maximum frame length {max_frame_len} is below the minimum {MIN_MAX_FRAME_LEN}"
        )));
    }
    // 0 is a client's: it serves no calls.
    let max_concurrent_calls = c.varint("HELLO max calls")?;
    let stream_window = c.varint("HELLO stream window")?;
    if stream_window == 0 {
        return Err(bad("advertises a stream window of 0 items".into()));
    }
    let formats = c.varint("HELLO formats")?;
    if formats & crate::hello::local_formats() == 0 {
        return Err(RpcError::Protocol(format!(
            "the peer speaks no format this side does (its set {formats:#x}, ours {:#x})",
            crate::hello::local_formats()
        )));
    }
    let count = c.varint("HELLO service count")?;
    if count > MAX_SERVICES {
        return Err(bad(format!("{count} services, more than the {MAX_SERVICES} allowed")));
    }
    let mut services = Vec::with_capacity(count as usize);
    let mut total_methods = 0u64;
    for _ in 0..count {
        let name = name_of(c, "HELLO service name")?;
        let n = c.varint("HELLO method count")?;
        total_methods = total_methods.saturating_add(n);
        if total_methods > MAX_METHODS {
            return Err(bad(format!("more than {MAX_METHODS} methods")));
        }
        // Each method takes at least 10 bytes: a count larger than what is left is a lie, and
        // must not size an allocation.
        let mut methods = Vec::with_capacity((n as usize).min(c.body.len().saturating_sub(c.pos) / 10));
        for _ in 0..n {
            let method = name_of(c, "HELLO method name")?;
            let k = c.u8("HELLO method kind")?;
            let kind = kind_from_byte(k).ok_or_else(|| bad(format!("unknown method kind {k}")))?;
            let signature_hash = c.u64_le("HELLO signature hash")?;
            methods.push(AdvertisedMethod { name: method, kind, signature_hash });
        }
        services.push(AdvertisedService { name, methods });
    }
    c.end("HELLO")?;
    Ok(Hello { version, max_frame_len, max_concurrent_calls, stream_window, formats, services })
}

fn name_of(c: &mut Cursor, what: &str) -> Result<String, RpcError> {
    let s = c.string(what)?;
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(RpcError::Protocol(format!(
            "malformed HELLO: {what} of {} bytes (1 to {MAX_NAME_LEN} allowed)",
            s.len()
        )));
    }
    Ok(s)
}
