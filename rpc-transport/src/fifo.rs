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
//! let (_client, _server) = (client?, server?);
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
//! until the timeout ([`DEFAULT_TIMEOUT`], see [`Options::timeout`]), after which it fails with
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

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe::{Receiver, Sender};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::pipe::CloseOnShutdown;
use crate::{sys, Connection, Listener, Peer};

/// How long opening a FIFO waits for its other end, and how long a listener gives a client to
/// complete its handshake, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The mode FIFOs are created with: owner only.
pub const FIFO_MODE: u32 = 0o600;
/// The mode private directories are created with: owner only.
pub const DIR_MODE: u32 = 0o700;
/// The largest write the kernel keeps whole among concurrent writers to one pipe (Linux).
pub const PIPE_BUF: usize = 4096;

/// The first bytes of a registration message.
const MAGIC: [u8; 4] = *b"RPCF";
/// The registration format this module writes and reads.
const VERSION: u8 = 1;
/// Magic, version, flags and directory length: enough to know a message's full length.
const PREFIX_LEN: usize = 8;
/// Bytes of the nonce a client repeats on its pair to confirm the registration.
const NONCE_LEN: usize = 16;
/// Bytes before the directory path: prefix, pid and nonce.
const HEADER_LEN: usize = PREFIX_LEN + 4 + NONCE_LEN;
/// Bytes of the trailing CRC-32.
const CRC_LEN: usize = 4;
/// The longest directory path that keeps a registration within `PIPE_BUF`.
const MAX_DIR_LEN: usize = PIPE_BUF - HEADER_LEN - CRC_LEN;
/// The FIFO a client writes and the server reads, inside the client's private directory.
const CLIENT_TO_SERVER: &str = "c2s";
/// The FIFO the server writes and a client reads, inside the client's private directory.
const SERVER_TO_CLIENT: &str = "s2c";
/// Handshakes a listener runs at once; registrations beyond it are refused (and logged).
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Accepted connections a listener queues before handshakes wait for `accept`.
const BACKLOG: usize = 16;
/// The longest pause between two attempts to open a FIFO for writing.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

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

/// Connects to the listener on the FIFO at `path`, waiting up to [`DEFAULT_TIMEOUT`] for it.
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
        let reader = Receiver::from_file(open_fifo(read_path, End::Read)?)?;
        let writer = open_writer(write_path, deadline, self.timeout, false).await?;
        let writer = CloseOnShutdown::new(Sender::from_file(writer)?);
        Ok(Connection::new(reader, writer, Peer::Fifo(read_path.to_path_buf())).with_guard(created))
    }

    /// Like [`bind`], with these options.
    pub async fn bind(&self, path: impl AsRef<Path>) -> io::Result<FifoListener> {
        sys::warn_if_sigpipe_default();
        let path = path.as_ref().to_path_buf();
        let lock = LockFile::acquire(&path)?;
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

    /// Like [`connect`], with these options.
    pub async fn connect(&self, path: impl AsRef<Path>) -> io::Result<Connection> {
        sys::warn_if_sigpipe_default();
        let path = path.as_ref();
        let deadline = deadline_after(self.timeout);
        // A listener that is not up yet (no FIFO, or no reader) is waited for.
        let mut listener = Sender::from_file(open_writer(path, deadline, self.timeout, true).await?)?;
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
            open_writer(&pair.client_to_server(), deadline, self.timeout, false).await.map_err(|e| {
                if e.kind() != io::ErrorKind::TimedOut {
                    return e;
                }
                let why = "the listener did not open this client's pair (it refused the registration, or is overloaded)";
                timed_out(path, self.timeout, why)
            })?;
        let mut writer = Sender::from_file(writer)?;
        tokio::time::timeout_at(deadline, writer.write_all(&nonce))
            .await
            .map_err(|_| timed_out(&pair.client_to_server(), self.timeout, "the fifo stayed full"))??;
        let peer = Peer::Fifo(pair.server_to_client());
        // Both sides now hold both ends open: the files are no longer needed.
        drop(pair);
        Ok(Connection::new(reader, CloseOnShutdown::new(writer), peer)
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

/// A listener on a well-known FIFO.
///
/// A background task reads registrations and runs each client's handshake concurrently, under the
/// timeout, so a slow or bogus client never holds up the others. [`accept`](Listener::accept)
/// returns the clients whose handshake has completed; refused clients are logged, not returned.
/// Should reading the FIFO itself fail (it never reaches end-of-stream: the listener holds a
/// writer of its own), `accept` returns [`io::ErrorKind::NotConnected`], the listener's end.
///
/// Dropping the listener stops the background task (pending handshakes are abandoned, accepted
/// connections carry on) and removes the FIFO and its lock file.
#[derive(Debug)]
pub struct FifoListener {
    path: PathBuf,
    rx: mpsc::Receiver<io::Result<Connection>>,
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
    async fn accept(&mut self) -> io::Result<Connection> {
        match self.rx.recv().await {
            Some(result) => result,
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("the listener on fifo {} stopped reading registrations", self.path.display()),
            )),
        }
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
    tx: mpsc::Sender<io::Result<Connection>>,
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
                        return stop(&tx, &local, e).await;
                    }
                    Ok(n) => n,
                    Err(e) => return stop(&tx, &local, e).await,
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

/// Reports why the listener stopped to the next `accept`, as `NotConnected`: closed for good.
async fn stop(tx: &mpsc::Sender<io::Result<Connection>>, local: &str, e: io::Error) {
    tracing::error!(listener = %local, error = %e, "cannot read registrations");
    let e =
        io::Error::new(io::ErrorKind::NotConnected, format!("{local} stopped reading registrations: {e}"));
    let _ = tx.send(Err(e)).await;
}

/// Runs one client's handshake under the timeout and queues the connection for `accept`.
async fn handshake(
    reg: Registration,
    timeout: Duration,
    tx: mpsc::Sender<io::Result<Connection>>,
    local: String,
) {
    let dir = reg.dir.clone();
    match tokio::time::timeout(timeout, accept_pair(reg, &local)).await {
        Ok(Ok(conn)) => {
            // A closed channel means the listener is gone: the connection just drops.
            let _ = tx.send(Ok(conn)).await;
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
    let writer = CloseOnShutdown::new(Sender::from_file(writer)?);
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

/// A registration read from the well-known FIFO; the pid is the client's claim, for logs only.
#[derive(Debug)]
struct Registration {
    pid: u32,
    nonce: [u8; NONCE_LEN],
    dir: PathBuf,
}

/// Encodes a registration (layout in `FIFO.md`); fails if it would not fit in `PIPE_BUF`.
fn encode_registration(pid: u32, nonce: &[u8; NONCE_LEN], dir: &Path) -> io::Result<Vec<u8>> {
    let dir = dir.as_os_str().as_bytes();
    if dir.len() > MAX_DIR_LEN || dir.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "private directory path must be at most {MAX_DIR_LEN} bytes without NUL to fit one atomic registration: {}",
                OsStr::from_bytes(dir).to_string_lossy()
            ),
        ));
    }
    let mut msg = Vec::with_capacity(HEADER_LEN + dir.len() + CRC_LEN);
    msg.extend_from_slice(&MAGIC);
    msg.push(VERSION);
    msg.push(0); // flags
    msg.extend_from_slice(&(dir.len() as u16).to_be_bytes());
    msg.extend_from_slice(&pid.to_be_bytes());
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(dir);
    msg.extend_from_slice(&crc32(&msg).to_be_bytes());
    Ok(msg)
}

/// What the bytes at some offset of the listener's buffer can be.
enum Candidate {
    /// A whole message of this many bytes, checksum verified.
    Complete(usize),
    /// The start of a message whose remaining bytes have not arrived.
    Incomplete,
    /// Not the start of a message.
    Invalid,
}

fn candidate(bytes: &[u8]) -> Candidate {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Candidate::Invalid;
    }
    if bytes.len() < PREFIX_LEN {
        return Candidate::Incomplete;
    }
    let dir_len = u16::from_be_bytes([bytes[6], bytes[7]]) as usize;
    if bytes[4] != VERSION || bytes[5] != 0 || dir_len == 0 || dir_len > MAX_DIR_LEN {
        return Candidate::Invalid;
    }
    let len = HEADER_LEN + dir_len + CRC_LEN;
    if bytes.len() < len {
        return Candidate::Incomplete;
    }
    let crc = u32::from_be_bytes([bytes[len - 4], bytes[len - 3], bytes[len - 2], bytes[len - 1]]);
    if crc32(&bytes[..len - CRC_LEN]) != crc {
        return Candidate::Invalid;
    }
    Candidate::Complete(len)
}

/// Takes the next well-formed message out of `buf`, dropping any garbage before it; `None` until
/// one is complete, leaving only bytes that may still start one (at most about `2 × PIPE_BUF`).
///
/// Every client writes its message whole, so a complete message found after an incomplete
/// candidate proves that candidate was garbage; resynchronising on the magic at every offset
/// means garbage, even garbage that looks like a header, never swallows a real registration.
fn take_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut keep_from = None;
    for start in 0..buf.len() {
        match candidate(&buf[start..]) {
            Candidate::Complete(len) => {
                if start > 0 {
                    tracing::debug!(bytes = start, "skipped garbage on a listener fifo");
                }
                let msg = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return Some(msg);
            }
            Candidate::Incomplete => {
                keep_from.get_or_insert(start);
            }
            Candidate::Invalid => {}
        }
    }
    let keep_from = keep_from.unwrap_or(buf.len());
    if keep_from > 0 {
        tracing::debug!(bytes = keep_from, "skipped garbage on a listener fifo");
    }
    buf.drain(..keep_from);
    None
}

/// Decodes a message that [`take_message`] found well formed.
fn decode_registration(msg: &[u8]) -> io::Result<Registration> {
    let dir_len = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let pid = u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&msg[PREFIX_LEN + 4..HEADER_LEN]);
    let dir = &msg[HEADER_LEN..HEADER_LEN + dir_len];
    let dir = PathBuf::from(OsStr::from_bytes(dir));
    if dir.as_os_str().as_bytes().contains(&0) || !dir.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("registered directory {:?} is not an absolute path", dir.display()),
        ));
    }
    Ok(Registration { pid, nonce, dir })
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8))
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

/// The lock a listener holds on `<fifo>.lock`, so that one FIFO has one reader.
#[derive(Debug)]
struct LockFile {
    // Dropped in this order: the file is unlinked while still locked, then closed (unlocked).
    _path: RemoveOnDrop,
    _file: File,
}

impl LockFile {
    fn acquire(fifo: &Path) -> io::Result<Self> {
        let mut path = OsString::from(fifo.as_os_str());
        path.push(".lock");
        let path = PathBuf::from(path);
        for _ in 0..16 {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
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

/// Removes a file on drop, if the path still names the same file.
#[derive(Debug)]
struct RemoveOnDrop {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl RemoveOnDrop {
    fn new(path: &Path) -> io::Result<Self> {
        let meta = fs::symlink_metadata(path)?;
        Ok(RemoveOnDrop { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() })
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == (self.dev, self.ino) {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Which end of a FIFO to open.
#[derive(Debug, Clone, Copy)]
enum End {
    Read,
    Write,
}

/// Creates a FIFO with mode `0600`; `Ok(false)` if something exists there and `may_exist`.
fn create_fifo(path: &Path, may_exist: bool) -> io::Result<bool> {
    match sys::mkfifo(path, FIFO_MODE) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && may_exist => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot create fifo {}: {e}", path.display()))),
    }
}

/// Opens one end of the FIFO at `path` without blocking, and checks what was opened.
///
/// Opening for writing fails with the raw `ENXIO` while nobody reads the FIFO.
fn open_fifo(path: &Path, end: End) -> io::Result<File> {
    // Refuse what plainly will not do before opening it: opening a device can have effects, and
    // a FIFO nobody reads cannot be opened for writing, hence not checked through its descriptor.
    // (A lookup error is left for open() to report.)
    if let Ok(meta) = fs::symlink_metadata(path) {
        check_fifo(path, &meta)?;
    }
    let file = fs::OpenOptions::new()
        .read(matches!(end, End::Read))
        .write(matches!(end, End::Write))
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_a_fifo(path, "a symbolic link"),
            // Callers retry or explain ENXIO themselves.
            Some(libc::ENXIO) => e,
            _ => io::Error::new(e.kind(), format!("cannot open fifo {}: {e}", path.display())),
        })?;
    // The path may have changed since it was looked at: the descriptor is what counts.
    check_fifo(path, &file.metadata()?)?;
    Ok(file)
}

/// Accepts only a FIFO owned by this user with no group or other permission bits.
fn check_fifo(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if !meta.file_type().is_fifo() {
        return Err(refuse_existing(path, meta));
    }
    if meta.uid() != sys::euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "fifo {} is owned by uid {}, not by this user (uid {}); refusing to use it",
                path.display(),
                meta.uid(),
                sys::euid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "fifo {} has mode {:04o}, which lets group or others open it; refusing to use it (create it with `mkfifo -m 600`)",
                path.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Opens the FIFO at `path` for writing, retrying with backoff while nobody reads it (and, if
/// `wait_for_file`, while it does not exist) until `deadline`.
async fn open_writer(
    path: &Path,
    deadline: Instant,
    timeout: Duration,
    wait_for_file: bool,
) -> io::Result<File> {
    let mut backoff = Duration::from_millis(1);
    loop {
        let e = match open_fifo(path, End::Write) {
            Ok(file) => return Ok(file),
            Err(e) => e,
        };
        let why = if e.raw_os_error() == Some(libc::ENXIO) {
            "nobody opened it for reading"
        } else if e.kind() == io::ErrorKind::NotFound && wait_for_file {
            "it does not exist"
        } else {
            return Err(e);
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(path, timeout, why));
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens a client's private directory and checks that it is private to this user.
fn open_private_dir(path: &Path) -> io::Result<File> {
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open directory {}: {e}", path.display())))?;
    let meta = dir.metadata()?;
    if meta.uid() != sys::euid() || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "directory {} (uid {}, mode {:04o}) is not private to this user; refusing to use it",
                path.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(dir)
}

/// `timeout` from now; a timeout too long to represent never expires.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

fn timed_out(path: &Path, timeout: Duration, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out after {timeout:?} waiting for fifo {}: {why}", path.display()),
    )
}

fn not_a_fifo(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}, not a fifo; refusing to use it", path.display()),
    )
}

fn refuse_existing(path: &Path, meta: &fs::Metadata) -> io::Error {
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        return io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "fifo {} belongs to uid {}, not to this user; refusing to use it",
                path.display(),
                meta.uid()
            ),
        );
    } else {
        "not a fifo"
    };
    not_a_fifo(path, what)
}

/// Random enough to tell registrations apart (not a secret: the pair is private anyway).
fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&random_u64().to_ne_bytes());
    nonce[8..].copy_from_slice(&random_u64().to_ne_bytes());
    nonce
}

fn random_u64() -> u64 {
    // std's RandomState is seeded from the OS and differs on every call.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn registration(dir: &str) -> Vec<u8> {
        encode_registration(42, &[7; NONCE_LEN], Path::new(dir)).unwrap()
    }

    #[test]
    fn registration_round_trips() {
        let mut buf = registration("/tmp/x");
        assert_eq!(buf.len(), HEADER_LEN + 6 + CRC_LEN);
        let reg = decode_registration(&take_message(&mut buf).unwrap()).unwrap();
        assert_eq!((reg.pid, reg.nonce, reg.dir), (42, [7; NONCE_LEN], PathBuf::from("/tmp/x")));
        assert!(buf.is_empty());
    }

    #[test]
    fn longest_registration_fits_pipe_buf_and_longer_is_refused() {
        let longest = format!("/{}", "a".repeat(MAX_DIR_LEN - 1));
        assert_eq!(registration(&longest).len(), PIPE_BUF);
        let too_long = format!("/{}", "a".repeat(MAX_DIR_LEN));
        let err = encode_registration(1, &[0; NONCE_LEN], Path::new(&too_long)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn garbage_before_between_and_inside_messages_is_skipped() {
        let mut bad_crc = registration("/tmp/bad");
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut bad_version = registration("/tmp/v");
        bad_version[4] = 2;
        // A header that claims a long message, cut short by a real one.
        let mut liar = registration(&format!("/{}", "b".repeat(3000)));
        liar.truncate(40);
        let mut stream = b"RPgarbageRPCF\0\0".to_vec();
        for part in [&bad_crc, &liar, &registration("/tmp/one"), &bad_version, &registration("/tmp/two")] {
            stream.extend_from_slice(part);
        }
        stream.extend_from_slice(b"RPC");
        let mut found = Vec::new();
        // Feed it in uneven pieces, as reads may cut it.
        let mut buf = Vec::new();
        for piece in stream.chunks(7) {
            buf.extend_from_slice(piece);
            while let Some(msg) = take_message(&mut buf) {
                found.push(decode_registration(&msg).unwrap().dir);
            }
            assert!(buf.len() <= 2 * PIPE_BUF);
        }
        assert_eq!(found, [PathBuf::from("/tmp/one"), PathBuf::from("/tmp/two")]);
        assert_eq!(buf, b"RPC", "a possible magic prefix is kept");
    }

    #[test]
    fn relative_paths_are_refused() {
        let mut msg = registration("rel/dir");
        assert_eq!(
            decode_registration(&take_message(&mut msg).unwrap()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
