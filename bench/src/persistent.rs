//! `rpc-bench persistent [--secs S]`: a persistent call (`#[rpc(persistent)]`'s typed
//! `submit_echo`, returning once the call is stored) against a bare JetStream publish-and-ack of
//! the same payload, same broker, same run; and the embedded default's SQLite queue beside them.
//!
//! It starts `nats-server` (from `NATS_SERVER`, or on `PATH`) with JetStream on, its store in a
//! fresh temporary directory, and stops it at the end. Prints p50/p99 of sequential submissions
//! and submissions/s with 64 in flight. Nothing consumes the stored calls: this measures storing.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rpc_runtime::embedded::{FileQueue, FileQueueConfig};
use rpc_runtime::nats::async_nats::jetstream::{self, stream};
use rpc_runtime::nats::{self, CallQueue, QueueConfig};
use rpc_runtime::service;

use crate::nats::{latency, throughput, Flatten};

/// The benchmark's persistent service.
#[service(name = "bench.Stored")]
pub(crate) trait Stored {
    /// Returns its argument.
    #[rpc(persistent)]
    async fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut secs = 2.0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => secs = it.next().and_then(|s| s.parse().ok()).ok_or("--secs needs a number")?,
            other => {
                return Err(format!("unknown argument `{other}`; usage: rpc-bench persistent [--secs S]"))
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("rpc-bench-persistent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (mut broker, url) = start_broker(&dir)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let result = runtime.block_on(run(&url, dir.join("calls.sqlite"), Duration::from_secs_f64(secs)));
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn start_broker(dir: &std::path::Path) -> Result<(Child, String), String> {
    let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?.local_addr().unwrap().port();
    let store = dir.join("jetstream");
    let mut child = Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {binary} ({e})"))?;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.contains("Server is ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((child, format!("nats://127.0.0.1:{port}")))
}

async fn run(url: &str, file: PathBuf, measure: Duration) -> Result<(), String> {
    let e = |e: rpc_runtime::RpcError| e.to_string();
    let connection = nats::connect(url).await.map_err(e)?;
    let payload = vec![7u8; 16];

    // The bare baseline: a file-storage stream as the call queue's, one publish awaited until
    // the broker's ack.
    let js = jetstream::new(connection.client().clone());
    js.get_or_create_stream(stream::Config {
        name: "bench_bare".into(),
        subjects: vec!["bench.bare.>".into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let bare_call = {
        let payload = bytes::Bytes::from(payload.clone());
        move || {
            let (js, payload) = (js.clone(), payload.clone());
            async move {
                let ack = js.publish("bench.bare.echo", payload).await.map_err(|e| e.to_string())?;
                ack.await.map(drop).map_err(|e| e.to_string())
            }
        }
    };
    let ours = StoredQueue::new(CallQueue::open(&connection, QueueConfig::default()).await.map_err(e)?);
    let ours_call = {
        let payload = payload.clone();
        move || {
            let (ours, payload) = (ours.clone(), payload.clone());
            async move { ours.submit_echo(payload).await.map(drop).map_err(|e| e.to_string()) }
        }
    };
    let file = StoredQueue::new(FileQueue::open(&file, FileQueueConfig::default()).await.map_err(e)?);
    let file_call = {
        let payload = payload.clone();
        move || {
            let (file, payload) = (file.clone(), payload.clone());
            async move { file.submit_echo(payload).await.map(drop).map_err(|e| e.to_string()) }
        }
    };

    println!("persistent calls, 16-byte echo, until stored (JetStream file storage; SQLite WAL, synchronous=FULL), {measure:?} each");
    println!("{:<28} {:>10} {:>10} {:>14}", "", "p50 (us)", "p99 (us)", "stored/s (64)");
    let mut results = Vec::new();
    for (name, round) in [
        ("bare JetStream publish+ack", 0),
        ("rpc persistent (JetStream)", 1),
        ("bare JetStream publish+ack", 2),
        ("rpc persistent (JetStream)", 3),
    ] {
        let (p50, p99, rate) = if round % 2 == 0 {
            (latency(&bare_call, measure).await?, throughput(&bare_call, measure).await?)
        } else {
            (latency(&ours_call, measure).await?, throughput(&ours_call, measure).await?)
        }
        .flatten();
        println!("{name:<28} {p50:>10.1} {p99:>10.1} {rate:>14.0}");
        results.push((p50, rate));
    }
    let (p50, p99, rate) =
        (latency(&file_call, measure).await?, throughput(&file_call, measure).await?).flatten();
    println!("{:<28} {p50:>10.1} {p99:>10.1} {rate:>14.0}", "rpc persistent (SQLite file)");
    let (bare_p50, bare_rate) = ((results[0].0 + results[2].0) / 2.0, (results[0].1 + results[2].1) / 2.0);
    let (ours_p50, ours_rate) = ((results[1].0 + results[3].0) / 2.0, (results[1].1 + results[3].1) / 2.0);
    println!(
        "ratio (rpc persistent / bare, mean of two rounds): p50 {:.2}x, stored/s {:.2}x",
        ours_p50 / bare_p50,
        ours_rate / bare_rate
    );
    Ok(())
}
