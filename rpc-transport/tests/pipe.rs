//! Anonymous-pipe transport tests over real child processes and real pipes.
//!
//! This binary is also its own child: run with `RPC_PIPE_TEST_CHILD=<mode>` in the environment,
//! `main` serves on stdin/stdout through `pipe::stdio` instead of running the tests. That is why
//! it uses libtest-mimic (harness = false): the built-in harness would print on stdout first.

use std::io::{self, Write as _};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};
use rpc_transport::framed::{FrameError, FrameReader, FrameWriter, DEFAULT_MAX_FRAME_LEN};
use rpc_transport::{pipe, Connection, Peer};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const CHILD_ENV: &str = "RPC_PIPE_TEST_CHILD";
/// A hang guard only: every test finishes in well under a second when it passes.
const GUARD: Duration = Duration::from_secs(60);
/// Bigger than a pipe's 64 KiB buffer many times over.
const BIG: usize = 1024 * 1024;

mod common;
use common::{recv, send, Reader, Writer};

fn framed(conn: Connection) -> (Reader, Writer) {
    let (r, w, _peer, guard) = conn.into_parts();
    assert!(guard.is_none(), "pipe connections need no guard");
    (FrameReader::new(r, DEFAULT_MAX_FRAME_LEN), FrameWriter::new(w))
}

fn child(mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, mode);
    cmd
}

/// The state of process `pid` if it is still a child of this process (`Z` for a zombie).
fn child_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid: u32 = fields.next()?.parse().ok()?;
    (ppid == std::process::id()).then_some(state)
}

// ---------------------------------------------------------------------------------------------
// Parent side: spawn.

async fn spawn_exchanges_frames_with_cat() {
    let (conn, mut child) = pipe::spawn(Command::new("cat")).unwrap();
    assert_eq!(conn.peer(), &Peer::Pipe { pid: Some(child.pid()) });
    let (mut r, mut w) = framed(conn);
    for body in [&b"one"[..], b"", b"three"] {
        send(&mut w, body).await.unwrap();
        assert_eq!(recv(&mut r).await, body);
    }
    // Shutting the write half down closes the child's stdin: cat sees EOF and exits cleanly.
    w.shutdown().await.unwrap();
    assert!(r.read_frame().await.unwrap().is_none());
    assert!(child.wait().await.unwrap().success());
}

async fn spawn_accepts_a_std_command() {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "exec cat"]);
    let (conn, mut child) = pipe::spawn(cmd).unwrap();
    let (mut r, mut w) = framed(conn);
    send(&mut w, b"hello").await.unwrap();
    assert_eq!(recv(&mut r).await, &b"hello"[..]);
    drop(w);
    assert!(child.wait().await.unwrap().success());
}

/// F5: a child that dies mid-frame (SIGKILL) or exits gives the parent end-of-stream at once,
/// even while siblings spawned after it (which must not have inherited its pipes) live on.
async fn child_death_gives_prompt_eof_with_siblings_alive() {
    // Writes 4 of the 16 body bytes its header announces, then kills itself on cue.
    let script = r"printf '\000\000\000\020part'; read cue; kill -KILL $$";
    let (conn, mut dying) = pipe::spawn({
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    })
    .unwrap();
    // Two siblings spawned while the dying child's pipes are open in this process: one through
    // this crate, one through std with default (inherited) stdio.
    let (sibling_conn, mut sibling) = pipe::spawn(Command::new("cat")).unwrap();
    let mut std_sibling =
        std::process::Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();

    let (r, mut w, _peer, _guard) = conn.into_parts();
    let mut r = FrameReader::new(r, DEFAULT_MAX_FRAME_LEN);
    w.write_all(b"go\n").await.unwrap();
    match r.read_frame().await {
        Err(FrameError::UnexpectedEof { received: 8, expected: Some(20) }) => {}
        other => panic!("expected end of stream mid-frame, got {other:?}"),
    }
    assert_eq!(dying.wait().await.unwrap().signal(), Some(libc::SIGKILL));
    assert!(sibling.try_wait().unwrap().is_none(), "the sibling is still alive");
    assert!(std_sibling.try_wait().unwrap().is_none(), "the std sibling is still alive");

    // A plain exit, with the same siblings alive.
    let (conn, mut exiting) = pipe::spawn({
        let mut c = Command::new("sh");
        c.args(["-c", "exit 3"]);
        c
    })
    .unwrap();
    let (mut r, _w) = framed(conn);
    assert!(r.read_frame().await.unwrap().is_none());
    assert_eq!(exiting.wait().await.unwrap().code(), Some(3));

    drop(sibling_conn);
    assert!(sibling.wait().await.unwrap().success());
    drop(std_sibling.stdin.take());
    assert!(std_sibling.wait().unwrap().success());
}

/// F5: writing to a child that has exited fails with BrokenPipe (no SIGPIPE kills us).
async fn write_to_dead_child_is_broken_pipe() {
    let (conn, mut child) = pipe::spawn(Command::new("true")).unwrap();
    assert!(child.wait().await.unwrap().success());
    let (_r, mut w) = framed(conn);
    // Another test's child, forked while this pipe was being set up, holds a copy of the read
    // end until its exec closes it (close-on-exec), so the first writes may still succeed. Once
    // no reader is left, the next write (or one blocked on a full pipe) fails.
    let err = loop {
        if let Err(e) = send(&mut w, b"anyone there?").await {
            break e;
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
}

/// Dropping the Child kills the child and tokio reaps it: no zombie is left.
async fn dropping_child_kills_and_reaps_it() {
    let (conn, child) = pipe::spawn(Command::new("cat")).unwrap();
    let pid = child.pid();
    assert!(matches!(child_state(pid), Some(s) if s != 'Z'), "cat is running");
    drop(child);
    // The kill gives end-of-stream on the child's stdout...
    let (mut r, _w) = framed(conn);
    assert!(r.read_frame().await.unwrap().is_none());
    // ...and the reaper removes the process entry. The kernel has no notification for a reaped
    // child, so poll /proc (the guard bounds the wait).
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut last = None;
    let reaped = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            last = child_state(pid);
            if last.is_none() {
                break;
            }
            tick.tick().await;
        }
    })
    .await;
    assert!(reaped.is_ok(), "child {pid} was not reaped (last state {last:?})");
}

async fn kill_and_wait_report_sigkill() {
    let (conn, mut child) = pipe::spawn(Command::new("cat")).unwrap();
    child.kill().await.unwrap();
    assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
    assert!(child.try_wait().unwrap().is_some());
    let (mut r, _w) = framed(conn);
    assert!(r.read_frame().await.unwrap().is_none());
}

/// F6: both sides write far more than the pipe buffer at once. Each side reads and writes
/// concurrently on its independent halves, so neither write can block the other's progress.
async fn both_sides_writing_past_the_pipe_buffer_do_not_deadlock() {
    let (a, b) = pipe::pair().unwrap();
    let side = |conn: Connection, fill: u8| async move {
        let (mut r, mut w) = framed(conn);
        let body = vec![fill; BIG];
        let (sent, got) = tokio::join!(send(&mut w, &body), recv(&mut r));
        sent.unwrap();
        got
    };
    let (from_b, from_a) = tokio::join!(side(a, b'a'), side(b, b'b'));
    assert_eq!(from_b.len(), BIG);
    assert!(from_b.iter().all(|&x| x == b'b'));
    assert!(from_a.iter().all(|&x| x == b'a') && from_a.len() == BIG);

    // The same against a child: cat blocks writing its echo until the parent reads it.
    let (conn, mut child) = pipe::spawn(Command::new("cat")).unwrap();
    let (mut r, mut w) = framed(conn);
    let big = vec![7u8; BIG];
    let (sent, echoed) = tokio::join!(send(&mut w, &big), recv(&mut r));
    sent.unwrap();
    assert_eq!(echoed, big);
    drop(w);
    assert!(child.wait().await.unwrap().success());
}

async fn pair_shutdown_gives_eof_and_later_writes_fail() {
    let (a, b) = pipe::pair().unwrap();
    assert_eq!(a.peer(), &Peer::Pipe { pid: None });
    let (_ra, mut wa) = framed(a);
    let (mut rb, _wb) = framed(b);
    send(&mut wa, b"last").await.unwrap();
    wa.shutdown().await.unwrap();
    assert_eq!(recv(&mut rb).await, &b"last"[..]);
    assert!(rb.read_frame().await.unwrap().is_none());
    assert_eq!(send(&mut wa, b"more").await.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
}

/// A pair's pipes and a spawned child's are asked to hold 256 KiB: 200 KiB go in without the
/// other side reading (the default 64 KiB pipe would block the writer).
async fn pairs_and_children_get_pipes_that_hold_more_than_64_kib() {
    let payload = vec![7u8; 200 * 1024];
    let (a, _b) = pipe::pair().unwrap();
    let (_r, mut w, _, _) = a.into_parts();
    let wrote = tokio::time::timeout(Duration::from_secs(10), w.write_all(&payload)).await;
    assert!(wrote.is_ok(), "the pair's pipe took 200 KiB unread");
    // A child that never reads its stdin.
    let mut sleeper = Command::new("sleep");
    sleeper.arg("60");
    let (conn, _child) = pipe::spawn(sleeper).unwrap();
    let (_r, mut w, _, _) = conn.into_parts();
    let wrote = tokio::time::timeout(Duration::from_secs(10), w.write_all(&payload)).await;
    assert!(wrote.is_ok(), "the child's stdin took 200 KiB unread");
}

async fn from_fds_refuses_what_is_not_a_pipe() {
    let file = tempfile::tempfile().unwrap();
    let err = pipe::from_fds(file.try_clone().unwrap().into(), file.into()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Child side: stdio, exercised through this binary re-executed as the child.

/// The child serves frames on its stdin/stdout; its stray `println!` lands in stderr instead of
/// corrupting the stream.
async fn stdio_serves_frames_and_stray_prints_go_to_stderr() {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = child("echo");
    cmd.stderr(Stdio::from(stderr.reopen().unwrap()));
    let (conn, mut child) = pipe::spawn(cmd).unwrap();
    let (mut r, mut w) = framed(conn);
    for body in [&b"alpha"[..], &vec![3u8; BIG]] {
        send(&mut w, body).await.unwrap();
        assert_eq!(recv(&mut r).await, body);
    }
    w.shutdown().await.unwrap();
    assert!(r.read_frame().await.unwrap().is_none());
    assert!(child.wait().await.unwrap().success());
    let log = std::fs::read_to_string(stderr.path()).unwrap();
    assert!(log.contains("stray line from the child"), "stderr was: {log:?}");
}

/// The child's RPC descriptors are close-on-exec and fd 1 no longer is the pipe: a grandchild
/// with inherited stdio outlives the child without keeping the parent from seeing end-of-stream.
async fn stdio_grandchild_does_not_hold_the_pipes() {
    let (conn, mut child) = pipe::spawn(child("grandchild")).unwrap();
    let (mut r, _w) = framed(conn);
    let pid: u32 = std::str::from_utf8(&recv(&mut r).await).unwrap().parse().unwrap();
    let eof = r.read_frame().await;
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
    // SAFETY: kill only sends a signal; `pid` is the grandchild the child just reported.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(eof.unwrap().is_none());
    assert!(alive, "the grandchild was still running when end-of-stream arrived");
    assert!(child.wait().await.unwrap().success());
}

/// With stdin and stdout redirected to files instead of pipes, stdio falls back to blocking I/O
/// on tokio's thread pool and still works.
async fn stdio_falls_back_when_not_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    {
        let (_r, mut w) = framed(Connection::new(
            tokio::io::empty(),
            tokio::fs::File::create(&input).await.unwrap(),
            Peer::Memory,
        ));
        send(&mut w, b"from a file").await.unwrap();
        send(&mut w, &vec![9u8; BIG]).await.unwrap();
    }
    let mut cmd = child("echo");
    cmd.stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::null());
    assert!(cmd.status().await.unwrap().success());
    let mut r = FrameReader::new(tokio::fs::File::open(&output).await.unwrap(), DEFAULT_MAX_FRAME_LEN);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b"from a file"[..]);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), vec![9u8; BIG]);
    assert!(r.read_frame().await.unwrap().is_none());
}

async fn stdio_twice_is_refused() {
    let (conn, mut child) = pipe::spawn(child("twice")).unwrap();
    let (mut r, _w) = framed(conn);
    assert_eq!(recv(&mut r).await, &b"AlreadyExists"[..]);
    assert!(child.wait().await.unwrap().success());
}

/// What this binary does when run as a child.
async fn child_main(mode: &str) {
    let conn = pipe::stdio().expect("serve on stdio");
    let (mut r, mut w) = framed(conn);
    match mode {
        "echo" => {
            println!("stray line from the child");
            io::stdout().flush().unwrap();
            while let Some(frame) = r.read_frame().await.unwrap() {
                send(&mut w, &frame).await.unwrap();
            }
        }
        "grandchild" => {
            // Orphaned on purpose: the parent test kills it, and init reaps it.
            #[allow(clippy::zombie_processes)]
            let grandchild = std::process::Command::new("sleep").arg("600").spawn().unwrap();
            send(&mut w, grandchild.id().to_string().as_bytes()).await.unwrap();
        }
        "twice" => {
            let err = pipe::stdio().unwrap_err();
            send(&mut w, format!("{:?}", err.kind()).as_bytes()).await.unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

macro_rules! trials {
    ($($name:ident),* $(,)?) => {
        vec![$(Trial::test(stringify!($name), || {
            runtime().block_on(async {
                tokio::time::timeout(GUARD, $name()).await.expect("test hung past its guard")
            });
            Ok(())
        })),*]
    };
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        runtime().block_on(child_main(&mode));
        return;
    }
    let tests = trials![
        spawn_exchanges_frames_with_cat,
        spawn_accepts_a_std_command,
        child_death_gives_prompt_eof_with_siblings_alive,
        write_to_dead_child_is_broken_pipe,
        dropping_child_kills_and_reaps_it,
        kill_and_wait_report_sigkill,
        both_sides_writing_past_the_pipe_buffer_do_not_deadlock,
        pair_shutdown_gives_eof_and_later_writes_fail,
        pairs_and_children_get_pipes_that_hold_more_than_64_kib,
        from_fds_refuses_what_is_not_a_pipe,
        stdio_serves_frames_and_stray_prints_go_to_stderr,
        stdio_grandchild_does_not_hold_the_pipes,
        stdio_falls_back_when_not_pipes,
        stdio_twice_is_refused,
    ];
    libtest_mimic::run(&Arguments::from_args(), tests).exit();
}
