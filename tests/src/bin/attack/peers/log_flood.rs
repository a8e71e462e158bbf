//! H7: input that makes the server log. One connection starts a long call (id 1) and then
//! sends 20,000 requests reusing id 1; another asks for 1,000 handler panics per second.
//! The harness measures the server's stderr.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{drain, request};
use crate::endpoint::Endpoint;
use rpc_tests::wire;

/// Requests reusing an id in flight.
const DUPLICATES: u64 = 20_000;
/// Panics asked for per second.
const PANICS_PER_SEC: u64 = 1_000;

/// Runs both floods; returns what was sent.
pub(crate) async fn run(endpoint: &Endpoint, until: Instant) -> String {
    let dup = tokio::spawn(duplicates(endpoint.clone(), until));
    let panics = tokio::spawn(panics(endpoint.clone(), until));
    let (dup, cut_dup) = dup.await.unwrap_or_default();
    let (panics, cut_panics) = panics.await.unwrap_or_default();
    format!(
        "{dup} requests reusing an id in flight ({cut_dup} connections cut); \
         {panics} panicking calls ({cut_panics} connections cut)"
    )
}

/// Returns (duplicate requests sent, connections the server closed).
async fn duplicates(endpoint: Endpoint, until: Instant) -> (u64, u64) {
    let (mut sent, mut cut) = (0, 0);
    while sent < DUPLICATES && Instant::now() < until {
        let Ok((read, mut write)) = endpoint.connect_raw().await else { break };
        let reader = tokio::spawn(drain(read, until));
        let mut bytes = wire::greeting();
        // `slow(ms)`: 60,000 as a varint.
        bytes.extend(request(1, "slow", false, &wire::varint(60_000)));
        let mut ok = write.write_all(&bytes).await.is_ok();
        while ok && sent < DUPLICATES && Instant::now() < until && !reader.is_finished() {
            // A batch of 100 duplicates of id 1 (`echo(7)`).
            let batch: Vec<u8> = (0..100).flat_map(|_| request(1, "echo", false, &[7])).collect();
            ok = write.write_all(&batch).await.is_ok();
            sent += 100;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !ok || reader.is_finished() {
            cut += 1;
        }
        if sent >= DUPLICATES || Instant::now() >= until {
            // Hold the connection (and its call) to the end.
            tokio::time::sleep_until(until.into()).await;
        }
    }
    (sent, cut)
}

/// Returns (panicking calls sent, connections the server closed).
async fn panics(endpoint: Endpoint, until: Instant) -> (u64, u64) {
    let (mut sent, mut cut) = (0, 0);
    let mut id = 0;
    while Instant::now() < until {
        let Ok((read, mut write)) = endpoint.connect_raw().await else { break };
        let reader = tokio::spawn(drain(read, until));
        let mut ok = write.write_all(&wire::greeting()).await.is_ok();
        // Ten calls every 10 ms.
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while ok && Instant::now() < until && !reader.is_finished() {
            tick.tick().await;
            let batch: Vec<u8> = (0..PANICS_PER_SEC / 100)
                .flat_map(|_| {
                    id += 1;
                    request(id, "boom", false, &[])
                })
                .collect();
            ok = write.write_all(&batch).await.is_ok();
            sent += PANICS_PER_SEC / 100;
        }
        if Instant::now() < until {
            cut += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (sent, cut)
}
