//! Postcard encoding straight into an outgoing frame, and strict, bounded decoding.
//!
//! Decoding rejects trailing bytes, bounds nesting depth ([`MAX_DECODE_DEPTH`]) and the number of
//! sequence and map elements (one per byte of input plus [`ZERO_SIZED_ELEMENT_SLACK`]), and never
//! reserves memory for a length the peer merely declared: see [`limits`].

mod limits;

use postcard::ser_flavors::Flavor;
use rpc_transport::framed::FrameBuf;
use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::RpcError;

/// A postcard flavor that appends to a frame being built and gives up as soon as the frame passes
/// the maximum length, so an oversized message never grows past the limit in memory.
struct FrameFlavor<'a> {
    buf: &'a mut FrameBuf,
    max: usize,
}

impl Flavor for FrameFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        // Byte by byte is how serde hands over a `u8` sequence or array: no `memcpy` call here.
        if self.buf.body().len() >= self.max {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.buf.body().len() + data.len() > self.max {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value` to `buf`, failing with [`RpcError::FrameTooLarge`] when the frame would pass
/// `max` bytes.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    buf: &mut FrameBuf,
    value: &T,
    max: usize,
) -> Result<(), RpcError> {
    let start = buf.body().len();
    match postcard::serialize_with_flavor(value, FrameFlavor { buf: &mut *buf, max }) {
        Ok(()) => Ok(()),
        Err(postcard::Error::SerializeBufferFull) => {
            let len = buf.body().len();
            buf.truncate_body(start);
            Err(RpcError::FrameTooLarge { len: len.max(max + 1), max })
        }
        Err(e) => {
            buf.truncate_body(start);
            Err(RpcError::Encode(e.to_string()))
        }
    }
}

/// The deepest nesting a decoded message may have. Each `Some`, newtype, sequence or map element
/// and enum variant's content is one level, so a `struct Node { next: Option<Box<Node>> }`
/// chain spends two levels per node.
///
/// 128 levels need well under 1 MiB of stack even in debug builds, so decoding on a default 2 MiB
/// thread cannot overflow; postcard alone overflows at about 50,000 levels.
pub const MAX_DECODE_DEPTH: usize = 128;

/// Sequence and map elements a message may hold beyond one per byte of its encoding. Every value
/// that is not zero-sized takes at least one byte, so only zero-sized elements (`Vec<()>`) can
/// use this slack; it bounds the time a forged `u64::MAX` count of them takes.
pub const ZERO_SIZED_ELEMENT_SLACK: usize = 1024;

/// Decodes a whole payload; trailing bytes are an error, not silently ignored, so a message from
/// a mismatched schema is caught instead of half-read. Nesting and element counts are bounded,
/// and the error names the limit that was broken.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    let budget = limits::Budget::new(MAX_DECODE_DEPTH, bytes.len().saturating_add(ZERO_SIZED_ELEMENT_SLACK));
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let value =
        T::deserialize(limits::Limited::new(&mut de, &budget)).map_err(|e| match budget.broken() {
            Some(broken) => RpcError::Decode(broken.to_string()),
            None => RpcError::Decode(describe(&e)),
        })?;
    match de.finalize() {
        Ok([]) => Ok(value),
        Ok(rest) => Err(RpcError::Decode(format!("{} unexpected trailing bytes", rest.len()))),
        Err(e) => Err(RpcError::Decode(describe(&e))),
    }
}

/// Writes a value for the wire: a `Vec<u8>` as a byte string, anything else through its own
/// serde impl.
///
/// serde hands a `Vec<u8>` to a serializer one `u8` at a time, and back one `u8` at a time; as a
/// byte string it is one copy each way. postcard encodes both forms alike (a varint length, then
/// the bytes), so this changes the speed, never the bytes on the wire: a peer that encodes the
/// sequence element by element reads and writes the same messages. The test is on the exact
/// type (`TypeId`, resolved at compile time), so it applies to a `Vec<u8>` argument or result
/// as written, not to one nested in another type (use `serde_bytes` there).
#[derive(Debug)]
pub struct Arg<'a, T>(pub &'a T);

impl<T: Serialize + 'static> Serialize for Arg<'_, T> {
    #[inline]
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.0 as &dyn Any).downcast_ref::<Vec<u8>>() {
            Some(bytes) => serializer.serialize_bytes(bytes),
            None => self.0.serialize(serializer),
        }
    }
}

/// Reads a value written by [`Arg`] (or by a peer that wrote a `Vec<u8>` element by element).
#[derive(Debug)]
pub struct Decoded<T>(pub T);

impl<'de, T: Deserialize<'de> + 'static> Deserialize<'de> for Decoded<T> {
    #[inline]
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if TypeId::of::<T>() != TypeId::of::<Vec<u8>>() {
            return T::deserialize(deserializer).map(Decoded);
        }
        let bytes = deserializer.deserialize_byte_buf(ByteVec)?;
        // `T` is `Vec<u8>`: move the bytes into a `T` through `Any`, without unsafe code.
        let mut value: Option<T> = None;
        if let Some(slot) = (&mut value as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
            *slot = Some(bytes);
        }
        value.map(Decoded).ok_or_else(|| serde::de::Error::custom("byte vector type mismatch"))
    }
}

/// Accepts a byte string, or a sequence of `u8` from formats that write one.
struct ByteVec;

impl<'de> serde::de::Visitor<'de> for ByteVec {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// postcard's description of an error, with its variant name so logs and tests can match it.
fn describe(e: &postcard::Error) -> String {
    format!("{e} ({e:?})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut buf = FrameBuf::default();
        encode_into(&mut buf, value, usize::MAX).unwrap();
        buf.body().to_vec()
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
    fn other_types_are_untouched() {
        let value = (vec![1u16, 2, 3], String::from("x"), vec![vec![1u8]]);
        assert_eq!(encode(&Arg(&value)), encode(&value));
        let Decoded(back): Decoded<(Vec<u16>, String, Vec<Vec<u8>>)> = decode(&encode(&value)).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn a_truncated_byte_vector_is_an_error() {
        let bytes = encode(&Arg(&vec![9u8; 100]));
        assert!(decode::<Decoded<Vec<u8>>>(&bytes[..50]).is_err());
    }
}
