//! Postcard encoding straight into an outgoing frame, and strict, bounded decoding.
//!
//! Decoding rejects trailing bytes, bounds nesting depth ([`MAX_DECODE_DEPTH`]) and the number of
//! zero-sized elements ([`MAX_ZERO_SIZED_ELEMENTS`]), and never reserves memory for a length the
//! peer merely declared: see [`limits`].

mod limits;

use postcard::ser_flavors::Flavor;
use rpc_transport::framed::FrameBuf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RpcError;

/// A postcard flavor that appends to a frame being built and gives up as soon as the frame passes
/// the maximum length, so an oversized message never grows past the limit in memory.
struct FrameFlavor<'a> {
    buf: &'a mut FrameBuf,
    max: usize,
}

impl Flavor for FrameFlavor<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

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

/// postcard's description of an error, with its variant name so logs and tests can match it.
fn describe(e: &postcard::Error) -> String {
    format!("{e} ({e:?})")
}
