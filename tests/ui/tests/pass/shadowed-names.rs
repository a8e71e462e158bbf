//! User items named like what generated code uses (`Result`, `Box`, `Option`, `Vec`, `String`,
//! `S`, a module `core`, `Send`) do not confuse the expansion, and may appear in the
//! signatures themselves.
#![deny(warnings)]
#![allow(dead_code)]

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};
use serde::{Deserialize, Serialize};

mod core {}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct S(pub u8);
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Box;
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Option;
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Vec;
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct String;
pub struct Send;
pub type Result<T> = ::std::result::Result<T, S>;

#[service]
pub trait Shadows {
    async fn wrap(&self, s: S, b: Box, o: Option, v: Vec, t: String) -> Result<S>;
}

struct Impl;

impl Shadows for Impl {
    async fn wrap(&self, s: S, _b: Box, _o: Option, _v: Vec, _t: String) -> Result<S> {
        if s.0 == 0 {
            Err(s)
        } else {
            Ok(S(s.0 + 1))
        }
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(ShadowsServer::new(Impl)).serve(listener);
    let client = ShadowsClient::new(connector.connect().unwrap());
    assert_eq!(client.wrap(S(1), Box, Option, Vec, String).await.unwrap(), Ok(S(2)));
    assert_eq!(client.wrap(S(0), Box, Option, Vec, String).await.unwrap(), Err(S(0)));
}
