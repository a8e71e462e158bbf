//! Runs every example end to end, as the README tells a new user to, and checks what it prints.
//!
//! `cargo test` builds the examples before it runs this; each is then started as its own process
//! (the daemons and clients as separate processes, as a user would run them in two terminals).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The built example binary `name` (in `target/<profile>/examples/`, beside this test's `deps/`).
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p rpc-examples --examples` first",
        path.display()
    );
    let mut command = Command::new(path);
    command.env_remove("RUST_LOG");
    command
}

/// Runs an example to completion and returns its stdout, failing on a non-zero exit.
fn run(command: &mut Command) -> String {
    let Output { status, stdout, stderr } = command.output().expect("spawn example");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "{command:?} failed: {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

/// A daemon example running in the background; killed if the test fails before it is stopped.
struct Daemon {
    child: Child,
    /// The rest of its stdout, kept open so its later prints do not fail.
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Daemon {
    /// Starts `command` and waits until it prints a line containing `ready`.
    fn start(command: &mut Command, ready: &str) -> Daemon {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn daemon");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("the daemon printed nothing").expect("read");
        assert!(first.contains(ready), "unexpected first line from the daemon: {first:?}");
        Daemon { child, lines }
    }

    /// Sends Ctrl-C (SIGINT), waits for a clean exit and returns what the daemon printed after
    /// its first line.
    fn interrupt(mut self) -> String {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with a valid signal number on our own child touches no memory.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let rest: Vec<String> = self.lines.by_ref().map(|l| l.expect("read")).collect();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "the daemon exited with {status}");
        rest.join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rpc-examples-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn calculator() {
    let out = run(&mut example("calculator"));
    assert!(out.contains("add(1, 2)      = 3"), "{out}");
    assert!(out.contains("div(1, 0)      = Err(DivisionByZero)"), "{out}");
    assert!(out.contains("100 concurrent adds, sum of results = 9900"), "{out}");
    assert!(out.contains("server shut down"), "{out}");
}

#[test]
fn services() {
    let out = run(&mut example("services"));
    assert!(out.contains("accounts.balance(\"ada\") = 300"), "{out}");
    assert!(out.contains("stats.balance()          = 7"), "{out}");
    assert!(
        out.contains(r#"the server hosts ["bank.Accounts", "admin.Stats", "rpc.Introspection"]"#),
        "{out}"
    );
    assert!(out.contains("old copy: signature mismatch on bank.Accounts.balance"), "{out}");
    assert!(out.contains(r#"through tower, whoami()  = Some("example")"#), "{out}");
    assert!(out.contains(r#"over JSON, balance("bob") = 300"#), "{out}");
    assert!(out.contains("server shut down"), "{out}");
}

#[test]
fn memory() {
    let out = run(&mut example("memory"));
    assert!(out.contains("count(..)          = 4"), "{out}");
    assert!(out.contains("Err(DeadlineExceeded)"), "{out}");
    assert!(out.contains("server stopped"), "{out}");
}

#[test]
fn watch() {
    let out = run(&mut example("watch"));
    assert!(out.contains("snapshot: colour/sky = blue"), "{out}");
    assert!(out.contains("changed:  colour/grass = green"), "{out}");
    assert!(out.contains("changed:  colour/sky = grey"), "{out}");
    assert!(!out.contains("size/shoe"), "only changes under the prefix:\n{out}");
    assert!(out.contains("watch ended: None"), "a clean end at shutdown:\n{out}");
}

#[test]
fn progress() {
    let out = run(&mut example("progress"));
    for step in 1..=4 {
        assert!(out.contains(&format!("progress: {step}/4")), "{out}");
    }
    assert!(out.contains("finished: release.tar"), "{out}");
    assert!(out.contains("empty target: Some(Failed(\"nothing to build\"))"), "{out}");
    assert!(out.contains("child exited: exit status: 0"), "{out}");
}

#[test]
fn pipe_parent() {
    let out = run(&mut example("pipe_parent"));
    assert!(out.contains("hello, parent, from process"), "{out}");
    assert!(
        out.contains("child exited: exit status: 0"),
        "the parent reports the child's clean exit:\n{out}"
    );
}

#[test]
fn unix_socket_in_one_process() {
    let out = run(&mut example("unix_socket"));
    assert!(out.contains("whoami             = unix:uid="), "{out}");
    assert!(out.contains("get(colour)        = Some(\"blue\")"), "{out}");
    // Either the goaway or the end of the stream may be what the client sees first; both say why.
    let sees = out.lines().find(|l| l.starts_with("client sees")).unwrap_or_default();
    assert!(sees.contains("shutting down"), "{out}");
    assert!(out.contains("socket removed     : true"), "{out}");
}

#[test]
fn unix_socket_daemon_and_cli() {
    let dir = scratch("unix");
    let sock = dir.join("kv.sock");
    let daemon = Daemon::start(example("unix_socket").arg("serve").arg(&sock), "serving on");
    let set = run(example("unix_socket").arg("set").arg(&sock).args(["colour", "blue"]));
    assert_eq!(set.trim(), "colour: None -> \"blue\"");
    let get = run(example("unix_socket").arg("get").arg(&sock).arg("colour"));
    assert_eq!(get.trim(), "colour: Some(\"blue\")");
    let said = daemon.interrupt();
    assert!(said.contains("stopped"), "{said}");
    assert!(!sock.exists(), "the daemon removes its socket when it stops");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn fifo_server_and_clients() {
    let dir = scratch("fifo");
    let fifo = dir.join("kv.fifo");
    let daemon = Daemon::start(example("fifo_server").arg(&fifo), "listening on");
    let first = run(example("fifo_client").arg(&fifo));
    assert!(first.starts_with("visits: None -> \"1\""), "{first}");
    let second = run(example("fifo_client").arg(&fifo));
    assert!(second.starts_with("visits: Some(\"1\") -> \"2\""), "{second}");
    let said = daemon.interrupt();
    assert!(said.contains("stopped"), "{said}");
    assert!(!fifo.exists(), "the server removes its FIFO when it stops");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn nats_workers() {
    // The fixture of the NATS suite installs nats-server when missing.
    let server = rpc_tests::nats::nats_server_binary();
    let out = run(example("nats_workers").env_remove("NATS_URL").env("NATS_SERVER", server));
    assert!(out.contains("3 workers ready"), "{out}");
    assert!(out.contains("60 calls served by 3 workers"), "{out}");
    assert!(out.contains("add(20, 22) = 42"), "{out}");
    assert!(out.contains(r#"gather whoami() = ["w1", "w2", "w3"]"#), "{out}");
    assert!(out.contains("3 live instances of demo.Jobs"), "{out}");
    assert!(out.contains("stored add(20, 22) with no worker up: pending"), "{out}");
    assert!(out.contains("a queue worker ran it: 42"), "{out}");
    assert!(out.contains("done"), "{out}");
}
