//! postcard: the default format, compact and schema-less (a tuple is its elements in order).

use postcard::ser_flavors::Flavor;
use rpc_transport::framed::FrameBuf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::limits;
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
pub(super) fn encode_into<T: Serialize + ?Sized>(
    buf: &mut FrameBuf,
    value: &T,
    max: usize,
) -> Result<(), RpcError> {
    let start = buf.body().len();
    let (encoded, tail) = super::source::capture_tail(|| {
        postcard::serialize_with_flavor(value, FrameFlavor { buf: &mut *buf, max })
    });
    match encoded {
        Ok(()) => match tail {
            Some(tail) if buf.body().len() + tail.len() > max => {
                let len = buf.body().len() + tail.len();
                buf.truncate_body(start);
                Err(RpcError::FrameTooLarge { len, max })
            }
            Some(tail) => {
                buf.set_tail(tail);
                Ok(())
            }
            None => Ok(()),
        },
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

/// Decodes a whole payload; trailing bytes are an error, not silently ignored, so a message from
/// a mismatched schema is caught instead of half-read. Nesting and element counts are bounded,
/// and the error names the limit that was broken.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    let budget = limits::Budget::new(super::MAX_DECODE_DEPTH, super::MAX_ZERO_SIZED_ELEMENTS);
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

/// postcard's description of an error, with its variant name so logs and tests can match it.
fn describe(e: &postcard::Error) -> String {
    format!("{e} ({e:?})")
}
