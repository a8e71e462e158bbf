//! `rpc-bench stream`: a server stream of 16-byte and 64 KiB items over a Unix socket, this
//! framework against a raw floor (a blocking writer of length-prefixed frames, read with a
//! buffered reader), the server in a child process, in the same run.
//!
//! ```text
//! taskset -c 0 cargo run --release -p rpc-bench -- stream      # pinned: both processes on CPU 0
//! ```

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rpc_runtime::{service, Server, Streaming};

/// The streaming benchmark service.
#[service]
pub(crate) trait StreamBench {
    /// `count` items of `size` bytes each.
    async fn items(&self, size: u32, count: u64) -> Streaming<Vec<u8>>;
}

struct Items;

impl StreamBench for Items {
    async fn items(&self, size: u32, count: u64) -> Streaming<Vec<u8>> {
        let item = vec![7u8; size as usize];
        Streaming::new(futures::stream::repeat(item).take(count as usize))
    }
}

/// The child: `stream-server ours|floor PATH`; prints `READY` once it listens.
pub(crate) fn server_main(args: &[String]) -> Result<(), String> {
    let [imp, path] = args else { return Err("usage: rpc-bench stream-server ours|floor PATH".into()) };
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    match imp.as_str() {
        "floor" => {
            let listener = UnixListener::bind(path).map_err(|e| e.to_string())?;
            println!("READY");
            for conn in listener.incoming() {
                let conn = conn.map_err(|e| e.to_string())?;
                std::thread::spawn(move || floor_serve(conn));
            }
            Ok(())
        }
        "ours" => {
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let listener = rpc_runtime::transport::unix::bind(path).await.map_err(|e| e.to_string())?;
                println!("READY");
                Server::new(StreamBenchServer::new(Items)).serve(listener).wait().await;
                Ok(())
            })
        }
        other => Err(format!("unknown implementation {other:?}")),
    }
}

/// The floor's server: per request (`size: u32`, `count: u64`, big-endian), `count` frames of
/// `size` bytes, each with a 4-byte length, through a 64 KiB buffer.
fn floor_serve(conn: UnixStream) {
    let mut read = BufReader::new(conn.try_clone().expect("clone"));
    let mut write = BufWriter::with_capacity(64 * 1024, conn);
    let mut request = [0u8; 12];
    while read.read_exact(&mut request).is_ok() {
        let size = u32::from_be_bytes(request[..4].try_into().expect("4 bytes"));
        let count = u64::from_be_bytes(request[4..].try_into().expect("8 bytes"));
        let item = vec![7u8; size as usize];
        for _ in 0..count {
            if write.write_all(&size.to_be_bytes()).and_then(|()| write.write_all(&item)).is_err() {
                return;
            }
        }
        if write.flush().is_err() {
            return;
        }
    }
}

fn floor_run(path: &str, size: u32, count: u64) -> Duration {
    let conn = UnixStream::connect(path).expect("connect floor");
    let mut write = conn.try_clone().expect("clone");
    let mut read = BufReader::with_capacity(64 * 1024, conn);
    let start = Instant::now();
    write.write_all(&[&size.to_be_bytes()[..], &count.to_be_bytes()[..]].concat()).expect("request");
    let mut body = vec![0u8; size as usize];
    for _ in 0..count {
        let mut header = [0u8; 4];
        read.read_exact(&mut header).expect("header");
        read.read_exact(&mut body).expect("body");
    }
    start.elapsed()
}

async fn ours_run(client: &StreamBenchClient, size: u32, count: u64) -> Duration {
    let start = Instant::now();
    let mut items = client.items(size, count).await.expect("open");
    let mut got = 0;
    while let Some(item) = items.next().await {
        assert_eq!(item.expect("item").len(), size as usize);
        got += 1;
    }
    assert_eq!(got, count);
    start.elapsed()
}

fn spawn(imp: &str, path: &str) -> std::process::Child {
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .args(["stream-server", imp, path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "READY");
    child
}

/// The parent: measures both, best of 5, and prints a markdown table.
pub(crate) fn main(_args: &[String]) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("rpc-bench-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (ours_path, floor_path) = (dir.join("ours.sock"), dir.join("floor.sock"));
    let (ours_path, floor_path) = (ours_path.to_str().expect("utf-8"), floor_path.to_str().expect("utf-8"));
    let mut servers = [spawn("ours", ours_path), spawn("floor", floor_path)];
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let client = rt.block_on(async {
        let conn = rpc_runtime::transport::unix::connect(ours_path).await.expect("connect ours");
        StreamBenchClient::from_client(rpc_runtime::Client::builder().timeout(None).build(conn))
    });
    println!("| items | ours | floor | ours/floor |");
    println!("| --- | --- | --- | --- |");
    for (size, count) in [(16u32, 1_000_000u64), (64 * 1024, 20_000)] {
        let (mut ours, mut floor) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            ours = ours.min(rt.block_on(ours_run(&client, size, count)));
            floor = floor.min(floor_run(floor_path, size, count));
        }
        let rate = |d: Duration| count as f64 / d.as_secs_f64();
        let (label, show): (_, Box<dyn Fn(Duration) -> String>) = if size == 16 {
            ("16 B", Box::new(move |d| format!("{:.2} M items/s", rate(d) / 1e6)))
        } else {
            ("64 KiB", Box::new(move |d| format!("{:.0} MB/s", rate(d) * f64::from(size) / 1e6)))
        };
        println!("| {label} | {} | {} | {:.2}x |", show(ours), show(floor), rate(ours) / rate(floor));
    }
    // The servers exit when their stdin closes.
    for server in &mut servers {
        drop(server.stdin.take());
        let _ = server.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
