//! `rpc-bench nats [URL] [--secs S]`: a call through the NATS binding against a bare `async-nats`
//! request to a bare responder, same broker, same process, same payload (a 16-byte echo).
//!
//! Without a URL it starts `nats-server` (from `NATS_SERVER`, or on `PATH`) on a free port and
//! stops it at the end. Prints p50/p99 of sequential calls and calls/s with 64 in flight.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rpc_runtime::nats::{self, NatsChannel, NatsServer};
use rpc_runtime::service;

/// The benchmark's service.
#[service(name = "bench.Echo")]
pub(crate) trait Echo {
    /// Returns its argument.
    async fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
}

struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(&self, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut url = None;
    let mut secs = 2.0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--secs" => secs = it.next().and_then(|s| s.parse().ok()).ok_or("--secs needs a number")?,
            other => url = Some(other.to_owned()),
        }
    }
    let mut broker = None;
    let url = match url {
        Some(url) => url,
        None => {
            let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| e.to_string())?
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("could not start {binary} ({e}); pass a broker URL"))?;
            let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
            while let Some(Ok(line)) = lines.next() {
                if line.contains("Server is ready") {
                    break;
                }
            }
            std::thread::spawn(move || for _ in lines {});
            broker = Some(child);
            format!("nats://127.0.0.1:{port}")
        }
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let result = runtime.block_on(run(&url, Duration::from_secs_f64(secs)));
    if let Some(mut child) = broker {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

async fn run(url: &str, measure: Duration) -> Result<(), String> {
    let e = |e: rpc_runtime::RpcError| e.to_string();
    let server_conn = nats::connect(url).await.map_err(e)?;
    let client_conn = nats::connect(url).await.map_err(e)?;
    let payload = vec![7u8; 16];

    // The bare responder: a subscription answering each request with its payload. It also
    // answers the binding's client on `bare.bench.Echo.echo` (an echo's argument tuple and its
    // result encode alike), which isolates the client's share of the cost.
    for subject in ["bench.bare", "bare.bench.Echo.echo"] {
        let bare_server = server_conn.client().clone();
        let mut requests = bare_server.subscribe(subject).await.map_err(|e| e.to_string())?;
        bare_server.flush().await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                if let Some(reply) = m.reply {
                    let _ = bare_server.publish(reply, m.payload).await;
                }
            }
        });
    }
    let _ours = NatsServer::new(EchoServer::new(EchoImpl)).serve(&server_conn).await.map_err(e)?;

    let bare = client_conn.client().clone();
    let ours = EchoClient::from_service(NatsChannel::new(&client_conn));
    let client_only =
        EchoClient::from_service(NatsChannel::new(&client_conn).with_prefix("bare").map_err(e)?);
    let client_only_call = {
        let payload = payload.clone();
        move || {
            let (client, payload) = (client_only.clone(), payload.clone());
            async move { client.echo(payload).await.map(drop).map_err(|e| e.to_string()) }
        }
    };
    let bare_call = {
        let payload = bytes::Bytes::from(payload.clone());
        move || {
            let (bare, payload) = (bare.clone(), payload.clone());
            async move { bare.request("bench.bare", payload).await.map(drop).map_err(|e| e.to_string()) }
        }
    };
    let ours_call = {
        let payload = payload.clone();
        move || {
            let (ours, payload) = (ours.clone(), payload.clone());
            async move { ours.echo(payload).await.map(drop).map_err(|e| e.to_string()) }
        }
    };
    println!(
        "nats, 16-byte echo, client and server in one process on separate connections, {measure:?} each"
    );
    println!("{:<22} {:>10} {:>10} {:>14}", "", "p50 (us)", "p99 (us)", "calls/s (64)");
    let mut results = Vec::new();
    for (name, round) in
        [("bare async-nats", 0), ("rpc over nats", 1), ("bare async-nats", 2), ("rpc over nats", 3)]
    {
        let (p50, p99, rate) = if round % 2 == 0 {
            (latency(&bare_call, measure).await?, throughput(&bare_call, measure).await?)
        } else {
            (latency(&ours_call, measure).await?, throughput(&ours_call, measure).await?)
        }
        .flatten();
        println!("{name:<22} {p50:>10.1} {p99:>10.1} {rate:>14.0}");
        results.push((p50, rate));
    }
    let (p50, p99, rate) =
        (latency(&client_only_call, measure).await?, throughput(&client_only_call, measure).await?).flatten();
    println!("{:<22} {p50:>10.1} {p99:>10.1} {rate:>14.0}", "rpc client, bare server");
    let (bare_p50, bare_rate) = ((results[0].0 + results[2].0) / 2.0, (results[0].1 + results[2].1) / 2.0);
    let (ours_p50, ours_rate) = ((results[1].0 + results[3].0) / 2.0, (results[1].1 + results[3].1) / 2.0);
    println!(
        "ratio (rpc / bare, mean of two rounds): p50 {:.2}x, calls/s {:.2}x",
        ours_p50 / bare_p50,
        ours_rate / bare_rate
    );
    Ok(())
}

/// `((p50, p99), rate)` as `(p50, p99, rate)`.
pub(crate) trait Flatten {
    fn flatten(self) -> (f64, f64, f64);
}

impl Flatten for ((f64, f64), f64) {
    fn flatten(self) -> (f64, f64, f64) {
        (self.0 .0, self.0 .1, self.1)
    }
}

/// p50 and p99 of sequential calls, in microseconds.
pub(crate) async fn latency<F, Fut>(call: &F, measure: Duration) -> Result<(f64, f64), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for _ in 0..200 {
        call().await?;
    }
    let mut samples = Vec::new();
    let end = Instant::now() + measure;
    while Instant::now() < end {
        let start = Instant::now();
        call().await?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], samples[samples.len() * 99 / 100]))
}

/// Calls per second with 64 calls in flight.
pub(crate) async fn throughput<F, Fut>(call: &F, measure: Duration) -> Result<f64, String>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (call, done, stop) = (call.clone(), Arc::clone(&done), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    call().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    tokio::time::sleep(measure / 4).await;
    let (start, before) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(measure).await;
    let rate = (done.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(rate)
}
