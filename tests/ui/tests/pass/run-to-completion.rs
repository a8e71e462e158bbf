//! `#[rpc(run_to_completion)]` on some methods, and on every method of a service (the generated
//! dispatch then has no other arm, and must still compile without warnings).
#![deny(warnings)]

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};

#[service]
pub trait Mixed {
    #[rpc(run_to_completion)]
    async fn commit(&self, id: u64) -> u64;
    async fn peek(&self) -> u64;
}

#[service]
pub trait AllComplete {
    #[rpc(run_to_completion, name = "save")]
    async fn store(&self, id: u64) -> u64;
}

struct Impl;

impl Mixed for Impl {
    async fn commit(&self, id: u64) -> u64 {
        id
    }

    async fn peek(&self) -> u64 {
        0
    }
}

impl AllComplete for Impl {
    async fn store(&self, id: u64) -> u64 {
        id + 1
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(MixedServer::new(Impl)).serve(listener);
    let client = MixedClient::new(connector.connect().unwrap());
    assert_eq!(client.commit(7).await.unwrap(), 7);
    assert_eq!(client.peek().await.unwrap(), 0);

    let (listener, connector) = memory::listener();
    let _server = Server::new(AllCompleteServer::new(Impl)).serve(listener);
    let client = AllCompleteClient::new(connector.connect().unwrap());
    assert_eq!(client.store(1).await.unwrap(), 2);
}
