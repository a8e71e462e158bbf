//! `#[deprecated]` on a method warns callers of the client method (see
//! `ui/deprecated/client-call.rs`), and nowhere in the generated code: this compiles under
//! `deny(warnings)` with the method declared, implemented, served and called with the warning
//! allowed.
#![deny(warnings)]

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};

#[service]
pub trait Calculator {
    /// Adds two numbers.
    #[deprecated(note = "use `add` instead")]
    async fn plus(&self, a: i64, b: i64) -> i64;
    async fn add(&self, a: i64, b: i64) -> i64;
    #[deprecated]
    #[oneway]
    async fn reset(&self);
}

struct Impl;

impl Calculator for Impl {
    async fn plus(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn reset(&self) {}
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(CalculatorServer::new(Impl)).serve(listener);
    let client = CalculatorClient::new(connector.connect().unwrap());
    assert_eq!(client.add(1, 2).await.unwrap(), 3);
    #[allow(deprecated)]
    let sum = client.plus(1, 2).await.unwrap();
    assert_eq!(sum, 3);
    #[allow(deprecated)]
    client.reset().await.unwrap();
}
