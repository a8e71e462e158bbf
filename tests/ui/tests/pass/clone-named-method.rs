//! Methods named like ones the generated code calls on its own values (`clone`, `fmt`,
//! `handle`, `encode`, `call`) still call the user's implementation.
#![deny(warnings)]

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};

#[service]
pub trait Names {
    async fn clone(&self) -> u8;
    async fn encode(&self, call: u8) -> u8;
    async fn handle(&self, method: String, payload: Vec<u8>) -> usize;
}

struct Impl;

impl Names for Impl {
    async fn clone(&self) -> u8 {
        1
    }

    async fn encode(&self, call: u8) -> u8 {
        call
    }

    async fn handle(&self, method: String, payload: Vec<u8>) -> usize {
        method.len() + payload.len()
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(NamesServer::new(Impl)).serve(listener);
    let client = NamesClient::new(connector.connect().unwrap());
    assert_eq!(client.clone().await.unwrap(), 1);
    assert_eq!(client.encode(5).await.unwrap(), 5);
    assert_eq!(client.handle("ab".into(), vec![0; 3]).await.unwrap(), 5);
}
