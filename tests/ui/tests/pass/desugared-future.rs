//! A method written in the form `async fn` desugars to, `fn m(&self) -> impl Future<Output = T>`
//! (with or without `+ Send`), is accepted as `async fn m(&self) -> T`; the impl may use either
//! form.
#![deny(warnings)]

use std::future::Future;

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};

#[service]
pub trait Counter {
    /// Adds `by` and returns the new total.
    fn add(&self, by: u64) -> impl Future<Output = u64> + Send;
    fn get(&self) -> impl std::future::Future<Output = u64>;
    fn reset(&self) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send;
}

#[derive(Default)]
struct Impl(std::sync::atomic::AtomicU64);

impl Counter for Impl {
    fn add(&self, by: u64) -> impl Future<Output = u64> + Send {
        let total = self.0.fetch_add(by, std::sync::atomic::Ordering::SeqCst) + by;
        async move { total }
    }

    async fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn reset(&self) {
        self.0.store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(CounterServer::new(Impl::default())).serve(listener);
    let client = CounterClient::new(connector.connect().unwrap());
    assert_eq!(client.add(2).await.unwrap(), 2);
    assert_eq!(client.add(3).await.unwrap(), 5);
    assert_eq!(client.get().await.unwrap(), 5);
    client.reset().await.unwrap();
    assert_eq!(client.get().await.unwrap(), 0);
}
