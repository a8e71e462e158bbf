//! The client side of a listener connection: its private pair of FIFOs, registering it, and the
//! handshake that turns it into a connection.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe::{Receiver, Sender};

use super::files::{create_fifo, deadline_after, open_fifo, open_writer, timed_out, End};
use super::registration::{encode_registration, random_nonce, random_u64};
use super::{Options, DIR_MODE};
use crate::pipe::CloseOnShutdown;
use crate::{sys, Connection, Peer};

/// The FIFO a client writes and the server reads, inside the client's private directory.
pub(super) const CLIENT_TO_SERVER: &str = "c2s";
/// The FIFO the server writes and a client reads, inside the client's private directory.
pub(super) const SERVER_TO_CLIENT: &str = "s2c";

impl Options {
    /// The work of [`Options::connect`], kept here with the private pair it registers.
    pub(super) async fn connect_client(&self, path: impl AsRef<Path>) -> io::Result<Connection> {
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
        // The private pair is about to be removed: name the server by its well-known path.
        let peer = Peer::Fifo(path.to_path_buf());
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
