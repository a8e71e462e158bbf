//! `#[cfg]` and doc comments on methods carry over to every generated item: a method configured
//! out disappears from the client, the server and the messages, so the impl need not have it.
#![deny(warnings)]

use rpc_runtime::service;

/// A service with configured methods.
#[service]
pub trait Configured {
    /// Always here.
    async fn kept(&self) -> u8;

    /// Never compiled: `any()` is false.
    #[cfg(any())]
    async fn dropped(&self, value: NotEvenDeclared) -> u8;

    /// Compiled: `all()` is true.
    #[cfg(all())]
    async fn also_kept(&self, value: u8) -> u8;
}

struct Impl;

impl Configured for Impl {
    async fn kept(&self) -> u8 {
        1
    }

    async fn also_kept(&self, value: u8) -> u8 {
        value
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let server = ConfiguredServer::new(Impl);
    let response = server.handle(ConfiguredRequest::AlsoKept { value: 7 }).await;
    assert!(matches!(response, ConfiguredResponse::AlsoKept(7)));
    let response = server.handle(ConfiguredRequest::Kept {}).await;
    assert!(matches!(response, ConfiguredResponse::Kept(1)));
}
