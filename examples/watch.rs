//! A watch over a Unix socket: a server-streaming method that tells a client of every change to
//! a key-value store under a prefix, as it happens, until the server shuts down.
//!
//! ```text
//! cargo run -p rpc-examples --example watch
//! ```
//!
//! `watch` returns `Streaming<Change>`: the handler returns any `Stream` (here, the store's
//! broadcast of changes, filtered), and the client reads a `Stream` of `Result<Change, RpcError>`.
//! Each stream has its own credit, so a watcher that reads slowly pauses only its own stream; the
//! call has no deadline (`with_timeout(None)`), so an idle watch stays open. At shutdown the
//! handler sees `Context::shutdown_started` and ends its stream cleanly.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use rpc_runtime::transport::unix;
use rpc_runtime::{service, Context, Server, Streaming};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// One change to the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The key that changed.
    pub key: String,
    /// Its new value.
    pub value: String,
}

/// A key-value store whose changes can be watched.
#[service]
pub trait Kv {
    /// Sets `key` to `value`.
    async fn set(&self, key: String, value: String);
    /// The entries under `prefix` now, then every change under it as it happens.
    async fn watch(&self, prefix: String) -> Streaming<Change>;
}

/// The store: its entries, and a broadcast of every change.
struct Store {
    entries: Mutex<BTreeMap<String, String>>,
    changes: broadcast::Sender<Change>,
}

impl Kv for Store {
    async fn set(&self, key: String, value: String) {
        let mut entries = self.entries.lock().expect("lock");
        entries.insert(key.clone(), value.clone());
        // Under the lock, so a watcher sees each change after its snapshot, exactly once.
        let _ = self.changes.send(Change { key, value });
    }

    async fn watch(&self, prefix: String) -> Streaming<Change> {
        let (snapshot, changes) = {
            let entries = self.entries.lock().expect("lock");
            let snapshot: Vec<Change> = entries
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| Change { key: k.clone(), value: v.clone() })
                .collect();
            (snapshot, self.changes.subscribe())
        };
        let live = futures::stream::unfold(changes, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(change) => return Some((change, rx)),
                    // A watcher that fell more than the channel's capacity behind misses some.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |c| std::future::ready(c.key.starts_with(&prefix)));
        let ctx = Context::current().expect("called by the server");
        let shutdown = Box::pin(async move { ctx.shutdown_started().await });
        Streaming::new(futures::stream::iter(snapshot).chain(live).take_until(shutdown))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let dir = std::env::temp_dir().join(format!("rpc-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("kv.sock");
    let store = Store { entries: Mutex::default(), changes: broadcast::channel(64).0 };
    let server = Server::new(KvServer::new(store)).serve(unix::bind(&path).await?);

    let writer = KvClient::new(unix::connect(&path).await?);
    writer.set("colour/sky".into(), "blue".into()).await?;
    // A watch has no deadline: it stays open for as long as the watcher wants it.
    let watcher = KvClient::new(unix::connect(&path).await?).with_timeout(None);
    let mut changes = watcher.watch("colour/".into()).await?;
    let first = changes.next().await.expect("the snapshot")?;
    println!("snapshot: {} = {}", first.key, first.value);

    for (key, value) in [("colour/grass", "green"), ("size/shoe", "42"), ("colour/sky", "grey")] {
        writer.set(key.into(), value.into()).await?;
    }
    for _ in 0..2 {
        let change = changes.next().await.expect("a change")?;
        println!("changed:  {} = {}", change.key, change.value);
    }

    server.shutdown(Duration::from_secs(5)).await;
    // The handler saw the shutdown and ended its stream: a clean end, not an error.
    println!("watch ended: {:?}", changes.next().await.map(|c| c.map(|c| c.key)));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
