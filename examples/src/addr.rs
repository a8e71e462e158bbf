//! Addresses as the `rpc` command-line caller and the example servers write them:
//! `tcp:HOST:PORT`, `unix:PATH` and `fifo:PATH` (a FIFO listener, see `FIFO.md`).

use std::fmt;
use std::io;
use std::path::PathBuf;

use rpc_runtime::transport::{fifo, tcp, unix, Connection};
use rpc_runtime::{Router, Server, ServerHandle};

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// `tcp:HOST:PORT`: a TCP address (`tcp:127.0.0.1:4000`, `tcp:[::1]:4000`, `tcp:localhost:4000`).
    Tcp(String),
    /// `unix:PATH`: a Unix socket.
    Unix(PathBuf),
    /// `fifo:PATH`: a FIFO listener's well-known FIFO.
    Fifo(PathBuf),
}

impl Addr {
    /// Parses `tcp:HOST:PORT`, `unix:PATH` or `fifo:PATH`; the error says which forms exist.
    pub fn parse(text: &str) -> Result<Addr, String> {
        let bad = || format!("bad address `{text}`: write tcp:HOST:PORT, unix:PATH or fifo:PATH");
        let (scheme, rest) = text.split_once(':').ok_or_else(bad)?;
        if rest.is_empty() {
            return Err(bad());
        }
        match scheme {
            "tcp"
                if rest.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
            {
                Ok(Addr::Tcp(rest.to_owned()))
            }
            "unix" => Ok(Addr::Unix(rest.into())),
            "fifo" => Ok(Addr::Fifo(rest.into())),
            _ => Err(bad()),
        }
    }

    /// Connects to a server at this address.
    pub async fn connect(&self) -> io::Result<Connection> {
        match self {
            Addr::Tcp(a) => tcp::connect(a.as_str()).await,
            Addr::Unix(p) => unix::connect(p).await,
            Addr::Fifo(p) => fifo::connect(p).await,
        }
    }

    /// Serves `router` on this address; returns the server's handle and the address actually
    /// bound (a TCP port of 0 replaced by the one chosen).
    pub async fn serve(&self, router: Router) -> io::Result<(ServerHandle, Addr)> {
        let server = Server::new(router);
        Ok(match self {
            Addr::Tcp(a) => {
                let listener = tcp::bind(a.as_str()).await?;
                let bound = Addr::Tcp(listener.local_addr().to_string());
                (server.serve(listener), bound)
            }
            Addr::Unix(p) => (server.serve(unix::bind(p).await?), self.clone()),
            Addr::Fifo(p) => (server.serve(fifo::bind(p).await?), self.clone()),
        })
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "tcp:{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Fifo(p) => write!(f, "fifo:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(Addr::parse("tcp:127.0.0.1:80"), Ok(Addr::Tcp("127.0.0.1:80".into())));
        assert_eq!(Addr::parse("tcp:[::1]:80"), Ok(Addr::Tcp("[::1]:80".into())));
        assert_eq!(Addr::parse("unix:/tmp/a.sock"), Ok(Addr::Unix("/tmp/a.sock".into())));
        assert_eq!(Addr::parse("fifo:/tmp/a.fifo"), Ok(Addr::Fifo("/tmp/a.fifo".into())));
        for bad in ["", "tcp:", "tcp:host", "tcp:host:x", "tcp::80", "http://x", "unix:", "/tmp/a.sock"] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
    }
}
