//! H1: connections reset before the server accepts them. Each connects, sets `SO_LINGER` to
//! {1, 0} and closes at once, so the kernel sends RST instead of FIN; what a port scanner, a
//! health checker or a client killed right after connecting does. TCP only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::endpoint::{attacker_tcp, Endpoint};

/// Connects made at most (one after another, each bounded by a second).
const CONNECTS: u32 = 5_000;

/// Runs the burst; returns what happened to the connects.
pub(crate) async fn run(endpoint: &Endpoint, until: Instant) -> String {
    let Endpoint::Tcp(addr) = endpoint else { return "skipped: a reset needs TCP".into() };
    let (mut reset, mut failed) = (0u32, BTreeMap::<String, u32>::new());
    for _ in 0..CONNECTS {
        if Instant::now() >= until {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), attacker_tcp(*addr)).await {
            Ok(Ok(stream)) => {
                stream.set_zero_linger().expect("SO_LINGER");
                drop(stream);
                reset += 1;
            }
            Ok(Err(e)) => *failed.entry(format!("{:?}", e.kind())).or_default() += 1,
            Err(_) => *failed.entry("timed out".into()).or_default() += 1,
        }
    }
    let failed: Vec<String> = failed.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "{reset} connects reset; refused: {}",
        if failed.is_empty() { "none".into() } else { failed.join(", ") }
    )
}
