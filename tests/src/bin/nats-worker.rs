//! A `Work` instance in its own process, served through a NATS broker.
//!
//! ```text
//! nats-worker URL NAME         # serves calls; prints "ready NAME" once subscribed
//! nats-worker URL NAME queue   # runs stored calls (ack wait 1 s); prints "ready NAME", then
//!                              # "sleeping" each time a sleep_ms handler starts
//! ```
//!
//! It serves until the test closes its stdin, or kills it.

use std::io::{Read, Write};
use std::time::Duration;

use rpc_runtime::nats::{self, NatsServer, QueueConfig, QueueWorker};
use rpc_tests::nats::{WorkImpl, WorkServer};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, name, queue) = match args.as_slice() {
        [url, name] => (url, name, false),
        [url, name, mode] if mode == "queue" => (url, name, true),
        _ => {
            eprintln!("usage: nats-worker URL NAME [queue]");
            std::process::exit(2);
        }
    };
    let connection = nats::connect(url.as_str()).await.expect("connect to the broker");
    let work = WorkImpl::named(name);
    let stop: Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = if queue {
        let config = QueueConfig { ack_wait: Duration::from_secs(1), ..QueueConfig::default() };
        let worker = QueueWorker::new(WorkServer::new(work.clone()))
            .config(config)
            .serve(&connection)
            .await
            .expect("serve");
        Box::new(move || Box::pin(worker.shutdown(Duration::from_secs(1))))
    } else {
        let server = NatsServer::new(WorkServer::new(work.clone())).serve(&connection).await.expect("serve");
        Box::new(move || Box::pin(server.shutdown(Duration::from_secs(1))))
    };
    say(&format!("ready {name}"));
    let sleeping = work.sleeping.clone();
    tokio::spawn(async move {
        loop {
            sleeping.notified().await;
            say("sleeping");
        }
    });
    // Serve until the test closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    })
    .await
    .expect("stdin watcher");
    stop().await;
}
