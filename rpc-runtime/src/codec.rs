//! Postcard encoding straight into an outgoing frame, and strict, bounded decoding.
//!
//! Decoding rejects trailing bytes, bounds nesting depth ([`MAX_DECODE_DEPTH`]) and the number of
//! zero-sized elements ([`MAX_ZERO_SIZED_ELEMENTS`]), and never reserves memory for a length the
//! peer merely declared: see [`limits`].

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

/// The most elements that take no bytes on the wire (`()` in a `Vec<()>`, a unit struct) one
/// message may hold. Other elements are bounded by the message's length; this bounds the time a
/// forged `u64::MAX` count of zero-sized ones would take.
pub const MAX_ZERO_SIZED_ELEMENTS: usize = 1024;

/// Decodes a whole payload; trailing bytes are an error, not silently ignored, so a message from
/// a mismatched schema is caught instead of half-read. Nesting and element counts are bounded,
/// and the error names the limit that was broken.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    let budget = limits::Budget::new(MAX_DECODE_DEPTH, MAX_ZERO_SIZED_ELEMENTS);
    let mut de = postcard::Deserializer::from_flavor(limits::Tracked::new(bytes, &budget));
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
/// serde impl. Results go through it in [`crate::ResponseBuf::encode`], arguments through
/// [`WireArgs`].
///
/// serde hands a `Vec<u8>` to a serializer one `u8` at a time, and back one `u8` at a time; as a
/// byte string it is one copy each way. postcard encodes both forms alike (a varint length, then
/// the bytes), so this changes the speed, never the bytes on the wire: a peer that encodes the
/// sequence element by element reads and writes the same messages. The test is on the exact
/// type (`TypeId`, resolved at compile time), so it applies to a `Vec<u8>` argument or result
/// as written, not to one nested in another type (use `serde_bytes` there).
#[derive(Debug)]
pub(crate) struct Arg<'a, T>(pub &'a T);

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
pub(crate) struct Decoded<T>(pub T);

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

/// A method's arguments, as the tuple the macro builds, with each element written as by [`Arg`]
/// and read as by [`Decoded`] (so a `Vec<u8>` argument is one copy, not a call per byte). The
/// encoding is exactly the tuple's own: postcard writes a tuple as its elements in order.
pub trait WireArgs: Sized {
    /// Writes the arguments.
    fn serialize_args<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    /// Reads the arguments.
    fn deserialize_args<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    /// Describes each argument's type, in order.
    fn describe_args() -> Vec<crate::describe::TypeDescription>;
}

/// Writes arguments by reference, through [`WireArgs`].
#[derive(Debug)]
pub(crate) struct ArgsRef<'a, A>(pub &'a A);

impl<A: WireArgs> Serialize for ArgsRef<'_, A> {
    #[inline]
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_args(serializer)
    }
}

/// Reads arguments, through [`WireArgs`].
#[derive(Debug)]
pub(crate) struct Args<A>(pub A);

impl<'de, A: WireArgs> Deserialize<'de> for Args<A> {
    #[inline]
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        A::deserialize_args(deserializer).map(Args)
    }
}

impl WireArgs for () {
    fn serialize_args<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }

    fn deserialize_args<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)
    }

    fn describe_args() -> Vec<crate::describe::TypeDescription> {
        Vec::new()
    }
}

/// Reads a tuple of `N` elements, each through [`Decoded`].
struct TupleVisitor<T>(std::marker::PhantomData<T>);

macro_rules! wire_args {
    ($len:expr => $($T:ident $i:tt),+) => {
        impl<$($T: Serialize + DeserializeOwned + 'static),+> WireArgs for ($($T,)+) {
            #[inline]
            fn serialize_args<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeTuple;
                let mut tuple = serializer.serialize_tuple($len)?;
                $(tuple.serialize_element(&Arg(&self.$i))?;)+
                tuple.end()
            }

            #[inline]
            fn deserialize_args<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_tuple($len, TupleVisitor::<Self>(std::marker::PhantomData))
            }

            fn describe_args() -> Vec<crate::describe::TypeDescription> {
                vec![$(crate::describe::describe::<$T>()),+]
            }
        }

        impl<'de, $($T: DeserializeOwned + 'static),+> serde::de::Visitor<'de> for TupleVisitor<($($T,)+)> {
            type Value = ($($T,)+);

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a tuple of {} arguments", $len)
            }

            #[inline]
            fn visit_seq<V: serde::de::SeqAccess<'de>>(self, mut seq: V) -> Result<Self::Value, V::Error> {
                Ok(($(
                    seq.next_element::<Decoded<$T>>()?
                        .ok_or_else(|| serde::de::Error::invalid_length($i, &self))?
                        .0,
                )+))
            }
        }
    };
}

wire_args!(1 => A0 0);
wire_args!(2 => A0 0, A1 1);
wire_args!(3 => A0 0, A1 1, A2 2);
wire_args!(4 => A0 0, A1 1, A2 2, A3 3);
wire_args!(5 => A0 0, A1 1, A2 2, A3 3, A4 4);
wire_args!(6 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);
wire_args!(7 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6);
wire_args!(8 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7);
wire_args!(9 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8);
wire_args!(10 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9);
wire_args!(11 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10);
wire_args!(12 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11);
wire_args!(13 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12);
wire_args!(14 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13);
wire_args!(15 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14);
wire_args!(16 => A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14, A15 15);

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
    fn a_truncated_byte_vector_is_an_error() {
        let bytes = encode(&Arg(&vec![9u8; 100]));
        assert!(decode::<Decoded<Vec<u8>>>(&bytes[..50]).is_err());
    }
}
