//! The few raw system calls the pipe and FIFO transports need, each behind a safe wrapper.
//!
//! This is the only module of the crate allowed to use `unsafe`: every call here takes plain
//! integers, a borrowed descriptor or a NUL-terminated path, and each block says why it is sound.
//! Everything else (opening with `O_NOFOLLOW`, `fstat` through [`std::fs::File::metadata`],
//! duplicating with `F_DUPFD_CLOEXEC` through [`std::os::fd::BorrowedFd::try_clone_to_owned`]) is
//! done with std's safe APIs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Creates a FIFO at `path` with `mode` (further restricted by the umask).
pub(crate) fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call; mkfifo only reads it.
    if unsafe { libc::mkfifo(path.as_ptr(), mode as libc::mode_t) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes an exclusive `flock` on `fd` without waiting; `Ok(false)` if another open file holds it.
///
/// The lock belongs to the open file description, so it lasts until every descriptor for it is
/// closed, and is released by the kernel if the process dies.
pub(crate) fn try_lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: `fd` is a valid open descriptor for the duration of the borrow; flock only
        // changes lock state in the kernel.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Whether another open file holds an exclusive `flock` on `fd`, found by taking a shared lock
/// without waiting and releasing it at once.
pub(crate) fn is_locked_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: as in `try_lock_exclusive`: a valid descriptor, lock state only.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            // SAFETY: the same descriptor; releases the shared lock just taken.
            unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(true),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// How a child process ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildExit {
    /// It exited with this status.
    Exited(i32),
    /// A signal with this number killed it.
    Killed(i32),
}

/// How the child `pid` of this process ended, if it has, *without* reaping it (`WNOWAIT`), so
/// whoever owns its handle can still wait for it. `Ok(None)` while it runs; an error (`ECHILD`)
/// if it is not a child of this process or was reaped already.
pub(crate) fn peek_child_exit(pid: u32) -> io::Result<Option<ChildExit>> {
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid, exclusively borrowed struct that waitid fills in; with
        // WNOWAIT the child's state is left as it was.
        let ret = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if ret == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
    // SAFETY: waitid succeeded, so `info` holds a SIGCHLD record (or zeros with WNOHANG when
    // the child has not changed state), for which these accessors read initialised fields.
    let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
    if who == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => ChildExit::Exited(status),
        _ => ChildExit::Killed(status),
    }))
}

/// Makes the standard stream `target` (0, 1 or 2) refer to what `src` refers to.
pub(crate) fn replace_stdio(src: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // Only the standard streams may be replaced: std treats them as always open and never closes
    // them, so no `OwnedFd` elsewhere in the process can be invalidated by the swap.
    assert!((0..=2).contains(&target), "replace_stdio only replaces fds 0, 1 and 2");
    loop {
        // SAFETY: `src` is open for the duration of the borrow and `target` is a standard stream
        // (see above); dup2 atomically closes and replaces `target`, so a concurrent writer to it
        // writes either to the old or to the new file, never to a closed or reused descriptor.
        if unsafe { libc::dup2(src.as_raw_fd(), target) } != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Whether `SIGPIPE` still has its default action (kill the process) instead of being ignored.
pub(crate) fn sigpipe_is_default() -> bool {
    // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: with a null new action, sigaction only writes the current one into `old`, a valid,
    // exclusively borrowed struct; it changes nothing.
    let ret = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    ret == 0 && old.sa_sigaction == libc::SIG_DFL
}

/// Logs a warning, once per process, if `SIGPIPE` would kill the process on a write to a pipe
/// whose reader is gone.
///
/// Rust programs ignore `SIGPIPE` at startup, so such writes fail with `BrokenPipe`; a host that
/// restored the default (a C `main`, `-Zon-broken-pipe=kill`) would die instead.
pub(crate) fn warn_if_sigpipe_default() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if sigpipe_is_default() {
            tracing::warn!(
                "SIGPIPE has its default action: a write to a pipe or fifo whose reader is gone will kill \
                 this process instead of failing with BrokenPipe; ignore SIGPIPE to be safe"
            );
        }
    });
}

/// What [`grow_pipe`] asks for: room for a 64 KiB message and its header in one write, with
/// space to spare, as 64 pages of kernel memory.
pub(crate) const PIPE_SIZE: usize = 256 * 1024;

/// Asks the kernel to make the pipe or FIFO behind `fd` hold [`PIPE_SIZE`] bytes instead of the
/// default 64 KiB, so a 64 KiB message goes through in one write and one read, without the writer
/// waiting for the reader half-way. Best effort: a system at its per-user pipe limit
/// (`/proc/sys/fs/pipe-user-pages-soft`) refuses, and the pipe keeps its size.
pub(crate) fn grow_pipe(fd: BorrowedFd<'_>) {
    // SAFETY: F_SETPIPE_SZ on a descriptor valid for the duration of the borrow; it changes only
    // the kernel's buffer for the pipe, and fails harmlessly on anything that is not one.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
}

/// Reads what `fd` has into the unfilled part of `buf` (without initializing it first) and marks
/// what was read as filled; returns how many bytes. `WouldBlock` when nothing is there.
pub(crate) fn read_into(fd: BorrowedFd<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `unfilled_mut` is writable memory of its length for the duration of the borrow;
    // `read` writes at most that many bytes into it and reads none of it.
    let unfilled = unsafe { buf.unfilled_mut() };
    // SAFETY: the pointer and length describe `unfilled`, valid as above; `fd` is open.
    let n = unsafe { libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel wrote these `n` bytes just now.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// Registers `inner` with the current runtime's reactor for `interest`.
///
/// Only for types that own their descriptor (the standard library's sockets, `OwnedFd`): the
/// descriptor then stays open, and the same, for as long as the `AsyncFd` holds it, which is
/// what tokio requires.
pub(crate) fn register<T: std::os::fd::AsFd + AsRawFd>(
    inner: T,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `T: AsFd` owns (or borrows for its whole life) an open descriptor that it closes
    // only when dropped; the `AsyncFd` drops it only after deregistering.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(inner, interest) }.map_err(|e| e.into())
}

/// Puts `fd` in non-blocking mode.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL on a descriptor valid for the duration of the borrow; they
    // read and change only its status flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if flags & libc::O_NONBLOCK == 0
        && unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
