//! Raw identifiers as method and argument names: `r#type` is the method `type` on the wire and
//! the variant `Type` in the messages.
#![deny(warnings)]

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};

#[service]
pub trait Keywords {
    async fn r#type(&self, r#in: String) -> String;
    async fn r#match(&self, r#ref: u8, r#fn: u8) -> u8;
}

struct Impl;

impl Keywords for Impl {
    async fn r#type(&self, r#in: String) -> String {
        r#in
    }

    async fn r#match(&self, r#ref: u8, r#fn: u8) -> u8 {
        r#ref + r#fn
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let request = KeywordsRequest::Type { r#in: "x".to_owned() };
    assert_eq!(request.method_name(), "type");
    let server = KeywordsServer::new(Impl);
    assert!(matches!(server.handle(request).await, KeywordsResponse::Type(s) if s == "x"));

    let (listener, connector) = memory::listener();
    let _server = Server::new(server).serve(listener);
    let client = KeywordsClient::new(connector.connect().unwrap());
    assert_eq!(client.r#type("y".to_owned()).await.unwrap(), "y");
    assert_eq!(client.r#match(1, 2).await.unwrap(), 3);
}
