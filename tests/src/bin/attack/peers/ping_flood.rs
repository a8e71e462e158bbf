//! H8: a ping flood that slips one request in every 900 pings, under the "1,000 control
//! frames per second with no request" rule. A connection the server cuts is reopened.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{drain, request};
use crate::endpoint::Endpoint;
use rpc_tests::wire;

/// Pings per request.
const PINGS_PER_REQUEST: u64 = 900;
/// One batch (900 pings and a request) per this period: 180,000 pings a second.
const PERIOD: Duration = Duration::from_millis(5);

/// Runs the flood; returns what was sent and how often it was cut off.
pub(crate) async fn run(endpoint: &Endpoint, until: Instant) -> String {
    let (mut pings, mut cut, mut nonce, mut id) = (0u64, 0u64, 0u64, 0u64);
    while Instant::now() < until {
        let Ok((read, mut write)) = endpoint.connect_raw().await else { break };
        let reader = tokio::spawn(drain(read, until));
        let mut ok = write.write_all(&wire::greeting()).await.is_ok();
        let mut tick = tokio::time::interval(PERIOD);
        while ok && Instant::now() < until && !reader.is_finished() {
            tick.tick().await;
            let mut batch = Vec::with_capacity(8 * 1024);
            for _ in 0..PINGS_PER_REQUEST {
                nonce += 1;
                batch.extend(wire::frame(&wire::ping(nonce)));
            }
            id += 1;
            batch.extend(request(id, "echo", false, &[1]));
            ok = write.write_all(&batch).await.is_ok();
            pings += PINGS_PER_REQUEST;
        }
        if Instant::now() < until {
            cut += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A machine-readable line for the H8 check, before the `stats` line.
    println!("cut {cut}");
    format!("{pings} pings, one request per {PINGS_PER_REQUEST}; cut off {cut} times")
}
