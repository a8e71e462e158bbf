//! A service trait named `S` (tarpc's generated code calls its own type parameter `S`).
#![deny(warnings)]

use rpc_runtime::service;

#[service]
pub trait S {
    async fn s(&self, s: u8) -> u8;
}

struct Impl;

impl S for Impl {
    async fn s(&self, s: u8) -> u8 {
        s
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let server = SServer::new(Impl);
    assert!(matches!(server.handle(SRequest::S { s: 4 }).await, SResponse::S(4)));
}
