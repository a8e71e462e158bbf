//! Methods without arguments, without a return type, returning `()` explicitly, one-way, and a
//! service with no methods at all.
#![deny(warnings)]

use std::sync::atomic::{AtomicU32, Ordering};

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};

#[service]
pub trait Counter {
    async fn increment(&self);
    async fn reset(&self) -> ();
    async fn get(&self) -> u32;
    #[oneway]
    async fn poke(&self);
}

#[service]
pub trait Empty {}

struct Impl(AtomicU32);

impl Counter for Impl {
    async fn increment(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    async fn reset(&self) -> () {
        self.0.store(0, Ordering::SeqCst);
    }

    async fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    async fn poke(&self) {}
}

struct Nothing;

impl Empty for Nothing {}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(CounterServer::new(Impl(AtomicU32::new(0)))).serve(listener);
    let client = CounterClient::new(connector.connect().unwrap());
    client.increment().await.unwrap();
    client.increment().await.unwrap();
    assert_eq!(client.get().await.unwrap(), 2);
    client.reset().await.unwrap();
    client.poke().await.unwrap();
    assert_eq!(client.get().await.unwrap(), 0);

    let (listener, connector) = memory::listener();
    let _empty = Server::new(EmptyServer::new(Nothing)).serve(listener);
    let _client = EmptyClient::new(connector.connect().unwrap());
}
