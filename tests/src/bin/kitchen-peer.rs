//! A separate process for the cross-process tests.
//!
//! - `kitchen-peer serve-stdio`: serves the `Kitchen` test service on this process's stdin/stdout
//!   (the child side of the pipe transport).
//! - `kitchen-peer fifo-client PATH SEED`: connects to the FIFO listener at PATH, makes 100
//!   concurrent calls whose results depend on SEED, checks every result and exits 0.
//! - `kitchen-peer fifo-hang PATH`: connects to the FIFO listener at PATH, starts a call that
//!   never returns, prints `ready` on stdout once the server has started it, and waits to be
//!   killed.

use rpc_runtime::transport::{fifo, pipe};
use rpc_runtime::Server;
use rpc_tests::{KitchenClient, KitchenImpl};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve-stdio") => {
            let conn = pipe::stdio().expect("stdio connection");
            Server::new(rpc_tests::kitchen_router(KitchenImpl::new())).serve_connection(conn).await;
        }
        Some("fifo-client") => {
            let seed: u64 = args[3].parse().expect("a numeric seed");
            let client = KitchenClient::new(fifo::connect(&args[2]).await.expect("fifo connect"));
            let calls = (0..100u64).map(|i| {
                let client = client.clone();
                async move { (seed * 1000 + i, client.echo_after(seed * 1000 + i, (i % 7) as u32).await) }
            });
            for (want, got) in futures::future::join_all(calls).await {
                assert_eq!(got.expect("call"), want, "a response was routed to the wrong call");
            }
        }
        Some("fifo-hang") => {
            let client = KitchenClient::new(fifo::connect(&args[2]).await.expect("fifo connect"));
            let hang = tokio::spawn({
                let client = client.with_timeout(None);
                async move { client.hang(1).await }
            });
            client.next_started().await.expect("the hang call started");
            println!("ready");
            let _ = hang.await;
        }
        other => {
            eprintln!(
                "unknown mode {other:?}; expected serve-stdio, fifo-client PATH SEED or fifo-hang PATH"
            );
            std::process::exit(2);
        }
    }
}
