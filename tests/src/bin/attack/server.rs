//! The server under attack: its own process (`attack server tcp|unix [PATH]`), default
//! `ServerConfig`, multi-thread runtime; and the orchestrator's handle on that process.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_runtime::transport::{tcp, unix};
use rpc_runtime::Server;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::endpoint::Endpoint;
use crate::logger;
use crate::service::{TargetImpl, TargetServer};

/// Bytes of the server's stderr kept for [`ServerProcess::log_head`].
const LOG_HEAD: usize = 4096;

/// Server mode: binds, prints `ready tcp ADDR` or `ready unix PATH` on stdout, serves until
/// killed. Logs go to stderr (INFO and above), panics too (the default hook).
pub(crate) async fn run(args: &[String]) {
    logger::install();
    let server = Server::new(TargetServer::new(TargetImpl));
    let handle = match args.first().map(String::as_str) {
        Some("tcp") => {
            let listener = tcp::bind("127.0.0.1:0").await.expect("bind tcp");
            ready(&Endpoint::Tcp(listener.local_addr()));
            server.serve(listener)
        }
        Some("unix") => {
            let path = args.get(1).expect("unix needs a socket path");
            // Open to every user, so that attackers running as another uid can connect.
            let listener = unix::bind_with_mode(path, 0o666).await.expect("bind unix");
            ready(&Endpoint::Unix(path.into()));
            server.serve(listener)
        }
        other => panic!("server mode takes tcp or unix PATH, not {other:?}"),
    };
    handle.wait().await;
    // The accept loop ended on its own (no shutdown was asked for): say so, for the report.
    eprintln!("attack-harness: the server stopped serving its listener");
}

fn ready(endpoint: &Endpoint) {
    let [kind, value] = endpoint.to_args();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {kind} {value}").expect("stdout");
    out.flush().expect("stdout");
}

/// Bytes of the server's stderr, split by who wrote them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogBytes {
    /// Lines of the `tracing` subscriber: what the runtime logs (and could rate-limit).
    pub(crate) tracing: u64,
    /// Everything else: the default panic hook's messages, mostly (the application's choice).
    pub(crate) other: u64,
}

impl std::ops::Sub for LogBytes {
    type Output = LogBytes;

    fn sub(self, earlier: LogBytes) -> LogBytes {
        LogBytes { tracing: self.tracing - earlier.tracing, other: self.other - earlier.other }
    }
}

#[derive(Debug, Default)]
struct LogCounters {
    tracing: AtomicU64,
    other: AtomicU64,
    head: Mutex<Vec<u8>>,
}

/// Reads the server's stderr to its end, counting each line as `tracing` (it starts with a
/// level, as `logger` writes them) or other.
async fn count_log(mut stderr: tokio::process::ChildStderr, log: Arc<LogCounters>) {
    let mut buf = vec![0u8; 64 * 1024];
    // Whether the line in progress is a tracing line, once its start has been seen.
    let mut line_is_tracing: Option<bool> = None;
    let mut line_start = Vec::new();
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        {
            let mut head = log.head.lock().unwrap_or_else(|e| e.into_inner());
            if head.len() < LOG_HEAD {
                let keep = n.min(LOG_HEAD - head.len());
                head.extend_from_slice(&buf[..keep]);
            }
        }
        for &b in &buf[..n] {
            if line_is_tracing.is_none() {
                line_start.push(b);
                if line_start.len() == 6 || b == b'\n' {
                    let start = String::from_utf8_lossy(&line_start);
                    let level = start.trim_start().split(' ').next().unwrap_or("");
                    line_is_tracing = Some(matches!(level, "ERROR" | "WARN" | "INFO"));
                    let counter = if line_is_tracing == Some(true) { &log.tracing } else { &log.other };
                    counter.fetch_add(line_start.len() as u64, Ordering::Relaxed);
                    line_start.clear();
                }
            } else {
                let counter = if line_is_tracing == Some(true) { &log.tracing } else { &log.other };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            if b == b'\n' {
                line_is_tracing = None;
            }
        }
    }
}

/// The server's process, killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    /// Its process id, for `/proc/<pid>/status`.
    pub(crate) pid: u32,
    /// Where it listens.
    pub(crate) endpoint: Endpoint,
    log: Arc<LogCounters>,
    _dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts a server on `transport` (`tcp` or `unix`) and waits until it listens.
    pub(crate) async fn start(transport: &str) -> std::io::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("server").arg(transport);
        let dir = if transport == "unix" {
            let dir = tempfile::tempdir()?;
            // Traversable by attackers running as another uid.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            cmd.arg(dir.path().join("target.sock"));
            Some(dir)
        } else {
            None
        };
        cmd.env_remove("RUST_BACKTRACE").env_remove("RUST_LOG");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().expect("a running child has an id");

        let log = Arc::new(LogCounters::default());
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(count_log(stderr, Arc::clone(&log)));

        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::other("the server did not say ready within 10 s"))??;
        let mut words = line.split_whitespace();
        let endpoint = match (words.next(), words.next(), words.next()) {
            (Some("ready"), Some(kind), Some(value)) => Endpoint::from_args(kind, value),
            _ => return Err(std::io::Error::other(format!("unexpected line from the server: {line:?}"))),
        };
        Ok(ServerProcess { child, pid, endpoint, log, _dir: dir })
    }

    /// Bytes the server has written to stderr so far.
    pub(crate) fn log_bytes(&self) -> LogBytes {
        LogBytes {
            tracing: self.log.tracing.load(Ordering::Relaxed),
            other: self.log.other.load(Ordering::Relaxed),
        }
    }

    /// The first lines the server logged (up to a few KiB), to show what its log is made of.
    pub(crate) fn log_head(&self, lines: usize) -> Vec<String> {
        let head = self.log.head.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&head).lines().take(lines).map(|l| l.chars().take(200).collect()).collect()
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
