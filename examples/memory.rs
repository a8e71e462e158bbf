//! A service and its client in one process, over an in-memory connection.
//!
//! ```text
//! cargo run -p rpc-examples --example memory
//! ```
//!
//! The in-memory pair is still framed and encoded, so calls behave exactly as over a socket
//! (deadlines, cancellation, limits, errors): it is the transport for unit tests of a service and
//! for components of one program that should not share state directly. `memory::listener()` gives
//! a listener and a connector when a server should take many in-memory clients.

use std::time::Duration;

use rpc_runtime::transport::memory;
use rpc_runtime::{service, RpcError, Server};

/// Counts words.
#[service]
pub trait Words {
    /// The number of words in `text`.
    async fn count(&self, text: String) -> usize;
    /// Waits `millis` milliseconds, then answers (to show a deadline at work).
    async fn slow(&self, millis: u64) -> u64;
}

struct Counter;

impl Words for Counter {
    async fn count(&self, text: String) -> usize {
        text.split_whitespace().count()
    }

    async fn slow(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let (client_side, server_side) = memory::pair();
    let server = Server::new(WordsServer::new(Counter)).serve_connection(server_side);
    let client = WordsClient::new(client_side);

    println!("count(..)          = {}", client.count("the quick brown fox".into()).await?);
    let late = client.with_timeout(Duration::from_millis(20)).slow(1_000).await;
    assert!(matches!(late, Err(RpcError::DeadlineExceeded)));
    println!("slow(1000) in 20ms = {late:?}");

    drop(client); // the server's connection ends when its only client goes
    server.await;
    println!("server stopped");
    Ok(())
}
