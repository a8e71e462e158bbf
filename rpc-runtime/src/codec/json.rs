//! JSON: the second format, for peers in other languages and for people. Arguments are a JSON
//! array in declaration order (`[1,2]`), results serde's default JSON (`Result` as `{"Ok":3}`
//! or `{"Err":"..."}`).

use std::io;

use rpc_transport::framed::FrameBuf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::limits;
use crate::RpcError;

/// Appends JSON text to a frame being built, refusing to grow it past `max` bytes.
struct FrameWriter<'a> {
    buf: &'a mut FrameBuf,
    max: usize,
    full: bool,
}

impl io::Write for FrameWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.body().len() + data.len() > self.max {
            self.full = true;
            return Err(io::Error::other("frame full"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `value` as JSON to `buf`, failing with [`RpcError::FrameTooLarge`] when the frame
/// would pass `max` bytes.
pub(super) fn encode_into<T: Serialize + ?Sized>(
    buf: &mut FrameBuf,
    value: &T,
    max: usize,
) -> Result<(), RpcError> {
    let start = buf.body().len();
    let mut writer = FrameWriter { buf: &mut *buf, max, full: false };
    let result = serde_json::to_writer(&mut writer, value);
    let full = writer.full;
    match result {
        Ok(()) => Ok(()),
        Err(_) if full => {
            buf.truncate_body(start);
            Err(RpcError::FrameTooLarge { len: max + 1, max })
        }
        Err(e) => {
            buf.truncate_body(start);
            Err(RpcError::Encode(e.to_string()))
        }
    }
}

/// Decodes one JSON value, with the same limits as postcard: nesting depth, zero-sized elements,
/// no reservation from declared lengths (JSON declares none), and nothing but whitespace after
/// the value.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    let budget = limits::Budget::new(super::MAX_DECODE_DEPTH, super::MAX_ZERO_SIZED_ELEMENTS);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value =
        T::deserialize(limits::Limited::new(&mut de, &budget)).map_err(|e| match budget.broken() {
            Some(broken) => RpcError::Decode(broken.to_string()),
            // serde_json stops at 128 nested `[`/`{` of its own; each of those spends at least one
            // of our levels too, so this is the same limit, reported in the same words.
            None if e.to_string().starts_with("recursion limit exceeded") => {
                RpcError::Decode(limits::Broken::Depth(super::MAX_DECODE_DEPTH).to_string())
            }
            None => RpcError::Decode(e.to_string()),
        })?;
    de.end().map_err(|e| RpcError::Decode(format!("unexpected trailing bytes: {e}")))?;
    Ok(value)
}
