//! The worker side of persistent calls: a durable JetStream consumer per service, each stored
//! call run by [`Router::serve_call`], its outcome written to the result bucket, then acked.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{kv, AckKind, Message};
use futures::StreamExt;
use rpc_transport::Peer;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::NatsConnection;
use super::queue::{self, jetstream_error, QueueConfig};
use super::{headers, subject};
use crate::call::Call;
use crate::describe::MethodKind;
use crate::queued::{decode_state, encode_state, worth_retrying, CallState};
use crate::{Router, RpcError};

/// Runs the stored calls of a [`Router`]'s services (see [`CallQueue`](super::CallQueue)).
///
/// Each service has one durable consumer, shared by every worker of it: a stored call goes to
/// one worker; a worker that dies before acking leaves the call to be delivered again after
/// `ack_wait`. A call is acked only after its outcome is in the result bucket. A call whose
/// attempt fails in a way another attempt might not (the handler panicked, ran past the
/// deadline or was cancelled) is delivered again after a short delay, up to `max_attempts`
/// times, and then dead-lettered ([`CallState::DeadLetter`]); any other error (a signature
/// mismatch, an undecodable argument) is final at once. A call whose absolute deadline has
/// passed is not run: its outcome is [`RpcError::DeadlineExceeded`].
#[derive(Debug, Clone)]
pub struct QueueWorker {
    router: Router,
    config: QueueConfig,
    max_concurrent: usize,
}

impl QueueWorker {
    /// A worker for `router`'s services with the default [`QueueConfig`].
    pub fn new(router: impl Into<Router>) -> QueueWorker {
        QueueWorker { router: router.into(), config: QueueConfig::default(), max_concurrent: 64 }
    }

    /// Uses `config` (the same prefix as the callers' [`CallQueue`](super::CallQueue)).
    #[must_use]
    pub fn config(mut self, config: QueueConfig) -> QueueWorker {
        self.config = config;
        self
    }

    /// How many stored calls this worker runs at once (default 64).
    #[must_use]
    pub fn max_concurrent(mut self, calls: usize) -> QueueWorker {
        self.max_concurrent = calls.max(1);
        self
    }

    /// Opens the stream, the bucket and a consumer per service, and starts running calls.
    ///
    /// # Errors
    ///
    /// [`RpcError::ConnectionClosed`] if the broker has no JetStream or refused a consumer;
    /// [`RpcError::Encode`] for a service name that cannot be a subject.
    pub async fn serve(self, connection: &NatsConnection) -> Result<QueueWorkerHandle, RpcError> {
        let (js, kv) = self.config.open(connection).await?;
        let stream = js
            .get_stream(self.config.stream_name())
            .await
            .map_err(|e| jetstream_error("opening the call stream", &e))?;
        let stop = CancellationToken::new();
        let abandon = CancellationToken::new();
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.max_concurrent));
        let mut loops = JoinSet::new();
        for descriptor in self.router.services() {
            let name = descriptor.name();
            subject::check_names(name, "m")?;
            let consumer = stream
                .get_or_create_consumer(
                    &subject::registry_name(name),
                    pull::Config {
                        durable_name: Some(subject::registry_name(name)),
                        filter_subject: subject::queued_service(&self.config.prefix, name),
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: self.config.ack_wait,
                        max_deliver: i64::from(self.config.max_attempts),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| jetstream_error("creating the consumer", &e))?;
            let mut messages =
                consumer.messages().await.map_err(|e| jetstream_error("consuming calls", &e))?;
            let job = Arc::new(Job {
                router: self.router.clone(),
                kv: kv.clone(),
                config: self.config.clone(),
                service: name,
                abandon: abandon.clone(),
            });
            let (stop, tracker, permits) = (stop.clone(), tracker.clone(), Arc::clone(&permits));
            loops.spawn(async move {
                loop {
                    let permit = tokio::select! {
                        permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
                        () = stop.cancelled() => break,
                    };
                    let message = tokio::select! {
                        message = messages.next() => message,
                        () = stop.cancelled() => break,
                    };
                    match message {
                        Some(Ok(message)) => {
                            let job = Arc::clone(&job);
                            tracker.spawn(async move {
                                let _permit = permit;
                                job.run(message).await;
                            });
                        }
                        Some(Err(e)) => {
                            tracing::debug!(target: "rpc_runtime::nats", "consuming stored calls: {e}")
                        }
                        None => break,
                    }
                }
            });
        }
        Ok(QueueWorkerHandle { stop, abandon, tracker, loops })
    }
}

struct Job {
    router: Router,
    kv: kv::Store,
    config: QueueConfig,
    service: &'static str,
    /// Cancelled when a shutdown's grace ends: the calls still running stop, unacked.
    abandon: CancellationToken,
}

impl Job {
    async fn run(&self, message: Message) {
        let Some(id) =
            message.headers.as_ref().and_then(|h| h.get(queue::MSG_ID)).map(|v| v.as_str().to_owned())
        else {
            tracing::debug!(target: "rpc_runtime::nats", subject = %message.subject, "dropped a stored call without an id");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        };
        let attempts = message.info().map_or(1, |i| u32::try_from(i.delivered).unwrap_or(u32::MAX));
        // Done already (its worker stored the outcome, then died before acking): never twice.
        if let Ok(Some(value)) = self.kv.get(&id).await {
            if !matches!(decode_state(&value), CallState::Pending) {
                let _ = message.ack().await;
                return;
            }
        }
        let outcome = match self.decode(&message) {
            Ok(call) => {
                let peer = Peer::Other { transport: "nats-jetstream".into(), address: id.clone() };
                tokio::select! {
                    outcome = self.router.serve_call(call, peer) => outcome,
                    // Not acked: the broker delivers the call again after `ack_wait`.
                    () = self.abandon.cancelled() => return,
                }
            }
            Err(e) => Err(e),
        };
        let retry = worth_retrying(&outcome, self.expired(&message));
        let state = match outcome {
            Err(error) if retry && attempts < self.config.max_attempts => {
                // Again, after a pause that grows with the attempts.
                let delay = Duration::from_millis(100 * u64::from(attempts));
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                tracing::debug!(target: "rpc_runtime::nats", id, attempts, "a stored call failed, retrying: {error}");
                return;
            }
            Err(error) if retry => CallState::DeadLetter { attempts, error },
            outcome => CallState::Done(outcome),
        };
        if let Err(e) = self.kv.put(&id, encode_state(&state)).await {
            // Not acked: the call comes back after `ack_wait` and is tried again.
            tracing::debug!(target: "rpc_runtime::nats", id, "could not store an outcome: {e}");
            return;
        }
        let _ = message.ack().await;
    }

    fn decode(&self, message: &Message) -> Result<Call, RpcError> {
        let fields = headers::decode_call(message.headers.as_ref())?;
        if self.expired(message) {
            return Err(RpcError::DeadlineExceeded);
        }
        let deadline = expires_at(message).map(|at| {
            let now = SystemTime::now();
            Instant::now() + at.duration_since(now).unwrap_or_default()
        });
        let method = message.subject.rsplit('.').next().unwrap_or_default().to_owned();
        let oneway =
            message.headers.as_ref().and_then(|h| h.get(queue::KIND)).is_some_and(|k| k.as_str() == "oneway");
        Ok(Call {
            service: self.service.into(),
            method: method.into(),
            kind: if oneway { MethodKind::Oneway } else { MethodKind::Unary },
            format: fields.format,
            signature: fields.signature,
            deadline,
            metadata: fields.metadata,
            body: message.payload.clone(),
            // A client-side mark for retry policies; a server has no use for it.
            idempotent: false,
        })
    }

    fn expired(&self, message: &Message) -> bool {
        expires_at(message).is_some_and(|at| at <= SystemTime::now())
    }
}

/// The call's absolute deadline, from `Rpc-Expires-Unix-Ms`.
fn expires_at(message: &Message) -> Option<SystemTime> {
    let ms: u64 = message.headers.as_ref()?.get(queue::EXPIRES)?.as_str().trim().parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

/// A running [`QueueWorker`].
pub struct QueueWorkerHandle {
    stop: CancellationToken,
    abandon: CancellationToken,
    tracker: TaskTracker,
    loops: JoinSet<()>,
}

impl QueueWorkerHandle {
    /// Stops taking stored calls and waits up to `grace` for the running ones; a call still
    /// running then is stopped and left unacked, so the broker delivers it again later.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop.cancel();
        while self.loops.join_next().await.is_some() {}
        crate::drain::drain(&self.tracker, grace, &self.abandon).await;
    }
}

impl fmt::Debug for QueueWorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWorkerHandle").field("running", &self.tracker.len()).finish()
    }
}

impl Drop for QueueWorkerHandle {
    /// Dropping the handle stops the worker at once; the calls running are left unacked.
    fn drop(&mut self) {
        self.stop.cancel();
        self.abandon.cancel();
    }
}
