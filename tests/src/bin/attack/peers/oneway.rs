//! H4: 1,100 connections each send one one-way call to a 60 s handler (no deadline) and close
//! cleanly. Afterwards the attacker holds nothing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::request;
use crate::endpoint::Endpoint;
use rpc_tests::wire;

/// Connections, each with one call.
const CONNECTIONS: usize = 1_100;
/// How long each call's handler sleeps.
const HANDLER_SECS: u8 = 60;
/// Connections being opened at once.
const CONCURRENCY: usize = 50;

/// Runs the scenario; returns how many calls were sent.
pub(crate) async fn run(endpoint: &Endpoint, until: Instant) -> String {
    let outcomes: Vec<bool> = futures::stream::iter(0..CONNECTIONS)
        .map(|_| one(endpoint, until))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let sent = outcomes.iter().filter(|ok| **ok).count();
    format!("{sent} of {CONNECTIONS} connections sent a one-way call ({HANDLER_SECS} s handler) and closed")
}

async fn one(endpoint: &Endpoint, until: Instant) -> bool {
    if Instant::now() >= until {
        return false;
    }
    let Ok((mut read, mut write)) = endpoint.connect_raw().await else { return false };
    let mut bytes = wire::greeting();
    // `linger(secs: u64)`: postcard's varint of 60 is the byte 60.
    bytes.extend(request(1, "linger", true, &[HANDLER_SECS]));
    if write.write_all(&bytes).await.is_err() {
        return false;
    }
    // Read the server's preface first: closing with unread bytes would send RST, not FIN.
    let mut preface = [0u8; 8];
    let got = tokio::time::timeout(Duration::from_secs(2), read.read_exact(&mut preface)).await;
    let _ = write.shutdown().await;
    matches!(got, Ok(Ok(_)))
}
