//! A client of the `fifo_server` example: connects through the server's well-known FIFO.
//!
//! ```text
//! cargo run -p rpc-examples --example fifo_client -- /tmp/rpc-kv.fifo [key] [value]
//! ```
//!
//! Waits up to 5 seconds for the server to come up, stores `value` under `key` (by default a
//! visit counter), and prints what was there: run it twice to see the server keep state between
//! clients.

use rpc_examples::kv::{self, KeyValueClient};
use rpc_runtime::transport::fifo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let mut args = std::env::args_os().skip(1);
    let path = args.next().map(Into::into).unwrap_or_else(kv::default_path);
    let key = args.next().map(|k| k.to_string_lossy().into_owned()).unwrap_or_else(|| "visits".into());

    let client = KeyValueClient::new(fifo::connect(&path).await?);
    let value = match args.next() {
        Some(value) => value.to_string_lossy().into_owned(),
        None => {
            let visits: u64 = client.get(key.clone()).await?.and_then(|v| v.parse().ok()).unwrap_or(0);
            (visits + 1).to_string()
        }
    };
    let previous = client.set(key.clone(), value.clone()).await?;
    println!("{key}: {previous:?} -> {value:?} (via {})", path.display());
    Ok(())
}
