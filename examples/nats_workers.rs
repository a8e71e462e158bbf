//! Several workers behind one service name, through a NATS broker: calls balanced over the
//! workers, a gather that hears each of them, discovery, and a persistent call stored while no
//! worker runs.
//!
//! ```text
//! cargo run -p rpc-examples --example nats_workers                      # everything in one process
//! cargo run -p rpc-examples --example nats_workers -- worker URL NAME   # one worker, until Ctrl-C
//! cargo run -p rpc-examples --example nats_workers -- call URL          # a caller
//! ```
//!
//! Without arguments it uses the broker at `NATS_URL`, or starts `nats-server` itself (from
//! `NATS_SERVER`, or `nats-server` on `PATH`: `apt-get install nats-server` on Debian) on a free
//! port with JetStream on, and stops it at the end.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rpc_runtime::describe::MethodKind;
use rpc_runtime::nats::{
    self, CallQueue, CallState, NatsChannel, NatsConnection, NatsServer, QueueConfig, QueueWorker,
};
use rpc_runtime::{service, MethodRef};

/// A pool of workers, each telling who it is.
#[service(name = "demo.Jobs")]
pub trait Jobs {
    /// The worker's name.
    async fn whoami(&self) -> String;
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
}

struct Worker(String);

impl Jobs for Worker {
    async fn whoami(&self) -> String {
        self.0.clone()
    }
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

static WHOAMI: MethodRef = MethodRef::dynamic("demo.Jobs", "whoami", MethodKind::Unary, 0);
static ADD: MethodRef = MethodRef::dynamic("demo.Jobs", "add", MethodKind::Unary, 0);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["worker", url, name] => worker(url, name).await,
        ["call", url] => call(&nats::connect(*url).await?).await,
        [] => demo().await,
        _ => Err("usage: nats_workers [worker URL NAME | call URL]".into()),
    }
}

/// One worker, until Ctrl-C.
async fn worker(url: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let connection = nats::connect(url).await?;
    let server = NatsServer::new(JobsServer::new(Worker(name.to_owned()))).serve(&connection).await?;
    println!("worker {name} ready on {url}");
    tokio::signal::ctrl_c().await?;
    server.shutdown(Duration::from_secs(5)).await;
    println!("worker {name} stopped");
    Ok(())
}

/// Sixty calls; the broker spreads them over the workers that are up.
async fn call(connection: &NatsConnection) -> Result<(), Box<dyn std::error::Error>> {
    let jobs = JobsClient::from_service(NatsChannel::new(connection).with_timeout(Duration::from_secs(5)));
    let mut served = BTreeMap::<String, usize>::new();
    for _ in 0..60 {
        *served.entry(jobs.whoami().await?).or_default() += 1;
    }
    println!("60 calls served by {} workers: {served:?}", served.len());
    println!("add(20, 22) = {}", jobs.add(20, 22).await?);
    Ok(())
}

/// A broker, three workers, a caller, a gather, discovery and a stored call.
async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let (url, broker) = match std::env::var("NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let (url, broker) = start_broker()?;
            (url, Some(broker))
        }
    };
    println!("broker: {url}");
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        // Each worker with its own connection, as separate processes would have.
        let connection = nats::connect(url.as_str()).await?;
        workers.push(NatsServer::new(JobsServer::new(Worker(name.into()))).serve(&connection).await?);
    }
    println!("3 workers ready");
    let connection = nats::connect(url.as_str()).await?;
    call(&connection).await?;

    let channel = NatsChannel::new(&connection);
    let mut names: Vec<String> = channel
        .gather_method(&WHOAMI, (), Duration::from_millis(300))
        .await?
        .into_iter()
        .collect::<Result<_, _>>()?;
    names.sort();
    println!("gather whoami() = {names:?}");
    let instances = nats::instances(&connection, "demo.Jobs", Duration::from_millis(300)).await?;
    println!("{} live instances of demo.Jobs", instances.len());
    for worker in workers {
        worker.shutdown(Duration::from_secs(1)).await;
    }

    // A persistent call: stored by the broker now, run when a queue worker starts.
    let queue = CallQueue::open(&connection, QueueConfig::default()).await?;
    let handle = queue.submit_method(&ADD, (20i64, 22i64)).await?;
    let state = queue.fetch_result(&handle.id).await?;
    println!(
        "stored add(20, 22) with no worker up: {}",
        if matches!(state, CallState::Pending) { "pending" } else { "?" }
    );
    let queue_worker = QueueWorker::new(JobsServer::new(Worker("late".into()))).serve(&connection).await?;
    match queue.wait_result(&handle.id, Duration::from_secs(10)).await? {
        CallState::Done(Ok(reply)) => println!("a queue worker ran it: {}", postcard_i64(&reply.body)),
        other => println!("unexpected: {other:?}"),
    }
    queue_worker.shutdown(Duration::from_secs(1)).await;
    if let Some(mut broker) = broker {
        let _ = broker.0.kill();
        let _ = broker.0.wait();
        let _ = std::fs::remove_dir_all(&broker.1);
    }
    println!("done");
    Ok(())
}

/// A postcard `i64` (zigzag varint), decoded by hand to keep the example's dependencies short.
fn postcard_i64(bytes: &[u8]) -> i64 {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// `nats-server` on a free port with JetStream, once it says it is ready.
fn start_broker() -> Result<(String, (Child, std::path::PathBuf)), Box<dyn std::error::Error>> {
    let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = std::env::temp_dir().join(format!("nats-workers-example-{}", std::process::id()));
    let mut child = Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("could not start `{binary}` ({e}): install it (`apt-get install nats-server`), set NATS_SERVER to its path, or set NATS_URL to a running broker")
        })?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Server is ready") => break,
            Some(Ok(_)) => {}
            _ => return Err("nats-server exited before it was ready".into()),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((format!("nats://127.0.0.1:{port}"), (child, store)))
}
