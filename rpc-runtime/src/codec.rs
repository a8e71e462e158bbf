//! The codec seam: one entry point that encodes a value into an outgoing frame and decodes a
//! payload, in the [`Format`] a connection chose.
//!
//! postcard is the default; JSON (cargo feature `json`, on by default) is the second format,
//! for peers in other languages, tools and people. Every format decodes through the same
//! limits (see `limits.rs`): trailing bytes are rejected, nesting depth ([`MAX_DECODE_DEPTH`])
//! and zero-sized elements ([`MAX_ZERO_SIZED_ELEMENTS`]) are bounded, and no memory is reserved
//! for a length the peer merely declared. The `Vec<u8>` fast path (one copy rather than a call
//! per byte) is in `wire.rs`, taken by compact formats only.
//!
//! Nothing outside this module calls postcard or serde_json: the runtime and generated code
//! call its (crate-private) `encode_into` and `decode` with a format.

#[cfg(feature = "json")]
mod json;
mod limits;
mod postcard;
mod source;
mod wire;

use std::fmt;

use rpc_transport::framed::FrameBuf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RpcError;

pub(crate) use source::{decode_from, with_source};
pub(crate) use wire::{Arg, Args, ArgsRef, Decoded, SentArgs, WireArgs};

/// How messages are encoded on a connection.
///
/// Both variants always exist, whatever the features; a build without the `json` feature
/// cannot encode or decode [`Format::Json`] (a typed error says so), and does not offer it in
/// a handshake (see [`Format::available`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// postcard: compact and schema-less. The default.
    #[default]
    Postcard,
    /// JSON: arguments as an array in declaration order, results as serde writes them.
    Json,
}

impl Format {
    /// The format's name in a handshake and in logs: `postcard` or `json`.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Postcard => "postcard",
            Format::Json => "json",
        }
    }

    /// The format named `name` (as [`Format::name`] spells it), whether or not it is compiled in.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "postcard" => Some(Format::Postcard),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The formats this build can encode and decode, the default first.
    pub const fn available() -> &'static [Format] {
        #[cfg(feature = "json")]
        {
            &[Format::Postcard, Format::Json]
        }
        #[cfg(not(feature = "json"))]
        {
            &[Format::Postcard]
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The deepest nesting a decoded message may have. Each `Some`, newtype, sequence or map element
/// and enum variant's content is one level, so a `struct Node { next: Option<Box<Node>> }`
/// chain spends two levels per node.
///
/// 128 levels need well under 1 MiB of stack even in debug builds, so decoding on a default 2 MiB
/// thread cannot overflow; postcard alone overflows at about 50,000 levels.
pub const MAX_DECODE_DEPTH: usize = 128;

/// The most elements whose type reads nothing from the input (`()` in a `Vec<()>`, a unit
/// struct) one message may hold. Other elements are bounded by the message's length; this
/// bounds the time a forged `u64::MAX` count of zero-sized ones would take.
pub const MAX_ZERO_SIZED_ELEMENTS: usize = 1024;

/// Appends `value`, encoded in `format`, to `buf`, failing with [`RpcError::FrameTooLarge`]
/// when the frame would pass `max` bytes (the frame is then left as it was).
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    format: Format,
    buf: &mut FrameBuf,
    value: &T,
    max: usize,
) -> Result<(), RpcError> {
    match format {
        Format::Postcard => postcard::encode_into(buf, value, max),
        #[cfg(feature = "json")]
        Format::Json => json::encode_into(buf, value, max),
        #[cfg(not(feature = "json"))]
        Format::Json => Err(RpcError::Encode(NO_JSON.into())),
    }
}

/// Encodes `value` in `format` into a buffer of its own (the tower path, where the frame is
/// not known yet).
pub(crate) fn encode_to_vec<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<Vec<u8>, RpcError> {
    let mut buf = FrameBuf::with_capacity(64);
    encode_into(format, &mut buf, value, u32::MAX as usize)?;
    Ok(buf.body_to_vec())
}

/// Decodes a whole payload in `format`; trailing bytes are an error, not silently ignored, so a
/// message from a mismatched schema is caught instead of half-read. Nesting and element counts
/// are bounded, and the error names the limit that was broken.
#[inline]
pub(crate) fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, RpcError> {
    match format {
        Format::Postcard => postcard::decode(bytes),
        #[cfg(feature = "json")]
        Format::Json => json::decode(bytes),
        #[cfg(not(feature = "json"))]
        Format::Json => Err(RpcError::Decode(NO_JSON.into())),
    }
}

#[cfg(not(feature = "json"))]
const NO_JSON: &str = "this build has no JSON codec (cargo feature `json` of rpc-runtime)";

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut buf = FrameBuf::default();
        encode_into(Format::Postcard, &mut buf, value, usize::MAX).unwrap();
        buf.body_to_vec()
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
        super::decode(Format::Postcard, bytes)
    }

    #[test]
    fn a_byte_vector_is_the_same_on_the_wire_either_way() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let as_sequence = encode(&(&v, 7u32));
            let as_bytes = encode(&(Arg(&v), Arg(&7u32)));
            assert_eq!(as_sequence, as_bytes, "len {len}");
            // Each side reads what the other writes.
            let (Decoded(got), Decoded(n)): (Decoded<Vec<u8>>, Decoded<u32>) = decode(&as_sequence).unwrap();
            assert_eq!((got, n), (v.clone(), 7));
            let (plain, n): (Vec<u8>, u32) = decode(&as_bytes).unwrap();
            assert_eq!((plain, n), (v, 7));
        }
    }

    #[test]
    fn argument_tuples_are_encoded_as_tuples() {
        let args = (vec![3u8; 200], 7u32, String::from("x"), vec![1u16, 2]);
        let bytes = encode(&ArgsRef(&args));
        assert_eq!(bytes, encode(&args));
        let Args(back): Args<(Vec<u8>, u32, String, Vec<u16>)> = decode(&bytes).unwrap();
        assert_eq!(back, args);
        assert_eq!(encode(&ArgsRef(&())), encode(&()));
        let Args(()) = decode::<Args<()>>(&[]).unwrap();
        assert!(decode::<Args<(u8, u8)>>(&[1]).is_err(), "a missing argument is an error");
    }

    #[test]
    fn other_types_are_untouched() {
        let value = (vec![1u16, 2, 3], String::from("x"), vec![vec![1u8]]);
        assert_eq!(encode(&Arg(&value)), encode(&value));
        let Decoded(back): Decoded<(Vec<u16>, String, Vec<Vec<u8>>)> = decode(&encode(&value)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn a_bytes_argument_is_a_view_of_its_frame_and_the_same_on_the_wire_as_a_vector() {
        let payload = bytes::Bytes::from(vec![4u8; 70_000]);
        let as_bytes = encode(&ArgsRef(&(payload.clone(), 7u32)));
        assert_eq!(as_bytes, encode(&ArgsRef(&(payload.to_vec(), 7u32))), "the bytes on the wire");
        let frame = bytes::Bytes::from(as_bytes);
        let Args((got, n)): Args<(bytes::Bytes, u32)> = decode_from(Format::Postcard, &frame).unwrap();
        assert_eq!((&got[..], n), (&payload[..], 7));
        let inside = frame.as_ptr_range();
        assert!(inside.contains(&got.as_ptr()), "decoded in place, not copied");
        // Decoded without its frame known, it is a copy, and still right.
        let Args((copied, _)): Args<(bytes::Bytes, u32)> = decode(&frame).unwrap();
        assert!(!inside.contains(&copied.as_ptr()));
        assert_eq!(copied, payload);
        // A result, and JSON (which copies), read back what was written.
        let reply = bytes::Bytes::from_static(&[2, 4, 4]);
        let Decoded(result): Decoded<bytes::Bytes> = decode_from(Format::Postcard, &reply).unwrap();
        assert_eq!(&result[..], &[4, 4], "a varint length of 2, then two bytes");
        #[cfg(feature = "json")]
        {
            let mut buf = FrameBuf::default();
            encode_into(Format::Json, &mut buf, &ArgsRef(&(bytes::Bytes::from_static(b"hi"), 1u8)), 1 << 20)
                .unwrap();
            let json = bytes::Bytes::copy_from_slice(buf.body());
            let Args((back, one)): Args<(bytes::Bytes, u8)> = decode_from(Format::Json, &json).unwrap();
            assert_eq!((&back[..], one), (&b"hi"[..], 1));
        }
    }

    #[test]
    fn a_large_bytes_that_ends_a_frame_is_its_tail_and_the_frame_is_the_same() {
        let big = bytes::Bytes::from(vec![6u8; 40_000]);
        // Last argument: the frame keeps the buffer itself.
        let mut buf = FrameBuf::default();
        encode_into(Format::Postcard, &mut buf, &ArgsRef(&(7u32, big.clone())), 1 << 20).unwrap();
        assert_eq!(buf.tail().as_ptr(), big.as_ptr(), "not copied");
        assert_eq!(buf.body_to_vec(), encode(&(7u32, big.to_vec())), "the same bytes on the wire");
        let frame = buf.finish(1 << 20).unwrap();
        let declared = u32::from_be_bytes(frame.as_bytes()[..4].try_into().unwrap()) as usize;
        assert_eq!(declared + 4, frame.as_bytes().len() + big.len(), "the header counts the tail");
        // Not last, or small: copied.
        let mut buf = FrameBuf::default();
        encode_into(Format::Postcard, &mut buf, &ArgsRef(&(big.clone(), 7u32)), 1 << 20).unwrap();
        assert!(buf.tail().is_empty());
        let mut buf = FrameBuf::default();
        encode_into(Format::Postcard, &mut buf, &Arg(&big.slice(..100)), 1 << 20).unwrap();
        assert!(buf.tail().is_empty());
        // A result, over the limit only with its tail: too large, and nothing kept.
        let mut buf = FrameBuf::default();
        let err = encode_into(Format::Postcard, &mut buf, &Arg(&big), 30_000).unwrap_err();
        assert!(matches!(err, RpcError::FrameTooLarge { max: 30_000, .. }), "{err:?}");
        assert_eq!((buf.body_len(), buf.tail().len()), (0, 0));
        // And a later frame takes no stale tail.
        let mut buf = FrameBuf::default();
        encode_into(Format::Postcard, &mut buf, &Arg(&5u8), 1 << 20).unwrap();
        assert_eq!((buf.body(), buf.tail().len()), (&[5u8][..], 0));
    }

    #[test]
    fn a_large_byte_vector_result_is_written_from_its_own_buffer() {
        let response = |max| crate::ResponseBuf {
            buf: FrameBuf::default(),
            max_frame_len: max,
            format: Format::Postcard,
            stream: None,
        };
        let result = vec![3u8; 50_000];
        let at = result.as_ptr();
        let buf = response(1 << 20).encode_owned(result).unwrap();
        assert_eq!((buf.tail().as_ptr(), buf.tail().len()), (at, 50_000), "moved, not copied");
        assert_eq!(buf.body_to_vec(), encode(&Arg(&vec![3u8; 50_000])));
        // Anything else is encoded as before.
        let buf = response(1 << 20).encode_owned((1u8, vec![3u8; 50_000])).unwrap();
        assert!(buf.tail().is_empty());
        assert!(matches!(response(100).encode_owned(vec![0u8; 50_000]), Err(RpcError::FrameTooLarge { .. })));
    }

    #[test]
    fn a_large_byte_vector_last_argument_is_sent_from_its_own_buffer() {
        let blob = vec![8u8; 40_000];
        let at = blob.as_ptr();
        let expected = encode(&ArgsRef(&(7u32, blob.clone())));
        let mut buf = FrameBuf::default();
        encode_into(Format::Postcard, &mut buf, &SentArgs::new((7u32, blob)), 1 << 20).unwrap();
        assert_eq!(buf.tail().as_ptr(), at, "moved into the frame's tail, not copied");
        assert_eq!(buf.body_to_vec(), expected, "the same bytes on the wire");
        // Not last, or short: written as before; and JSON is unchanged.
        for args in [(vec![8u8; 40_000], vec![1u8; 10]), (vec![1u8; 10], vec![8u8; 100])] {
            let mut buf = FrameBuf::default();
            encode_into(Format::Postcard, &mut buf, &SentArgs::new(args.clone()), 1 << 20).unwrap();
            assert!(buf.tail().is_empty());
            assert_eq!(buf.body_to_vec(), encode(&ArgsRef(&args)));
        }
        #[cfg(feature = "json")]
        {
            let args = (1u8, vec![2u8; 20_000]);
            let mut sent = FrameBuf::default();
            encode_into(Format::Json, &mut sent, &SentArgs::new(args.clone()), 1 << 20).unwrap();
            let mut plain = FrameBuf::default();
            encode_into(Format::Json, &mut plain, &ArgsRef(&args), 1 << 20).unwrap();
            assert_eq!(sent.body_to_vec(), plain.body_to_vec());
        }
    }

    #[test]
    fn a_truncated_byte_vector_is_an_error() {
        let bytes = encode(&Arg(&vec![9u8; 100]));
        assert!(decode::<Decoded<Vec<u8>>>(&bytes[..50]).is_err());
    }
}
