//! The client target: a real `Client` (in memory, paused Tokio time) with calls in flight,
//! reading fuzzed bytes from a hand-written server.

use std::time::Duration;

use rpc_runtime::transport::memory;
use rpc_runtime::{Client, Hello, RpcError};

use super::services::FuzzedClient;
use super::FUZZ_MAX_FRAME;
use crate::wire::{self, RawPeer};

/// What the client target's calls returned, and what the client sent.
#[derive(Debug)]
pub struct ClientResults {
    /// `add(1, 2)`, call id 1.
    pub add: Result<u64, RpcError>,
    /// `echo(b"hi")`, call id 2.
    pub echo: Result<Vec<u8>, RpcError>,
    /// `sleep(5)`, call id 3.
    pub sleep: Result<u64, RpcError>,
    /// The one-way `note(4)`, call id 4.
    pub note: Result<(), RpcError>,
    /// The server's HELLO as the client took it, if it did.
    pub hello: Option<Hello>,
    /// Every frame the client sent after its preface and HELLO.
    pub sent: Vec<wire::Frame>,
}

/// Target `client_connection`: a client makes three calls and a one-way call (ids 1 to 4, 10 s
/// deadlines, keepalive every 2 s) and reads `data` after a valid server preface: a HELLO (or
/// not), replies, errors, goaways, pings, stream frames. The server's side is never closed, so
/// calls left unanswered end by their deadline. Nothing may panic or hang; every call must end;
/// every frame the client sends must be well formed, and the client must close the connection
/// once dropped.
pub fn client_connection(data: &[u8]) {
    client_connection_results(data);
}

/// [`client_connection`], returning what the calls returned and what the client sent.
pub fn client_connection_results(data: &[u8]) -> ClientResults {
    super::runtime::block_on(async {
        let (ours, theirs) = memory::pair();
        let client = Client::builder()
            .max_frame_len(FUZZ_MAX_FRAME)
            .timeout(Duration::from_secs(10))
            .keepalive(Duration::from_secs(2))
            .build(ours);
        let mut server = RawPeer::new(theirs);
        let mut writer = server.split_writer();
        let input = [&wire::PREFACE[..], data].concat();
        let feed = tokio::spawn(async move {
            let _ = writer.send(&input).await;
            writer
        });
        // Checks the client's preface and HELLO, then parses (and so checks) every frame it
        // sends until it closes.
        let sent = tokio::spawn(async move {
            server.expect_preface().await;
            server.until_closed().await
        });
        let api = FuzzedClient::from_client(client.clone());
        let guard = Duration::from_secs(24 * 3600);
        let calls =
            async { tokio::join!(api.add(1, 2), api.echo(b"hi".to_vec()), api.sleep(5), api.note(4)) };
        let (add, echo, sleep, note) = tokio::time::timeout(guard, calls).await.expect("every call ended");
        let hello = client.server_hello();
        drop((api, client));
        let sent = tokio::time::timeout(guard, sent)
            .await
            .expect("the client closed the connection once dropped")
            .expect("the client's frames are well formed");
        // The feeder ends once the client's read side is gone, if the input did not fit before.
        drop(
            tokio::time::timeout(guard, feed)
                .await
                .expect("the feeder ended")
                .expect("the feeder never panics"),
        );
        ClientResults { add, echo, sleep, note, hello, sent }
    })
}
