//! The client side of a listener connection: its private pair of FIFOs, registering it, and the
//! handshake that turns it into a connection.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe::{Receiver, Sender};
use tokio::time::Instant;

use super::files::{create_fifo, deadline_after, open_fifo, open_writer, timed_out, End};
use super::registration::{encode_registration, random_nonce, random_u64};
use super::{Options, DIR_MODE};
use crate::annotate::annotate_as;
use crate::pipe::CloseOnShutdown;
use crate::{sys, Connection, Peer};

/// The FIFO a client writes and the server reads, inside the client's private directory.
pub(super) const CLIENT_TO_SERVER: &str = "c2s";
/// The FIFO the server writes and a client reads, inside the client's private directory.
pub(super) const SERVER_TO_CLIENT: &str = "s2c";

/// Opens the listener's well-known FIFO for writing.
///
/// With no server at all (nobody reads the FIFO, or there is none, and nobody holds the
/// listener's lock), fails at once, as a socket connect does: `ConnectionRefused` or `NotFound`,
/// naming the path. A listener that is starting (it holds its lock but has not opened its FIFO
/// yet) is waited for, up to the timeout.
async fn open_listener(path: &Path, deadline: Instant, timeout: Duration) -> io::Result<File> {
    let mut backoff = Duration::from_millis(1);
    loop {
        let e = match open_fifo(path, End::Write) {
            Ok(file) => return Ok(file),
            Err(e) => e,
        };
        let (kind, why) = if e.raw_os_error() == Some(libc::ENXIO) {
            (io::ErrorKind::ConnectionRefused, "nobody opened it for reading")
        } else if e.kind() == io::ErrorKind::NotFound {
            (io::ErrorKind::NotFound, "it does not exist")
        } else {
            return Err(e);
        };
        if !listener_starting(path) {
            let what = format!(
                "no server is listening on fifo {} ({why}, and no listener holds its lock)",
                path.display()
            );
            return Err(annotate_as(kind, e, what));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(path, timeout, why));
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// Whether a listener holds the lock of the FIFO at `path` (see `listener.rs`): it is starting
/// up, or serving. When that cannot be told (the lock file cannot be opened), assume it is, and
/// wait as before.
///
/// Telling takes a shared lock for an instant (no system call reads a `flock` without taking it);
/// a server binding at that very instant retries for a moment (see `LockFile::acquire_soon`).
fn listener_starting(path: &Path) -> bool {
    let mut lock = OsString::from(path.as_os_str());
    lock.push(".lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(PathBuf::from(lock));
    match file {
        Ok(file) => sys::is_locked_exclusive(file.as_fd()).unwrap_or(true),
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

impl Options {
    /// The work of [`Options::connect`], kept here with the private pair it registers.
    pub(super) async fn connect_client(&self, path: impl AsRef<Path>) -> io::Result<Connection> {
        sys::warn_if_sigpipe_default();
        let path = path.as_ref();
        let deadline = deadline_after(self.timeout);
        let mut listener = Sender::from_file(open_listener(path, deadline, self.timeout).await?)?;
        let pair = PrivatePair::create(&self.private_base()?)?;
        // The client's read end is open before the registration is sent: a server that then
        // cannot open it for writing knows the client is gone.
        let reader = Receiver::from_file(open_fifo(&pair.server_to_client(), End::Read)?)?;
        let nonce = random_nonce();
        let msg = encode_registration(std::process::id(), &nonce, &pair.dir)?;
        // One write of at most PIPE_BUF bytes is written whole or not at all (EAGAIN on a full
        // FIFO, then retried when writable), so registrations from concurrent clients never mix.
        let written = tokio::time::timeout_at(deadline, listener.write(&msg))
            .await
            .map_err(|_| timed_out(path, self.timeout, "the fifo stayed full"))??;
        if written != msg.len() {
            return Err(io::Error::other(format!("registration on fifo {} was cut short", path.display())));
        }
        drop(listener);
        // The server opens the pair within the timeout, unless it refused the registration.
        let writer =
            open_writer(&pair.client_to_server(), deadline, self.timeout).await.map_err(|e| {
                if e.kind() != io::ErrorKind::TimedOut {
                    return e;
                }
                let why = "the listener did not open this client's pair (it refused the registration, or is overloaded)";
                timed_out(path, self.timeout, why)
            })?;
        let mut writer = crate::socket::pipe_writer(writer.into())?;
        tokio::time::timeout_at(deadline, writer.write_all(&nonce))
            .await
            .map_err(|_| timed_out(&pair.client_to_server(), self.timeout, "the fifo stayed full"))??;
        // The private pair is about to be removed: name the server by its well-known path.
        let peer = Peer::Fifo(path.to_path_buf());
        // Both sides now hold both ends open: the files are no longer needed.
        drop(pair);
        Ok(Connection::new(reader, CloseOnShutdown::new(writer).grow_on_large_write(), peer)
            .with_local(format!("fifo:{}", path.display())))
    }

    fn private_base(&self) -> io::Result<PathBuf> {
        let base = match &self.private_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|dir| dir.is_dir())
                .unwrap_or_else(std::env::temp_dir),
        };
        // The registration carries an absolute path: the server's working directory may differ.
        std::path::absolute(base)
    }
}

/// A client's private directory with its two FIFOs; all three are removed on drop.
#[derive(Debug)]
struct PrivatePair {
    dir: PathBuf,
}

impl PrivatePair {
    fn create(base: &Path) -> io::Result<Self> {
        let mut attempts = 0;
        let dir = loop {
            let dir = base.join(format!("rpc-fifo-{}-{:016x}", std::process::id(), random_u64()));
            // mkdir's mode is only ever narrowed by the umask: the directory is private from the
            // moment it exists.
            match fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => attempts += 1,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create a private directory in {}: {e}", base.display()),
                    ))
                }
            }
        };
        let pair = PrivatePair { dir };
        create_fifo(&pair.client_to_server(), false)?;
        create_fifo(&pair.server_to_client(), false)?;
        Ok(pair)
    }

    fn client_to_server(&self) -> PathBuf {
        self.dir.join(CLIENT_TO_SERVER)
    }

    fn server_to_client(&self) -> PathBuf {
        self.dir.join(SERVER_TO_CLIENT)
    }
}

impl Drop for PrivatePair {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.client_to_server());
        let _ = fs::remove_file(self.server_to_client());
        let _ = fs::remove_dir(&self.dir);
    }
}
