//! Frame helpers shared by the transport test files.

use std::io;

use bytes::Bytes;
use rpc_transport::framed::{FrameBuf, FrameReader, FrameWriter, DEFAULT_MAX_FRAME_LEN};
use rpc_transport::{BoxRead, BoxWrite};

/// A connection's read half, framed.
pub(crate) type Reader = FrameReader<BoxRead>;
/// A connection's write half, framed.
pub(crate) type Writer = FrameWriter<BoxWrite>;

/// Sends one frame with `body`.
pub(crate) async fn send(w: &mut Writer, body: &[u8]) -> io::Result<()> {
    let mut frame = FrameBuf::with_capacity(body.len());
    frame.extend_from_slice(body);
    w.send(&mut vec![frame.finish(DEFAULT_MAX_FRAME_LEN).unwrap()]).await
}

/// Receives one frame; panics on an error or end of stream.
pub(crate) async fn recv(r: &mut Reader) -> Bytes {
    r.read_frame().await.expect("read a frame").expect("a frame, not end of stream")
}
