//! A real `nats-server` for the NATS suite (never a mock), installed from the system's packages
//! when missing. The `Work` service every NATS test serves is [`crate::work`]'s, re-exported here.
//!
//! [`Broker::start`] runs `nats-server` on a free port of 127.0.0.1 with JetStream on and its
//! store in a fresh temporary directory, and returns once the server says it is ready. If
//! `nats-server` is not installed, the first start installs it (`apt-get install -y
//! nats-server`, after `apt-get update` if needed, through `sudo` when not root), so the README's
//! test command passes on a fresh machine; if that fails, the panic says the command to run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub use crate::work::{WorkClient, WorkImpl, WorkServer, WorkerProcess};

/// Where `nats-server` is, installing it first if it is missing.
pub fn nats_server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(found) = find_binary() {
            return found;
        }
        install();
        find_binary().unwrap_or_else(|| {
            panic!("nats-server is still not on PATH after installing it; install it by hand: {MANUAL}")
        })
    })
}

const MANUAL: &str = "`sudo apt-get update && sudo apt-get install -y nats-server` (Debian/Ubuntu), or put a nats-server 2.9+ binary on PATH";

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// `apt-get install -y nats-server`, with `apt-get update` first when the package is unknown.
fn install() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null());
        eprintln!("nats fixture: nats-server is missing; running {command:?}");
        match command.output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                eprintln!(
                    "nats fixture: {command:?} failed: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                false
            }
            Err(e) => {
                eprintln!("nats fixture: could not run {command:?}: {e}");
                false
            }
        }
    };
    let installed = apt(&["install", "-y", "-q", "nats-server"])
        || (apt(&["update", "-q"]) && apt(&["install", "-y", "-q", "nats-server"]));
    assert!(
        installed,
        "the NATS tests need nats-server, and installing it failed; install it by hand: {MANUAL}"
    );
}

/// A `nats-server` process of this test, killed when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    max_payload: Option<usize>,
}

impl Broker {
    /// Starts a broker with the default limits.
    pub fn start() -> Broker {
        Broker::start_with(None)
    }

    /// Starts a broker whose largest message is `max_payload` bytes (the default is 1 MiB).
    pub fn start_with(max_payload: Option<usize>) -> Broker {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let mut broker = Broker { child: None, port, dir, max_payload };
        broker.spawn();
        broker
    }

    /// The broker's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the broker with SIGKILL, as a crash would, and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill nats-server");
            child.wait().expect("wait for nats-server");
        }
    }

    /// Starts the broker again on the same port and store (after [`Broker::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let config = self.dir.path().join("nats.conf");
        let store = self.dir.path().join("store");
        let mut text = format!("listen: 127.0.0.1:{}\njetstream {{ store_dir: {:?} }}\n", self.port, store);
        if let Some(max) = self.max_payload {
            text.push_str(&format!("max_payload: {max}\n"));
        }
        std::fs::write(&config, text).expect("write nats.conf");
        let mut child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        // The server logs to stderr; "Server is ready" comes once it accepts clients.
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Server is ready") => break,
                Some(Ok(line)) => seen.push(line),
                _ => {
                    let _ = child.kill();
                    panic!("nats-server exited before it was ready:\n{}", seen.join("\n"));
                }
            }
        }
        // Keep draining its log so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on now (the OS's choice; the broker binds it a moment later).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
