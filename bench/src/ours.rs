//! This framework: the benchmark service, its server, and its client as a [`Caller`].

use std::io;

use bytes::Bytes;
use rpc_runtime::transport::Listener;
use rpc_runtime::{service, Server};

use crate::suite::Caller;

/// The benchmark service: three echoes.
#[service]
pub(crate) trait Bench {
    /// A 16-byte argument and result.
    async fn echo16(&self, x: [u8; 16]) -> [u8; 16];
    /// A plain byte vector.
    async fn echo_vec(&self, data: Vec<u8>) -> Vec<u8>;
    /// A byte-buffer type (serialized as a byte string by serde).
    async fn echo_buf(&self, data: Bytes) -> Bytes;
}

struct Echo;

impl Bench for Echo {
    async fn echo16(&self, x: [u8; 16]) -> [u8; 16] {
        x
    }

    async fn echo_vec(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn echo_buf(&self, data: Bytes) -> Bytes {
        data
    }
}

/// The default server configuration, except the connection caps: figure (e) holds 1,000 idle
/// connections from this one process (one peer), past the default 256 per peer.
fn server() -> Server {
    Server::new(BenchServer::new(Echo)).max_connections(4096).max_connections_per_peer(4096)
}

/// Serves every connection `listener` accepts.
pub(crate) async fn serve(listener: impl Listener) -> io::Result<()> {
    server().serve(listener).wait().await;
    Ok(())
}

/// Serves one connection (a pipe's) until it closes.
pub(crate) async fn serve_one(conn: rpc_runtime::transport::Connection) -> io::Result<()> {
    server().serve_connection(conn).wait().await;
    Ok(())
}

impl Caller for BenchClient {
    async fn echo16(&self, x: [u8; 16]) -> [u8; 16] {
        BenchClient::echo16(self, x).await.expect("echo16")
    }

    async fn echo_vec(&self, data: Vec<u8>) -> Vec<u8> {
        BenchClient::echo_vec(self, data).await.expect("echo_vec")
    }

    async fn echo_buf(&self, data: Bytes) -> Bytes {
        BenchClient::echo_buf(self, data).await.expect("echo_buf")
    }
}
