//! Anonymous pipes: spawn a child and talk to it over its stdin/stdout, serve on the process's own
//! stdin/stdout, or make an in-process pipe pair.
//!
//! The parent writes to the child's stdin and reads its stdout; the child's stderr is left as the
//! command configured it (inherited by default), free for logs. When the child exits or is killed,
//! the parent's read half sees end-of-stream at once, because Rust creates pipes close-on-exec, so
//! no other child holds a copy of them (a child being spawned on another thread at that moment
//! holds copies only until its `exec`). A write to a child that is gone fails with
//! [`io::ErrorKind::BrokenPipe`]: Rust programs ignore `SIGPIPE` (a host that restores its default
//! action would be killed instead, and a warning is logged once if it has).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use rpc_transport::framed::{FrameBuf, DEFAULT_MAX_FRAME_LEN};
//! use rpc_transport::message::MessageLimits;
//! use rpc_transport::pipe;
//!
//! // `cat` echoes every frame back.
//! let (conn, mut child) = pipe::spawn(tokio::process::Command::new("cat"))?;
//! let (mut reader, mut writer, _peer) = conn.into_messages(&MessageLimits::default());
//! let mut frame = FrameBuf::default();
//! frame.extend_from_slice(b"ping");
//! writer.send(&mut vec![frame.finish(DEFAULT_MAX_FRAME_LEN).unwrap()]).await?;
//! assert_eq!(&reader.recv().await.unwrap().unwrap()[..], b"ping");
//! writer.shutdown().await?; // closes the child's stdin: `cat` exits
//! assert!(child.wait().await?.success());
//! # Ok(())
//! # }
//! ```
//!
//! In the child, one line serves on stdin/stdout:
//!
//! ```no_run
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::io::Result<()> {
//!     let conn = rpc_transport::pipe::stdio()?;
//!     // ... serve on `conn`; `println!` now writes to stderr.
//!     # drop(conn);
//!     Ok(())
//! }
//! ```
//!
//! # Organization
//!
//! - [`spawn`] and [`Child`]: the parent side.
//! - [`stdio`]: the child side.
//! - [`pair`] and [`from_fds`]: connections over pipes made some other way.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::unix::pipe::{Receiver, Sender};

use crate::annotate::annotate;
use crate::{sys, BoxRead, BoxWrite, Connection, EndReason, Peer};

mod exit;

/// Spawns `cmd` with its stdin and stdout piped to the returned connection.
///
/// The child's stderr is left as `cmd` configured it (inherited unless set otherwise), for logs.
/// Accepts a [`tokio::process::Command`] or a [`std::process::Command`].
///
/// Keep the [`Child`] as long as the connection is in use: dropping it kills the child.
///
/// Both pipes are asked to hold 256 KiB instead of Linux's default 64 KiB (`F_SETPIPE_SZ`; a
/// system at its per-user pipe limit keeps the default), so that a 64 KiB message goes through in
/// one write rather than waiting for the other side to read half of it.
///
/// A spawn error names the program and keeps the OS error's kind (`NotFound` for a missing
/// program); the OS error is its [`source`](std::error::Error::source). The connection's
/// [`EndReason`] reports the child's exit: when the connection ends because the child exited,
/// the RPC client's error says `child process 1234 exited with status 3` (or `was killed by
/// signal 9`).
pub fn spawn(cmd: impl Into<tokio::process::Command>) -> io::Result<(Connection, Child)> {
    sys::warn_if_sigpipe_default();
    let mut cmd = cmd.into();
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
    let program = cmd.as_std().get_program().to_owned();
    let mut inner = cmd.spawn().map_err(|e| annotate(e, format!("cannot spawn {program:?}")))?;
    let missing = || io::Error::other(format!("the spawned child {program:?} has no piped stdin or stdout"));
    let pid = inner.id().ok_or_else(missing)?;
    let stdin = inner.stdin.take().ok_or_else(missing)?;
    let stdout = inner.stdout.take().ok_or_else(missing)?;
    sys::grow_pipe(stdin.as_fd());
    sys::grow_pipe(stdout.as_fd());
    let status = Arc::new(Mutex::new(None));
    let reason = EndReason::new({
        let status = Arc::clone(&status);
        move || exit::describe(pid, Arc::clone(&status))
    });
    let stdin = crate::socket::pipe_writer(stdin.into_owned_fd()?)?;
    let conn = Connection::new(stdout, CloseOnShutdown::new(stdin), Peer::Pipe { pid: Some(pid) })
        .with_end_reason(reason);
    Ok((conn, Child { inner, pid, status }))
}

/// A child process spawned by [`spawn`].
///
/// Dropping it kills the child if it is still running (`SIGKILL`), and tokio reaps it in the
/// background, so no zombie is left behind as long as the runtime keeps running.
#[derive(Debug)]
pub struct Child {
    inner: tokio::process::Child,
    pid: u32,
    /// The exit status once this handle has reaped the child, for the connection's
    /// [`EndReason`] (which can no longer ask the OS then).
    status: Arc<Mutex<Option<ExitStatus>>>,
}

impl Child {
    /// The child's process id.
    ///
    /// Once the child has been waited for, the id may be reused by another process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `SIGKILL` to the child and waits for it to exit.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.inner.kill().await?;
        // `kill` reaped the child; keep its status for the connection's end reason.
        self.try_wait().map(drop)
    }

    /// Sends `SIGKILL` to the child without waiting for it to exit.
    pub fn start_kill(&mut self) -> io::Result<()> {
        self.inner.start_kill()
    }

    /// Waits for the child to exit and returns its status.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.inner.wait().await?;
        self.record(status);
        Ok(status)
    }

    /// Returns the child's status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let status = self.inner.try_wait()?;
        if let Some(status) = status {
            self.record(status);
        }
        Ok(status)
    }

    fn record(&self, status: ExitStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }

    /// The underlying tokio child (to send other signals, say).
    pub fn get_mut(&mut self) -> &mut tokio::process::Child {
        &mut self.inner
    }
}

/// Serves on this process's own stdin and stdout: the child side of [`spawn`].
///
/// Call it first thing in `main`, before anything is printed. It moves the RPC stream off the
/// standard streams:
///
/// - stdin and stdout are duplicated to private close-on-exec descriptors that carry the
///   connection;
/// - fd 0 is then pointed at `/dev/null` and fd 1 at stderr, so a stray `println!` (from this
///   code or a library) lands in the log instead of corrupting frames, and a grandchild spawned
///   with inherited stdio cannot hold the parent's pipes open (the parent still sees
///   end-of-stream when this process exits).
///
/// When stdin and stdout are pipes (the usual case) they are used as non-blocking pipes on the
/// reactor; this sets `O_NONBLOCK` on them, which is shared with any other process holding the
/// same pipe ends. Otherwise (a terminal, a regular file, a socket) they are read and written on
/// tokio's blocking thread pool, as `tokio::io::stdin` does: correct, but a pending read holds a
/// thread, and a runtime shut down while one waits on a terminal waits for it to return.
///
/// Fails if called twice. Must be called within a tokio runtime.
pub fn stdio() -> io::Result<Connection> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "pipe::stdio was already called: stdin and stdout already carry a connection",
        ));
    }
    sys::warn_if_sigpipe_default();
    let input = io::stdin().as_fd().try_clone_to_owned()?;
    let output = io::stdout().as_fd().try_clone_to_owned()?;
    // Redirect before making the private copies non-blocking, so that no other descriptor in this
    // process shares their (soon non-blocking) file descriptions: a `println!` racing with this
    // call must never see `EAGAIN`.
    let null = File::open("/dev/null")?;
    sys::replace_stdio(null.as_fd(), 0)?;
    sys::replace_stdio(io::stderr().as_fd(), 1)?;
    // The halves are boxed twice (here and in `Connection::new`): one more indirection per read,
    // negligible next to the system call.
    let (input, output) = (File::from(input), File::from(output));
    let reader: BoxRead = if is_fifo(&input)? {
        Box::new(Receiver::from_file(input)?)
    } else {
        Box::new(tokio::fs::File::from_std(input))
    };
    let writer: BoxWrite = if is_fifo(&output)? {
        Box::new(CloseOnShutdown::new(crate::socket::pipe_writer(output.into())?))
    } else {
        Box::new(CloseOnShutdown::new(tokio::fs::File::from_std(output)))
    };
    Ok(Connection::new(reader, writer, Peer::Pipe { pid: None }).with_local("stdio"))
}

/// Two connected ends over two OS pipes inside this process.
///
/// Useful in tests and wherever a real pipe is wanted (its bounded buffer, its end-of-stream
/// behaviour) without a second process. The pipes are close-on-exec, and asked to hold 256 KiB
/// (as [`spawn`]'s are) so that a 64 KiB message takes one write.
pub fn pair() -> io::Result<(Connection, Connection)> {
    let (a_write, b_read) = tokio::net::unix::pipe::pipe()?;
    let (b_write, a_read) = tokio::net::unix::pipe::pipe()?;
    sys::grow_pipe(a_write.as_fd());
    sys::grow_pipe(b_write.as_fd());
    let peer = Peer::Pipe { pid: None };
    // Write ends of our own, registered only while a write waits for room (see `socket.rs`).
    let a_write = crate::socket::pipe_writer(a_write.into_nonblocking_fd()?)?;
    let b_write = crate::socket::pipe_writer(b_write.into_nonblocking_fd()?)?;
    Ok((
        Connection::new(a_read, CloseOnShutdown::new(a_write), peer.clone()),
        Connection::new(b_read, CloseOnShutdown::new(b_write), peer),
    ))
}

/// Wraps a pipe (or FIFO) descriptor to read from and one to write to, made non-blocking.
///
/// Fails with [`io::ErrorKind::InvalidInput`] if either is not a pipe or lacks the access needed.
pub fn from_fds(read: OwnedFd, write: OwnedFd) -> io::Result<Connection> {
    let reader = Receiver::from_owned_fd(read)?;
    let writer = Sender::from_owned_fd(write)?;
    Ok(Connection::new(reader, CloseOnShutdown::new(writer), Peer::Pipe { pid: None }))
}

/// Whether `file` is a pipe or FIFO (`File::metadata` is `fstat` on the descriptor).
fn is_fifo(file: &File) -> io::Result<bool> {
    Ok(file.metadata()?.file_type().is_fifo())
}

/// A write half that closes its descriptor on shutdown, so the reader sees end-of-stream.
///
/// tokio's pipe and child-stdin writers treat `shutdown` as a no-op (a pipe has no half-close
/// other than closing), so without this `FrameWriter::shutdown` would leave the peer waiting.
/// Writes after shutdown fail with [`io::ErrorKind::BrokenPipe`], as on a shut-down socket.
///
/// Made with [`grow_on_large_write`](Self::grow_on_large_write), it also asks for a larger pipe
/// (see `sys::grow_pipe`) the first time it is given more than a default pipe holds.
#[derive(Debug)]
pub(crate) struct CloseOnShutdown<W> {
    /// `None` once shut down.
    inner: Option<W>,
    /// Whether the next write over a default pipe's size grows the pipe first.
    grow: bool,
}

/// What a pipe holds by default on Linux; a larger write waits for the reader half-way.
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

impl<W> CloseOnShutdown<W> {
    pub(crate) fn new(inner: W) -> Self {
        CloseOnShutdown { inner: Some(inner), grow: false }
    }

    /// Grows the pipe at the first write larger than [`DEFAULT_PIPE_SIZE`]: for a FIFO
    /// listener's per-client pairs, where growing every pipe up front would spend the per-user
    /// pipe allowance on clients that only ever send small messages.
    pub(crate) fn grow_on_large_write(mut self) -> Self {
        self.grow = true;
        self
    }
}

impl<W: AsFd> CloseOnShutdown<W> {
    fn before_write(&mut self, len: usize) {
        if self.grow && len > DEFAULT_PIPE_SIZE {
            self.grow = false;
            if let Some(w) = &self.inner {
                sys::grow_pipe(w.as_fd());
            }
        }
    }
}

fn shut_down() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the write half was shut down")
}

impl<W: AsyncWrite + AsFd + Unpin> AsyncWrite for CloseOnShutdown<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.before_write(buf.len());
        match self.inner.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, buf),
            None => Poll::Ready(Err(shut_down())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.before_write(bufs.iter().map(|b| b.len()).sum());
        match self.inner.as_mut() {
            Some(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(shut_down())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|w| w.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.inner.as_mut() {
            Some(w) => Pin::new(w).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(w) = self.inner.as_mut() {
            ready!(Pin::new(w).poll_shutdown(cx))?;
            self.inner = None;
        }
        Poll::Ready(Ok(()))
    }
}
