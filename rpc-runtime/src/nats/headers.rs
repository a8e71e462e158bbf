//! The call's fields as NATS headers, both ways, and framework errors as the service API's
//! error headers.
//!
//! | header | value |
//! |---|---|
//! | `Rpc-Call-Id` | the caller's call id, decimal `u64` (for logs and [`Context::request_id`](crate::Context::request_id)) |
//! | `Rpc-Timeout-Us` | time left until the caller's deadline, in microseconds, when sent |
//! | `Rpc-Format` | `postcard` (the default when absent) or `json` |
//! | `Rpc-Signature` | the caller's signature hash, 16 hex digits (absent: no check) |
//! | `Nats-Service-Error-Code`, `Nats-Service-Error` | on an error reply: the code of `PROTOCOL.md` and the message |
//! | any other | a metadata entry, the header's name as its key |

use std::time::Duration;

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{HeaderMap, HeaderName, HeaderValue};

use crate::codec::Format;
use crate::{Metadata, RpcError};

pub(crate) const CALL_ID: &str = "Rpc-Call-Id";
pub(crate) const TIMEOUT_US: &str = "Rpc-Timeout-Us";
pub(crate) const FORMAT: &str = "Rpc-Format";
pub(crate) const SIGNATURE: &str = "Rpc-Signature";

/// Whether a header name is the binding's own rather than metadata: `Rpc-*` and `Nats-*` (the
/// broker's and the service API's) are reserved.
fn reserved(name: &str) -> bool {
    let lower = |p: &str| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p);
    lower("Rpc-") || lower("Nats-")
}

/// The headers of an outgoing call.
pub(crate) fn encode_call(
    id: u64,
    format: Format,
    signature: u64,
    timeout: Option<Duration>,
    metadata: &Metadata,
) -> Result<HeaderMap, RpcError> {
    let mut headers = HeaderMap::new();
    headers.insert(CALL_ID, id.to_string().as_str());
    if format != Format::Postcard {
        headers.insert(FORMAT, format.name());
    }
    if signature != 0 {
        headers.insert(SIGNATURE, format!("{signature:016x}").as_str());
    }
    if let Some(timeout) = timeout {
        let us = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX).max(1);
        headers.insert(TIMEOUT_US, us.to_string().as_str());
    }
    for (key, value) in metadata.iter() {
        let name: HeaderName = match key.parse() {
            Ok(name) if !reserved(key) => name,
            _ => {
                return Err(RpcError::Encode(format!(
                    "the metadata key `{key}` cannot be a NATS header name (printable ASCII without `:`, not starting with `Rpc-` or `Nats-`)"
                )))
            }
        };
        let value: HeaderValue = value.parse().map_err(|_| {
            RpcError::Encode(format!(
                "the metadata value of `{key}` holds a line break, which a NATS header cannot"
            ))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// A call's fields as a server decoded them from the headers.
#[derive(Debug)]
pub(crate) struct CallHeaders {
    pub(crate) id: u64,
    pub(crate) format: Format,
    pub(crate) signature: u64,
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata: Metadata,
}

/// Decodes a request's headers; a malformed field is the error the caller gets back.
pub(crate) fn decode_call(headers: Option<&HeaderMap>) -> Result<CallHeaders, RpcError> {
    let mut call = CallHeaders {
        id: 0,
        format: Format::Postcard,
        signature: 0,
        timeout: None,
        metadata: Metadata::new(),
    };
    let Some(headers) = headers else { return Ok(call) };
    for (name, values) in headers.iter() {
        let key: &str = name.as_ref();
        let first = || values.first().map(HeaderValue::as_str).unwrap_or("").trim();
        match key {
            CALL_ID => {
                call.id = first().parse().map_err(|_| malformed(CALL_ID, "a decimal u64", first()))?;
            }
            FORMAT => {
                call.format = Format::from_name(first())
                    .filter(|f| Format::available().contains(f))
                    .ok_or_else(|| {
                        RpcError::Decode(format!(
                            "the format `{}` is not one this server speaks",
                            clip(first())
                        ))
                    })?;
            }
            SIGNATURE => {
                call.signature = u64::from_str_radix(first(), 16)
                    .map_err(|_| malformed(SIGNATURE, "16 hex digits", first()))?;
            }
            TIMEOUT_US => {
                let us: u64 = first().parse().map_err(|_| malformed(TIMEOUT_US, "microseconds", first()))?;
                call.timeout = Some(Duration::from_micros(us));
            }
            _ if reserved(key) => {}
            _ => {
                for value in values {
                    call.metadata.push_raw(key.to_owned(), value.as_str().to_owned());
                }
            }
        }
    }
    Ok(call)
}

fn malformed(header: &str, expected: &str, got: &str) -> RpcError {
    RpcError::Protocol(format!("the `{header}` header is not {expected}: `{}`", clip(got)))
}

/// At most 64 characters of a peer's text, for an error message.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The service API's error headers for `error`: the code of `PROTOCOL.md` and its message.
pub(crate) fn error_parts(error: &RpcError) -> (usize, String) {
    let (code, message) = error.to_wire();
    // A header value is one line.
    let message = message.replace(['\r', '\n'], " ");
    (code as usize, message)
}

/// The error an error reply carries, if it is one.
pub(crate) fn decode_error(headers: Option<&HeaderMap>) -> Option<RpcError> {
    let headers = headers?;
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?.as_str().trim();
    let message = headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str().to_owned()).unwrap_or_default();
    Some(match code.parse::<u64>() {
        Ok(code) => RpcError::from_wire(code, message),
        Err(_) => RpcError::Protocol(format!("an error reply with the code `{}`: {message}", clip(code))),
    })
}

/// The bytes a header block takes on the wire (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`),
/// to tell a caller the size of a message over the broker's limit.
pub(crate) fn wire_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .flat_map(|(name, values)| {
            values.iter().map(move |v| AsRef::<str>::as_ref(name).len() + 4 + v.as_str().len())
        })
        .sum::<usize>()
        + 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_round_trips_through_headers() {
        let mut md = Metadata::new();
        md.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        md.insert("tenant", "a").insert("tenant", "b");
        let headers =
            encode_call(7, Format::Json, 0xdead_beef, Some(Duration::from_millis(1500)), &md).unwrap();
        let call = decode_call(Some(&headers)).unwrap();
        assert_eq!((call.id, call.format, call.signature), (7, Format::Json, 0xdead_beef));
        assert_eq!(call.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(call.metadata.get("traceparent"), md.get("traceparent"));
        let tenants: Vec<_> = call.metadata.iter().filter(|(k, _)| *k == "tenant").map(|(_, v)| v).collect();
        assert_eq!(tenants, ["a", "b"], "repeated keys keep their order");
    }

    #[test]
    fn metadata_that_cannot_be_a_header_is_refused() {
        for (key, value) in [("has space", "v"), ("a:b", "v"), ("Rpc-Format", "json"), ("k", "line\r\nbreak")]
        {
            let md: Metadata = [(key, value)].into_iter().collect();
            let err = encode_call(1, Format::Postcard, 0, None, &md).unwrap_err();
            assert!(matches!(err, RpcError::Encode(_)), "{key}: {err}");
        }
    }

    #[test]
    fn malformed_headers_are_named_errors() {
        for (name, value, expect) in [
            (TIMEOUT_US, "soon", "Rpc-Timeout-Us"),
            (SIGNATURE, "xyz", "Rpc-Signature"),
            (CALL_ID, "-1", "Rpc-Call-Id"),
            (FORMAT, "xml", "xml"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, value);
            let err = decode_call(Some(&headers)).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
    }

    #[test]
    fn errors_round_trip_through_the_service_api_headers() {
        let error = RpcError::SignatureMismatch { method: "S.m".into(), detail: "hashes\ndiffer".into() };
        let (code, message) = error_parts(&error);
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR_CODE, code.to_string().as_str());
        headers.insert(NATS_SERVICE_ERROR, message.as_str());
        match decode_error(Some(&headers)) {
            Some(RpcError::SignatureMismatch { method, detail }) => {
                assert_eq!((method.as_str(), detail.as_str()), ("S.m", "hashes differ"))
            }
            other => panic!("{other:?}"),
        }
    }
}
