//! The expansion of `#[service]` checked as a user's library sees it, in the normal
//! `cargo test` and `cargo clippy --all-targets` runs (like thiserror's `test_lints.rs`):
//!
//! - the runtime is renamed in `Cargo.toml` (`rpc2`) and named with `crate = "::rpc2"`;
//! - the generated items are clean under the strict rustc lints below and clippy's pedantic
//!   group, for public, crate-visible and private services.
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    rust_2018_idioms,
    clippy::pedantic
)]

use serde::{Deserialize, Serialize};

/// A value that crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// Why a lookup failed.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreError {
    /// There is no such key.
    Missing,
}

/// A public service: every generated item is public and documented.
#[rpc2::service(crate = "::rpc2")]
pub trait Store {
    /// Stores an entry.
    async fn put(&self, entry: Entry);
    /// Looks a key up.
    async fn get(&self, key: String) -> Result<Entry, StoreError>;
    /// Counts the entries.
    async fn len(&self) -> usize;
    /// Forgets everything; the client does not wait.
    #[oneway]
    async fn clear(&self);
}

/// A crate-visible service: generated items are `pub(crate)`, so `unreachable_pub` is quiet.
#[rpc2::service(crate = "::rpc2")]
pub(crate) trait Internal {
    /// Pings.
    async fn ping(&self) -> u64;
}

mod private {
    /// A private service in a private module.
    #[rpc2::service(crate = "::rpc2")]
    trait Hidden {
        /// Does nothing.
        async fn nothing(&self);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use rpc2::transport::memory;
    use rpc2::Server;

    use super::{Entry, Store, StoreClient, StoreError, StoreServer};

    #[derive(Default)]
    struct MemoryStore(Mutex<HashMap<String, Vec<u8>>>);

    impl Store for MemoryStore {
        async fn put(&self, entry: Entry) {
            let _previous = self.0.lock().unwrap().insert(entry.key, entry.value);
        }

        async fn get(&self, key: String) -> Result<Entry, StoreError> {
            let value = self.0.lock().unwrap().get(&key).cloned().ok_or(StoreError::Missing)?;
            Ok(Entry { key, value })
        }

        async fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }

        async fn clear(&self) {
            self.0.lock().unwrap().clear();
        }
    }

    #[tokio::test]
    async fn calls_through_the_renamed_runtime() {
        let (listener, connector) = memory::listener();
        let _server = Server::new(StoreServer::new(MemoryStore::default())).serve(listener);
        let client = StoreClient::new(connector.connect().unwrap());
        let entry = Entry { key: "k".into(), value: vec![1, 2] };
        client.put(entry.clone()).await.unwrap();
        assert_eq!(client.get("k".into()).await.unwrap(), Ok(entry));
        assert_eq!(client.get("x".into()).await.unwrap(), Err(StoreError::Missing));
        assert_eq!(client.len().await.unwrap(), 1);
        client.clear().await.unwrap();
        assert_eq!(client.len().await.unwrap(), 0);
        assert!(format!("{client:?}").starts_with("Client"));
    }
}
