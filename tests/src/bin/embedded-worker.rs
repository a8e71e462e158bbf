//! A `Work` worker of stored calls in its own process, over the embedded default's queue file.
//!
//! ```text
//! embedded-worker PATH NAME   # runs the stored calls in the SQLite file PATH (ack wait 1 s);
//!                             # prints "ready NAME", then "sleeping" each time a sleep_ms
//!                             # handler starts
//! ```
//!
//! It works until the test closes its stdin, or kills it.

use std::io::{Read, Write};
use std::time::Duration;

use rpc_runtime::embedded::{FileQueue, FileQueueConfig, FileWorker};
use rpc_tests::work::{WorkImpl, WorkServer};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, name] = args.as_slice() else {
        eprintln!("usage: embedded-worker PATH NAME");
        std::process::exit(2);
    };
    let config = FileQueueConfig { ack_wait: Duration::from_secs(1), ..FileQueueConfig::default() };
    let queue = FileQueue::open(path, config).await.expect("open the queue file");
    let work = WorkImpl::named(name);
    let worker = FileWorker::new(WorkServer::new(work.clone())).serve(&queue);
    say(&format!("ready {name}"));
    let sleeping = work.sleeping.clone();
    tokio::spawn(async move {
        loop {
            sleeping.notified().await;
            say("sleeping");
        }
    });
    // Work until the test closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    })
    .await
    .expect("stdin watcher");
    worker.shutdown(Duration::from_secs(1)).await;
}
