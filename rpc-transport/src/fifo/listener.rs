//! [`FifoListener`]: binding a well-known FIFO, reading registrations from it, the server side
//! of each handshake, and the lock file that keeps one reader per FIFO.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe::Receiver;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::client::{CLIENT_TO_SERVER, SERVER_TO_CLIENT};
use super::files::{create_fifo, open_fifo, open_private_dir, refuse_existing, End, RemoveOnDrop};
use super::registration::{decode_registration, take_message, Registration, NONCE_LEN};
use super::{Options, FIFO_MODE, PIPE_BUF};
use crate::pipe::CloseOnShutdown;
use crate::{sys, Connection, Listener, Peer};

/// Handshakes a listener runs at once; registrations beyond it are refused (and logged).
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Accepted connections a listener queues before handshakes wait for `accept`.
const BACKLOG: usize = 16;

impl Options {
    /// The work of [`Options::bind`], kept here with the listener it makes.
    pub(super) async fn bind_listener(&self, path: impl AsRef<Path>) -> io::Result<FifoListener> {
        sys::warn_if_sigpipe_default();
        let path = path.as_ref().to_path_buf();
        let lock = LockFile::acquire_soon(&path).await?;
        // Holding the lock, any FIFO already at the path is a dead listener's.
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(meta) if meta.file_type().is_fifo() && meta.uid() == sys::euid() => {
                tracing::debug!(path = %path.display(), "replacing a stale fifo");
                fs::remove_file(&path)?;
            }
            Ok(meta) => return Err(refuse_existing(&path, &meta)),
        }
        create_fifo(&path, false)?;
        let fifo = RemoveOnDrop::new(&path)?;
        let reader = open_fifo(&path, End::Read)?;
        // Our own writer keeps the FIFO from reporting end-of-stream when clients come and go.
        let keepalive = open_fifo(&path, End::Write)?;
        for file in [&reader, &keepalive] {
            let meta = file.metadata()?;
            if (meta.dev(), meta.ino()) != (fifo.dev, fifo.ino) {
                return Err(io::Error::other(format!(
                    "fifo {} was replaced while it was opened",
                    path.display()
                )));
            }
        }
        let reader = Receiver::from_file(reader)?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        let local = format!("fifo:{}", path.display());
        let task =
            tokio::spawn(read_registrations(reader, keepalive, tx, self.timeout, local)).abort_handle();
        Ok(FifoListener { path, rx, task, _fifo: fifo, _lock: lock })
    }
}

/// A listener on a well-known FIFO.
///
/// A background task reads registrations and runs each client's handshake concurrently, under the
/// timeout, so a slow or bogus client never holds up the others. [`accept`](Listener::accept)
/// returns the clients whose handshake has completed; refused clients are logged, not returned.
/// Should reading the FIFO itself fail (it never reaches end-of-stream: the listener holds a
/// writer of its own), the failure is logged and `accept` returns `Ok(None)`, the listener's end.
///
/// Dropping the listener stops the background task (pending handshakes are abandoned, accepted
/// connections carry on) and removes the FIFO and its lock file.
#[derive(Debug)]
pub struct FifoListener {
    path: PathBuf,
    rx: mpsc::Receiver<Connection>,
    task: tokio::task::AbortHandle,
    // Dropped in this order: the FIFO is removed before the lock is released.
    _fifo: RemoveOnDrop,
    _lock: LockFile,
}

impl FifoListener {
    /// The well-known FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Listener for FifoListener {
    /// Refused handshakes are logged by the background task, never returned: every `Err` would
    /// be about one client, and the only end is the registration reader stopping (`Ok(None)`).
    async fn accept(&mut self) -> io::Result<Option<Connection>> {
        Ok(self.rx.recv().await)
    }

    fn describe(&self) -> String {
        format!("fifo:{}", self.path.display())
    }
}

impl Drop for FifoListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads registrations from the well-known FIFO and starts a handshake for each.
async fn read_registrations(
    mut reader: Receiver,
    _keepalive: File,
    tx: mpsc::Sender<Connection>,
    timeout: Duration,
    local: String,
) {
    let mut buf = Vec::with_capacity(2 * PIPE_BUF);
    let mut chunk = [0u8; PIPE_BUF];
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            read = reader.read(&mut chunk) => {
                let n = match read {
                    Ok(0) => {
                        // Cannot happen while `_keepalive` is open; stop rather than spin if it does.
                        let e = io::Error::new(io::ErrorKind::UnexpectedEof, format!("{local} reported end of stream"));
                        return stop(&local, e);
                    }
                    Ok(n) => n,
                    Err(e) => return stop(&local, e),
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(msg) = take_message(&mut buf) {
                    match decode_registration(&msg) {
                        Err(e) => tracing::warn!(listener = %local, error = %e, "refused a registration"),
                        Ok(reg) if handshakes.len() >= MAX_PENDING_HANDSHAKES => tracing::warn!(
                            listener = %local,
                            dir = %reg.dir.display(),
                            "refused a registration: {MAX_PENDING_HANDSHAKES} handshakes already pending"
                        ),
                        Ok(reg) => {
                            handshakes.spawn(handshake(reg, timeout, tx.clone(), local.clone()));
                        }
                    }
                }
            }
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
        }
    }
}

/// Logs why the listener stopped. Returning drops the sender (and, with the handshake set, every
/// clone of it), so `accept` sees the channel close: `Ok(None)`, closed for good.
fn stop(local: &str, e: io::Error) {
    tracing::error!(listener = %local, error = %e, "cannot read registrations; the listener stops");
}

/// Runs one client's handshake under the timeout and queues the connection for `accept`.
async fn handshake(reg: Registration, timeout: Duration, tx: mpsc::Sender<Connection>, local: String) {
    let dir = reg.dir.clone();
    match tokio::time::timeout(timeout, accept_pair(reg, &local)).await {
        Ok(Ok(conn)) => {
            // A closed channel means the listener is gone: the connection just drops.
            let _ = tx.send(conn).await;
        }
        Ok(Err(e)) => tracing::warn!(listener = %local, dir = %dir.display(), error = %e, "refused a client"),
        Err(_) => {
            tracing::warn!(listener = %local, dir = %dir.display(), "refused a client: no handshake within {timeout:?}")
        }
    }
}

/// Opens a registered client's pair, the server side of the handshake (see `FIFO.md`).
async fn accept_pair(reg: Registration, local: &str) -> io::Result<Connection> {
    let dir = open_private_dir(&reg.dir)?;
    // Held for the connection's life: a repeated registration of this pair cannot add a second
    // reader that would split the client's stream.
    if !sys::try_lock_exclusive(dir.as_fd())? {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("the pair in {} is already claimed by another registration", reg.dir.display()),
        ));
    }
    let s2c = reg.dir.join(SERVER_TO_CLIENT);
    let writer = open_fifo(&s2c, End::Write).map_err(|e| match e.raw_os_error() {
        // The client opens its read end before registering: nobody reading means it is gone.
        Some(libc::ENXIO) => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("the client is gone: nothing reads fifo {}", s2c.display()),
        ),
        _ => e,
    })?;
    let c2s = reg.dir.join(CLIENT_TO_SERVER);
    let mut reader = Receiver::from_file(open_fifo(&c2s, End::Read)?)?;
    let writer = CloseOnShutdown::new(crate::socket::pipe_writer(writer.into())?).grow_on_large_write();
    let mut nonce = [0u8; NONCE_LEN];
    reader.read_exact(&mut nonce).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the client closed fifo {} before confirming its registration", c2s.display()),
        ),
        _ => e,
    })?;
    if nonce != reg.nonce {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the client confirmed fifo {} with another registration's nonce", c2s.display()),
        ));
    }
    tracing::debug!(listener = %local, client_pid = reg.pid, dir = %reg.dir.display(), "accepted a fifo client");
    Ok(Connection::new(reader, writer, Peer::Fifo(c2s)).with_local(local).with_guard(dir))
}

/// The lock a listener holds on `<fifo>.lock`, so that one FIFO has one reader.
#[derive(Debug)]
struct LockFile {
    // Dropped in this order: the file is unlinked while still locked, then closed (unlocked).
    _path: RemoveOnDrop,
    _file: File,
}

/// How long `bind` retries a lock that someone holds before saying another server has it.
const LOCK_GRACE: Duration = Duration::from_millis(100);

impl LockFile {
    /// [`acquire`](Self::acquire), retried for up to [`LOCK_GRACE`] while the lock is held: a
    /// client tells whether a listener is starting by taking the lock for an instant, and a
    /// process forked elsewhere in this program holds a copy of the lock's descriptor until it
    /// execs, so a lock can be held briefly by nobody that serves. The first attempt is made
    /// before any await, so a lone-thread caller that just released the lock gets it at once.
    async fn acquire_soon(fifo: &Path) -> io::Result<Self> {
        let give_up = tokio::time::Instant::now() + LOCK_GRACE;
        loop {
            match LockFile::acquire(fifo) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                other => return other,
            }
        }
    }

    fn acquire(fifo: &Path) -> io::Result<Self> {
        let mut path = OsString::from(fifo.as_os_str());
        path.push(".lock");
        let path = PathBuf::from(path);
        for _ in 0..16 {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                // Owner-only, as the FIFO itself: the lock file is ours alone.
                .mode(FIFO_MODE)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
                .open(&path)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open lock file {}: {e}", path.display()))
                })?;
            let meta = file.metadata()?;
            if !meta.is_file() || meta.uid() != sys::euid() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "lock file {} is not a regular file of this user; refusing to use it",
                        path.display()
                    ),
                ));
            }
            if !sys::try_lock_exclusive(file.as_fd())? {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another server is already listening on fifo {} (it holds {})",
                        fifo.display(),
                        path.display()
                    ),
                ));
            }
            // A listener unlinks the file before unlocking it: if the one we locked is no longer
            // at the path, another server may lock the new one, so start again with that.
            match fs::symlink_metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == (meta.dev(), meta.ino()) => {
                    let remove = RemoveOnDrop { path, dev: meta.dev(), ino: meta.ino() };
                    return Ok(LockFile { _path: remove, _file: file });
                }
                _ => continue,
            }
        }
        Err(io::Error::other(format!("lock file {} keeps being replaced", path.display())))
    }
}
