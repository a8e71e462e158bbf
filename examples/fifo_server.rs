//! A key-value server listening on a well-known FIFO; run `fifo_client` in another terminal.
//!
//! ```text
//! cargo run -p rpc-examples --example fifo_server -- /tmp/rpc-kv.fifo
//! cargo run -p rpc-examples --example fifo_client -- /tmp/rpc-kv.fifo   # in another terminal
//! ```
//!
//! The server creates the FIFO (mode 0600, so only this user's processes can connect) and a lock
//! file next to it, so a second server on the same path is refused. Each client registers a
//! private pair of FIFOs there (see `FIFO.md`). Ctrl-C shuts the server down gracefully and
//! removes both files.

use std::time::Duration;

use rpc_examples::kv::{self, KeyValueServer, Store};
use rpc_runtime::transport::{fifo, Listener};
use rpc_runtime::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let path = std::env::args_os().nth(1).map(Into::into).unwrap_or_else(kv::default_path);
    let listener = fifo::bind(&path).await?;
    println!("listening on {}; press Ctrl-C to stop", listener.describe());
    let server = Server::new(KeyValueServer::new(Store::default())).serve(listener);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("shutting down"),
        _ = server.wait() => println!("the listener failed"),
    }
    server.shutdown(Duration::from_secs(5)).await;
    println!("stopped; {} removed", path.display());
    Ok(())
}
