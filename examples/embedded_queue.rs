//! Persistent calls without a broker: a `#[rpc(persistent)]` method stored in a SQLite file by a
//! caller process, run by a worker process (or several) when one is up, its result fetched later
//! by anyone holding the call id.
//!
//! ```text
//! cargo run -p rpc-examples --example embedded_queue                         # everything in one process
//! cargo run -p rpc-examples --example embedded_queue -- submit FILE TO       # store a call; prints its id
//! cargo run -p rpc-examples --example embedded_queue -- worker FILE NAME     # run stored calls, until Ctrl-C
//! cargo run -p rpc-examples --example embedded_queue -- fetch FILE ID        # what became of a call
//! ```

use std::time::Duration;

use rpc_runtime::embedded::{FileQueue, FileQueueConfig, FileWorker};
use rpc_runtime::queued::CallState;
use rpc_runtime::service;

/// Sends mail, later: a stored call runs at least once, so `send` must be idempotent (the id
/// of the call is the natural key to skip a mail already sent).
#[service(name = "demo.Mailer")]
pub trait Mailer {
    /// Sends a mail to `to`; says who sent it.
    #[rpc(persistent)]
    async fn send(&self, to: String) -> String;
}

struct Worker(String);

impl Mailer for Worker {
    async fn send(&self, to: String) -> String {
        format!("mail to {to} sent by {}", self.0)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let open = |file: &str| FileQueue::open(file.to_owned(), FileQueueConfig::default());
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["submit", file, to] => {
            let call = MailerQueue::new(open(file).await?).submit_send((*to).to_owned()).await?;
            println!("{}", call.id());
        }
        ["worker", file, name] => {
            let worker =
                FileWorker::new(MailerServer::new(Worker((*name).to_owned()))).serve(&open(file).await?);
            println!("worker {name} runs the calls stored in {file}; Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
            worker.shutdown(Duration::from_secs(5)).await;
        }
        ["fetch", file, id] => {
            let state = MailerQueue::new(open(file).await?).resume_send(*id).fetch().await?;
            println!("{state:?}");
        }
        [] => demo().await?,
        _ => return Err("usage: embedded_queue [submit FILE TO | worker FILE NAME | fetch FILE ID]".into()),
    }
    Ok(())
}

/// Stores three calls while no worker runs, starts two workers, and waits for the results.
async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("embedded_queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let queue = FileQueue::open(dir.join("calls.sqlite"), FileQueueConfig::default()).await?;
    let mailer = MailerQueue::new(queue.clone());
    let mut calls = Vec::new();
    for to in ["ann", "bob", "cy"] {
        let call = mailer.submit_send(to.into()).await?;
        println!("stored {} ({:?})", call.id(), call.fetch().await?);
        calls.push(call);
    }
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|name| FileWorker::new(MailerServer::new(Worker(name.into()))).serve(&queue))
        .collect();
    for call in &calls {
        match call.wait(Duration::from_secs(10)).await? {
            CallState::Done(Ok(said)) => println!("{}: {said}", call.id()),
            other => println!("{}: {other:?}", call.id()),
        }
    }
    for worker in workers {
        worker.shutdown(Duration::from_secs(1)).await;
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
