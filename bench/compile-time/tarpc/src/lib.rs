//! 20 methods with `#[tarpc::service]`; keep in step with `../ours/src/lib.rs`.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// An application error.
#[derive(Debug, Serialize, Deserialize)]
pub enum Failure {
    /// No such item.
    NotFound(u64),
}

/// The benchmark service.
#[tarpc::service]
pub trait Bench {
    /// Method 0.
    async fn add(a: u64, b: u64) -> u64;
    /// Method 1.
    async fn echo(name: String) -> String;
    /// Method 2.
    async fn size(data: Vec<u8>) -> usize;
    /// Method 3.
    async fn lookup(key: String) -> Option<String>;
    /// Method 4.
    async fn store(item: Item) -> Item;
    /// Method 5.
    async fn ids(items: Vec<Item>) -> Vec<u64>;
    /// Method 6.
    async fn fetch(id: u64) -> Result<Item, Failure>;
    /// Method 7.
    async fn flags(flag: bool, count: u32) -> Vec<bool>;
    /// Method 8.
    async fn repeat(text: String, times: u8) -> String;
    /// Method 9.
    async fn total(map: HashMap<String, u64>) -> u64;
    /// Method 10.
    async fn add2(a: u64, b: u64) -> u64;
    /// Method 11.
    async fn echo2(name: String) -> String;
    /// Method 12.
    async fn size2(data: Vec<u8>) -> usize;
    /// Method 13.
    async fn lookup2(key: String) -> Option<String>;
    /// Method 14.
    async fn store2(item: Item) -> Item;
    /// Method 15.
    async fn ids2(items: Vec<Item>) -> Vec<u64>;
    /// Method 16.
    async fn fetch2(id: u64) -> Result<Item, Failure>;
    /// Method 17.
    async fn flags2(flag: bool, count: u32) -> Vec<bool>;
    /// Method 18.
    async fn repeat2(text: String, times: u8) -> String;
    /// Method 19.
    async fn total2(map: HashMap<String, u64>) -> u64;
}

/// The implementation.
#[derive(Clone)]
pub struct Impl;

impl Bench for Impl {
    async fn add(self, _: tarpc::context::Context, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn echo(self, _: tarpc::context::Context, name: String) -> String {
        name
    }

    async fn size(self, _: tarpc::context::Context, data: Vec<u8>) -> usize {
        data.len()
    }

    async fn lookup(self, _: tarpc::context::Context, key: String) -> Option<String> {
        Some(key)
    }

    async fn store(self, _: tarpc::context::Context, item: Item) -> Item {
        item
    }

    async fn ids(self, _: tarpc::context::Context, items: Vec<Item>) -> Vec<u64> {
        items.into_iter().map(|i| i.id).collect()
    }

    async fn fetch(self, _: tarpc::context::Context, id: u64) -> Result<Item, Failure> {
        Err(Failure::NotFound(id))
    }

    async fn flags(self, _: tarpc::context::Context, flag: bool, count: u32) -> Vec<bool> {
        vec![flag; count as usize]
    }

    async fn repeat(self, _: tarpc::context::Context, text: String, times: u8) -> String {
        text.repeat(times.into())
    }

    async fn total(self, _: tarpc::context::Context, map: HashMap<String, u64>) -> u64 {
        map.values().sum()
    }

    async fn add2(self, _: tarpc::context::Context, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn echo2(self, _: tarpc::context::Context, name: String) -> String {
        name
    }

    async fn size2(self, _: tarpc::context::Context, data: Vec<u8>) -> usize {
        data.len()
    }

    async fn lookup2(self, _: tarpc::context::Context, key: String) -> Option<String> {
        Some(key)
    }

    async fn store2(self, _: tarpc::context::Context, item: Item) -> Item {
        item
    }

    async fn ids2(self, _: tarpc::context::Context, items: Vec<Item>) -> Vec<u64> {
        items.into_iter().map(|i| i.id).collect()
    }

    async fn fetch2(self, _: tarpc::context::Context, id: u64) -> Result<Item, Failure> {
        Err(Failure::NotFound(id))
    }

    async fn flags2(self, _: tarpc::context::Context, flag: bool, count: u32) -> Vec<bool> {
        vec![flag; count as usize]
    }

    async fn repeat2(self, _: tarpc::context::Context, text: String, times: u8) -> String {
        text.repeat(times.into())
    }

    async fn total2(self, _: tarpc::context::Context, map: HashMap<String, u64>) -> u64 {
        map.values().sum()
    }
}
