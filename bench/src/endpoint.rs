//! The transports, the implementations, and the server child process with its endpoint.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rpc_runtime::transport::{BoxRead, BoxWrite};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A transport every implementation is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    /// Every transport the benchmark knows.
    pub(crate) fn available() -> Vec<Transport> {
        vec![Transport::Tcp, Transport::Unix]
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Transport, String> {
        Transport::available()
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown transport {s:?}"))
    }
}

/// The implementations compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    /// A hand-written tokio length-prefixed echo, no RPC layer.
    Floor,
    /// This framework.
    Ours,
    /// tarpc 0.38 with its bincode serde transport.
    Tarpc,
}

impl Impl {
    pub(crate) const ALL: [Impl; 3] = [Impl::Floor, Impl::Ours, Impl::Tarpc];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Floor => "floor",
            Impl::Ours => "ours",
            Impl::Tarpc => "tarpc",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Impl, String> {
        Impl::ALL.into_iter().find(|i| i.name() == s).ok_or_else(|| format!("unknown implementation {s:?}"))
    }
}

/// Where the client reaches a server.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A server running in a child process; killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProc {
    /// Killed on drop; its stdin is the life line (EOF: the server exits).
    child: Child,
    pub(crate) pid: u32,
    pub(crate) endpoint: Endpoint,
}

impl ServerProc {
    /// Starts `rpc-bench server IMPL TRANSPORT ENDPOINT` and waits until it listens.
    pub(crate) async fn spawn(imp: Impl, transport: Transport, dir: &Path) -> io::Result<ServerProc> {
        let endpoint_arg = match transport {
            Transport::Tcp => "127.0.0.1:0".to_string(),
            Transport::Unix => {
                let path = dir.join(format!("{}.sock", imp.name()));
                let _ = std::fs::remove_file(&path);
                path.display().to_string()
            }
        };
        let mut child = Command::new(std::env::current_exe()?)
            .args(["server", imp.name(), transport.name(), &endpoint_arg])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().expect("the child is running");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).await?;
        let Some(addr) = line.trim().strip_prefix("READY ") else {
            return Err(io::Error::other(format!("the {} server did not start: {line:?}", imp.name())));
        };
        let endpoint = match transport {
            Transport::Tcp => Endpoint::Tcp(addr.parse().map_err(io::Error::other)?),
            Transport::Unix => Endpoint::Unix(PathBuf::from(addr)),
        };
        Ok(ServerProc { child, pid, endpoint })
    }

    /// Closes the server's stdin and waits for it to exit on its own (so a profiler running it
    /// can write its output), killing it after 30 seconds.
    pub(crate) async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }

    /// A plain byte stream to the server (for the floor and tarpc), with `TCP_NODELAY` on TCP
    /// as this framework sets it.
    pub(crate) async fn connect_raw(&self) -> io::Result<(BoxRead, BoxWrite)> {
        match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (r, w) = stream.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            Endpoint::Unix(path) => {
                let (r, w) = tokio::net::UnixStream::connect(path).await?.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
        }
    }

    /// A connection of this framework's transport layer to the server.
    pub(crate) async fn connect_ours(&self) -> io::Result<rpc_runtime::transport::Connection> {
        use rpc_runtime::transport::{tcp, unix};
        match &self.endpoint {
            Endpoint::Tcp(addr) => tcp::connect(addr).await,
            Endpoint::Unix(path) => unix::connect(path).await,
        }
    }
}

/// Where a server accepts plain byte streams (the floor and tarpc).
#[derive(Debug)]
pub(crate) enum RawListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl RawListener {
    pub(crate) async fn accept(&mut self) -> io::Result<(BoxRead, BoxWrite)> {
        match self {
            RawListener::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                stream.set_nodelay(true)?;
                let (r, w) = stream.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            RawListener::Unix(l) => {
                let (stream, _) = l.accept().await?;
                let (r, w) = stream.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
        }
    }
}
