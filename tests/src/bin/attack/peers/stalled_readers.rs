//! H2 and H3: peers that ask for large responses and do not read them (H2), or read them
//! slowly (H3), so the server has to hold what it produced.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{request, Scanner};
use crate::endpoint::Endpoint;
use rpc_tests::wire;

/// Requests for a 4 MiB response each connection keeps outstanding.
const OUTSTANDING: u64 = 300;
/// H3's connections.
const SLOW_CONNECTIONS: usize = 4;
/// What each H3 connection reads per second: 12 MB/s together.
const SLOW_BYTES_PER_SEC: usize = 3_000_000;

/// The preface and `OUTSTANDING` requests for `big`, ids from 1.
fn opening() -> Vec<u8> {
    let mut bytes = wire::greeting();
    for id in 1..=OUTSTANDING {
        bytes.extend(request(id, "big", false, &[]));
    }
    bytes
}

/// H2: `n` connections each send 300 requests for a 4 MiB response and never read.
pub(crate) async fn never_read(endpoint: &Endpoint, until: Instant, n: usize) -> String {
    let mut held = Vec::new();
    let mut sent = 0;
    for _ in 0..n {
        let Ok((read, mut write)) = endpoint.connect_raw().await else { continue };
        if write.write_all(&opening()).await.is_ok() {
            sent += 1;
        }
        held.push((read, write));
    }
    tokio::time::sleep_until(until.into()).await;
    format!("{sent} of {n} connections sent {OUTSTANDING} requests for 4 MiB each and never read")
}

/// H3: four connections keep 300 requests for 4 MiB outstanding and read 3 MB/s each.
pub(crate) async fn slow_read(endpoint: &Endpoint, until: Instant) -> String {
    let tasks: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|_| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move { slow_reader(&endpoint, until).await })
        })
        .collect();
    let (mut bytes, mut responses, mut cut) = (0u64, 0u64, 0u32);
    for t in tasks {
        let (b, r, c) = t.await.unwrap_or_default();
        bytes += b;
        responses += r;
        cut += u32::from(c);
    }
    format!(
        "{SLOW_CONNECTIONS} connections read {:.0} MB ({responses} responses) at ~{} MB/s each; {cut} cut off by the server",
        bytes as f64 / 1e6,
        SLOW_BYTES_PER_SEC / 1_000_000
    )
}

/// One slow reader: returns (bytes read, responses completed, whether the server closed it).
async fn slow_reader(endpoint: &Endpoint, until: Instant) -> (u64, u64, bool) {
    let Ok((mut read, mut write)) = endpoint.connect_raw().await else { return (0, 0, true) };
    if write.write_all(&opening()).await.is_err() {
        return (0, 0, true);
    }
    let mut scanner = Scanner::default();
    let mut next_id = OUTSTANDING + 1;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut bytes, mut responses) = (0u64, 0u64);
    // Every 100 ms, read a tenth of a second's allowance.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < until {
        tick.tick().await;
        let mut allowance = SLOW_BYTES_PER_SEC / 10;
        while allowance > 0 {
            let want = allowance.min(buf.len());
            match tokio::time::timeout_at(until.into(), read.read(&mut buf[..want])).await {
                Err(_) => return (bytes, responses, false),
                Ok(Ok(0) | Err(_)) => return (bytes, responses, true),
                Ok(Ok(n)) => {
                    allowance -= n;
                    bytes += n as u64;
                    // Keep OUTSTANDING requests in flight: one new request per response read.
                    let done = scanner.feed(&buf[..n]);
                    responses += done;
                    for _ in 0..done {
                        if write.write_all(&request(next_id, "big", false, &[])).await.is_err() {
                            return (bytes, responses, true);
                        }
                        next_id += 1;
                    }
                }
            }
        }
    }
    (bytes, responses, false)
}
