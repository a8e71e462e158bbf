#![deny(warnings)]

//! Every stream kind, with other arguments beside the stream, over an in-memory connection.

use futures::StreamExt;
use rpc_runtime::{service, transport::memory, Server, Streaming};

#[service]
pub trait Kv {
    /// Server stream.
    async fn watch(&self, prefix: String, limit: u32) -> Streaming<String>;
    /// Client stream, with an argument after the stream.
    async fn upload(&self, chunks: Streaming<Vec<u8>>, salt: u64) -> u64;
    /// Bidirectional, with application errors mid-stream.
    async fn chat(&self, inbox: Streaming<String>) -> Streaming<Result<String, String>>;
}

struct Impl;

impl Kv for Impl {
    async fn watch(&self, prefix: String, limit: u32) -> Streaming<String> {
        Streaming::iter((0..limit).map(move |i| format!("{prefix}{i}")))
    }

    async fn upload(&self, chunks: Streaming<Vec<u8>>, salt: u64) -> u64 {
        chunks.fold(salt, |n, c| async move { n + c.map_or(0, |c| c.len() as u64) }).await
    }

    async fn chat(&self, inbox: Streaming<String>) -> Streaming<Result<String, String>> {
        Streaming::new(inbox.map(|line| match line {
            Ok(l) if l.is_empty() => Err("empty".to_string()),
            Ok(l) => Ok(l.to_uppercase()),
            Err(e) => Err(e.to_string()),
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(KvServer::new(Impl)).serve(listener);
    let client = KvClient::new(connector.connect().unwrap());
    let got: Vec<String> = client.watch("k".into(), 3).await.unwrap().map(|r| r.unwrap()).collect().await;
    assert_eq!(got, ["k0", "k1", "k2"]);
    let chunks = futures::stream::iter([vec![1u8; 3], vec![2; 4]]);
    assert_eq!(client.upload(chunks, 100).await.unwrap(), 107);
    let lines = futures::stream::iter(["a".to_string(), String::new()]);
    let got: Vec<_> = client.chat(lines).await.unwrap().map(|r| r.unwrap()).collect().await;
    assert_eq!(got, [Ok("A".to_string()), Err("empty".to_string())]);
}
