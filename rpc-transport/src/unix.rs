//! Unix-domain sockets: connect to a path, or bind a listener on one.
//!
//! The listener's socket file is created owner-only (mode `0600`) *before* it becomes reachable:
//! it is bound inside a fresh `0700` directory next to the target, given its mode, then renamed
//! into place. A stale socket file left by a dead server is replaced; a live one (a connect probe
//! succeeds) is not stolen; a path that is not a socket is never touched. The file is removed when
//! the listener is dropped, if it is still the one this listener created.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixStream;

use crate::annotate::annotate;
use crate::{Connection, Listener, Peer};

/// The longest socket path the kernel accepts (`sun_path` is 108 bytes, NUL included).
pub const MAX_PATH_LEN: usize = 107;
/// The mode a listener's socket file gets unless told otherwise: owner only.
pub const DEFAULT_MODE: u32 = 0o600;

/// Connects to the socket at `path`.
///
/// An error names the path and keeps the OS error's kind (`NotFound`, `ConnectionRefused`, ...);
/// the OS error itself is its [`source`](std::error::Error::source).
pub async fn connect(path: impl AsRef<Path>) -> io::Result<Connection> {
    let path = path.as_ref();
    match UnixStream::connect(path).await {
        Ok(stream) => Ok(from_stream(stream)),
        Err(e) => Err(annotate(e, format!("cannot connect to unix socket {}", path.display()))),
    }
}

/// Wraps an already connected stream.
pub fn from_stream(stream: UnixStream) -> Connection {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer::Unix { uid: Some(c.uid()), gid: Some(c.gid()), pid: c.pid() },
        Err(_) => Peer::Unix { uid: None, gid: None, pid: None },
    };
    // Registered for readability only (see `socket.rs`).
    crate::socket::connection(stream.into_std(), peer)
}

/// Binds a listener on `path` with mode `0600`.
pub async fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
    bind_with_mode(path, DEFAULT_MODE).await
}

/// Binds a listener on `path`, giving the socket file `mode` before anyone can connect.
pub async fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> io::Result<UnixListener> {
    let path = path.as_ref().to_path_buf();
    check_len(&path)?;
    remove_if_stale(&path).await?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = staging_dir(&parent)?;
    let tmp = staging.join("s");
    let result = (|| -> io::Result<_> {
        check_len(&tmp).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket path {} leaves no room for the temporary name used to set its mode; use a path at least 12 bytes shorter", path.display()),
            )
        })?;
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, &path)?;
        let meta = fs::symlink_metadata(&path)?;
        listener.set_nonblocking(true)?;
        Ok((listener, meta.dev(), meta.ino()))
    })();
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_dir(&staging);
    let (listener, dev, ino) = result?;
    Ok(UnixListener {
        inner: tokio::net::UnixListener::from_std(listener)?,
        path,
        dev,
        ino,
        allowed_uids: None,
    })
}

fn check_len(path: &Path) -> io::Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_PATH_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path is {len} bytes; it must be shorter than SUN_LEN ({MAX_PATH_LEN} bytes): {}",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn staging_dir(parent: &Path) -> io::Result<PathBuf> {
    let seed = std::process::id() as u64
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0));
    for attempt in 0..16u64 {
        let dir = parent
            .join(format!(".r{:06x}", (seed.wrapping_add(attempt.wrapping_mul(0x9e37_79b9))) & 0xff_ffff));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a private staging directory for the socket",
    ))
}

/// Removes `path` if it is a socket nobody listens on; refuses anything else that exists.
async fn remove_if_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; refusing to replace it", path.display()),
        ));
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a server is already listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::debug!(path = %path.display(), "replacing stale socket file");
            fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

/// A bound Unix-socket listener; its socket file is removed on drop.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
    dev: u64,
    ino: u64,
    allowed_uids: Option<Vec<u32>>,
}

impl UnixListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts only peers whose user id is in `uids` (checked with `SO_PEERCRED`); others are
    /// closed at once and logged.
    pub fn allow_uids(&mut self, uids: impl IntoIterator<Item = u32>) -> &mut Self {
        self.allowed_uids = Some(uids.into_iter().collect());
        self
    }
}

impl Listener for UnixListener {
    async fn accept(&mut self) -> io::Result<Option<Connection>> {
        loop {
            let (stream, _) = self.inner.accept().await?;
            let conn = from_stream(stream);
            if let Some(allowed) = &self.allowed_uids {
                let uid = match conn.peer() {
                    Peer::Unix { uid, .. } => *uid,
                    _ => None,
                };
                if !uid.is_some_and(|u| allowed.contains(&u)) {
                    tracing::warn!(?uid, path = %self.path.display(), "refused a peer whose uid is not allowed");
                    continue;
                }
            }
            return Ok(Some(conn));
        }
    }

    fn describe(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        // Only remove the file if it is still ours: another server may have replaced it.
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}
