//! Where the server listens, passed between the processes as command-line arguments, and how
//! each side connects to it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use rpc_runtime::transport::{tcp, unix, BoxRead, BoxWrite, Connection};

/// The source address of every hostile peer on TCP. Linux routes all of 127.0.0.0/8 to
/// loopback, so attackers and the honest client (127.0.0.1) are different peers by IP address,
/// as they would be in the field. (Over a Unix socket, peers are told apart by uid: see
/// [`attacker_uid`].)
pub(crate) const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A listening server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// TCP on loopback.
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// The two arguments naming this endpoint (`tcp ADDR` or `unix PATH`).
    pub(crate) fn to_args(&self) -> [String; 2] {
        match self {
            Endpoint::Tcp(addr) => ["tcp".into(), addr.to_string()],
            Endpoint::Unix(path) => ["unix".into(), path.display().to_string()],
        }
    }

    /// Parses what [`Endpoint::to_args`] wrote.
    pub(crate) fn from_args(kind: &str, value: &str) -> Endpoint {
        match kind {
            "tcp" => Endpoint::Tcp(value.parse().expect("a socket address")),
            "unix" => Endpoint::Unix(value.into()),
            other => panic!("unknown transport {other:?}: expected tcp or unix"),
        }
    }

    /// An ordinary connection, as the honest client makes it (from 127.0.0.1 on TCP).
    pub(crate) async fn connect(&self) -> io::Result<Connection> {
        match self {
            Endpoint::Tcp(addr) => tcp::connect(addr).await,
            Endpoint::Unix(path) => unix::connect(path).await,
        }
    }

    /// A hostile peer's connection (from [`ATTACKER_IP`] on TCP), split into its halves.
    pub(crate) async fn connect_raw(&self) -> io::Result<(BoxRead, BoxWrite)> {
        let conn = match self {
            Endpoint::Tcp(addr) => tcp::from_stream(attacker_tcp(*addr).await?)?,
            Endpoint::Unix(path) => unix::connect(path).await?,
        };
        let (read, write, _peer, _guard) = conn.into_parts();
        Ok((read, write))
    }
}

/// A TCP stream to `addr` from [`ATTACKER_IP`].
pub(crate) async fn attacker_tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ATTACKER_IP, 0))?;
    socket.connect(addr).await
}

/// The uid and gid hostile peers run as: `nobody` (65534) when the harness runs as root, so that
/// over a Unix socket they are a different user from the honest client, as over TCP they are a
/// different address; `None` (the harness's own) otherwise.
pub(crate) fn attacker_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    // `/proc/self` belongs to the process's effective uid.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root.then_some(65534)
}
