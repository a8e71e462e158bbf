//! The worker side of the file-backed queue: take a due call, run it with
//! [`Router::serve_call`], store its outcome (the ack), or put it back to be tried again.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rpc_transport::Peer;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::queue::{blocking, FileQueue, FileQueueConfig};
use super::store::{Store, Taken};
use crate::queued::{worth_retrying, CallState};
use crate::{Router, RpcError};

/// Runs the stored calls of a [`Router`]'s services from a [`FileQueue`]'s file: the embedded
/// counterpart of `nats::QueueWorker` (feature `nats`), with the same rules.
///
/// A worker takes a due call and leases it for `ack_wait`; it stores the outcome and so acks the
/// call in one transaction after the handler. A worker killed before that leaves the call to be
/// taken again when the lease ends, by any worker of the file (another process, or a restart).
/// An attempt that failed in a way another might not (the handler panicked, ran past the
/// deadline or was cancelled) is put back after 100 ms × attempts, up to `max_attempts`, and then
/// dead-lettered ([`CallState::DeadLetter`]), as is a call whose last lease ended without an
/// outcome; any other error is final at once. A call whose absolute deadline has passed is not
/// run: its outcome is [`RpcError::DeadlineExceeded`].
#[derive(Debug, Clone)]
pub struct FileWorker {
    router: Router,
    max_concurrent: usize,
}

impl FileWorker {
    /// A worker for `router`'s services.
    pub fn new(router: impl Into<Router>) -> FileWorker {
        FileWorker { router: router.into(), max_concurrent: 64 }
    }

    /// How many stored calls this worker runs at once (default 64).
    #[must_use]
    pub fn max_concurrent(mut self, calls: usize) -> FileWorker {
        self.max_concurrent = calls.max(1);
        self
    }

    /// Starts taking calls from `queue`'s file, with `queue`'s configuration.
    pub fn serve(self, queue: &FileQueue) -> FileWorkerHandle {
        let stop = CancellationToken::new();
        let abandon = CancellationToken::new();
        let tracker = TaskTracker::new();
        let job = Arc::new(Job {
            router: self.router.clone(),
            store: Arc::clone(queue.store()),
            config: queue.config().clone(),
            services: self.router.services().map(|d| d.name()).collect(),
            abandon: abandon.clone(),
        });
        let permits = Arc::new(Semaphore::new(self.max_concurrent));
        let task = tokio::spawn(take_loop(job, permits, stop.clone(), tracker.clone()));
        FileWorkerHandle { task: Some(task), stop, abandon, tracker }
    }
}

struct Job {
    router: Router,
    store: Arc<Store>,
    config: FileQueueConfig,
    services: Vec<&'static str>,
    /// Cancelled when a shutdown's grace ends: the calls still running stop, their leases kept.
    abandon: CancellationToken,
}

async fn take_loop(job: Arc<Job>, permits: Arc<Semaphore>, stop: CancellationToken, tracker: TaskTracker) {
    let mut last_purge = Instant::now();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
            () = stop.cancelled() => return,
        };
        let changed = job.store.changed.notified();
        tokio::pin!(changed);
        // Registered before the look, so a call stored in between wakes us.
        changed.as_mut().enable();
        let taken = {
            let job = Arc::clone(&job);
            blocking(move || job.store.take(&job.services, job.config.ack_wait, job.config.max_attempts))
                .await
        };
        match taken {
            Ok(Some(taken)) => {
                let job = Arc::clone(&job);
                tracker.spawn(async move {
                    let _permit = permit;
                    job.run(taken).await;
                });
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(target: "rpc_runtime::embedded", "taking a stored call: {e}"),
        }
        drop(permit);
        if last_purge.elapsed() >= Duration::from_secs(60) {
            last_purge = Instant::now();
            let job = Arc::clone(&job);
            let _ = blocking(move || job.store.purge(job.config.retention)).await;
        }
        // Nothing due: wait for a write from this process, or poll for other processes' writes
        // and for calls put back with a delay.
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(job.config.poll_interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

impl Job {
    async fn run(self: Arc<Self>, taken: Taken) {
        let Taken { id, call, attempts, expired } = taken;
        let deadline = call.deadline;
        let outcome = if expired {
            Err(RpcError::DeadlineExceeded)
        } else {
            let peer = Peer::Other { transport: "embedded-queue".into(), address: id.clone() };
            tokio::select! {
                outcome = self.router.serve_call(call, peer) => outcome,
                // No outcome: the lease ends and the call is taken again.
                () = self.abandon.cancelled() => return,
            }
        };
        // A deadline error before the call's own absolute deadline (one inside the handler) is
        // worth another attempt; after it, final.
        let expired = expired || deadline.is_some_and(|d| d <= Instant::now());
        let retry = worth_retrying(&outcome, expired);
        let store = Arc::clone(&self.store);
        let written = match outcome {
            Err(error) if retry && attempts < self.config.max_attempts => {
                let delay = Duration::from_millis(100 * u64::from(attempts));
                tracing::debug!(target: "rpc_runtime::embedded", id, attempts, "a stored call failed, retrying: {error}");
                blocking(move || store.retry(&id, delay, &error)).await
            }
            Err(error) if retry => {
                let state = CallState::DeadLetter { attempts, error };
                blocking(move || store.finish(&id, &state)).await
            }
            outcome => {
                let state = CallState::Done(outcome);
                blocking(move || store.finish(&id, &state)).await
            }
        };
        if let Err(e) = written {
            // The lease ends and the call is taken again.
            tracing::debug!(target: "rpc_runtime::embedded", "could not store an outcome: {e}");
        }
    }
}

/// A running [`FileWorker`].
pub struct FileWorkerHandle {
    task: Option<JoinHandle<()>>,
    stop: CancellationToken,
    abandon: CancellationToken,
    tracker: TaskTracker,
}

impl FileWorkerHandle {
    /// Stops taking calls and waits up to `grace` for the running ones; a call still running
    /// then is stopped without an outcome, so it is taken again when its lease ends.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        crate::drain::drain(&self.tracker, grace, &self.abandon).await;
    }
}

impl fmt::Debug for FileWorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWorkerHandle").field("running", &self.tracker.len()).finish()
    }
}

impl Drop for FileWorkerHandle {
    /// Dropping the handle stops the worker at once; the calls running keep their leases.
    fn drop(&mut self) {
        self.stop.cancel();
        self.abandon.cancel();
    }
}
