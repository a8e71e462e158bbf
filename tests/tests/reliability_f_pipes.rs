//! Reliability cases F1–F6 and G2: FIFO and pipe specifics, at the RPC level (a typed client and
//! a real server over real FIFOs, pipes and child processes). The transport's own tests
//! (`rpc-transport/tests/{fifo,pipe}.rs`) check the same rules byte by byte.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rpc_runtime::transport::{fifo, pipe, Listener};
use rpc_runtime::{Client, RpcError, Server};
use rpc_tests::fixture::assert_in_flight_empty;
use rpc_tests::probe::{spawn_holds, ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::within;

const PROBE_SERVER: &str = env!("CARGO_BIN_EXE_probe-server");

fn server() -> Server {
    Server::new(ProbeServer::new(ProbeImpl::default()))
}

fn mkfifo(path: &Path, mode: u32) {
    let status = std::process::Command::new("mkfifo").arg("-m").arg(format!("{mode:o}")).arg(path).status();
    assert!(status.unwrap().success(), "mkfifo {}", path.display());
}

/// `probe-server stdio`, for `pipe::spawn`.
fn probe_child() -> std::process::Command {
    let mut cmd = std::process::Command::new(PROBE_SERVER);
    cmd.arg("stdio");
    cmd
}

fn short(timeout: Duration) -> fifo::Options {
    let mut o = fifo::Options::new();
    o.timeout(timeout);
    o
}

/// F1: a listener's client that starts before any FIFO server fails at once naming the path, as
/// a socket connect does (one that starts while the server is binding waits for it: see
/// `rpc-transport/tests/fifo.rs`); a server that starts first waits for clients; point-to-point
/// pairs connect whichever side opens first, retrying, never blocking a runtime thread. With no
/// server left, connecting fails at once naming the path; a regular file at the path is refused.
#[tokio::test(flavor = "current_thread")]
async fn f1_open_ordering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc");

    // Client first: no server holds the listener, so it is refused at once.
    let err = fifo::connect(&path).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    let handle = server().serve(fifo::bind(&path).await.unwrap());
    let client = ProbeClient::new(within(20, "a client", fifo::connect(&path)).await.unwrap());
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
    // Server first.
    let late = ProbeClient::new(fifo::connect(&path).await.unwrap());
    assert_eq!(late.add(2, 2).await.unwrap(), 4);
    assert_in_flight_empty(client.as_client());
    handle.shutdown(Duration::from_secs(1)).await;
    assert!(!path.exists(), "the listener removed its FIFO");

    // Nobody there any more: refused at once, naming the path.
    let err = short(Duration::from_secs(3600)).connect(&path).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    // A regular file: refused, untouched.
    std::fs::write(&path, b"data").unwrap();
    let err = short(Duration::from_millis(200)).connect(&path).await.unwrap_err();
    assert!(err.to_string().contains("not a fifo"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");

    // Point to point, either side first.
    for server_first in [true, false] {
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let (sa, sb) = (a.clone(), b.clone());
        let serve = async move { fifo::open_pair(&sa, &sb).await.unwrap() };
        let (ca, cb) = (a.clone(), b.clone());
        let connect = async move { fifo::open_pair(&cb, &ca).await.unwrap() };
        let (server_conn, client_conn) = if server_first {
            let s = tokio::spawn(serve);
            tokio::task::yield_now().await;
            let c = connect.await;
            (s.await.unwrap(), c)
        } else {
            let c = tokio::spawn(connect);
            tokio::task::yield_now().await;
            let s = serve.await;
            (s, c.await.unwrap())
        };
        let served = server().serve_connection(server_conn);
        let client = ProbeClient::new(client_conn);
        assert_eq!(client.add(3, 4).await.unwrap(), 7, "server first: {server_first}");
        drop(client);
        within(20, "the pair's server to end", served.wait()).await;
    }
}

/// F2, reader side: the server's end closes while ten calls are pending; they all fail at once
/// with `ConnectionClosed`, and the client stops (no spinning on a hung-up FIFO).
/// F2, writer side: a client writing a large request to a server that has gone gets a broken
/// pipe, reported as `ConnectionClosed`, never a signal.
#[tokio::test(flavor = "current_thread")]
async fn f2_either_side_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc");
    let mut listener = fifo::bind(&path).await.unwrap();

    let (conn, accepted) = tokio::join!(fifo::connect(&path), listener.accept());
    let client = ProbeClient::new(conn.unwrap());
    let served = server().serve_connection(accepted.unwrap().unwrap());
    let calls = spawn_holds(&client, 10);
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    let t0 = std::time::Instant::now();
    served.shutdown(Duration::ZERO).await;
    for call in calls {
        match within(20, "pending calls after the server closed", call).await.unwrap() {
            Err(RpcError::Cancelled(_) | RpcError::ConnectionClosed(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(matches!(client.add(1, 1).await, Err(RpcError::ConnectionClosed(_))));
    assert!(client.as_client().closed_reason().is_some(), "the client noticed and stopped");
    assert_in_flight_empty(client.as_client());

    // Writer side: the server's connection is dropped without reading; a large request fails.
    let (conn, accepted) = tokio::join!(fifo::connect(&path), listener.accept());
    let client = ProbeClient::new(conn.unwrap());
    drop(accepted.unwrap().unwrap());
    match within(20, "a write to a vanished reader", client.echo(vec![0; 1 << 20])).await {
        Err(RpcError::ConnectionClosed(reason)) => assert!(!reason.is_empty()),
        other => panic!("expected ConnectionClosed, got {other:?}"),
    }
    assert_in_flight_empty(client.as_client());
}

/// F3: many writers share the well-known FIFO: four tasks connect 16 clients each at once (the
/// listener's 64 concurrent handshakes). Every registration is one write of at most `PIPE_BUF`
/// bytes, so none is torn: every client gets its own connection and its own answers. Past the
/// cap, a burst's excess registrations are refused: those clients fail with a timeout that says
/// so, and still nobody gets another's connection. (That a registration longer than `PIPE_BUF`
/// is refused before it is written is a unit test of `rpc_transport::fifo`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_many_writers_one_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc");
    let handle = server().serve(fifo::bind(&path).await.unwrap());
    let burst = |writers: u64, each: u64, timeout: Duration| {
        let path = path.clone();
        async move {
            let tasks: Vec<_> = (0..writers * each)
                .map(|n| {
                    let path = path.clone();
                    tokio::spawn(async move {
                        let client = ProbeClient::new(short(timeout).connect(&path).await?);
                        let sum = client.add(n, 1).await.expect("a connected client is served");
                        assert_eq!(sum, n + 1, "misrouted");
                        Ok::<_, std::io::Error>(())
                    })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(within(60, "a burst of FIFO clients", t).await.unwrap());
            }
            results
        }
    };
    for r in burst(4, 16, Duration::from_secs(20)).await {
        r.expect("within the handshake cap, every client connects");
    }
    let results = burst(4, 40, Duration::from_secs(2)).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(ok >= 1, "some of the burst connect");
    for e in results.into_iter().filter_map(Result::err) {
        // Usually "refused the registration, or is overloaded"; on a loaded machine the 2 s may
        // run out at another step of the handshake (writing the nonce), which names its FIFO.
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("timed out after 2s waiting for fifo"), "{e}");
    }
    handle.shutdown(Duration::from_secs(1)).await;
}

/// F4: a second server on the same FIFO is refused (a lock held next to it), so the byte stream
/// is never split between two readers; the first keeps serving.
#[tokio::test(flavor = "current_thread")]
async fn f4_two_readers_on_one_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc");
    let handle = server().serve(fifo::bind(&path).await.unwrap());
    let err = fifo::bind(&path).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    let client = ProbeClient::new(fifo::connect(&path).await.unwrap());
    assert_eq!(client.add(5, 5).await.unwrap(), 10);
    handle.shutdown(Duration::from_secs(1)).await;
}

/// F5: a server child on anonymous pipes killed with SIGKILL, with an unrelated sibling alive
/// that could have inherited the pipes: every pending call fails at once with
/// `ConnectionClosed`, the child is reaped, and later calls (writes to the dead child's stdin)
/// fail too, without SIGPIPE.
#[tokio::test(flavor = "current_thread")]
async fn f5_child_death_on_pipes() {
    let (conn, mut child) = pipe::spawn(probe_child()).unwrap();
    let mut sibling = tokio::process::Command::new("sleep").arg("60").kill_on_drop(true).spawn().unwrap();
    let client = ProbeClient::new(conn);
    assert_eq!(client.add(1, 1).await.unwrap(), 2);
    let calls = spawn_holds(&client, 10);
    assert_eq!(client.add(2, 2).await.unwrap(), 4, "the holds were sent before this");
    let t0 = std::time::Instant::now();
    let killed = format!("child process {} was killed by signal 9", child.pid());
    child.start_kill().unwrap();
    for call in calls {
        match within(20, "calls after SIGKILL", call).await.unwrap() {
            Err(RpcError::ConnectionClosed(reason)) => assert!(reason.contains(&killed), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "EOF arrived at once, sibling or not");
    let status = within(20, "reaping the child", child.wait()).await.unwrap();
    assert!(!status.success());
    assert!(matches!(client.add(1, 1).await, Err(RpcError::ConnectionClosed(_))));
    assert_in_flight_empty(client.as_client());
    sibling.kill().await.unwrap();

    // A child that printed part of a response, then died: "unexpected end of stream mid-frame".
    let script = r#"printf '\211RPC\r\n\002\000'; head -c 1 >/dev/null; printf '\000\000\000\144\003\001'; kill -9 $$"#;
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(script);
    let (conn, mut child) = pipe::spawn(sh).unwrap();
    let client = ProbeClient::new(conn);
    match within(20, "a call to a child that dies mid-response", client.add(1, 2)).await {
        Err(RpcError::ConnectionClosed(reason)) => {
            assert!(reason.contains("unexpected end of stream mid-frame"), "{reason}");
            assert!(reason.contains("killed by signal 9"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    within(20, "reaping", child.wait()).await.unwrap();
    assert_in_flight_empty(client.as_client());
}

/// Item 11: a call that fails because its server child exited says so, with the exit status:
/// before the preface, mid-call, and after the child was reaped by its owner. Spawning a missing
/// program, and connecting to a missing Unix socket, name the program or path.
#[tokio::test(flavor = "current_thread")]
async fn f5_errors_name_the_child_and_its_exit() {
    // Exits at once: the reader sees end-of-stream before the preface.
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg("exit 3");
    let (conn, mut child) = pipe::spawn(sh).unwrap();
    let pid = child.pid();
    let client = ProbeClient::new(conn);
    match within(20, "a call to a child that exits", client.add(1, 2)).await {
        Err(RpcError::ConnectionClosed(reason)) => {
            assert!(reason.contains(&format!("child process {pid} exited with status 3")), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(within(20, "reaping", child.wait()).await.unwrap().code(), Some(3));

    // Sends its preface, reads the request's first byte, then exits 7 with the call in flight.
    let script = r#"printf '\211RPC\r\n\002\000'; head -c 1 >/dev/null; exit 7"#;
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(script);
    let (conn, mut child) = pipe::spawn(sh).unwrap();
    let pid = child.pid();
    let client = ProbeClient::new(conn);
    let reason = match within(20, "a call in flight when the child exits", client.add(1, 2)).await {
        Err(RpcError::ConnectionClosed(reason)) => reason,
        other => panic!("{other:?}"),
    };
    assert!(reason.contains(&format!("child process {pid} exited with status 7")), "{reason}");
    // Reaped by its owner: later calls still say how it ended.
    assert_eq!(within(20, "reaping", child.wait()).await.unwrap().code(), Some(7));
    match client.add(1, 2).await {
        Err(RpcError::ConnectionClosed(later)) => assert_eq!(later, reason, "the first cause is kept"),
        other => panic!("{other:?}"),
    }

    // Closes its stdout and keeps running: the end-of-stream is reported with the child alive.
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg("exec 1>&-; exec sleep 600");
    let (conn, mut child) = pipe::spawn(sh).unwrap();
    let pid = child.pid();
    let client = ProbeClient::new(conn);
    match within(20, "a call to a child that closed its stdout", client.add(1, 2)).await {
        Err(RpcError::ConnectionClosed(reason)) => {
            assert!(reason.contains(&format!("child process {pid} is still running")), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    child.kill().await.unwrap();

    let missing = "/nonexistent/rpc-no-such-program";
    let err = pipe::spawn(std::process::Command::new(missing)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(missing), "names the program: {err}");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("absent.sock");
    let err = rpc_runtime::transport::unix::connect(&sock).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(sock.to_str().unwrap()), "names the path: {err}");
    let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        source.and_then(std::io::Error::raw_os_error),
        Some(libc::ENOENT),
        "the OS error is the source"
    );
}

/// F6: requests and responses far larger than the 64 KiB pipe buffer, sent both ways at once,
/// over an in-process pipe pair and to a child process: no deadlock.
#[tokio::test(flavor = "current_thread")]
async fn f6_no_pipe_deadlock() {
    let (a, b) = pipe::pair().unwrap();
    let served = server().serve_connection(b);
    let client = ProbeClient::new(a);
    let (child_conn, _child) = pipe::spawn(probe_child()).unwrap();
    let remote = ProbeClient::new(child_conn);
    for c in [&client, &remote] {
        let calls: Vec<_> = (0..8u8)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { c.echo(vec![i; 512 * 1024]).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let back = within(60, "large echoes both ways", call).await.unwrap().unwrap();
            assert!(back.len() == 512 * 1024 && back.iter().all(|&b| b == i as u8));
        }
        assert_eq!(within(60, "a 2 MiB response", c.blob(2 << 20)).await.unwrap().len(), 2 << 20);
        assert_in_flight_empty(c.as_client());
    }
    drop(client);
    within(20, "the pair's server to end", served.wait()).await;
}

/// G2: in a shared directory, an attacker's regular file, symlink, world-writable FIFO, or FIFO
/// owned by another user at the listener's path is refused, with an error saying why; nothing is
/// served, and the attacker's file is left alone.
#[tokio::test(flavor = "current_thread")]
async fn g2_fifo_hijack() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = dir.path().join("rpc");

    std::fs::write(&path, b"x").unwrap();
    assert!(fifo::bind(&path).await.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"x");
    std::fs::remove_file(&path).unwrap();

    let target = dir.path().join("elsewhere");
    mkfifo(&target, 0o600);
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert!(fifo::bind(&path).await.is_err());
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    std::fs::remove_file(&path).unwrap();

    mkfifo(&path, 0o666);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = short(Duration::from_millis(200)).connect(&path).await.unwrap_err();
    assert!(!err.to_string().is_empty());
    std::fs::remove_file(&path).unwrap();

    mkfifo(&path, 0o600);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let err = fifo::bind(&path).await.unwrap_err();
    assert!(err.to_string().contains("uid 65534"), "{err}");
    let err = short(Duration::from_millis(200)).connect(&path).await.unwrap_err();
    assert!(err.to_string().contains("uid 65534"), "{err}");
    assert!(path.exists(), "another user's FIFO is left alone");

    // And a FIFO server treats what arrives as untrusted: garbage after a registration is a
    // protocol error for that connection only.
    let good = dir.path().join("good");
    let handle = server().serve(fifo::bind(&good).await.unwrap());
    let mut raw = rpc_tests::wire::RawPeer::new(fifo::connect(&good).await.unwrap());
    raw.handshake().await;
    raw.send(&[0, 0, 0, 3, 99, 1, 2]).await.unwrap();
    let (code, _) = within(20, "a goaway for garbage", raw.goaway_then_close()).await.expect("goaway");
    assert_eq!(code, rpc_tests::wire::code::PROTOCOL);
    let client = ProbeClient::from_client(Client::new(fifo::connect(&good).await.unwrap()));
    assert_eq!(client.add(1, 1).await.unwrap(), 2, "the server keeps serving");
    handle.shutdown(Duration::from_secs(1)).await;
}
