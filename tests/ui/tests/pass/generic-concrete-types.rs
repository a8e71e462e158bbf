//! Deeply generic concrete types, tuples, arrays, `'static` borrows inside owned types and
//! paths with leading `::` cross the wire.
#![deny(warnings)]

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use rpc_runtime::transport::memory;
use rpc_runtime::{service, Server};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MyType {
    pub id: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum MyError {
    Empty,
}

#[service]
pub trait Nested {
    async fn count(&self, maps: Vec<HashMap<String, MyType>>) -> Result<usize, MyError>;
    async fn pair(&self, pair: (u8, [u16; 4]), name: Cow<'static, str>) -> (String, Option<Box<MyType>>);
    async fn sorted(
        &self,
        map: ::std::collections::BTreeMap<u32, Vec<Option<MyType>>>,
    ) -> BTreeMap<u32, usize>;
}

struct Impl;

impl Nested for Impl {
    async fn count(&self, maps: Vec<HashMap<String, MyType>>) -> Result<usize, MyError> {
        match maps.iter().map(HashMap::len).sum() {
            0 => Err(MyError::Empty),
            n => Ok(n),
        }
    }

    async fn pair(&self, pair: (u8, [u16; 4]), name: Cow<'static, str>) -> (String, Option<Box<MyType>>) {
        (format!("{name}{}", pair.1[3]), Some(Box::new(MyType { id: pair.0.into() })))
    }

    async fn sorted(&self, map: BTreeMap<u32, Vec<Option<MyType>>>) -> BTreeMap<u32, usize> {
        map.into_iter().map(|(k, v)| (k, v.len())).collect()
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() {
    let (listener, connector) = memory::listener();
    let _server = Server::new(NestedServer::new(Impl)).serve(listener);
    let client = NestedClient::new(connector.connect().unwrap());
    let map = HashMap::from([("a".to_owned(), MyType { id: 1 })]);
    assert_eq!(client.count(vec![map.clone(), map]).await.unwrap(), Ok(2));
    assert_eq!(client.count(Vec::new()).await.unwrap(), Err(MyError::Empty));
    let (text, boxed) = client.pair((3, [0, 0, 0, 9]), Cow::Borrowed("n")).await.unwrap();
    assert_eq!((text.as_str(), boxed), ("n9", Some(Box::new(MyType { id: 3 }))));
    let sorted = client.sorted(BTreeMap::from([(1, vec![None, None])])).await.unwrap();
    assert_eq!(sorted, BTreeMap::from([(1, 2)]));
}
