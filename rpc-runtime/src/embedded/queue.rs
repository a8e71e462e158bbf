//! The caller's side of the file-backed queue: store a call, fetch or wait for its outcome.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::store::Store;
use crate::call::{Call, MethodRef};
use crate::codec::{self, Format};
use crate::describe::MethodKind;
use crate::queued::{self, CallHandle, CallState, PersistentQueue, QueueFuture};
use crate::RpcError;

/// How a [`FileQueue`] and its [`FileWorker`](super::FileWorker)s behave; callers and workers of
/// one file should agree.
#[derive(Debug, Clone)]
pub struct FileQueueConfig {
    /// How long an outcome is kept after it is written (default 24 h); fetched later, it is
    /// [`CallState::Expired`]. Within it, a second submission of the same id stores nothing.
    pub retention: Duration,
    /// How many times a call is delivered before it is dead-lettered (default 5).
    pub max_attempts: u32,
    /// How long a worker may run a call before another worker (or the same one) may take it
    /// again (default 30 s): a worker killed while running a call leaves it for this long.
    pub ack_wait: Duration,
    /// How often a waiter looks at the file for other processes' writes (default 50 ms); writes
    /// from this process wake waiters at once.
    pub poll_interval: Duration,
    /// The largest call stored, its body and metadata together (default 1 MiB, as NATS's
    /// default `max_payload`): a larger one is refused with [`RpcError::FrameTooLarge`], so a
    /// worker never loads more than this per call.
    pub max_call_bytes: usize,
}

impl Default for FileQueueConfig {
    fn default() -> Self {
        FileQueueConfig {
            retention: Duration::from_secs(24 * 60 * 60),
            max_attempts: 5,
            ack_wait: Duration::from_secs(30),
            poll_interval: Duration::from_millis(50),
            max_call_bytes: 1024 * 1024,
        }
    }
}

/// Persistent calls in a SQLite file, the embedded counterpart of
/// `nats::CallQueue` (feature `nats`) with the same guarantees (`docs/embedded.md`):
/// a call is on disk (committed, `fsync`ed) before [`submit`](FileQueue::submit) returns; it
/// runs at least once, by whichever [`FileWorker`](super::FileWorker) of the file is up, in this
/// process or another; one id is stored and run once; a call whose attempts keep failing is
/// dead-lettered; outcomes are kept for `retention`; deadlines are absolute times.
#[derive(Clone)]
pub struct FileQueue {
    store: Arc<Store>,
    config: Arc<FileQueueConfig>,
}

impl FileQueue {
    /// Opens the queue file at `path` (created when missing).
    ///
    /// # Errors
    ///
    /// [`RpcError::Io`] if the file cannot be opened or is not a queue file.
    pub async fn open(path: impl AsRef<Path>, config: FileQueueConfig) -> Result<FileQueue, RpcError> {
        let path: PathBuf = path.as_ref().to_owned();
        let store = blocking(move || Store::open(&path)).await?;
        Ok(FileQueue { store: Arc::new(store), config: Arc::new(config) })
    }

    /// Stores `call` under a fresh id; returns once it is on disk.
    pub async fn submit(&self, call: Call) -> Result<CallHandle, RpcError> {
        self.submit_with_id(call, &queued::new_call_id()).await
    }

    /// Stores a call of `method` with `args` (the tuple of its arguments) encoded in postcard.
    pub async fn submit_method<A: Serialize>(
        &self,
        method: &'static MethodRef,
        args: A,
    ) -> Result<CallHandle, RpcError> {
        let body = codec::encode_to_vec(Format::Postcard, &args)?;
        self.submit(Call::new(method, Format::Postcard, body)).await
    }

    /// Stores `call` under `id` (letters, digits, `-`, `_`, `=`). An id already stored (pending,
    /// or done within the retention) stores nothing: the call runs once.
    pub async fn submit_with_id(&self, call: Call, id: &str) -> Result<CallHandle, RpcError> {
        queued::check_id(id)?;
        call.metadata.check()?;
        if !matches!(call.kind, MethodKind::Unary | MethodKind::Oneway) {
            return Err(RpcError::Encode(format!(
                "`{}.{}` is a {} method: streams cannot be stored",
                call.service, call.method, call.kind
            )));
        }
        let len = call.body.len() + call.metadata.byte_len();
        if len > self.config.max_call_bytes {
            return Err(RpcError::FrameTooLarge { len, max: self.config.max_call_bytes });
        }
        if call.deadline.is_some_and(|d| d <= Instant::now()) {
            // Stored all the same, so the outcome is there to fetch: a worker ends it without
            // running it.
            tracing::debug!(target: "rpc_runtime::embedded", id, "stored a call whose deadline has passed");
        }
        let (store, owned) = (Arc::clone(&self.store), id.to_owned());
        blocking(move || store.submit(&call, &owned)).await?;
        Ok(CallHandle { id: id.to_owned() })
    }

    /// What became of the call `id`, now.
    pub async fn fetch_result(&self, id: &str) -> Result<CallState, RpcError> {
        let (store, id, retention) = (Arc::clone(&self.store), id.to_owned(), self.config.retention);
        blocking(move || store.fetch(&id, retention)).await
    }

    /// Waits until the call `id` is no longer pending, or `timeout` passes (then
    /// [`CallState::Pending`]). Woken at once by a worker in this process; a worker in another
    /// process is seen within `poll_interval`.
    pub async fn wait_result(&self, id: &str, timeout: Duration) -> Result<CallState, RpcError> {
        let end = Instant::now() + timeout;
        loop {
            let changed = self.store.changed.notified();
            tokio::pin!(changed);
            // Registered before the read, so a write in between is not missed.
            changed.as_mut().enable();
            let state = self.fetch_result(id).await?;
            if !state.is_pending() || Instant::now() >= end {
                return Ok(state);
            }
            let poll = (Instant::now() + self.config.poll_interval).min(end);
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(poll) => {}
            }
        }
    }

    /// Removes the outcomes older than the retention now (workers also do it as they go);
    /// returns how many.
    pub async fn purge(&self) -> Result<usize, RpcError> {
        let (store, retention) = (Arc::clone(&self.store), self.config.retention);
        blocking(move || store.purge(retention)).await
    }

    /// The queue's configuration.
    pub fn config(&self) -> &FileQueueConfig {
        &self.config
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl PersistentQueue for FileQueue {
    fn submit_with_id<'a>(&'a self, call: Call, id: &'a str) -> QueueFuture<'a, CallHandle> {
        Box::pin(FileQueue::submit_with_id(self, call, id))
    }
    fn fetch_result<'a>(&'a self, id: &'a str) -> QueueFuture<'a, CallState> {
        Box::pin(FileQueue::fetch_result(self, id))
    }
    fn wait_result<'a>(&'a self, id: &'a str, timeout: Duration) -> QueueFuture<'a, CallState> {
        Box::pin(FileQueue::wait_result(self, id, timeout))
    }
}

impl fmt::Debug for FileQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileQueue").field("config", &self.config).finish()
    }
}

/// Runs a SQLite operation off the async threads (it may wait on the disk or another process's
/// lock).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RpcError> + Send + 'static,
) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(RpcError::Cancelled("the queue file operation did not finish".into())))
}
