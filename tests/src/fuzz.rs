//! The bodies of the fuzz targets in `fuzz/`, shared with `tests/fuzz_replay.rs`, which replays
//! the committed corpus and any crash inputs through them on stable (no libFuzzer needed).
//!
//! Each function takes arbitrary bytes and panics only on a real defect: a panic anywhere in the
//! runtime, a broken invariant of the decoder, a hang, or a malformed frame from the runtime.
//!
//! | target | what it drives |
//! | --- | --- |
//! | [`frame_decoder`] | `FrameReader` over a stream delivered in chunks of 1..=64 bytes |
//! | [`envelope`] | the envelope decoder (every v2 frame kind, HELLO included), re-encoding, and the payload codec |
//! | [`server_connection`] | a real server connection fed the bytes after a valid preface and HELLO |
//! | [`server_handshake`] | a real server connection fed the bytes after a valid preface: the client's HELLO is fuzzed too |
//! | [`server_router`] | a real server hosting two services, fed the bytes after a valid preface and HELLO |
//! | [`client_connection`] | a real client with calls in flight, reading the server's bytes after its preface |

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rpc_runtime::__fuzz::{decode_envelope, decode_payload, encode_envelope, encode_payload, Envelope};
use rpc_runtime::transport::framed::{FrameError, FrameReader, HEADER_LEN};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, ReadBuf};

use crate::probe::{Choice, RecordV1, Tree};

mod client;
mod runtime;
mod server;
mod services;

pub use client::{client_connection, client_connection_results, ClientResults};
pub use server::{
    server_connection, server_connection_frames, server_handshake, server_handshake_frames, server_router,
    server_router_frames,
};
pub use services::{
    Fuzzed, FuzzedClient, FuzzedImpl, FuzzedServer, Stats, StatsClient, StatsImpl, StatsServer,
};

/// The maximum frame length the targets use: small, so length checks are reached often.
pub const FUZZ_MAX_FRAME: usize = 4096;

/// A reader that hands out `data` at most `step` bytes at a time.
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.step.min(buf.remaining()).min(self.data.len());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// Target `frame_decoder`: the first byte picks the chunk size, the rest is the stream. Every
/// frame read is exactly the bytes on the wire, no frame exceeds the maximum, and the stream ends
/// with a clean EOF, `TooLarge` for the header that declared it, or `UnexpectedEof` counting the
/// bytes that were left.
pub fn frame_decoder(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else { return };
    let reader = Chunked { data: stream, step: 1 + usize::from(seed % 64) };
    let mut frames = FrameReader::new(reader, FUZZ_MAX_FRAME);
    futures::executor::block_on(async {
        let mut at = 0;
        loop {
            match frames.read_frame().await {
                Ok(Some(body)) => {
                    let len = body.len();
                    assert!(len <= FUZZ_MAX_FRAME);
                    assert_eq!(stream[at..at + HEADER_LEN], (len as u32).to_be_bytes());
                    assert_eq!(&stream[at + HEADER_LEN..at + HEADER_LEN + len], &body[..]);
                    at += HEADER_LEN + len;
                }
                Ok(None) => {
                    assert_eq!(at, stream.len(), "clean EOF only between frames");
                    return;
                }
                Err(FrameError::TooLarge { declared, max }) => {
                    let header: [u8; 4] = stream[at..at + HEADER_LEN].try_into().unwrap();
                    assert_eq!(declared, u64::from(u32::from_be_bytes(header)));
                    assert!(declared > max as u64);
                    return;
                }
                Err(FrameError::UnexpectedEof { received, .. }) => {
                    assert!(received > 0);
                    assert_eq!(at + received, stream.len());
                    return;
                }
                Err(e) => panic!("unexpected frame error: {e}"),
            }
        }
    });
}

/// Decodes `bytes` as `T`; if that works, the value must re-encode and decode to itself.
fn payload_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = decode_payload::<T>(bytes) {
        let again = encode_payload(&value, 1 << 20).expect("a decoded value re-encodes");
        assert_eq!(decode_payload::<T>(&again).expect("re-encoded value decodes"), value);
    }
}

/// Target `envelope`: decoding a frame body never panics, and whatever decodes re-encodes to a
/// body that decodes to the same envelope. The same bytes go through the payload codec as a few
/// argument types, including a recursive one and the collections of case A6.
pub fn envelope(data: &[u8]) {
    if let Ok(mut env) = decode_envelope(data) {
        let again = decode_envelope(&encode_envelope(&env)).expect("a re-encoded envelope decodes");
        // The decoder passes any format byte on (the server answers an unknown one with an
        // error for the call); the encoder writes only formats it knows, postcard in its place.
        if let Envelope::Call { format, .. } = &mut env {
            if *format > 1 {
                *format = 0;
            }
        }
        assert_eq!(again, env);
    }
    payload_round_trip::<(Tree,)>(data);
    payload_round_trip::<(u64, u64)>(data);
    payload_round_trip::<(String, char, bool, Option<u8>)>(data);
    payload_round_trip::<(Choice, RecordV1)>(data);
    payload_round_trip::<(HashMap<u64, String>,)>(data);
    payload_round_trip::<(BTreeMap<u8, Vec<u16>>,)>(data);
    payload_round_trip::<(Vec<()>, Vec<i64>)>(data);
}
