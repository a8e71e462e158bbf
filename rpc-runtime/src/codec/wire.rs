//! How a method's arguments and results meet serde: the argument tuple, and the `Vec<u8>` fast
//! path. Format-independent: every codec serializes through these.

use std::any::{Any, TypeId};

use bytes::Bytes;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Writes a value for the wire: a `Vec<u8>` as a byte string, anything else through its own
/// serde impl. Results go through it in [`crate::ResponseBuf::encode`], arguments through
/// [`WireArgs`].
///
/// serde hands a `Vec<u8>` to a serializer one `u8` at a time, and back one `u8` at a time; as a
/// byte string it is one copy each way. postcard encodes both forms alike (a varint length, then
/// the bytes), so this changes the speed, never the bytes on the wire: a peer that encodes the
/// sequence element by element reads and writes the same messages. The test is on the exact
/// type (`TypeId`, resolved at compile time), so it applies to a `Vec<u8>` argument or result
/// as written, not to one nested in another type (use `serde_bytes` there). A `bytes::Bytes`
/// argument or result is written the same way (its own serde impl already does), and read as a
/// view of the received frame, with no copy at all (see `source.rs`).
#[derive(Debug)]
pub(crate) struct Arg<'a, T>(pub &'a T);

impl<T: Serialize + 'static> Serialize for Arg<'_, T> {
    #[inline]
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // What an `Arg` writes ends its frame (a result, a stream item, a call's last argument):
        // a large `Bytes` there becomes the frame's tail, and only its length is written here
        // (postcard writes a byte string's length as the varint `serialize_u64` writes).
        if let Some(bytes) = (self.0 as &dyn Any).downcast_ref::<Bytes>() {
            if !serializer.is_human_readable() && super::source::offer_tail(bytes) {
                return serializer.serialize_u64(bytes.len() as u64);
            }
        }
        Elem(self.0).serialize(serializer)
    }
}

/// Writes a value for the wire as [`Arg`] does, except that it never ends a frame: an argument
/// other than the last.
#[derive(Debug)]
pub(crate) struct Elem<'a, T>(pub &'a T);

impl<T: Serialize + 'static> Serialize for Elem<'_, T> {
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
        // A human-readable format (JSON) writes bytes as an array of numbers anyway, and reading
        // them as a byte string would also accept a JSON string: keep the plain path there.
        let id = TypeId::of::<T>();
        if deserializer.is_human_readable() || (id != TypeId::of::<Vec<u8>>() && id != TypeId::of::<Bytes>())
        {
            return T::deserialize(deserializer).map(Decoded);
        }
        // `T` is `Vec<u8>` or `Bytes`: move the bytes into a `T` through `Any`, without unsafe code.
        let mut value: Option<T> = None;
        if id == TypeId::of::<Bytes>() {
            let bytes = deserializer.deserialize_bytes(SharedBytes)?;
            if let Some(slot) = (&mut value as &mut dyn Any).downcast_mut::<Option<Bytes>>() {
                *slot = Some(bytes);
            }
        } else {
            let bytes = deserializer.deserialize_byte_buf(ByteVec)?;
            if let Some(slot) = (&mut value as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
                *slot = Some(bytes);
            }
        }
        value.map(Decoded).ok_or_else(|| serde::de::Error::custom("byte vector type mismatch"))
    }
}

/// Reads a `Bytes` as a view of the frame it arrived in where it can (see `source.rs`).
struct SharedBytes;

impl<'de> serde::de::Visitor<'de> for SharedBytes {
    type Value = Bytes;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
        Ok(super::source::share(v))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::copy_from_slice(v))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes::from(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Bytes, A::Error> {
        ByteVec.visit_seq(seq).map(Bytes::from)
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

    /// Moves the last argument out as a `Bytes` if it is a `Vec<u8>` long enough to be sent
    /// from its own buffer (no copy: `Bytes::from` keeps the allocation); see [`SentArgs`].
    #[doc(hidden)]
    fn take_last_bytes(&mut self) -> Option<Bytes> {
        None
    }

    /// Writes the arguments with `last` in place of the last one (which
    /// [`take_last_bytes`](Self::take_last_bytes) emptied).
    #[doc(hidden)]
    fn serialize_args_with_last<S: serde::Serializer>(
        &self,
        last: Option<&Bytes>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let _ = last;
        self.serialize_args(serializer)
    }
}

/// A call's arguments as the client sends them: a large `Vec<u8>` last argument moved into a
/// `Bytes`, so that it becomes the frame's tail and is written from its own buffer, like a
/// `Bytes` argument. The same bytes on the wire as [`Args`].
#[derive(Debug)]
pub(crate) struct SentArgs<A>(A, Option<Bytes>);

impl<A: WireArgs> SentArgs<A> {
    #[inline]
    pub(crate) fn new(mut args: A) -> Self {
        let last = args.take_last_bytes();
        SentArgs(args, last)
    }
}

impl<A: WireArgs> Serialize for SentArgs<A> {
    #[inline]
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_args_with_last(self.1.as_ref(), serializer)
    }
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

/// Reads arguments, or writes them owned, through [`WireArgs`].
#[derive(Debug)]
pub(crate) struct Args<A>(pub A);

impl<A: WireArgs> Serialize for Args<A> {
    #[inline]
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_args(serializer)
    }
}

impl<'de, A: WireArgs> Deserialize<'de> for Args<A> {
    #[inline]
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        A::deserialize_args(deserializer).map(Args)
    }
}

/// No arguments: an empty tuple, so JSON writes `[]` like any other argument list (postcard
/// writes nothing either way).
impl WireArgs for () {
    fn serialize_args<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        serializer.serialize_tuple(0)?.end()
    }

    fn deserialize_args<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(0, NoArgs)
    }

    fn describe_args() -> Vec<crate::describe::TypeDescription> {
        Vec::new()
    }
}

/// Reads an empty argument list, rejecting any element.
struct NoArgs;

impl<'de> serde::de::Visitor<'de> for NoArgs {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no arguments")
    }

    fn visit_seq<V: serde::de::SeqAccess<'de>>(self, mut seq: V) -> Result<(), V::Error> {
        match seq.next_element::<serde::de::IgnoredAny>()? {
            None => Ok(()),
            Some(_) => Err(serde::de::Error::invalid_length(1, &self)),
        }
    }
}

/// Reads a tuple of `N` elements, each through [`Decoded`].
struct TupleVisitor<T>(std::marker::PhantomData<T>);

macro_rules! wire_args {
    ($len:expr => $($T:ident $i:tt),+) => {
        impl<$($T: Serialize + DeserializeOwned + 'static),+> WireArgs for ($($T,)+) {
            #[inline]
            fn serialize_args<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.serialize_args_with_last(None, serializer)
            }

            #[inline]
            fn deserialize_args<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_tuple($len, TupleVisitor::<Self>(std::marker::PhantomData))
            }

            fn describe_args() -> Vec<crate::describe::TypeDescription> {
                vec![$(crate::describe::describe::<$T>()),+]
            }

            #[inline]
            fn take_last_bytes(&mut self) -> Option<Bytes> {
                let mut last = None;
                $(
                    if $i + 1 == $len {
                        if let Some(v) = (&mut self.$i as &mut dyn Any).downcast_mut::<Vec<u8>>() {
                            if v.len() >= super::source::TAIL_AT_LEAST {
                                last = Some(Bytes::from(std::mem::take(v)));
                            }
                        }
                    }
                )+
                last
            }

            #[inline]
            fn serialize_args_with_last<S: serde::Serializer>(
                &self,
                last: Option<&Bytes>,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeTuple;
                let mut tuple = serializer.serialize_tuple($len)?;
                $(
                    if $i + 1 == $len {
                        match last {
                            Some(bytes) => tuple.serialize_element(&Arg(bytes))?,
                            None => tuple.serialize_element(&Arg(&self.$i))?,
                        }
                    } else {
                        tuple.serialize_element(&Elem(&self.$i))?;
                    }
                )+
                tuple.end()
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
