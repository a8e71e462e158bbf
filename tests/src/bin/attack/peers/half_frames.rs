//! H5: 64 connections each announce a 4 MiB request frame and send its body slowly (about
//! 160 KB/s, so each completes inside the 30 s frame timeout). Together they announce the
//! whole default receive budget (256 MiB). A connection the server sheds reconnects.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::drain;
use crate::endpoint::Endpoint;
use rpc_tests::wire;

/// Connections holding a half-sent frame.
const CONNECTIONS: usize = 64;
/// The announced body length: the default maximum frame.
const FRAME: usize = 4 * 1024 * 1024;
/// Bytes sent per tick, every 100 ms.
const CHUNK: usize = 16 * 1024;

/// Runs the scenario; returns frames completed and connections shed.
pub(crate) async fn run(endpoint: &Endpoint, until: Instant) -> String {
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move { holder(&endpoint, until).await })
        })
        .collect();
    let (mut completed, mut shed, mut goaways) = (0u64, 0u64, 0u64);
    for t in tasks {
        let (c, s, g) = t.await.unwrap_or_default();
        completed += c;
        shed += s;
        goaways += g;
    }
    format!(
        "{CONNECTIONS} connections trickling 4 MiB frames: {completed} frames completed, \
         {shed} connections shed ({goaways} with a goaway), each reopened"
    )
}

/// The head of a `take(data: Vec<u8>)` request whose body is exactly `FRAME` bytes; the
/// returned count is how many data bytes must follow.
fn head(id: u64) -> (Vec<u8>, usize) {
    // kind, id, flags, method, then the Vec's length: a 4-byte varint for ~4 MiB.
    let fixed = 1 + wire::varint(id).len() + 1 + 1 + "take".len() + 4;
    let data = FRAME - fixed;
    let mut body = wire::request_raw(id, b"take", None, false, &wire::varint(data as u64));
    assert_eq!(body.len(), fixed, "the length varint takes 4 bytes");
    let mut out = (FRAME as u32).to_be_bytes().to_vec();
    out.append(&mut body);
    (out, data)
}

/// One connection, reconnecting when shed; returns (frames completed, times shed, goaways).
async fn holder(endpoint: &Endpoint, until: Instant) -> (u64, u64, u64) {
    let (mut completed, mut shed, mut goaways) = (0, 0, 0);
    let chunk = vec![0x33u8; CHUNK];
    while Instant::now() < until {
        let Ok((read, mut write)) = endpoint.connect_raw().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let reader = tokio::spawn(drain(read, until));
        let mut ok = write.write_all(&wire::greeting()).await.is_ok();
        let mut id = 1;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        'frames: while ok && Instant::now() < until {
            let (head, mut left) = head(id);
            ok = write.write_all(&head).await.is_ok();
            while ok && left > 0 {
                tick.tick().await;
                if Instant::now() >= until || reader.is_finished() {
                    break 'frames;
                }
                let n = left.min(CHUNK);
                ok = write.write_all(&chunk[..n]).await.is_ok();
                left -= n;
            }
            completed += u64::from(ok);
            id += 1;
        }
        let drained = reader.await.unwrap_or_default();
        if drained.closed || !ok {
            shed += 1;
        }
        goaways += u64::from(drained.goaway);
    }
    (completed, shed, goaways)
}
