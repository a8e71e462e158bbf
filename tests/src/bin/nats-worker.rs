//! A `Work` instance in its own process, served through a NATS broker.
//!
//! ```text
//! nats-worker URL NAME   # prints "ready NAME" once subscribed; serves until killed or stdin closes
//! ```

use std::io::{Read, Write};
use std::time::Duration;

use rpc_runtime::nats::{self, NatsServer};
use rpc_tests::nats::{WorkImpl, WorkServer};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name] = args.as_slice() else {
        eprintln!("usage: nats-worker URL NAME");
        std::process::exit(2);
    };
    let connection = nats::connect(url.as_str()).await.expect("connect to the broker");
    let server =
        NatsServer::new(WorkServer::new(WorkImpl::named(name))).serve(&connection).await.expect("serve");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {name}").expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    // Serve until the test closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    })
    .await
    .expect("stdin watcher");
    server.shutdown(Duration::from_secs(1)).await;
}
