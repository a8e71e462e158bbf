//! H6: 1,023 connections hold server slots (the default cap is 1,024) at almost no cost: a
//! preface, then a ping every 3 s. A connection the server closes is reopened.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::drain;
use crate::endpoint::Endpoint;
use rpc_tests::wire;

/// Connections held.
const CONNECTIONS: u64 = 1_023;
/// The ping interval of each.
const PING_EVERY: Duration = Duration::from_secs(3);

/// Runs the scenario; returns how many connections were held at the end.
pub(crate) async fn run(endpoint: &Endpoint, until: Instant) -> String {
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let endpoint = endpoint.clone();
            // Spread the pings over the interval.
            let offset = PING_EVERY * (i as u32) / CONNECTIONS as u32;
            tokio::spawn(async move { holder(&endpoint, until, offset).await })
        })
        .collect();
    let (mut held, mut closed) = (0u64, 0u64);
    for t in tasks {
        let (h, c) = t.await.unwrap_or_default();
        held += u64::from(h);
        closed += c;
    }
    format!("{held} of {CONNECTIONS} slot holders open at the end (counting just-reopened ones); the server closed {closed}, each reopened after 100 ms")
}

/// One holder; returns (connected at the end, times the server closed it).
async fn holder(endpoint: &Endpoint, until: Instant, offset: Duration) -> (bool, u64) {
    let mut closed = 0;
    let mut nonce = 0;
    while Instant::now() < until {
        let Ok((read, mut write)) = endpoint.connect_raw().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let reader = tokio::spawn(drain(read, until));
        let mut ok = write.write_all(&wire::greeting()).await.is_ok();
        let mut tick = tokio::time::interval_at((Instant::now() + offset).into(), PING_EVERY);
        while ok && !reader.is_finished() {
            tokio::select! {
                _ = tick.tick() => {
                    nonce += 1;
                    ok = write.write_all(&wire::frame(&wire::ping(nonce))).await.is_ok();
                }
                _ = tokio::time::sleep_until(until.into()) => return (true, closed),
                // Polled only to notice the server closing the connection.
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        let _ = reader.await;
        closed += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (false, closed)
}
