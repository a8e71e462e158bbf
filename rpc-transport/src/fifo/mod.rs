//! FIFOs (named pipes): a connection over a pair of FIFOs, point-to-point or through a listener.
//!
//! A FIFO carries bytes one way, so a connection is two of them, joined into one stream. Two
//! forms:
//!
//! - [`open_pair`]: point-to-point over two FIFOs the user names (made with `mkfifo -m 600`, or
//!   created here if absent). Each side passes the FIFO it reads from, then the one it writes to.
//! - [`bind`] and [`connect`]: a listener on one well-known FIFO. Each client makes a private pair
//!   of FIFOs in a private directory and registers it on the well-known FIFO with one write of
//!   less than `PIPE_BUF` bytes, which the kernel never interleaves with other writers' bytes. The
//!   registration message and the handshake are specified in `FIFO.md` at the repository root.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use rpc_transport::{fifo, Listener};
//!
//! let dir = std::env::temp_dir().join(format!("fifo-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mut listener = fifo::bind(dir.join("server.fifo")).await?;
//! let (client, server) = tokio::join!(fifo::connect(dir.join("server.fifo")), listener.accept());
//! let (_client, _server) = (client?, server?.expect("the listener is open"));
//! # drop(listener); std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Opening without blocking
//!
//! A blocking `open()` of a FIFO waits for the other end, which would stall a runtime thread, so
//! every open here is `O_NONBLOCK`. Opening for reading then returns at once; opening for writing
//! fails with `ENXIO` while nobody has the FIFO open for reading, and is retried with backoff
//! (except by [`connect`] when no listener holds the FIFO's lock: it fails at once) until the
//! timeout ([`DEFAULT_TIMEOUT`], see [`Options::timeout`]), after which it fails with
//! [`io::ErrorKind::TimedOut`] naming the path. Every side opens its read end first and its write
//! end second, so two peers never wait for each other, whichever starts first; a peer using
//! blocking opens in either order (a shell script) works too.
//!
//! # Permissions and ownership
//!
//! FIFOs are created with mode `0600` and private directories with `0700`. Every FIFO is opened
//! with `O_NOFOLLOW`, and the opened descriptor is checked with `fstat`: it must be a FIFO, owned
//! by this process's effective user, with no group or other permission bits. Anything else (a
//! regular file, a symbolic link, another user's FIFO, a FIFO others may open) is refused with
//! an error saying why. A path that exists but is not a FIFO is refused before it is opened.
//! Anyone who can write a FIFO can inject bytes, so the listener treats registrations as
//! untrusted: malformed bytes are skipped, and a registered pair is used only if it passes the
//! same checks.
//!
//! # End of stream and broken pipes
//!
//! A reader sees end-of-stream when the last writer closes (a peer that exits or is killed
//! closes its descriptors), and the connection ends there. The listener holds a write descriptor
//! on its own FIFO, so it never sees end-of-stream (nor spins on it) while no client is writing.
//! Writing to a FIFO whose reader is gone fails with [`io::ErrorKind::BrokenPipe`], because Rust
//! programs ignore `SIGPIPE`; a host that restores its default action would be killed instead
//! (a warning is logged once if it has). A second listener on the same FIFO is refused: the
//! first holds an `flock` on `<path>.lock`, so two readers never split the stream.
//!
//! # Cleanup
//!
//! - The listener removes its FIFO and its lock file when dropped.
//! - A client owns its private pair and removes it (both FIFOs and the directory) as soon as the
//!   handshake has completed, since both sides then hold open descriptors; it is also removed if
//!   the handshake fails. Only a client killed mid-handshake leaves its directory behind, in
//!   `$XDG_RUNTIME_DIR` (or the temporary directory), which the system cleans.
//! - [`open_pair`] removes, when the connection is dropped, the FIFOs it created itself; FIFOs
//!   that existed already belong to whoever made them and are left alone.
//!
//! Each removal first checks that the path still names the file this side created.

// One concern a file; this one holds the public items and the point-to-point form.
mod client;
mod files;
mod listener;
mod registration;

pub use listener::FifoListener;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::unix::pipe::Receiver;

use crate::pipe::CloseOnShutdown;
use crate::{sys, Connection, Peer};
use files::{create_fifo, deadline_after, open_fifo, open_writer, End, RemoveOnDrop};

/// How long opening a FIFO waits for its other end, and how long a listener gives a client to
/// complete its handshake, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The mode FIFOs are created with: owner only.
pub const FIFO_MODE: u32 = 0o600;
/// The mode private directories are created with: owner only.
pub const DIR_MODE: u32 = 0o700;
/// The largest write the kernel keeps whole among concurrent writers to one pipe (Linux).
pub const PIPE_BUF: usize = 4096;

/// Opens a connection over two FIFOs: `read_path` is the one this side reads, `write_path` the one
/// it writes; the peer passes them the other way round.
///
/// Either FIFO is created (mode `0600`) if absent. The read end is opened first, then the write
/// end, waiting up to [`DEFAULT_TIMEOUT`] for the peer to open it for reading.
pub async fn open_pair(read_path: impl AsRef<Path>, write_path: impl AsRef<Path>) -> io::Result<Connection> {
    Options::new().open_pair(read_path, write_path).await
}

/// Listens on the FIFO at `path`, created with mode `0600` (an old FIFO of this user's left there
/// by a dead listener is replaced).
pub async fn bind(path: impl AsRef<Path>) -> io::Result<FifoListener> {
    Options::new().bind(path).await
}

/// Connects to the listener on the FIFO at `path`.
///
/// With no server (nobody reads the FIFO, or it does not exist, and no listener holds
/// `<path>.lock`), fails at once with [`io::ErrorKind::ConnectionRefused`] or
/// [`io::ErrorKind::NotFound`] naming the path, as a socket connect does. A listener that holds
/// its lock but has not opened its FIFO yet (it is starting) is waited for, and the handshake
/// must complete, within [`DEFAULT_TIMEOUT`].
pub async fn connect(path: impl AsRef<Path>) -> io::Result<Connection> {
    Options::new().connect(path).await
}

/// Settings for opening, binding and connecting, with the builder methods taking `&mut self`.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use rpc_transport::fifo;
///
/// let conn = fifo::Options::new().timeout(Duration::from_secs(1)).connect("/run/app.fifo").await?;
/// # drop(conn); Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    timeout: Duration,
    private_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout: DEFAULT_TIMEOUT, private_dir: None }
    }
}

impl Options {
    /// The defaults: a [`DEFAULT_TIMEOUT`] timeout, private pairs in `$XDG_RUNTIME_DIR` or the
    /// temporary directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for the other end of a FIFO (connect and open), and how long a listener
    /// gives each client to complete its handshake.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Where [`connect`](Options::connect) creates its private directory (default:
    /// `$XDG_RUNTIME_DIR` if set, else the temporary directory).
    pub fn private_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.private_dir = Some(dir.into());
        self
    }

    /// Like [`open_pair`], with these options.
    pub async fn open_pair(
        &self,
        read_path: impl AsRef<Path>,
        write_path: impl AsRef<Path>,
    ) -> io::Result<Connection> {
        sys::warn_if_sigpipe_default();
        let (read_path, write_path) = (read_path.as_ref(), write_path.as_ref());
        let deadline = deadline_after(self.timeout);
        // Remove what this side creates, also when opening fails below.
        let mut created = Vec::new();
        for path in [read_path, write_path] {
            if create_fifo(path, true)? {
                created.push(RemoveOnDrop::new(path)?);
            }
        }
        // The read end first: it never waits, and it is what lets the peer open its write end.
        let reader = open_fifo(read_path, End::Read)?;
        let writer = open_writer(write_path, deadline, self.timeout).await?;
        // A point-to-point pair, as a pipe to a child: room for a 64 KiB message in one write.
        // (A listener's per-client pairs grow only at their first large write: hundreds of
        // clients at 256 KiB each would reach the per-user pipe limit, past which Linux gives
        // every new pipe 8 KiB.)
        sys::grow_pipe(std::os::fd::AsFd::as_fd(&reader));
        sys::grow_pipe(std::os::fd::AsFd::as_fd(&writer));
        let reader = Receiver::from_file(reader)?;
        let writer = CloseOnShutdown::new(crate::socket::pipe_writer(writer.into())?);
        Ok(Connection::new(reader, writer, Peer::Fifo(read_path.to_path_buf())).with_guard(created))
    }

    /// Like [`bind`], with these options.
    pub async fn bind(&self, path: impl AsRef<Path>) -> io::Result<FifoListener> {
        self.bind_listener(path).await
    }

    /// Like [`connect`], with these options.
    pub async fn connect(&self, path: impl AsRef<Path>) -> io::Result<Connection> {
        self.connect_client(path).await
    }
}
