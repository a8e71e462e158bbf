//! The transports, the implementations, and the server child process with its endpoint.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::sync::Mutex;

use rpc_runtime::transport::{fifo, pipe, tcp, unix, BoxRead, BoxWrite, Connection, Listener};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::blocking;

/// A transport every implementation is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Unix,
    /// The child's stdin and stdout (`rpc_transport::pipe`): one connection per server process.
    Pipe,
    /// A pair of FIFOs per connection, set up through the server's well-known FIFO
    /// (`rpc_transport::fifo`).
    Fifo,
}

impl Transport {
    /// Every transport the benchmark knows.
    pub(crate) fn available() -> Vec<Transport> {
        vec![Transport::Tcp, Transport::Unix, Transport::Pipe, Transport::Fifo]
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
            Transport::Pipe => "pipe",
            Transport::Fifo => "fifo",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Transport, String> {
        Transport::available()
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown transport {s:?}"))
    }

    /// Whether one server process takes many connections (not so a pipe to a child).
    pub(crate) fn has_listener(self) -> bool {
        self != Transport::Pipe
    }
}

/// The implementations compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    /// A hand-written length-prefixed echo with blocking I/O, no RPC layer.
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
#[derive(Debug)]
pub(crate) enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// The one connection to the child, until a client takes it.
    Pipe(Mutex<Option<Connection>>),
    /// The floor's pipe to its child: the child's stdout and stdin, until a client takes them.
    StdPipe(Mutex<Option<(std::process::ChildStdout, std::process::ChildStdin)>>),
    Fifo(PathBuf),
}

/// The server's process.
#[derive(Debug)]
enum Proc {
    /// Its stdin is the life line: at EOF the server exits.
    Plain(tokio::process::Child),
    /// Its stdin and stdout are the connection.
    Pipe(pipe::Child),
    /// The floor over a pipe: the same, with std's blocking pipes.
    StdPipe(std::process::Child),
}

/// A server running in a child process; killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProc {
    child: Proc,
    pub(crate) pid: u32,
    pub(crate) transport: Transport,
    pub(crate) endpoint: Endpoint,
}

impl ServerProc {
    /// Starts `rpc-bench server IMPL TRANSPORT ENDPOINT` and waits until it listens.
    pub(crate) async fn spawn(imp: Impl, transport: Transport, dir: &Path) -> io::Result<ServerProc> {
        let endpoint_arg = match transport {
            Transport::Tcp => "127.0.0.1:0".to_string(),
            Transport::Pipe => "-".to_string(),
            Transport::Unix | Transport::Fifo => {
                let path = dir.join(format!("{}.{}", imp.name(), transport.name()));
                let _ = std::fs::remove_file(&path);
                path.display().to_string()
            }
        };
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["server", imp.name(), transport.name(), &endpoint_arg]);
        if transport == Transport::Pipe && imp == Impl::Floor {
            let mut child = std::process::Command::new(std::env::current_exe()?)
                .args(["server", imp.name(), transport.name(), &endpoint_arg])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let pid = child.id();
            let halves = (child.stdout.take().expect("piped"), child.stdin.take().expect("piped"));
            return Ok(ServerProc {
                child: Proc::StdPipe(child),
                pid,
                transport,
                endpoint: Endpoint::StdPipe(Mutex::new(Some(halves))),
            });
        }
        if transport == Transport::Pipe {
            let (conn, child) = pipe::spawn(cmd)?;
            let pid = child.pid();
            return Ok(ServerProc {
                child: Proc::Pipe(child),
                pid,
                transport,
                endpoint: Endpoint::Pipe(Mutex::new(Some(conn))),
            });
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
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
            Transport::Fifo => Endpoint::Fifo(PathBuf::from(addr)),
            Transport::Pipe => unreachable!("handled above"),
        };
        Ok(ServerProc { child: Proc::Plain(child), pid, transport, endpoint })
    }

    /// Closes the server's stdin (or, over a pipe, its connection) and waits for it to exit on
    /// its own (so a profiler running it can write its output), killing it after 30 seconds.
    pub(crate) async fn stop(mut self) {
        if let Proc::StdPipe(mut child) = self.child {
            // Its stdin is the connection: closed when the client's connection and the endpoint
            // are dropped, and the floor's server then exits.
            drop(self.endpoint);
            let waited = tokio::task::spawn_blocking(move || child.wait());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), waited).await;
            return;
        }
        let child = match &mut self.child {
            Proc::Plain(child) => {
                drop(child.stdin.take());
                child
            }
            Proc::Pipe(child) => child.get_mut(),
            Proc::StdPipe(_) => unreachable!("handled above"),
        };
        if tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    /// A plain byte stream to the server (for the floor and tarpc), with `TCP_NODELAY` on TCP
    /// as this framework sets it. Over a pipe or FIFOs, the transport's connection is already
    /// just that: two byte streams.
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
            Endpoint::Pipe(_) | Endpoint::Fifo(_) => Ok(halves(self.connect_ours().await?)),
            Endpoint::StdPipe(_) => Err(io::Error::other("the floor's pipe is for the floor")),
        }
    }

    /// A blocking connection to the floor's server, to be served in `mode` (call it where
    /// blocking is allowed).
    pub(crate) fn connect_floor(&self, mode: blocking::Mode) -> io::Result<blocking::Raw> {
        blocking::connect(&self.endpoint, mode)
    }

    /// A connection of this framework's transport layer to the server.
    pub(crate) async fn connect_ours(&self) -> io::Result<Connection> {
        match &self.endpoint {
            Endpoint::Tcp(addr) => tcp::connect(addr).await,
            Endpoint::Unix(path) => unix::connect(path).await,
            Endpoint::Pipe(conn) => conn
                .lock()
                .expect("not poisoned")
                .take()
                .ok_or_else(|| io::Error::other("a pipe to a child carries one connection")),
            Endpoint::Fifo(path) => fifo::connect(path).await,
            Endpoint::StdPipe(_) => Err(io::Error::other("the floor's pipe is for the floor")),
        }
    }
}

/// Where a server accepts plain byte streams (the floor and tarpc).
#[derive(Debug)]
pub(crate) enum RawListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
    Fifo(fifo::FifoListener),
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
            RawListener::Fifo(l) => match l.accept().await? {
                Some(conn) => Ok(halves(conn)),
                None => Err(io::Error::new(io::ErrorKind::NotConnected, "the fifo listener stopped")),
            },
        }
    }
}

/// A connection's two byte streams, the read half keeping its guard (FIFO files to remove when
/// done, a child to reap) alive.
fn halves(conn: Connection) -> (BoxRead, BoxWrite) {
    let (r, w, _peer, guard) = conn.into_parts();
    (Box::new(Guarded { inner: r, _guard: guard }), w)
}

struct Guarded {
    inner: BoxRead,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl tokio::io::AsyncRead for Guarded {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
