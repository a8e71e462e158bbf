//! Creating, opening and checking FIFOs and private directories, removing what this side made,
//! and the errors that explain a refusal.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::FIFO_MODE;
use crate::sys;

/// The longest pause between two attempts to open a FIFO for writing.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Removes a file on drop, if the path still names the same file.
#[derive(Debug)]
pub(super) struct RemoveOnDrop {
    pub(super) path: PathBuf,
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl RemoveOnDrop {
    pub(super) fn new(path: &Path) -> io::Result<Self> {
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
pub(super) enum End {
    Read,
    Write,
}

/// Creates a FIFO with mode `0600`; `Ok(false)` if something exists there and `may_exist`.
pub(super) fn create_fifo(path: &Path, may_exist: bool) -> io::Result<bool> {
    match sys::mkfifo(path, FIFO_MODE) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && may_exist => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot create fifo {}: {e}", path.display()))),
    }
}

/// Opens one end of the FIFO at `path` without blocking, and checks what was opened.
///
/// Opening for writing fails with the raw `ENXIO` while nobody reads the FIFO.
pub(super) fn open_fifo(path: &Path, end: End) -> io::Result<File> {
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

/// Opens the FIFO at `path` for writing, retrying with backoff while nobody reads it, until
/// `deadline`.
pub(super) async fn open_writer(path: &Path, deadline: Instant, timeout: Duration) -> io::Result<File> {
    let mut backoff = Duration::from_millis(1);
    loop {
        let e = match open_fifo(path, End::Write) {
            Ok(file) => return Ok(file),
            Err(e) => e,
        };
        if e.raw_os_error() != Some(libc::ENXIO) {
            return Err(e);
        }
        let why = "nobody opened it for reading";
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(path, timeout, why));
        }
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens a client's private directory and checks that it is private to this user.
pub(super) fn open_private_dir(path: &Path) -> io::Result<File> {
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
pub(super) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

pub(super) fn timed_out(path: &Path, timeout: Duration, why: &str) -> io::Error {
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

pub(super) fn refuse_existing(path: &Path, meta: &fs::Metadata) -> io::Error {
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
