//! Property tests of the frame reader and writer (reliability cases A2 and A7).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use rpc_transport::framed::{FrameBuf, FrameError, FrameReader};
use tokio::io::{AsyncRead, ReadBuf};

/// Hands out `data` in the given chunk sizes (cycling), one chunk per read.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.remaining()).min(self.data.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn encode(messages: &[Vec<u8>], max: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for m in messages {
        let mut buf = FrameBuf::with_capacity(m.len());
        buf.extend_from_slice(m);
        stream.extend_from_slice(buf.finish(max).unwrap().as_bytes());
    }
    stream
}

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// Reads every frame until the stream ends.
fn read_all(data: Vec<u8>, sizes: Vec<usize>, max: usize) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    block_on(async move {
        let mut reader = FrameReader::new(Chunked { data, pos: 0, sizes, next: 0 }, max);
        let mut frames = Vec::new();
        loop {
            match reader.read_frame().await {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => return (frames, Ok(())),
                Err(e) => return (frames, Err(e)),
            }
        }
    })
}

const MAX: usize = 1024;

proptest! {
    /// A7: a stream of frames, delivered in random slices of 1..64 bytes, reassembles exactly,
    /// and ends with a clean EOF (nothing left behind).
    #[test]
    fn split_stream_reassembles(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        sizes in prop::collection::vec(1usize..64, 1..16),
    ) {
        let stream = encode(&messages, MAX);
        let (frames, end) = read_all(stream, sizes, MAX);
        prop_assert!(end.is_ok(), "{:?}", end);
        prop_assert_eq!(frames, messages);
    }

    /// A7: the same stream as one read.
    #[test]
    fn coalesced_stream_reassembles(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let stream = encode(&messages, MAX);
        let len = stream.len().max(1);
        let (frames, end) = read_all(stream, vec![len], MAX);
        prop_assert!(end.is_ok());
        prop_assert_eq!(frames, messages);
    }

    /// A2: every strict, non-empty prefix of a valid frame is rejected as an unexpected EOF that
    /// counts the bytes received; the empty prefix is a clean end.
    #[test]
    fn strict_prefixes_are_rejected(
        body in prop::collection::vec(any::<u8>(), 0..200),
        step in 1usize..64,
    ) {
        let frame = encode(std::slice::from_ref(&body), MAX);
        for cut in 0..frame.len() {
            let (frames, end) = read_all(frame[..cut].to_vec(), vec![step], MAX);
            prop_assert!(frames.is_empty());
            match end {
                Ok(()) => prop_assert_eq!(cut, 0),
                Err(FrameError::UnexpectedEof { received, .. }) => prop_assert_eq!(received, cut),
                Err(e) => prop_assert!(false, "cut {}: {}", cut, e),
            }
        }
    }

    /// Arbitrary bytes never panic, and no frame longer than the maximum is ever returned.
    #[test]
    fn arbitrary_bytes_are_bounded(data in prop::collection::vec(any::<u8>(), 0..2048), step in 1usize..64) {
        let (frames, _) = read_all(data, vec![step], 64);
        prop_assert!(frames.iter().all(|f| f.len() <= 64));
    }
}
