//! Byte payloads that arrive as slices of the received frame instead of copies.
//!
//! A `bytes::Bytes` argument or result is decoded as a view into the frame it came in (the
//! frame is itself a `Bytes` from the reader's buffer): no copy between the socket and the
//! handler or the caller. serde gives a visitor only a borrowed `&[u8]`, so the frame that owns
//! those bytes is made known for the length of one decode, in a thread-local set by the code that
//! holds the frame ([`decode_from`], or [`with_source`] around a decode deeper down). A slice
//! that lies inside it becomes a `Bytes::slice_ref` of it; anything else (another format, a
//! decode with no frame set, a short payload) is copied.
//!
//! A view keeps the whole receive buffer it points into alive for as long as the user holds it,
//! so only payloads of at least [`SHARE_AT_LEAST`] bytes are shared: a 16-byte `Bytes` kept in a
//! map must not pin a 64 KiB read buffer.
//!
//! The other way, a `Bytes` of at least [`TAIL_AT_LEAST`] bytes that ends a frame (a result, a
//! stream item, or a call's last argument) is not copied into the frame: postcard writes its
//! length, and the frame keeps the buffer as its tail, written from where it is by the same
//! vectored write ([`rpc_transport::framed::Frame`]). The value's serializer hands its buffer
//! over ([`offer_tail`]) and the frame encoder takes it ([`capture_tail`]).

use std::cell::{Cell, RefCell};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::Format;
use crate::RpcError;

/// The shortest payload decoded as a view of its frame rather than copied.
pub(crate) const SHARE_AT_LEAST: usize = 1024;

/// The shortest payload written as its frame's tail rather than copied into the frame: below
/// it, a copy costs less than a second buffer in the write.
pub(crate) const TAIL_AT_LEAST: usize = 16 * 1024;

thread_local! {
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// The tail it took.
    static TAIL: Cell<Option<Bytes>> = const { Cell::new(None) };
}

/// Runs `encode` (a synchronous encode of a value that ends a frame) letting a final `Bytes`
/// become the frame's tail; returns what it returned and the tail, if one was taken.
///
/// Only frame encoders serialize an [`Arg`](super::Arg) (whose `Bytes` offers itself), and each
/// of them takes the tail, so no flag says whether one is running: a tail an unwinding encode
/// left behind is cleared by the next encode before it starts.
#[inline]
pub(crate) fn capture_tail<R>(encode: impl FnOnce() -> R) -> (R, Option<Bytes>) {
    TAIL.with(|t| t.set(None));
    let result = encode();
    (result, TAIL.with(Cell::take))
}

/// Offers `bytes`, the last thing a frame's encode writes, as the frame's tail: `true` if it was
/// taken (the caller then writes only its length), `false` if it must be written in full.
#[inline]
pub(crate) fn offer_tail(bytes: &Bytes) -> bool {
    if bytes.len() < TAIL_AT_LEAST {
        return false;
    }
    // Only the first offer of an encode is taken (a later one would not end the frame).
    TAIL.with(|t| {
        let earlier = t.take();
        let taken = earlier.is_none();
        t.set(earlier.or_else(|| Some(bytes.clone())));
        taken
    })
}

/// Puts the previous source back when a decode ends, by return or by unwinding.
struct Restore(Option<Bytes>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        SOURCE.with(|s| *s.borrow_mut() = previous);
    }
}

/// Runs `f` (a synchronous decode) with `frame` as the buffer byte payloads may be sliced from.
/// A frame too short to hold a payload worth sharing is not made known: small calls pay nothing.
#[inline]
pub(crate) fn with_source<R>(frame: &Bytes, f: impl FnOnce() -> R) -> R {
    if frame.len() < SHARE_AT_LEAST {
        return f();
    }
    let previous = SOURCE.with(|s| s.borrow_mut().replace(frame.clone()));
    let _restore = Restore(previous);
    f()
}

/// Decodes `frame` whole, as [`super::decode`] does, letting byte payloads be views of it.
#[inline]
pub(crate) fn decode_from<T: DeserializeOwned>(format: Format, frame: &Bytes) -> Result<T, RpcError> {
    with_source(frame, || super::decode(format, frame))
}

/// `bytes` as a `Bytes`: a view of the current source when it lies inside it and is long
/// enough to be worth sharing, a copy otherwise.
pub(crate) fn share(bytes: &[u8]) -> Bytes {
    if bytes.len() < SHARE_AT_LEAST {
        return Bytes::copy_from_slice(bytes);
    }
    SOURCE.with(|s| match &*s.borrow() {
        Some(frame) if contains(frame, bytes) => frame.slice_ref(bytes),
        _ => Bytes::copy_from_slice(bytes),
    })
}

fn contains(frame: &[u8], part: &[u8]) -> bool {
    let (start, end) = (frame.as_ptr() as usize, frame.as_ptr() as usize + frame.len());
    let (p, q) = (part.as_ptr() as usize, part.as_ptr() as usize + part.len());
    start <= p && q <= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_slice_of_the_source_is_a_view_and_anything_else_a_copy() {
        let frame = Bytes::from(vec![5u8; 4096]);
        let inside = &frame[100..3000];
        let shared = with_source(&frame, || share(inside));
        assert_eq!(shared.as_ptr(), inside.as_ptr(), "a view of the frame");
        assert_eq!(&shared[..], inside);
        let short = with_source(&frame, || share(&frame[..10]));
        assert_ne!(short.as_ptr(), frame.as_ptr(), "short payloads are copied");
        let elsewhere = vec![5u8; 2000];
        let copied = with_source(&frame, || share(&elsewhere));
        assert_ne!(copied.as_ptr(), elsewhere.as_ptr());
        assert_ne!(share(inside).as_ptr(), inside.as_ptr(), "no source, no view");
    }

    #[test]
    fn the_source_is_restored_after_a_nested_decode_and_a_panic() {
        let outer = Bytes::from(vec![1u8; 2048]);
        let inner = Bytes::from(vec![2u8; 2048]);
        with_source(&outer, || {
            with_source(&inner, || assert_eq!(share(&inner[..]).as_ptr(), inner.as_ptr()));
            assert_eq!(share(&outer[..]).as_ptr(), outer.as_ptr());
            // `resume_unwind` unwinds without the panic hook: nothing is printed.
            let caught = std::panic::catch_unwind(|| {
                with_source(&inner, || std::panic::resume_unwind(Box::new("decoder bug")))
            });
            assert!(caught.is_err());
            assert_eq!(share(&outer[..]).as_ptr(), outer.as_ptr());
        });
        assert_ne!(share(&outer[..]).as_ptr(), outer.as_ptr());
    }
}
