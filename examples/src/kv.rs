//! The key-value service of the `fifo_server` and `fifo_client` examples, shared by both.

use std::collections::HashMap;
use std::sync::Mutex;

use rpc_runtime::service;

/// A key-value store shared by every client of one server.
#[service]
pub trait KeyValue {
    /// Stores `value` under `key` and returns the value it replaces.
    async fn set(&self, key: String, value: String) -> Option<String>;
    /// Returns the value under `key`.
    async fn get(&self, key: String) -> Option<String>;
    /// Describes the caller as the server sees it (for a Unix socket: its uid and pid).
    async fn whoami(&self) -> String;
}

/// An in-memory store.
#[derive(Debug, Default)]
pub struct Store(Mutex<HashMap<String, String>>);

impl KeyValue for Store {
    async fn set(&self, key: String, value: String) -> Option<String> {
        self.0.lock().unwrap().insert(key, value)
    }

    async fn get(&self, key: String) -> Option<String> {
        self.0.lock().unwrap().get(&key).cloned()
    }

    async fn whoami(&self) -> String {
        rpc_runtime::Context::current().map_or_else(|| "unknown".into(), |cx| cx.peer().to_string())
    }
}

/// The well-known FIFO both examples use unless given a path.
pub fn default_path() -> std::path::PathBuf {
    std::env::temp_dir().join("rpc-kv.fifo")
}
