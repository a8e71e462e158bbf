//! The bodies of the fuzz targets in `fuzz/`, shared with `tests/fuzz_replay.rs`, which replays
//! the committed corpus and any crash inputs through them on stable (no libFuzzer needed).
//!
//! Each function takes arbitrary bytes and panics only on a real defect: a panic anywhere in the
//! runtime, a broken invariant of the decoder, or a malformed frame from the server.
//!
//! | target | what it drives |
//! | --- | --- |
//! | [`frame_decoder`] | `FrameReader` over a stream delivered in chunks of 1..=64 bytes |
//! | [`envelope`] | the envelope decoder, re-encoding, and the payload codec |
//! | [`server_connection`] | a real server connection fed the bytes after a valid preface |

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rpc_runtime::__fuzz::{decode_envelope, decode_payload, encode_envelope, encode_payload};
use rpc_runtime::transport::framed::{FrameError, FrameReader, HEADER_LEN};
use rpc_runtime::transport::{memory, Connection, Peer};
use rpc_runtime::{service, Server};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, ReadBuf};

use crate::probe::{Choice, RecordV1, Tree};
use crate::wire::{self, RawPeer};

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
    if let Ok(env) = decode_envelope(data) {
        let again = decode_envelope(&encode_envelope(&env)).expect("a re-encoded envelope decodes");
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

/// The service the server target runs: like `Probe`, minus the method that panics on purpose
/// (libFuzzer aborts on any panic, even one the runtime catches).
#[service]
pub trait Fuzzed {
    /// Returns its argument.
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Adds.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Sleeps `ms` of (paused) Tokio time.
    async fn sleep(&self, ms: u64) -> u64;
    /// The depth of a recursive value.
    async fn depth(&self, tree: Tree) -> u64;
    /// A variant.
    async fn pick(&self, choice: Choice) -> u8;
    /// A map's length.
    async fn hash_map(&self, m: HashMap<u64, String>) -> u64;
    /// A record's id.
    async fn record(&self, r: RecordV1) -> u32;
    /// `len` bytes back (capped by the frame limit: an oversized response is an error frame).
    async fn blob(&self, len: u16) -> Vec<u8>;
    /// Nothing back.
    #[oneway]
    async fn note(&self, n: u64);
}

/// The implementation of [`Fuzzed`].
#[derive(Debug, Clone, Copy)]
pub struct FuzzedImpl;

impl Fuzzed for FuzzedImpl {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    async fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }
    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms.min(3_600_000))).await;
        ms
    }
    async fn depth(&self, tree: Tree) -> u64 {
        tree.depth()
    }
    async fn pick(&self, choice: Choice) -> u8 {
        matches!(choice, Choice::A) as u8
    }
    async fn hash_map(&self, m: HashMap<u64, String>) -> u64 {
        m.len() as u64
    }
    async fn record(&self, r: RecordV1) -> u32 {
        r.id
    }
    async fn blob(&self, len: u16) -> Vec<u8> {
        vec![1; usize::from(len)]
    }
    async fn note(&self, _n: u64) {}
}

/// Target `server_connection`: a server connection (in memory, paused time) receives a valid
/// preface and then `data`. It must neither panic nor hang; every frame it sends must
/// be well formed (`wire::parse` checks), and it must close the connection in the end.
pub fn server_connection(data: &[u8]) {
    server_connection_frames(data);
}

/// [`server_connection`], returning the frames the server sent.
pub fn server_connection_frames(data: &[u8]) -> Vec<wire::Frame> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    rt.block_on(async {
        let (ours, theirs) = memory::pair();
        let (read, write, _, _) = theirs.into_parts();
        let server = Server::new(FuzzedServer::new(FuzzedImpl))
            .max_frame_len(FUZZ_MAX_FRAME)
            .serve_connection(Connection::new(read, write, Peer::Memory));
        let mut peer = RawPeer::new(ours);
        let mut writer = peer.split_writer();
        let input = [&wire::greeting()[..], data].concat();
        // The input is not followed by EOF (a client that hangs up makes the server abort its
        // calls, which would hide the handlers from the fuzzer): the server ends the connection
        // itself, at the latest when its idle timeout fires in paused time.
        let feed = tokio::spawn(async move {
            let _ = writer.send(&input).await;
            writer
        });
        peer.expect_preface().await;
        // Parses (and so checks) every frame until the server closes.
        let frames = peer.until_closed().await;
        tokio::time::timeout(Duration::from_secs(24 * 3600), server.wait())
            .await
            .expect("the server connection ended");
        drop(feed.await.expect("the feeder never panics"));
        frames
    })
}
