//! Persistent queued calls on JetStream: a call stored by the broker before the caller's await
//! returns, run later by a [`QueueWorker`](super::QueueWorker), its outcome kept in a key-value
//! bucket under the call's id.
//!
//! Layout, for a prefix `p` (dots of the prefix become `_` in names):
//!
//! - stream `p_calls` (file storage, work-queue retention), subjects `p.$queued.>`: a call to
//!   `Service.method` is stored on `p.$queued.Service.method` with the call's headers, its id
//!   as `Nats-Msg-Id` (the broker drops a second copy within its 2-minute duplicate window) and
//!   its deadline as an absolute time, `Rpc-Expires-Unix-Ms`;
//! - bucket `p_results`: one entry per call id, `pending` when stored, then the outcome; entries
//!   expire `retention` after their last write.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::connection::NatsConnection;
use super::{headers, subject};
use crate::call::{Call, MethodRef};
use crate::codec::{self, Format};
use crate::queued::{self, decode_state, PersistentQueue, QueueFuture};
pub use crate::queued::{CallHandle, CallState};
use crate::RpcError;

/// The header carrying a queued call's deadline, in milliseconds since the Unix epoch: a stored
/// call may wait hours for a worker, so only an absolute time means the same thing then (the
/// hosts' clocks must agree to within the precision the deadlines need).
pub(crate) const EXPIRES: &str = "Rpc-Expires-Unix-Ms";
/// `oneway` on a stored call of a one-way method (absent: unary).
pub(crate) const KIND: &str = "Rpc-Kind";
/// JetStream's de-duplication header.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";

/// How a [`CallQueue`] and its [`QueueWorker`](super::QueueWorker)s are set up; both sides must
/// agree on `prefix`.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The subject prefix (default [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX)).
    pub prefix: String,
    /// How long an outcome is kept after it is written, and a stored call's `pending` mark after
    /// it is stored (default 24 h). A result fetched later is [`CallState::Expired`].
    pub retention: Duration,
    /// How many times a call is delivered before it is dead-lettered (default 5).
    pub max_attempts: u32,
    /// How long a worker may run a call before the broker delivers it again, to another worker
    /// or the same one (default 30 s): a handler that may run longer gets run twice.
    pub ack_wait: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            prefix: super::DEFAULT_PREFIX.to_owned(),
            retention: Duration::from_secs(24 * 60 * 60),
            max_attempts: 5,
            ack_wait: Duration::from_secs(30),
        }
    }
}

impl QueueConfig {
    pub(crate) fn stream_name(&self) -> String {
        format!("{}_calls", self.prefix.replace('.', "_"))
    }

    pub(crate) fn bucket_name(&self) -> String {
        format!("{}_results", self.prefix.replace('.', "_"))
    }

    /// Opens (creating when missing) the stream and the bucket.
    pub(crate) async fn open(
        &self,
        connection: &NatsConnection,
    ) -> Result<(jetstream::Context, kv::Store), RpcError> {
        subject::check_prefix(&self.prefix)?;
        let js = jetstream::new(connection.client().clone());
        js.get_or_create_stream(stream::Config {
            name: self.stream_name(),
            subjects: vec![subject::queued_all(&self.prefix)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| jetstream_error("opening the call stream", &e))?;
        // The bucket's stream made by hand, as `create_key_value` would: that call first asks for
        // the account's API level, which nats-server 2.9 does not report.
        let bucket = self.bucket_name();
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: self.retention,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            duplicate_window: self.retention.min(Duration::from_secs(120)),
            ..Default::default()
        })
        .await
        .map_err(|e| jetstream_error("opening the result bucket", &e))?;
        let kv =
            js.get_key_value(bucket).await.map_err(|e| jetstream_error("opening the result bucket", &e))?;
        Ok((js, kv))
    }
}

/// Submits calls to be stored by the broker and run later by
/// [`QueueWorker`](super::QueueWorker)s, and fetches their outcomes.
///
/// Guarantees (`docs/nats.md`): a call is stored (on disk, by the broker) before
/// [`submit`](CallQueue::submit) returns, and survives a broker restart; it is delivered at
/// least once, so a handler that may be delivered twice (its worker crashed after running it
/// but before storing its outcome, or it ran longer than `ack_wait`) must be idempotent; a
/// second submission of the same id does not run the call again, except that two copies
/// submitted more than 2 minutes apart (the broker's duplicate window) while the first is still
/// waiting may both start before either stores its outcome.
#[derive(Clone)]
pub struct CallQueue {
    connection: NatsConnection,
    js: jetstream::Context,
    kv: kv::Store,
    config: Arc<QueueConfig>,
}

impl CallQueue {
    /// Opens the queue of `config.prefix`, creating its stream and bucket when missing.
    ///
    /// # Errors
    ///
    /// [`RpcError::ConnectionClosed`] if the broker has no JetStream or refused the stream.
    pub async fn open(connection: &NatsConnection, config: QueueConfig) -> Result<CallQueue, RpcError> {
        let (js, kv) = config.open(connection).await?;
        Ok(CallQueue { connection: connection.clone(), js, kv, config: Arc::new(config) })
    }

    /// Stores `call` under a fresh id; returns once the broker has stored it.
    pub async fn submit(&self, call: Call) -> Result<CallHandle, RpcError> {
        self.submit_with_id(call, &queued::new_call_id()).await
    }

    /// Stores `call` with the caller's arguments encoded in postcard: `args` is the tuple of the
    /// method's arguments.
    pub async fn submit_method<A: Serialize>(
        &self,
        method: &'static MethodRef,
        args: A,
    ) -> Result<CallHandle, RpcError> {
        let body = codec::encode_to_vec(Format::Postcard, &args)?;
        self.submit(Call::new(method, Format::Postcard, body)).await
    }

    /// Stores `call` under `id` (letters, digits, `-`, `_`, `=`). Submitting an id again is
    /// safe, for example to retry a submission that failed: a call already done is not stored
    /// or run again, and a pending one runs once (see [`CallQueue`] for the exception).
    pub async fn submit_with_id(&self, call: Call, id: &str) -> Result<CallHandle, RpcError> {
        subject::check_names(&call.service, &call.method)?;
        queued::check_id(id)?;
        call.metadata.check()?;
        let mut headers = headers::encode_call(0, call.format, call.signature, None, &call.metadata)?;
        headers.insert(MSG_ID, id);
        match call.kind {
            crate::describe::MethodKind::Unary => {}
            crate::describe::MethodKind::Oneway => headers.insert(KIND, "oneway"),
            other => {
                return Err(RpcError::Encode(format!(
                    "`{}.{}` is a {other} method: streams cannot be stored",
                    call.service, call.method
                )))
            }
        }
        if let Some(deadline) = call.deadline {
            headers.insert(EXPIRES, queued::expiry_unix_ms(deadline).to_string().as_str());
        }
        // Refused before the pending mark: a call the broker would refuse leaves no trace.
        let len = headers::wire_len(&headers) + call.body.len();
        let max = self.connection.max_payload();
        if len > max {
            return Err(RpcError::FrameTooLarge { len, max });
        }
        // The pending mark first, created only if the id is new. A duplicate of a call already
        // done stops here; one of a call still pending is stored again, in case the first
        // submission failed after its mark (the broker drops the copy within its duplicate
        // window, and a worker skips a call whose outcome is stored).
        match self.kv.create(id, Bytes::from_static(&[queued::PENDING])).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                if !matches!(self.fetch_result(id).await?, CallState::Pending) {
                    return Ok(CallHandle { id: id.to_owned() });
                }
            }
            Err(e) => return Err(jetstream_error("marking the call pending", &e)),
        }
        let subject = subject::queued(&self.config.prefix, &call.service, &call.method);
        let ack = self
            .js
            .publish_with_headers(subject, headers, call.body)
            .await
            .map_err(|e| jetstream_error("storing the call", &e))?;
        ack.await.map_err(|e| jetstream_error("storing the call", &e))?;
        Ok(CallHandle { id: id.to_owned() })
    }

    /// What became of the call `id`, now.
    pub async fn fetch_result(&self, id: &str) -> Result<CallState, RpcError> {
        let entry = self.kv.get(id).await.map_err(|e| jetstream_error("reading the result", &e))?;
        Ok(entry.map_or(CallState::Expired, |value| decode_state(&value)))
    }

    /// Waits until the call `id` is no longer pending, or `timeout` passes (then
    /// [`CallState::Pending`]); watches the bucket rather than polling it.
    pub async fn wait_result(&self, id: &str, timeout: Duration) -> Result<CallState, RpcError> {
        let mut watch = self.kv.watch(id).await.map_err(|e| jetstream_error("watching the result", &e))?;
        // After the watch starts, so an outcome written in between is not missed.
        let now = self.fetch_result(id).await?;
        if !matches!(now, CallState::Pending) {
            return Ok(now);
        }
        let wait = async {
            while let Some(entry) = watch.next().await {
                let Ok(entry) = entry else { continue };
                if entry.operation != kv::Operation::Put {
                    return CallState::Expired;
                }
                let state = decode_state(&entry.value);
                if !matches!(state, CallState::Pending) {
                    return state;
                }
            }
            CallState::Pending
        };
        Ok(tokio::time::timeout(timeout, wait).await.unwrap_or(CallState::Pending))
    }

    /// The queue's configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }
}

impl fmt::Debug for CallQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallQueue").field("config", &self.config).finish()
    }
}

pub(crate) fn jetstream_error(what: &str, e: &dyn fmt::Display) -> RpcError {
    RpcError::closed(format!("{what} in JetStream: {e}"))
}

impl PersistentQueue for CallQueue {
    fn submit_with_id<'a>(&'a self, call: Call, id: &'a str) -> QueueFuture<'a, CallHandle> {
        Box::pin(CallQueue::submit_with_id(self, call, id))
    }
    fn fetch_result<'a>(&'a self, id: &'a str) -> QueueFuture<'a, CallState> {
        Box::pin(CallQueue::fetch_result(self, id))
    }
    fn wait_result<'a>(&'a self, id: &'a str, timeout: Duration) -> QueueFuture<'a, CallState> {
        Box::pin(CallQueue::wait_result(self, id, timeout))
    }
}
