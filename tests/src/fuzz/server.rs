//! The server targets: a real server connection (in memory, paused Tokio time) fed fuzzed bytes
//! from a hand-written client.

use std::time::Duration;

use rpc_runtime::transport::{memory, Connection, Peer};
use rpc_runtime::{Router, Server};

use super::services::{FuzzedImpl, FuzzedServer, StatsImpl, StatsServer};
use super::FUZZ_MAX_FRAME;
use crate::wire::{self, RawPeer};

/// The router target's frame maximum: above the 16 KiB metadata bound, so a call can break it.
pub(super) const ROUTER_MAX_FRAME: usize = 32 * 1024;

/// Target `server_connection`: a server connection receives a valid preface and HELLO and then
/// `data`. It must neither panic nor hang; every frame it sends must be well formed (`wire::parse`
/// checks), and it must close the connection in the end.
pub fn server_connection(data: &[u8]) {
    server_connection_frames(data);
}

/// [`server_connection`], returning the frames the server sent after its HELLO.
pub fn server_connection_frames(data: &[u8]) -> Vec<wire::Frame> {
    serve(Router::from(FuzzedServer::new(FuzzedImpl)), FUZZ_MAX_FRAME, [&wire::greeting()[..], data].concat())
}

/// Target `server_handshake`: as [`server_connection`], but only the preface is valid: `data`
/// starts where the client's HELLO belongs, so the handshake (a missing, malformed, oversized or
/// second HELLO) is fuzzed too.
pub fn server_handshake(data: &[u8]) {
    server_handshake_frames(data);
}

/// [`server_handshake`], returning the frames the server sent after its HELLO (or the goaway it
/// sent in its place).
pub fn server_handshake_frames(data: &[u8]) -> Vec<wire::Frame> {
    serve(Router::from(FuzzedServer::new(FuzzedImpl)), FUZZ_MAX_FRAME, [&wire::PREFACE[..], data].concat())
}

/// Target `server_router`: as [`server_connection`], with a server hosting two services
/// (`Fuzzed` and `admin.Stats`), so routing by name, the unknown-service and signature checks,
/// and metadata over its byte bound are reached.
pub fn server_router(data: &[u8]) {
    server_router_frames(data);
}

/// [`server_router`], returning the frames the server sent after its HELLO.
pub fn server_router_frames(data: &[u8]) -> Vec<wire::Frame> {
    let router = Router::new()
        .add_service(FuzzedServer::new(FuzzedImpl))
        .add_service(StatsServer::new(StatsImpl::default()));
    serve(router, ROUTER_MAX_FRAME, [&wire::greeting()[..], data].concat())
}

/// Runs one server connection on `router` fed `input`, and returns what it sent after its HELLO.
fn serve(router: Router, max_frame: usize, input: Vec<u8>) -> Vec<wire::Frame> {
    super::runtime::block_on(async {
        let (ours, theirs) = memory::pair();
        let (read, write, _, _) = theirs.into_parts();
        let server = Server::new(router).max_frame_len(max_frame).serve_connection(Connection::new(
            read,
            write,
            Peer::Memory,
        ));
        let mut peer = RawPeer::new(ours);
        let mut writer = peer.split_writer();
        // The input is not followed by EOF (a client that hangs up makes the server abort its
        // calls, which would hide the handlers from the fuzzer): the server ends the connection
        // itself, at the latest when its idle (or handshake) timeout fires in paused time.
        let feed = tokio::spawn(async move {
            let _ = writer.send(&input).await;
            writer
        });
        peer.expect_preface().await;
        // Parses (and so checks) every frame until the server closes.
        let frames = peer.until_closed().await;
        tokio::time::timeout(Duration::from_secs(24 * 3600), server.wait())
            .await
            .expect("the server connection ended");
        drop(feed.await.expect("the feeder never panics"));
        frames
    })
}
