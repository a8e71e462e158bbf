//! A `Probe` server on a real listener of each transport, and ways to connect to it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::transport::memory::{self, MemoryConnector};
use rpc_runtime::transport::{fifo, pipe, tcp, unix, Connection, Listener};
use rpc_runtime::{Client, Server, ServerHandle};
use tokio::sync::mpsc;

use crate::probe::{ProbeClient, ProbeImpl, ProbeServer, ProbeState};
use crate::wire::RawPeer;

/// A transport a case runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TCP on 127.0.0.1.
    Tcp,
    /// A Unix socket in a fresh temporary directory.
    Unix,
    /// The in-memory transport.
    Memory,
    /// A pair of OS pipes per connection (`pipe::pair`), handed to the server through a channel.
    Pipe,
    /// A FIFO listener (`fifo::bind`) in a fresh temporary directory; each client registers and
    /// gets its own pair of FIFOs.
    Fifo,
}

/// Every transport a connection-level case runs over.
pub const STREAMS: [Kind; 5] = [Kind::Tcp, Kind::Unix, Kind::Memory, Kind::Pipe, Kind::Fifo];

/// The transports whose bytes go through the OS: a case over these runs in real time, never
/// under a paused clock, which would jump to its next timer while the OS still delivers bytes.
pub const REAL_STREAMS: [Kind; 4] = [Kind::Tcp, Kind::Unix, Kind::Pipe, Kind::Fifo];

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Tcp => "tcp",
            Kind::Unix => "unix",
            Kind::Memory => "memory",
            Kind::Pipe => "pipe",
            Kind::Fifo => "fifo",
        })
    }
}

/// A listener of some transport and a way to reach it, before a server takes the listener.
#[derive(Debug)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// An in-memory listener's connector.
    Memory(MemoryConnector),
    /// Hands one end of a new pipe pair to a [`PipeListener`].
    Pipe(mpsc::UnboundedSender<Connection>),
    /// A FIFO listener's path.
    Fifo(PathBuf),
}

impl Endpoint {
    /// Connects to the endpoint.
    pub async fn connect(&self) -> std::io::Result<Connection> {
        match self {
            Endpoint::Tcp(addr) => tcp::connect(*addr).await,
            Endpoint::Unix(path) => unix::connect(path).await,
            Endpoint::Memory(connector) => connector.connect(),
            Endpoint::Pipe(tx) => {
                let (ours, theirs) = pipe::pair()?;
                tx.send(theirs).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "the pipe listener was dropped",
                    )
                })?;
                Ok(ours)
            }
            Endpoint::Fifo(path) => fifo::connect(path).await,
        }
    }
}

/// Accepts the pipe pairs made by [`Endpoint::Pipe`]: OS pipes, with no rendezvous point.
#[derive(Debug)]
pub struct PipeListener {
    rx: mpsc::UnboundedReceiver<Connection>,
}

impl Listener for PipeListener {
    async fn accept(&mut self) -> std::io::Result<Option<Connection>> {
        Ok(self.rx.recv().await)
    }

    fn describe(&self) -> String {
        "pipe pairs".to_string()
    }
}

/// A listener of any transport.
#[derive(Debug)]
pub enum AnyListener {
    /// TCP.
    Tcp(tcp::TcpListener),
    /// Unix socket.
    Unix(unix::UnixListener),
    /// In-memory.
    Memory(memory::MemoryListener),
    /// Pipe pairs.
    Pipe(PipeListener),
    /// A FIFO listener.
    Fifo(fifo::FifoListener),
}

impl Listener for AnyListener {
    async fn accept(&mut self) -> std::io::Result<Option<Connection>> {
        match self {
            AnyListener::Tcp(l) => l.accept().await,
            AnyListener::Unix(l) => l.accept().await,
            AnyListener::Memory(l) => l.accept().await,
            AnyListener::Pipe(l) => l.accept().await,
            AnyListener::Fifo(l) => l.accept().await,
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyListener::Tcp(l) => l.describe(),
            AnyListener::Unix(l) => l.describe(),
            AnyListener::Memory(l) => l.describe(),
            AnyListener::Pipe(l) => l.describe(),
            AnyListener::Fifo(l) => l.describe(),
        }
    }
}

/// Binds a listener of `kind`; the temporary directory (Unix) must outlive it.
pub async fn bind(kind: Kind) -> (AnyListener, Endpoint, Option<tempfile::TempDir>) {
    match kind {
        Kind::Tcp => {
            let l = tcp::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind tcp");
            let addr = l.local_addr();
            (AnyListener::Tcp(l), Endpoint::Tcp(addr), None)
        }
        Kind::Unix => {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("s");
            let l = unix::bind(&path).await.expect("bind unix");
            (AnyListener::Unix(l), Endpoint::Unix(path), Some(dir))
        }
        Kind::Memory => {
            let (l, c) = memory::listener();
            (AnyListener::Memory(l), Endpoint::Memory(c), None)
        }
        Kind::Pipe => {
            let (tx, rx) = mpsc::unbounded_channel();
            (AnyListener::Pipe(PipeListener { rx }), Endpoint::Pipe(tx), None)
        }
        Kind::Fifo => {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("rpc");
            let l = fifo::bind(&path).await.expect("bind fifo");
            (AnyListener::Fifo(l), Endpoint::Fifo(path), Some(dir))
        }
    }
}

/// A running `Probe` server.
#[derive(Debug)]
pub struct Fixture {
    /// The transport.
    pub kind: Kind,
    /// The server.
    pub handle: ServerHandle,
    /// What its handlers did.
    pub state: Arc<ProbeState>,
    /// Where it listens.
    pub endpoint: Endpoint,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// Starts a server with the default configuration.
    pub async fn start(kind: Kind) -> Fixture {
        Self::start_with(kind, |s| s).await
    }

    /// Starts a server, letting `configure` change its settings first.
    pub async fn start_with(kind: Kind, configure: impl FnOnce(Server) -> Server) -> Fixture {
        let probe = ProbeImpl::default();
        let state = Arc::clone(&probe.state);
        let server = configure(Server::new(ProbeServer::new(probe)));
        let (listener, endpoint, dir) = bind(kind).await;
        let handle = server.serve(listener);
        Fixture { kind, handle, state, endpoint, _dir: dir }
    }

    /// A new connection to the server.
    pub async fn connect(&self) -> Connection {
        self.endpoint.connect().await.unwrap_or_else(|e| panic!("{}: connect: {e}", self.kind))
    }

    /// A typed client on a new connection.
    pub async fn client(&self) -> ProbeClient {
        ProbeClient::new(self.connect().await)
    }

    /// A typed client on a new connection, built from custom client settings.
    pub async fn client_with(&self, builder: &rpc_runtime::ClientBuilder) -> ProbeClient {
        ProbeClient::from_client(builder.build(self.connect().await))
    }

    /// A raw peer on a new connection that has exchanged prefaces.
    pub async fn raw(&self) -> RawPeer {
        let mut peer = RawPeer::new(self.connect().await);
        peer.handshake().await;
        peer
    }

    /// The Unix socket path, if this is a Unix fixture.
    pub fn unix_path(&self) -> Option<&Path> {
        match &self.endpoint {
            Endpoint::Unix(p) => Some(p),
            _ => None,
        }
    }

    /// The "no crash" invariant: the server still accepts a new connection and serves a call.
    pub async fn assert_serving(&self) {
        let client = self.client().await;
        let sum = crate::within(60, "a call on a fresh connection", client.add(20, 22)).await;
        assert_eq!(sum.unwrap_or_else(|e| panic!("{}: server no longer serves: {e}", self.kind)), 42);
        assert_in_flight_empty(client.as_client());
    }

    /// Shuts the server down (1 s of grace).
    pub async fn stop(self) {
        self.handle.shutdown(Duration::from_secs(1)).await;
    }
}

/// The "nothing lost" invariant: a client's pending map is empty.
pub fn assert_in_flight_empty(client: &Client) {
    assert_eq!(client.in_flight(), 0, "calls left in the client's pending map");
}

/// A fake server: the test plays the server with raw bytes against a real client.
///
/// Returns the raw peer (prefaces already exchanged) and the client, which was built with
/// `builder` on a real connection of `kind`.
pub async fn fake_server(kind: Kind, builder: &rpc_runtime::ClientBuilder) -> (RawPeer, Client) {
    let (mut listener, endpoint, dir) = bind(kind).await;
    let (conn, accepted) = tokio::join!(endpoint.connect(), listener.accept());
    let client = builder.build(conn.expect("connect"));
    let mut peer = RawPeer::new(accepted.expect("accept").expect("the listener is open"));
    peer.handshake().await;
    // The listener (and its directory) may go: the connection lives on.
    drop((listener, dir));
    (peer, client)
}

/// Returns once every task of this current-thread runtime is idle.
///
/// Under a paused clock the runtime advances time only when it has nothing else to do, so a
/// virtual sleep ends exactly when every other task is blocked on I/O or a timer. This waits
/// for quiescence; it is not a real-time sleep.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// A `probe-server` child process (see `src/bin/probe-server.rs`), killed when dropped.
#[derive(Debug)]
pub struct ChildServer {
    /// The process.
    pub child: std::process::Child,
    /// Where it listens.
    pub endpoint: Endpoint,
}

impl ChildServer {
    /// Starts `exe` (the `probe-server` binary) with `args` and waits for its "ready" line.
    pub fn spawn(exe: &str, args: &[&str]) -> ChildServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new(exe)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn probe-server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the ready line");
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("ready"), "probe-server said {line:?}");
        let endpoint = match (words.next(), words.next()) {
            (Some("tcp"), Some(addr)) => Endpoint::Tcp(addr.parse().expect("address")),
            (Some("unix"), Some(path)) => Endpoint::Unix(PathBuf::from(path)),
            _ => panic!("probe-server said {line:?}"),
        };
        ChildServer { child, endpoint }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a pid we own; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed: {}", std::io::Error::last_os_error());
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
