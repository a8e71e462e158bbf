//! The `Work` service every suite over a bus or a queue serves (NATS and the embedded default),
//! and worker processes serving it (`nats-worker`, `embedded-worker`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::{service, Context};
use tokio::sync::Notify;

/// The service of the bus and queue suites. Its dotted name exercises the service API's name mapping.
#[service(name = "test.Work")]
pub trait Work {
    /// The instance's name.
    async fn whoami(&self) -> String;
    /// Adds (also as a persistent call: `WorkQueue::submit_add`).
    #[rpc(persistent)]
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Sleeps `ms` milliseconds, then says which instance slept.
    #[rpc(persistent)]
    async fn sleep_ms(&self, ms: u64) -> String;
    /// `len` bytes, for replies over the broker's limit.
    async fn blob(&self, len: u32) -> Vec<u8>;
    /// Returns its argument.
    async fn echo(&self, bytes: Vec<u8>) -> Vec<u8>;
    /// The call's metadata entry `key`.
    async fn metadata(&self, key: String) -> Option<String>;
    /// Counts a poke (one-way).
    #[oneway]
    #[rpc(persistent)]
    async fn poke(&self);
    /// How many pokes this instance got.
    async fn pokes(&self) -> u64;
    /// Panics, every time (quietly: see [`crate::panics`]).
    #[rpc(persistent)]
    async fn explode(&self);
}

/// A `Work` instance with counters a test can watch.
#[derive(Debug, Clone, Default)]
pub struct WorkImpl {
    /// Its name.
    pub name: String,
    /// Handlers of `sleep_ms` started.
    pub sleeps_started: Arc<AtomicU64>,
    /// Handlers of `sleep_ms` that slept to the end.
    pub sleeps_finished: Arc<AtomicU64>,
    /// Notified when a `sleep_ms` handler starts.
    pub sleeping: Arc<Notify>,
    /// Pokes received.
    pub poked: Arc<AtomicU64>,
    /// Notified on each poke.
    pub poke_seen: Arc<Notify>,
}

impl WorkImpl {
    /// An instance named `name`.
    pub fn named(name: &str) -> WorkImpl {
        WorkImpl { name: name.to_owned(), ..WorkImpl::default() }
    }
}

impl Work for WorkImpl {
    async fn whoami(&self) -> String {
        self.name.clone()
    }
    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    async fn sleep_ms(&self, ms: u64) -> String {
        self.sleeps_started.fetch_add(1, Ordering::SeqCst);
        self.sleeping.notify_one();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.sleeps_finished.fetch_add(1, Ordering::SeqCst);
        self.name.clone()
    }
    async fn blob(&self, len: u32) -> Vec<u8> {
        vec![7; len as usize]
    }
    async fn echo(&self, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    async fn metadata(&self, key: String) -> Option<String> {
        Context::current().and_then(|c| c.metadata().get(&key).map(str::to_owned))
    }
    async fn poke(&self) {
        self.poked.fetch_add(1, Ordering::SeqCst);
        self.poke_seen.notify_one();
    }
    async fn pokes(&self) -> u64 {
        self.poked.load(Ordering::SeqCst)
    }
    async fn explode(&self) {
        crate::panics::deliberate("explode");
    }
}

/// The path of a binary of this crate (`nats-worker`, `embedded-worker`), built by cargo next
/// to the test binaries.
pub fn worker_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("the test binary lives in target/<profile>/deps");
    dir.join(name)
}

/// A worker process (`nats-worker` or `embedded-worker`): killed and reaped when dropped.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl WorkerProcess {
    /// Starts `nats-worker URL NAME` (with `queue`: a worker of stored calls) and waits until it
    /// says it is ready.
    pub fn start(url: &str, name: &str, queue: bool) -> WorkerProcess {
        let mut args = vec![url, name];
        if queue {
            args.push("queue");
        }
        WorkerProcess::spawn("nats-worker", &args, name)
    }

    /// Starts `embedded-worker PATH NAME`, a worker of the stored calls in the queue file at
    /// `path`, and waits until it says it is ready.
    pub fn embedded(path: &std::path::Path, name: &str) -> WorkerProcess {
        WorkerProcess::spawn("embedded-worker", &[path.to_str().expect("a UTF-8 path"), name], name)
    }

    fn spawn(binary: &str, args: &[&str], name: &str) -> WorkerProcess {
        let mut child = Command::new(worker_binary(binary))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut worker = WorkerProcess { child, lines };
        assert_eq!(worker.next_line(), format!("ready {name}"), "the worker did not start");
        worker
    }

    /// The next line the worker prints (blocking).
    pub fn next_line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) => line,
            other => panic!("the worker exited (or its stdout failed): {other:?}"),
        }
    }

    /// Kills the worker with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
