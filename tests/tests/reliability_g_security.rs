//! Reliability cases G1, G3 and G4: security (Unix socket lifecycle and permissions, no type
//! choice from messages, safe defaults and errors that do not leak). G2 (FIFO hijack) waits for
//! the FIFO transport.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rpc_runtime::transport::framed::DEFAULT_MAX_FRAME_LEN;
use rpc_runtime::transport::{unix, Listener, Peer};
use rpc_runtime::{
    client, service, Client, RpcError, Server, ServerConfig, MAX_DECODE_DEPTH, MAX_ZERO_SIZED_ELEMENTS,
};
use rpc_tests::alloc::{MemScope, MIB};
use rpc_tests::fixture::{Fixture, STREAMS};
use rpc_tests::probe::{ProbeImpl, ProbeServer};
use rpc_tests::wire::{self, code, varint, Frame};
use rpc_tests::within;

const PROBE_SERVER: &str = env!("CARGO_BIN_EXE_probe-server");
const NOBODY: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// G1: a stale socket file (its server died without unlinking it) refuses connections and blocks
/// a plain rebind with `AddrInUse`; our `bind` probes it, finds it dead and replaces it. A live
/// socket is never stolen, and a path that is not a socket is never touched.
#[tokio::test(flavor = "current_thread")]
async fn g1_stale_live_and_foreign_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");

    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket(), "a stale socket file");
    let refused = std::os::unix::net::UnixStream::connect(&path).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let in_use = std::os::unix::net::UnixListener::bind(&path).unwrap_err();
    assert_eq!(in_use.kind(), std::io::ErrorKind::AddrInUse);

    let listener = unix::bind(&path).await.expect("a stale socket is replaced");
    assert_eq!(mode(&path), 0o600);
    let handle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);

    let err = unix::bind(&path).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    let client = rpc_tests::probe::ProbeClient::new(unix::connect(&path).await.unwrap());
    assert_eq!(client.add(1, 2).await.unwrap(), 3, "the live server was not stolen");
    handle.shutdown(Duration::from_secs(1)).await;
    assert!(!path.exists(), "removed on shutdown");

    // Not a socket: a regular file, a directory, a symlink to a socket. Refused, left alone.
    std::fs::write(&path, b"precious").unwrap();
    let err = unix::bind(&path).await.unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert!(unix::bind(&path).await.is_err());
    assert!(path.is_dir());
    std::fs::remove_dir(&path).unwrap();
    let target = dir.path().join("t");
    let _live = unix::bind(&target).await.unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = unix::bind(&path).await.unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
}

/// G1: a path too long for `sun_path` is `InvalidInput` naming SUN_LEN, before anything is
/// created.
#[tokio::test(flavor = "current_thread")]
async fn g1_long_path() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("x".repeat(120));
    let err = unix::bind(&long).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("SUN_LEN"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
    let err = unix::connect(&long).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

/// G1: the socket is owner-only from the moment its path exists: a watcher that stats the path
/// as fast as it can, across 200 binds, never sees it with any other mode.
#[tokio::test(flavor = "current_thread")]
async fn g1_permissions_are_set_before_the_path_is_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU32::new(0));
    let watcher = {
        let (stop, seen, path) = (Arc::clone(&stop), Arc::clone(&seen), path.clone());
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(meta) = std::fs::symlink_metadata(&path) {
                    seen.fetch_add(1, Ordering::Relaxed);
                    let m = meta.permissions().mode() & 0o777;
                    if m != 0o600 {
                        bad.push(m);
                    }
                }
            }
            bad
        })
    };
    for i in 0..200 {
        let l = unix::bind(&path).await.unwrap();
        assert_eq!(mode(&path), 0o600);
        if i == 0 {
            // Make sure the watcher is really watching (it has seen the first socket).
            let t0 = std::time::Instant::now();
            while seen.load(Ordering::Relaxed) == 0 {
                assert!(t0.elapsed() < Duration::from_secs(20), "hang guard: the watcher never ran");
                std::thread::yield_now();
            }
        }
        drop(l);
    }
    stop.store(true, Ordering::Relaxed);
    let bad = watcher.join().unwrap();
    assert!(bad.is_empty(), "the socket was visible with modes {bad:?} (octal values printed in decimal)");
    // Nothing else was left in the directory (no staging leftovers).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Copies the probe binary where user `nobody` can run it, in a 0755 directory.
fn nobody_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("probe-server");
    std::fs::copy(PROBE_SERVER, &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}

/// Runs `probe-server call-unix PATH` as user `nobody` and returns what it printed.
fn call_as_nobody(exe: &Path, sock: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new(exe)
        .arg("call-unix")
        .arg(sock)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn as nobody (the suite runs as root, like CI)")
}

async fn output_of(child: std::process::Child) -> String {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// G1: another uid cannot connect to a default (0600) socket: `EACCES`. With 0666 it connects,
/// and `SO_PEERCRED` reports its uid, gid and pid to the server; an allow-list of uids shuts it
/// out again.
#[tokio::test(flavor = "current_thread")]
async fn g1_other_uid_and_peer_credentials() {
    assert_eq!(unsafe_geteuid(), 0, "this case switches to uid 65534 and needs root, as CI has");
    let (dir, exe) = nobody_dir();

    let private = dir.path().join("private");
    let listener = unix::bind(&private).await.unwrap();
    let out = output_of(call_as_nobody(&exe, &private)).await;
    assert!(out.starts_with("err connect PermissionDenied"), "{out}");
    drop(listener);

    // Same-uid credentials.
    let shared = dir.path().join("shared");
    let mut listener = unix::bind_with_mode(&shared, 0o666).await.unwrap();
    assert_eq!(mode(&shared), 0o666);
    let (_client, conn) = tokio::join!(unix::connect(&shared), listener.accept());
    let conn = conn.unwrap().unwrap();
    assert_eq!(*conn.peer(), Peer::Unix { uid: Some(0), gid: Some(0), pid: Some(std::process::id() as i32) });

    // Another uid: connects, and the server sees who it is.
    let child = call_as_nobody(&exe, &shared);
    let child_pid = child.id() as i32;
    let conn = within(30, "nobody's connection", listener.accept()).await.unwrap().unwrap();
    assert_eq!(*conn.peer(), Peer::Unix { uid: Some(NOBODY), gid: Some(NOBODY), pid: Some(child_pid) });
    let served = Server::new(ProbeServer::new(ProbeImpl::default())).serve_connection(conn);
    assert_eq!(output_of(child).await.trim(), "ok 5");
    served.shutdown(Duration::from_secs(1)).await;

    // The allow-list refuses it.
    listener.allow_uids([0]);
    let handle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);
    let out = output_of(call_as_nobody(&exe, &shared)).await;
    assert!(out.starts_with("err closed"), "{out}");
    let same = rpc_tests::probe::ProbeClient::new(unix::connect(&shared).await.unwrap());
    assert_eq!(same.add(1, 1).await.unwrap(), 2, "an allowed uid is served");
    handle.shutdown(Duration::from_secs(1)).await;
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A newer version of the Probe service: same `add`, plus a method the old server lacks.
///
/// `pub`: the macro's generated items are `pub` and would trip `unreachable_pub` on a private
/// trait.
#[service(name = "Probe")]
pub trait ProbeV2 {
    /// As in `Probe`.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Not in `Probe`.
    async fn newer(&self, x: u32) -> u32;
}

/// G3: method ids map to a closed, generated set. A method from a newer version of the service
/// gets `UnknownMethod` and the connection carries on; arbitrary method names and bodies only
/// ever produce a response or a typed error, never a panic or a closed connection.
#[tokio::test]
async fn g3_unknown_and_arbitrary_methods() {
    within(600, "g3_unknown_and_arbitrary_methods", async {
        const METHODS: [&str; 10] =
            ["echo", "add", "depth", "pick", "scalars", "bytes", "text", "hash_map", "units", "record"];
        for kind in STREAMS {
            let fx = Fixture::start(kind).await;
            let v2 = ProbeV2Client::new(fx.connect().await);
            assert_eq!(v2.add(2, 3).await.unwrap(), 5);
            match v2.newer(1).await {
                Err(RpcError::UnknownMethod(m)) => assert_eq!(m, "newer"),
                other => panic!("{kind}: {other:?}"),
            }
            assert_eq!(v2.add(3, 4).await.unwrap(), 7, "{kind}: the connection carries on");

            let mem = MemScope::start();
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x63);
            let mut peer = fx.raw().await;
            for id in 0..2000u64 {
                let method: Vec<u8> = if rng.random_bool(0.8) {
                    METHODS[rng.random_range(0..METHODS.len())].as_bytes().to_vec()
                } else {
                    (0..rng.random_range(0..12)).map(|_| rng.random()).collect()
                };
                let payload: Vec<u8> = (0..rng.random_range(0..24)).map(|_| rng.random()).collect();
                peer.send_frame(&wire::request_raw(id, &method, None, false, &payload)).await.unwrap();
                match peer.expect_frame().await {
                    Frame::Response { id: got, .. } => assert_eq!(got, id),
                    Frame::Error { id: got, code, .. } => {
                        assert_eq!(got, id);
                        assert!(
                            [code::BAD_REQUEST, code::UNKNOWN_METHOD, code::PROTOCOL].contains(&code),
                            "{code}"
                        );
                    }
                    other => panic!("{kind}: {other:?}"),
                }
            }
            mem.assert_within(2 * MIB, &format!("{kind}: 2000 arbitrary calls"));
            fx.assert_serving().await;
            fx.stop().await;
        }
    })
    .await;
}

/// G4: every default limit and timeout is pinned, and none is unlimited. Changing one is a
/// decision: update this test and docs/reliability.md together.
#[test]
fn g4_defaults_are_pinned_and_finite() {
    let c = ServerConfig::default();
    let pinned: [(&str, u128, u128); 18] = [
        ("max_frame_len", c.max_frame_len as u128, 4 * MIB as u128),
        ("max_in_flight", c.max_in_flight as u128, 128),
        ("max_connections", c.max_connections as u128, 1024),
        ("idle_timeout ms", c.idle_timeout.as_millis(), 300_000),
        ("frame_timeout ms", c.frame_timeout.as_millis(), 30_000),
        ("handshake_timeout ms", c.handshake_timeout.as_millis(), 10_000),
        ("write_timeout ms", c.write_timeout.as_millis(), 30_000),
        ("max_deadline ms", c.max_deadline.as_millis(), 24 * 3600 * 1000),
        ("outbound_queue", c.outbound_queue as u128, 128),
        ("max_control_frames_per_sec", c.max_control_frames_per_sec as u128, 1000),
        ("max_receive_budget", c.max_receive_budget as u128, 256 * MIB as u128),
        ("max_connections_per_peer", c.max_connections_per_peer as u128, 256),
        ("oneway_deadline ms", c.oneway_deadline.as_millis(), 60_000),
        ("response_budget_per_connection", c.response_budget_per_connection as u128, 8 * MIB as u128),
        ("max_response_budget", c.max_response_budget as u128, 128 * MIB as u128),
        ("max_protocol_violations", c.max_protocol_violations as u128, 8),
        ("max_detached_calls", c.max_detached_calls as u128, 1024),
        ("inline_handlers", c.inline_handlers as u128, 1),
    ];
    for (name, got, want) in pinned {
        assert_eq!(got, want, "ServerConfig::{name}");
        assert!(got > 0, "{name} is zero");
    }
    // Finite, in the sense that matters: far below what "unlimited" settings use.
    assert!(c.max_frame_len <= 64 * MIB, "tarpc's example uses usize::MAX");
    assert!(c.max_in_flight <= 10_000 && c.max_connections <= 100_000 && c.outbound_queue <= 10_000);
    assert!(
        c.max_receive_budget < c.max_connections * c.max_frame_len,
        "the budget must bind before the cap does"
    );
    assert!(
        c.max_response_budget < c.max_connections * c.response_budget_per_connection,
        "the server-wide response budget must bind before the per-connection ones add up"
    );
    assert!(
        c.response_budget_per_connection >= 2 * c.max_frame_len,
        "room to write one frame while the next is encoded"
    );
    assert!(c.max_connections_per_peer < c.max_connections, "one peer cannot fill the server");
    for (name, d) in [
        ("idle", c.idle_timeout),
        ("frame", c.frame_timeout),
        ("handshake", c.handshake_timeout),
        ("write", c.write_timeout),
        ("deadline clamp", c.max_deadline),
        ("one-way deadline", c.oneway_deadline),
    ] {
        assert!(d <= Duration::from_secs(7 * 24 * 3600), "{name} timeout is effectively unlimited: {d:?}");
    }

    assert_eq!(DEFAULT_MAX_FRAME_LEN, 4 * MIB);
    assert_eq!(client::DEFAULT_TIMEOUT, Duration::from_secs(30));
    assert_eq!(client::DEFAULT_OUTBOUND_QUEUE, 1024);
    assert_eq!(client::DEFAULT_WRITE_TIMEOUT, Duration::from_secs(30));
    assert_eq!(MAX_DECODE_DEPTH, 128);
    assert_eq!(MAX_ZERO_SIZED_ELEMENTS, 1024);
    let builder = format!("{:?}", Client::builder());
    for want in ["timeout: Some(30s)", "max_frame_len: 4194304", "outbound_queue: 1024", "write_timeout: 30s"]
    {
        assert!(builder.contains(want), "client default {want:?} not in {builder}");
    }
    // The Unix socket mode.
    assert_eq!(unix::DEFAULT_MODE, 0o600);
    // How long a frame that does not fit in the receive budget waits before the oldest holder is
    // shed (H5).
    assert_eq!(rpc_runtime::transport::framed::SHED_AFTER, Duration::from_secs(1));
}

/// G4: errors sent to a peer carry no panic text, source paths or backtraces (those go to the
/// log), and no local path of the server. Collected from every error this suite provokes.
#[tokio::test]
async fn g4_errors_sent_to_peers_do_not_leak() {
    within(600, "g4_errors_sent_to_peers_do_not_leak", async {
        for kind in STREAMS {
            let fx = Fixture::start_with(kind, |s| s.max_frame_len(1024)).await;
            let mut peer = fx.raw().await;
            let secret = "SECRET-PANIC at /home/app/src/lib.rs:42:7";
            let bodies = [
                wire::request(
                    1,
                    "boom",
                    None,
                    &[varint(secret.len() as u64), secret.as_bytes().to_vec()].concat(),
                ),
                wire::request(2, "add", None, &[0xff; 11]),
                wire::request(3, "nope", None, &[]),
                wire::request(4, "blob", None, &varint(4096)),
                wire::request_raw(5, b"add", Some(0), false, &[1, 1]),
                wire::request(6, "depth", None, &[[1u8; 1000].as_slice(), &[0, 7]].concat()),
                wire::request(7, "units", None, &varint(u64::MAX)),
            ];
            let mut messages = Vec::new();
            for body in &bodies {
                peer.send_frame(body).await.unwrap();
                match peer.expect_frame().await {
                    Frame::Error { message, .. } => messages.push(message),
                    other => panic!("{kind}: expected an error, got {other:?}"),
                }
            }
            peer.send(&u32::MAX.to_be_bytes()).await.unwrap();
            messages.extend(peer.goaway_then_close().await.map(|(_, m)| m));
            assert_eq!(messages.len(), bodies.len() + 1);
            let cwd = std::env::current_dir().unwrap();
            let local = [cwd.to_str().unwrap(), env!("CARGO_MANIFEST_DIR"), "/tmp", "/home"];
            for m in &messages {
                for needle in ["SECRET", "panicked at", ".rs:", "stack backtrace", "RUST_BACKTRACE"] {
                    assert!(!m.contains(needle), "{kind}: {m:?} leaks {needle:?}");
                }
                for path in local {
                    assert!(!m.contains(path), "{kind}: {m:?} leaks the path {path}");
                }
            }
            fx.stop().await;
        }
    })
    .await;
}
