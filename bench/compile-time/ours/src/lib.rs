//! 20 methods with `#[rpc_runtime::service]`; keep in step with `../tarpc/src/lib.rs`.
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
#[rpc_runtime::service]
pub trait Bench {
    /// Method 0.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Method 1.
    async fn echo(&self, name: String) -> String;
    /// Method 2.
    async fn size(&self, data: Vec<u8>) -> usize;
    /// Method 3.
    async fn lookup(&self, key: String) -> Option<String>;
    /// Method 4.
    async fn store(&self, item: Item) -> Item;
    /// Method 5.
    async fn ids(&self, items: Vec<Item>) -> Vec<u64>;
    /// Method 6.
    async fn fetch(&self, id: u64) -> Result<Item, Failure>;
    /// Method 7.
    async fn flags(&self, flag: bool, count: u32) -> Vec<bool>;
    /// Method 8.
    async fn repeat(&self, text: String, times: u8) -> String;
    /// Method 9.
    async fn total(&self, map: HashMap<String, u64>) -> u64;
    /// Method 10.
    async fn add2(&self, a: u64, b: u64) -> u64;
    /// Method 11.
    async fn echo2(&self, name: String) -> String;
    /// Method 12.
    async fn size2(&self, data: Vec<u8>) -> usize;
    /// Method 13.
    async fn lookup2(&self, key: String) -> Option<String>;
    /// Method 14.
    async fn store2(&self, item: Item) -> Item;
    /// Method 15.
    async fn ids2(&self, items: Vec<Item>) -> Vec<u64>;
    /// Method 16.
    async fn fetch2(&self, id: u64) -> Result<Item, Failure>;
    /// Method 17.
    async fn flags2(&self, flag: bool, count: u32) -> Vec<bool>;
    /// Method 18.
    async fn repeat2(&self, text: String, times: u8) -> String;
    /// Method 19.
    async fn total2(&self, map: HashMap<String, u64>) -> u64;
}

/// The implementation.
pub struct Impl;

impl Bench for Impl {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn echo(&self, name: String) -> String {
        name
    }

    async fn size(&self, data: Vec<u8>) -> usize {
        data.len()
    }

    async fn lookup(&self, key: String) -> Option<String> {
        Some(key)
    }

    async fn store(&self, item: Item) -> Item {
        item
    }

    async fn ids(&self, items: Vec<Item>) -> Vec<u64> {
        items.into_iter().map(|i| i.id).collect()
    }

    async fn fetch(&self, id: u64) -> Result<Item, Failure> {
        Err(Failure::NotFound(id))
    }

    async fn flags(&self, flag: bool, count: u32) -> Vec<bool> {
        vec![flag; count as usize]
    }

    async fn repeat(&self, text: String, times: u8) -> String {
        text.repeat(times.into())
    }

    async fn total(&self, map: HashMap<String, u64>) -> u64 {
        map.values().sum()
    }

    async fn add2(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn echo2(&self, name: String) -> String {
        name
    }

    async fn size2(&self, data: Vec<u8>) -> usize {
        data.len()
    }

    async fn lookup2(&self, key: String) -> Option<String> {
        Some(key)
    }

    async fn store2(&self, item: Item) -> Item {
        item
    }

    async fn ids2(&self, items: Vec<Item>) -> Vec<u64> {
        items.into_iter().map(|i| i.id).collect()
    }

    async fn fetch2(&self, id: u64) -> Result<Item, Failure> {
        Err(Failure::NotFound(id))
    }

    async fn flags2(&self, flag: bool, count: u32) -> Vec<bool> {
        vec![flag; count as usize]
    }

    async fn repeat2(&self, text: String, times: u8) -> String {
        text.repeat(times.into())
    }

    async fn total2(&self, map: HashMap<String, u64>) -> u64 {
        map.values().sum()
    }
}
