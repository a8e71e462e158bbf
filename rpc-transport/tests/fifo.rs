//! FIFO transport tests over real FIFOs (made with `mkfifo` or by the library) and real processes.
//!
//! Some clients here are written from `FIFO.md` alone (in Rust, or as shell scripts), so the
//! tests also check that the document is enough to build a peer.

use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rpc_transport::fifo::{self, FifoListener};
use rpc_transport::framed::{FrameReader, FrameWriter, DEFAULT_MAX_FRAME_LEN};
use rpc_transport::{Connection, Listener, Peer};
use tokio::process::Command;

/// A hang guard only: every test finishes in well under a second when it passes.
const GUARD: Duration = Duration::from_secs(60);
/// A handshake timeout far beyond the guard: a listener that waited on a stalled client before
/// serving the next one would trip the guard.
const PATIENT: Duration = Duration::from_secs(600);

mod common;
use common::{recv, send, Reader, Writer};

async fn guard<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(GUARD, f).await.expect("test hung past its guard")
}

fn framed(conn: Connection) -> (Reader, Writer, Option<Box<dyn std::any::Any + Send + Sync>>) {
    let (r, w, _peer, guard) = conn.into_parts();
    (FrameReader::new(r, DEFAULT_MAX_FRAME_LEN), FrameWriter::new(w), guard)
}

/// A connection split into framed halves, keeping its guard alive.
struct Ends {
    r: Reader,
    w: Writer,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

fn ends(conn: Connection) -> Ends {
    let (r, w, guard) = framed(conn);
    Ends { r, w, _guard: guard }
}

/// Sends a frame each way between two connections, one bigger than a pipe buffer.
async fn exchange(a: Connection, b: Connection) -> (Ends, Ends) {
    let (mut a, mut b) = (ends(a), ends(b));
    exchange_ends(&mut a, &mut b).await;
    (a, b)
}

async fn exchange_ends(a: &mut Ends, b: &mut Ends) {
    let big = vec![5u8; 256 * 1024];
    let (sa, sb, from_b, from_a) =
        tokio::join!(send(&mut a.w, b"from a"), send(&mut b.w, &big), recv(&mut a.r), recv(&mut b.r));
    sa.unwrap();
    sb.unwrap();
    assert_eq!(from_a, &b"from a"[..]);
    assert_eq!(from_b, big);
}

fn mkfifo(path: &Path, mode: u32) {
    let status =
        std::process::Command::new("mkfifo").arg("-m").arg(format!("{mode:o}")).arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn assert_err(result: io::Result<impl std::fmt::Debug>, kind: io::ErrorKind, mentions: &[&str]) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.kind(), kind, "{err}");
    let msg = err.to_string();
    for m in mentions {
        assert!(msg.contains(m), "{msg:?} does not mention {m:?}");
    }
    assert!(msg.chars().next().is_some_and(|c| !c.is_uppercase()), "lower-case message: {msg:?}");
}

fn options(timeout: Duration) -> fifo::Options {
    let mut o = fifo::Options::new();
    o.timeout(timeout);
    o
}

// ---------------------------------------------------------------------------------------------
// Point to point.

/// F1: whoever opens first, the pair connects; both at once too.
#[tokio::test]
async fn open_pair_connects_whoever_opens_first() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, ba) = (dir.path().join("a-to-b"), dir.path().join("b-to-a"));
    guard(async {
        let (a, b) = tokio::join!(fifo::open_pair(&ba, &ab), fifo::open_pair(&ab, &ba));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.peer(), &Peer::Fifo(ba.clone()));
        assert_eq!(b.peer(), &Peer::Fifo(ab.clone()));
        exchange(a, b).await;

        for (first, second) in [((&ba, &ab), (&ab, &ba)), ((&ab, &ba), (&ba, &ab))] {
            let (r, w) = (first.0.clone(), first.1.clone());
            let early = tokio::spawn(async move { fifo::open_pair(r, w).await });
            // On this single-threaded runtime the spawned open runs up to its first wait
            // (creating the FIFOs, opening its read end, finding no reader for its write end).
            tokio::task::yield_now().await;
            assert!(first.0.exists() && first.1.exists() && !early.is_finished());
            let late = fifo::open_pair(second.0, second.1).await.unwrap();
            exchange(early.await.unwrap().unwrap(), late).await;
        }
    })
    .await;
}

/// F1: a shell script peer using blocking opens, in either order, works with open_pair.
#[tokio::test]
async fn open_pair_works_with_a_shell_peer_opening_in_either_order() {
    for script in [
        r#"exec 3<"$1"; exec 4>"$2"; exec cat <&3 >&4"#, // reader first
        r#"exec 4>"$2"; exec 3<"$1"; exec cat <&3 >&4"#, // writer first
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (to_sh, from_sh) = (dir.path().join("to-sh"), dir.path().join("from-sh"));
        mkfifo(&to_sh, 0o600);
        mkfifo(&from_sh, 0o600);
        let mut sh = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&to_sh)
            .arg(&from_sh)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        guard(async {
            let conn = fifo::open_pair(&from_sh, &to_sh).await.unwrap();
            let (mut r, mut w, _g) = framed(conn);
            for body in [&b"hello"[..], &vec![1u8; 300_000]] {
                let (sent, echoed) = tokio::join!(send(&mut w, body), recv(&mut r));
                sent.unwrap();
                assert_eq!(echoed, body);
            }
            w.shutdown().await.unwrap();
            assert!(r.read_frame().await.unwrap().is_none(), "cat exits when its input ends");
            assert!(sh.wait().await.unwrap().success());
        })
        .await;
        // FIFOs made by someone else are theirs: left in place.
        assert!(to_sh.exists() && from_sh.exists());
    }
}

/// F1: with no peer, opening times out with an error naming the path (and cleans up).
#[tokio::test(start_paused = true)]
async fn open_pair_times_out_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (r, w) = (dir.path().join("in"), dir.path().join("out"));
    let result = options(Duration::from_secs(2)).open_pair(&r, &w).await;
    assert_err(
        result,
        io::ErrorKind::TimedOut,
        &[&w.display().to_string(), "2s", "nobody opened it for reading"],
    );
    assert!(!r.exists() && !w.exists(), "the FIFOs it created are removed");
}

#[tokio::test]
async fn open_pair_removes_only_the_fifos_it_created() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, ba) = (dir.path().join("ab"), dir.path().join("ba"));
    // A creates both; B finds them.
    let a = tokio::spawn({
        let (ab, ba) = (ab.clone(), ba.clone());
        async move { fifo::open_pair(ba, ab).await }
    });
    tokio::task::yield_now().await;
    let b = guard(fifo::open_pair(&ab, &ba)).await.unwrap();
    let a = guard(a).await.unwrap().unwrap();
    drop(b);
    assert!(ab.exists() && ba.exists(), "B created nothing, so removes nothing");
    drop(a);
    assert!(!ab.exists() && !ba.exists(), "A removes what it created");
}

/// F2: when the peer's writer closes, reads end (and keep ending) instead of hanging or failing.
#[tokio::test]
async fn eof_when_the_last_writer_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, ba) = (dir.path().join("ab"), dir.path().join("ba"));
    guard(async {
        let (a, b) = tokio::join!(fifo::open_pair(&ba, &ab), fifo::open_pair(&ab, &ba));
        let (mut ra, _wa, _ga) = framed(a.unwrap());
        let (_rb, mut wb, _gb) = framed(b.unwrap());
        send(&mut wb, b"last words").await.unwrap();
        drop(wb);
        assert_eq!(recv(&mut ra).await, &b"last words"[..]);
        assert!(ra.read_frame().await.unwrap().is_none());
        assert!(ra.read_frame().await.unwrap().is_none(), "end of stream stays end of stream");
    })
    .await;
}

/// F2: writing to a FIFO whose reader is gone is BrokenPipe, not a signal.
#[tokio::test]
async fn write_to_a_dead_reader_is_broken_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, ba) = (dir.path().join("ab"), dir.path().join("ba"));
    guard(async {
        let (a, b) = tokio::join!(fifo::open_pair(&ba, &ab), fifo::open_pair(&ab, &ba));
        let (_ra, mut wa, _ga) = framed(a.unwrap());
        drop(b);
        // A child spawned concurrently by another test may briefly hold copies (until its exec).
        let err = loop {
            if let Err(e) = send(&mut wa, b"hello?").await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    })
    .await;
}

/// G2: regular files, symlinks, FIFOs others may open and other users' FIFOs are refused, by
/// open_pair, connect and bind alike.
#[tokio::test]
async fn refuses_files_symlinks_and_unsafe_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let good = p("good");
    mkfifo(&good, 0o600);
    fs::write(p("file"), b"not a fifo").unwrap();
    std::os::unix::fs::symlink(&good, p("link")).unwrap();
    mkfifo(&p("shared"), 0o644);
    mkfifo(&p("group-write"), 0o620);
    let quick = options(Duration::from_millis(200));
    let cases = [
        ("file", io::ErrorKind::InvalidInput, "is a regular file, not a fifo"),
        ("link", io::ErrorKind::InvalidInput, "is a symbolic link, not a fifo"),
        ("shared", io::ErrorKind::PermissionDenied, "has mode 0644"),
        ("group-write", io::ErrorKind::PermissionDenied, "has mode 0620"),
    ];
    guard(async {
        for (name, kind, says) in cases {
            let path = p(name);
            let shown = path.display().to_string();
            assert_err(quick.open_pair(&path, p("out")).await, kind, &[&shown, says]);
            assert_err(quick.open_pair(p("in"), &path).await, kind, &[&shown, says]);
            assert_err(quick.connect(&path).await, kind, &[&shown, says]);
        }
        // bind refuses what is not a FIFO, and replaces a stale FIFO of this user's with a
        // fresh private one.
        for name in ["file", "link"] {
            let shown = p(name).display().to_string();
            assert_err(fifo::bind(p(name)).await, io::ErrorKind::InvalidInput, &[&shown, "not a fifo"]);
        }
        assert_eq!(fs::read(p("file")).unwrap(), b"not a fifo", "left untouched");
        let listener = fifo::bind(p("shared")).await.unwrap();
        assert_eq!(fs::metadata(p("shared")).unwrap().mode() & 0o777, 0o600);
        drop(listener);
    })
    .await;

    // Another user's FIFO, even one we may open: only root can make one to test with.
    if euid() != 0 {
        eprintln!("skipping the other-user case: needs root to chown a FIFO");
        return;
    }
    let theirs = p("theirs");
    mkfifo(&theirs, 0o600);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let shown = theirs.display().to_string();
    guard(async {
        assert_err(
            quick.open_pair(&theirs, p("out2")).await,
            io::ErrorKind::PermissionDenied,
            &[&shown, "owned by uid 65534"],
        );
        assert_err(
            quick.connect(&theirs).await,
            io::ErrorKind::PermissionDenied,
            &[&shown, "owned by uid 65534"],
        );
        assert_err(fifo::bind(&theirs).await, io::ErrorKind::PermissionDenied, &[&shown, "uid 65534"]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Listener.

#[tokio::test]
async fn listener_accepts_a_client_and_cleans_up_everything() {
    let dir = tempfile::tempdir().unwrap();
    let private = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    guard(async {
        let mut listener = fifo::bind(&path).await.unwrap();
        assert_eq!(listener.describe(), format!("fifo:{}", path.display()));
        assert_eq!(fs::symlink_metadata(&path).unwrap().mode() & 0o7777, 0o600);
        let mut opts = fifo::Options::new();
        opts.private_dir(private.path());
        let (client, server) = tokio::join!(opts.connect(&path), listener.accept());
        let (client, server) = (client.unwrap(), server.unwrap().unwrap());
        assert!(
            matches!(server.peer(), Peer::Fifo(p) if p.starts_with(private.path()) && p.ends_with("c2s"))
        );
        assert_eq!(
            client.peer(),
            &Peer::Fifo(path.clone()),
            "the client names the server by its well-known path"
        );
        // The client removed its private pair as soon as both sides had it open.
        assert_eq!(fs::read_dir(private.path()).unwrap().count(), 0);
        let (mut client, mut server) = exchange(client, server).await;

        drop(listener);
        assert!(!path.exists(), "the listener removes its fifo");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "and its lock file");
        // Accepted connections outlive the listener.
        exchange_ends(&mut client, &mut server).await;
    })
    .await;
}

/// F4: a second server on the same FIFO is refused, so two readers never split the stream.
#[tokio::test]
async fn a_second_listener_on_the_same_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    guard(async {
        let mut first = fifo::bind(&path).await.unwrap();
        let lock = format!("{}.lock", path.display());
        assert_err(fifo::bind(&path).await, io::ErrorKind::AddrInUse, &["already listening", &lock]);
        // The refused attempt changed nothing: the first still serves.
        let (client, server) = tokio::join!(fifo::connect(&path), first.accept());
        exchange(client.unwrap(), server.unwrap().unwrap()).await;
        drop(first);
        let mut again = fifo::bind(&path).await.unwrap();
        let (client, server) = tokio::join!(fifo::connect(&path), again.accept());
        exchange(client.unwrap(), server.unwrap().unwrap()).await;
    })
    .await;
}

/// Holds `<path>.lock` as a listener does from the start of `bind`: one that is starting up.
fn hold_listener_lock(path: &Path) -> File {
    use std::os::fd::AsRawFd;
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path(path))
        .unwrap();
    // SAFETY: flock on a descriptor we own; no memory is involved.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    lock
}

fn lock_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", path.display()))
}

/// The OS error underneath an error that names the path.
fn os_error(err: &io::Error) -> Option<i32> {
    use std::error::Error as _;
    err.source().and_then(|s| s.downcast_ref::<io::Error>()).and_then(io::Error::raw_os_error)
}

/// Item 10: with no server, a listener's client fails at once (as TCP and Unix sockets do),
/// instead of waiting out its timeout: `NotFound` with no FIFO, `ConnectionRefused` with a FIFO
/// nobody reads (a killed listener's leftover, its lock file too), each naming the path, the OS
/// error kept as the source. Paused time: nothing here waits on I/O, and "at once" is exact.
#[tokio::test(start_paused = true)]
async fn connect_with_no_server_fails_at_once_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let shown = path.display().to_string();
    let t0 = tokio::time::Instant::now();
    let err = fifo::connect(&path).await.unwrap_err();
    assert_err(
        Err::<(), _>(err),
        io::ErrorKind::NotFound,
        &[&shown, "no server is listening", "does not exist"],
    );

    mkfifo(&path, 0o600);
    let err = fifo::connect(&path).await.unwrap_err();
    assert_eq!(os_error(&err), Some(libc::ENXIO), "{err}");
    assert_err(
        Err::<(), _>(err),
        io::ErrorKind::ConnectionRefused,
        &[&shown, "nobody opened it for reading"],
    );
    // A dead listener's lock file, no longer locked.
    File::create(lock_path(&path)).unwrap();
    assert_err(fifo::connect(&path).await, io::ErrorKind::ConnectionRefused, &[&shown]);
    fs::remove_file(&path).unwrap();
    fs::remove_file(lock_path(&path)).unwrap();

    // A listener that has come and gone.
    drop(fifo::bind(&path).await.unwrap());
    assert_err(fifo::connect(&path).await, io::ErrorKind::NotFound, &[&shown]);
    assert_eq!(t0.elapsed(), Duration::ZERO, "every refusal came at once");
}

/// F1: while a listener holds its lock but has not opened its FIFO (it is starting up), a client
/// waits, up to its timeout, and the error then names the path and why.
#[tokio::test(start_paused = true)]
async fn connect_times_out_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let _starting = hold_listener_lock(&path);
    let quick = options(Duration::from_secs(3));
    let shown = path.display().to_string();
    let t0 = tokio::time::Instant::now();
    assert_err(quick.connect(&path).await, io::ErrorKind::TimedOut, &[&shown, "3s", "does not exist"]);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    mkfifo(&path, 0o600);
    assert_err(
        quick.connect(&path).await,
        io::ErrorKind::TimedOut,
        &[&shown, "nobody opened it for reading"],
    );
    // A reader that takes the registration but never opens the client's pair.
    let _mute_server = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path).unwrap();
    let private = tempfile::tempdir().unwrap();
    let mut opts = options(Duration::from_secs(3));
    opts.private_dir(private.path());
    assert_err(
        opts.connect(&path).await,
        io::ErrorKind::TimedOut,
        &[&shown, "did not open this client's pair"],
    );
    assert_eq!(fs::read_dir(private.path()).unwrap().count(), 0, "the private pair is removed");
}

/// F1: a client that starts while the listener is starting (it holds its lock) waits for it and
/// connects once it is up.
#[tokio::test]
async fn connect_waits_for_a_listener_that_is_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    guard(async {
        let starting = hold_listener_lock(&path);
        let client = tokio::spawn({
            let path = path.clone();
            async move { fifo::connect(path).await }
        });
        tokio::task::yield_now().await;
        assert!(!client.is_finished(), "the client waits for a listener that holds its lock");
        // `bind` takes the lock before its first await, so on this one thread the client never
        // sees it released.
        drop(starting);
        let mut listener = fifo::bind(&path).await.unwrap();
        let server = listener.accept().await.unwrap().unwrap();
        exchange(client.await.unwrap().unwrap(), server).await;
    })
    .await;
}

/// A timeout too long to represent as a deadline waits without overflowing.
#[tokio::test]
async fn an_unrepresentable_timeout_does_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let (ab, ba) = (dir.path().join("ab"), dir.path().join("ba"));
    let forever = options(Duration::MAX);
    guard(async {
        let (a, b) = tokio::join!(forever.open_pair(&ba, &ab), forever.open_pair(&ab, &ba));
        exchange(a.unwrap(), b.unwrap()).await;
        let path = dir.path().join("server.fifo");
        let mut listener = forever.bind(&path).await.unwrap();
        let (client, server) = tokio::join!(forever.connect(&path), listener.accept());
        exchange(client.unwrap(), server.unwrap().unwrap()).await;
    })
    .await;
}

/// F2: once every client has closed its end of the well-known FIFO, the listener neither ends
/// nor spins: it holds a writer of its own, and the next client is accepted.
#[tokio::test]
async fn listener_keeps_accepting_after_every_client_has_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    guard(async {
        let mut listener = fifo::bind(&path).await.unwrap();
        for _ in 0..3 {
            let (client, server) = accept_pair(&mut listener, &path).await;
            let (client, mut server) = exchange(client, server).await;
            drop(client);
            assert!(server.r.read_frame().await.unwrap().is_none(), "the server side sees the client go");
        }
    })
    .await;
}

/// F2: a server writing to a client that has gone gets BrokenPipe.
#[tokio::test]
async fn server_write_to_a_vanished_client_is_broken_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    guard(async {
        let mut listener = fifo::bind(&path).await.unwrap();
        let (client, server) = accept_pair(&mut listener, &path).await;
        drop(client);
        let (_r, mut w, _g) = framed(server);
        let err = loop {
            if let Err(e) = send(&mut w, b"hello?").await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    })
    .await;
}

/// Many clients registering at once each get their own connection, none misrouted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_registering_at_once_each_get_their_own_connection() {
    const CLIENTS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let mut listener = options(Duration::from_secs(30)).bind(&path).await.unwrap();
    let server = tokio::spawn(async move {
        let mut peers = Vec::new();
        for _ in 0..CLIENTS {
            let conn = listener.accept().await.unwrap().unwrap();
            peers.push(conn.peer().clone());
            tokio::spawn(async move {
                let (mut r, mut w, _g) = framed(conn);
                let id = recv(&mut r).await;
                send(&mut w, &[&id[..], b" ack"].concat()).await.unwrap();
            });
        }
        peers
    });
    let clients = (0..CLIENTS).map(|i| {
        let path = path.clone();
        tokio::spawn(async move {
            let conn = options(Duration::from_secs(30)).connect(&path).await.unwrap();
            let (mut r, mut w, _g) = framed(conn);
            send(&mut w, format!("client {i}").as_bytes()).await.unwrap();
            assert_eq!(recv(&mut r).await, format!("client {i} ack").as_bytes());
        })
    });
    guard(async {
        for client in clients.collect::<Vec<_>>() {
            client.await.unwrap();
        }
        let mut peers = server.await.unwrap();
        peers.sort_by_key(|p| p.to_string());
        peers.dedup();
        assert_eq!(peers.len(), CLIENTS, "every connection has its own pair");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Untrusted registrations, written by hand from FIFO.md.

/// CRC-32 (IEEE), bit by bit, as FIFO.md specifies.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A registration message as FIFO.md lays it out.
fn registration(version: u8, dir: &[u8], nonce: &[u8; 16]) -> Vec<u8> {
    let mut msg = b"RPCF".to_vec();
    msg.push(version);
    msg.push(0);
    msg.extend_from_slice(&(dir.len() as u16).to_be_bytes());
    msg.extend_from_slice(&std::process::id().to_be_bytes());
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(dir);
    let crc = crc32(&msg);
    msg.extend_from_slice(&crc.to_be_bytes());
    msg
}

/// A client following FIFO.md step by step, so a test can stop it anywhere.
struct HandClient {
    dir: tempfile::TempDir,
    nonce: [u8; 16],
}

impl HandClient {
    /// Step 2: a private directory (mode 0700) with the two FIFOs (mode 0600).
    fn new(nonce: u8) -> Self {
        let dir = tempfile::Builder::new().permissions(fs::Permissions::from_mode(0o700)).tempdir().unwrap();
        mkfifo(&dir.path().join("c2s"), 0o600);
        mkfifo(&dir.path().join("s2c"), 0o600);
        HandClient { dir, nonce: [nonce; 16] }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Step 3: open s2c for reading, without blocking.
    fn open_s2c(&self) -> File {
        fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(self.path("s2c")).unwrap()
    }

    fn registration(&self) -> Vec<u8> {
        registration(1, self.dir.path().as_os_str().as_encoded_bytes(), &self.nonce)
    }

    /// Step 5: open c2s for writing, retrying while the server has not opened it (ENXIO).
    async fn open_c2s(&self) -> File {
        let mut retry = tokio::time::interval(Duration::from_millis(2));
        loop {
            match fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(self.path("c2s")) {
                Ok(file) => return file,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => retry.tick().await,
                Err(e) => panic!("open c2s: {e}"),
            };
        }
    }

    /// Steps 5 and 6: open c2s and confirm with the nonce, followed at once by `first` (in the
    /// same write, so the bytes are in the FIFO before the server reads any of them).
    async fn confirm(&self, first: &[u8]) -> File {
        let mut c2s = self.open_c2s().await;
        let bytes = [&self.nonce[..], first].concat();
        assert_eq!(c2s.write(&bytes).unwrap(), bytes.len());
        c2s
    }
}

/// Step 4: one write of the whole message on the well-known FIFO.
fn write_once(listener: &Path, msg: &[u8]) {
    let mut fifo = fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(listener).unwrap();
    assert_eq!(fifo.write(msg).unwrap(), msg.len());
}

async fn accept_one(listener: &mut FifoListener, path: &Path) {
    let (client, server) = tokio::join!(fifo::connect(path), listener.accept());
    exchange(client.unwrap(), server.unwrap().unwrap()).await;
}

/// G2/F3: garbage and well-formed but bogus registrations on the well-known FIFO never break the
/// listener, and a real registration right after garbage is not swallowed by it.
#[tokio::test]
async fn garbage_and_bogus_registrations_never_break_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let mut listener = options(PATIENT).bind(&path).await.unwrap();
    let not_private = tempfile::tempdir().unwrap();
    fs::set_permissions(not_private.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let files_not_fifos = tempfile::tempdir().unwrap();
    fs::write(files_not_fifos.path().join("c2s"), b"").unwrap();
    fs::write(files_not_fifos.path().join("s2c"), b"").unwrap();
    let mut noise = 0x1234_5678u32;
    let random: Vec<u8> = (0..3000)
        .map(|_| {
            noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (noise >> 24) as u8
        })
        .collect();
    let mut bad_crc = registration(1, b"/tmp/x", &[0; 16]);
    *bad_crc.last_mut().unwrap() ^= 0xff;
    // A header announcing a 4000-byte path, cut short.
    let mut liar = registration(1, &[b'/'; 4000], &[0; 16]);
    liar.truncate(64);
    let garbage: Vec<Vec<u8>> = vec![
        random,
        b"RPCF".to_vec(),
        bad_crc,
        registration(2, b"/tmp/x", &[0; 16]),
        registration(1, b"relative/dir", &[0; 16]),
        registration(1, b"/nonexistent/rpc-fifo-test", &[0; 16]),
        registration(1, not_private.path().as_os_str().as_encoded_bytes(), &[0; 16]),
        registration(1, files_not_fifos.path().as_os_str().as_encoded_bytes(), &[0; 16]),
        liar,
    ];
    guard(async {
        for g in &garbage {
            write_once(&path, g);
        }
        // A real client right behind the liar's unfinished header.
        accept_one(&mut listener, &path).await;
        for g in &garbage {
            write_once(&path, g);
            accept_one(&mut listener, &path).await;
        }
    })
    .await;
}

/// A client that registers and then stalls (never opens c2s, or never confirms) does not hold up
/// the clients behind it: handshakes run concurrently.
#[tokio::test]
async fn a_stalled_client_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let mut listener = options(PATIENT).bind(&path).await.unwrap();
    // Registered, alive (s2c open), but never opens c2s.
    let silent = HandClient::new(1);
    let _s2c = silent.open_s2c();
    write_once(&path, &silent.registration());
    // Registered and opened c2s, but never confirms.
    let mute = HandClient::new(2);
    let _s2c2 = mute.open_s2c();
    write_once(&path, &mute.registration());
    let _c2s = guard(mute.open_c2s()).await;
    // The listener's handshake timeout is far beyond the guard.
    guard(async {
        accept_one(&mut listener, &path).await;
        accept_one(&mut listener, &path).await;
    })
    .await;
}

/// The same registration sent twice cannot give a second reader on the client's pair: the pair
/// is claimed once, and the client's stream arrives intact on its one connection.
#[tokio::test]
async fn a_repeated_registration_cannot_claim_a_pair_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let mut listener = fifo::bind(&path).await.unwrap();
    let client = HandClient::new(3);
    let s2c = client.open_s2c();
    guard(async {
        write_once(&path, &client.registration());
        write_once(&path, &client.registration());
        // A second reader on c2s would take (part of) this frame, or the nonce.
        let (c2s, server) = tokio::join!(client.confirm(b"\0\0\0\x05hello"), listener.accept());
        let server = server.unwrap().unwrap();
        assert_eq!(server.peer(), &Peer::Fifo(client.path("c2s")));
        let mut server = ends(server);
        assert_eq!(recv(&mut server.r).await, &b"hello"[..]);
        let mut conn = ends(rpc_transport::pipe::from_fds(s2c.into(), c2s.into()).unwrap());
        exchange_ends(&mut conn, &mut server).await;
        // The next connection is a new client's, not a duplicate of this one.
        let (other, next) = tokio::join!(fifo::connect(&path), listener.accept());
        let next = next.unwrap().unwrap();
        assert_ne!(next.peer(), &Peer::Fifo(client.path("c2s")));
        exchange(other.unwrap(), next).await;
    })
    .await;
}

/// A shell client (FIFO.md by hand) killed mid-handshake, and another killed after connecting,
/// do not break the listener; the second's connection ends with end-of-stream.
#[tokio::test]
async fn killed_clients_do_not_break_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    let mut listener = options(PATIENT).bind(&path).await.unwrap();
    let run = |client: &HandClient, script: &str| {
        let msg = client.path("msg");
        let nonce = client.path("nonce");
        fs::write(&msg, client.registration()).unwrap();
        fs::write(&nonce, client.nonce).unwrap();
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("DIR", client.dir.path())
            .env("MSG", msg)
            .env("NONCE", nonce)
            .env("WK", &path)
            // Do not outlive a failing test.
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    guard(async {
        // Registers, then dies before opening c2s.
        let early = HandClient::new(4);
        let mut sh = run(&early, r#"exec 3<>"$DIR/s2c"; cat "$MSG" > "$WK"; kill -KILL $$"#);
        assert!(sh.wait().await.unwrap().signal_is_kill());
        accept_one(&mut listener, &path).await;

        // Completes the handshake, then lingers (as sleep) until killed.
        let late = HandClient::new(5);
        let mut sh = run(
            &late,
            r#"exec 3<>"$DIR/s2c"; cat "$MSG" > "$WK"; exec 4>"$DIR/c2s"; cat "$NONCE" >&4; exec sleep 600"#,
        );
        let server = listener.accept().await.unwrap().unwrap();
        assert_eq!(server.peer(), &Peer::Fifo(late.path("c2s")));
        sh.start_kill().unwrap();
        assert!(sh.wait().await.unwrap().signal_is_kill());
        let (mut r, _w, _g) = framed(server);
        assert!(r.read_frame().await.unwrap().is_none());
        accept_one(&mut listener, &path).await;
    })
    .await;
}

/// A client connected at `path` and the listener's end of it.
async fn accept_pair(listener: &mut FifoListener, path: &Path) -> (Connection, Connection) {
    let (client, server) = tokio::join!(fifo::connect(path), listener.accept());
    (client.unwrap(), server.unwrap().unwrap())
}

trait SignalIsKill {
    fn signal_is_kill(&self) -> bool;
}

impl SignalIsKill for std::process::ExitStatus {
    fn signal_is_kill(&self) -> bool {
        std::os::unix::process::ExitStatusExt::signal(self) == Some(libc::SIGKILL)
    }
}

/// A listener's per-client pipes keep the default size until a write needs more: then that
/// pipe is grown, and 200 KiB go in without the other side reading.
#[tokio::test]
async fn a_listeners_pair_grows_at_the_first_large_write() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.fifo");
    guard(async {
        let mut listener = fifo::bind(&path).await.unwrap();
        let (client, _server) = accept_pair(&mut listener, &path).await;
        let (_r, mut w, _peer, _guard) = client.into_parts();
        let payload = vec![5u8; 200 * 1024];
        let wrote = tokio::time::timeout(Duration::from_secs(10), w.write_all(&payload)).await;
        assert!(wrote.is_ok(), "200 KiB went into the grown pipe unread");
    })
    .await;
}
