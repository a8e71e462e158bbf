//! Persistent queued calls, whatever stores them: the [`PersistentQueue`] trait both backends
//! implement (JetStream, `nats::CallQueue`; a SQLite file, `embedded::FileQueue`), what became
//! of a stored call ([`CallState`]), and the typed handle generated code returns
//! ([`QueuedCall`], from a `#[rpc(persistent)]` method's `submit_<method>`).
//!
//! The guarantees are the same on both backends (`docs/nats.md`, `docs/embedded.md`): a call is
//! stored before `submit` returns; it runs at least once (ack after the handler, redelivery after
//! a crash), so a handler that may run twice must be idempotent; one id runs once; a call that
//! keeps failing is dead-lettered after bounded attempts; outcomes are kept for a stated time;
//! deadlines are absolute times.

// The stored-outcome encoding and the id and deadline helpers serve the backends, which are
// features; without one, the typed API stays (generated `FooQueue`s name it) and they idle.
#![cfg_attr(not(any(feature = "nats", feature = "embedded")), allow(dead_code))]

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::call::{Call, Reply};
use crate::codec::{self, Format};
use crate::RpcError;

/// A boxed future of a queue operation (the trait is object-safe, so a typed handle can hold any
/// backend as `Arc<dyn PersistentQueue>`).
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RpcError>> + Send + 'a>>;

/// A store of persistent calls: stores a call before returning, and reports what became of it.
///
/// Implemented by `nats::CallQueue` (JetStream) and `embedded::FileQueue` (a SQLite file); the
/// workers that run the calls are the backends' own (`nats::QueueWorker`,
/// `embedded::FileWorker`).
pub trait PersistentQueue: Send + Sync + 'static {
    /// Stores `call` under `id` (letters, digits, `-`, `_`, `=`); returns once it is stored.
    /// Submitting an id again does not run the call again.
    fn submit_with_id<'a>(&'a self, call: Call, id: &'a str) -> QueueFuture<'a, CallHandle>;

    /// What became of the call `id`, now.
    fn fetch_result<'a>(&'a self, id: &'a str) -> QueueFuture<'a, CallState>;

    /// Waits until the call `id` is no longer pending, or `timeout` passes (then
    /// [`CallState::Pending`]).
    fn wait_result<'a>(&'a self, id: &'a str, timeout: Duration) -> QueueFuture<'a, CallState>;

    /// Stores `call` under a fresh id ([`new_call_id`]).
    fn submit(&self, call: Call) -> QueueFuture<'_, CallHandle> {
        Box::pin(async move {
            let id = new_call_id();
            self.submit_with_id(call, &id).await
        })
    }
}

impl<Q: PersistentQueue + ?Sized> PersistentQueue for Arc<Q> {
    fn submit_with_id<'a>(&'a self, call: Call, id: &'a str) -> QueueFuture<'a, CallHandle> {
        (**self).submit_with_id(call, id)
    }
    fn fetch_result<'a>(&'a self, id: &'a str) -> QueueFuture<'a, CallState> {
        (**self).fetch_result(id)
    }
    fn wait_result<'a>(&'a self, id: &'a str, timeout: Duration) -> QueueFuture<'a, CallState> {
        (**self).wait_result(id, timeout)
    }
}

/// A fresh call id: 32 hex digits, random.
pub fn new_call_id() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let (a, b) = (state.build_hasher().finish(), state.hash_one(SystemTime::now()));
    format!("{a:016x}{b:016x}")
}

/// Refuses an id that is not letters, digits, `-`, `_` or `=` (it becomes a key or a header).
pub(crate) fn check_id(id: &str) -> Result<(), RpcError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=')) {
        return Err(RpcError::Encode(format!("the call id `{id}` is not letters, digits, `-`, `_` or `=`")));
    }
    Ok(())
}

/// A call's deadline as an absolute time, milliseconds since the Unix epoch: a stored call may
/// wait hours for a worker, and only a wall-clock time means the same then.
pub(crate) fn expiry_unix_ms(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    let at = SystemTime::now() + left;
    u64::try_from(at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// An absolute expiry back as a deadline of this process's clock (`None` if it has passed).
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
pub(crate) fn deadline_of(expires_unix_ms: u64) -> Option<Instant> {
    let at = UNIX_EPOCH + Duration::from_millis(expires_unix_ms);
    at.duration_since(SystemTime::now()).ok().map(|left| Instant::now() + left)
}

/// A stored call's id: what [`PersistentQueue::fetch_result`] takes, from this process or another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallHandle {
    /// The call's id (32 hex digits unless the submitter chose it).
    pub id: String,
}

/// What became of a stored call: `R` is the result, [`Reply`] (encoded) when untyped.
#[derive(Debug, Clone)]
pub enum CallState<R = Reply> {
    /// Stored, not finished yet (no worker has run it, or one is running it).
    Pending,
    /// Run: the result, or the framework error it ended with (a permanent one such as
    /// [`RpcError::SignatureMismatch`], or [`RpcError::DeadlineExceeded`] for a call that
    /// expired before a worker reached it).
    Done(Result<R, RpcError>),
    /// Every attempt failed (the handler panicked, or ran past the deadline or the ack wait):
    /// the call will not run again. `error` is the last attempt's.
    DeadLetter {
        /// How many times the call was delivered.
        attempts: u32,
        /// Why the last attempt failed.
        error: RpcError,
    },
    /// No such call: its entry expired after the retention time, or the id was never stored.
    Expired,
}

impl CallState {
    /// The state with the result decoded as `R` (a result that does not decode is
    /// `Done(Err(RpcError::Decode))`).
    pub fn decode<R: DeserializeOwned + 'static>(self) -> CallState<R> {
        match self {
            CallState::Pending => CallState::Pending,
            CallState::Done(outcome) => CallState::Done(
                outcome.and_then(|r| codec::decode::<codec::Decoded<R>>(r.format, &r.body).map(|d| d.0)),
            ),
            CallState::DeadLetter { attempts, error } => CallState::DeadLetter { attempts, error },
            CallState::Expired => CallState::Expired,
        }
    }
}

impl<R> CallState<R> {
    /// Whether the call is still pending.
    pub fn is_pending(&self) -> bool {
        matches!(self, CallState::Pending)
    }
}

/// A typed persistent call: its id and the queue it was stored in; returned by a
/// `#[rpc(persistent)]` method's generated `submit_<method>`.
///
/// Another process holding the id reads the same outcome with [`QueuedCall::resume`].
pub struct QueuedCall<R> {
    queue: Arc<dyn PersistentQueue>,
    id: String,
    result: PhantomData<fn() -> R>,
}

impl<R> QueuedCall<R> {
    /// The call stored under `id`, whose result is an `R` (the caller says which method's).
    pub fn resume(queue: Arc<dyn PersistentQueue>, id: impl Into<String>) -> QueuedCall<R> {
        QueuedCall { queue, id: id.into(), result: PhantomData }
    }

    /// The call's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<R: DeserializeOwned + 'static> QueuedCall<R> {
    /// Stores `call` (its arguments already encoded) under `id`, or a fresh id.
    pub async fn submit(
        queue: Arc<dyn PersistentQueue>,
        call: Call,
        id: Option<&str>,
    ) -> Result<QueuedCall<R>, RpcError> {
        let handle = match id {
            Some(id) => queue.submit_with_id(call, id).await?,
            None => queue.submit(call).await?,
        };
        Ok(QueuedCall { queue, id: handle.id, result: PhantomData })
    }

    /// What became of the call, now.
    pub async fn fetch(&self) -> Result<CallState<R>, RpcError> {
        Ok(self.queue.fetch_result(&self.id).await?.decode())
    }

    /// Waits until the call is no longer pending, or `timeout` passes (then
    /// [`CallState::Pending`]).
    pub async fn wait(&self, timeout: Duration) -> Result<CallState<R>, RpcError> {
        Ok(self.queue.wait_result(&self.id, timeout).await?.decode())
    }
}

impl<R> Clone for QueuedCall<R> {
    fn clone(&self) -> Self {
        QueuedCall { queue: Arc::clone(&self.queue), id: self.id.clone(), result: PhantomData }
    }
}

impl<R> fmt::Debug for QueuedCall<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedCall").field("id", &self.id).finish()
    }
}

/// What generated `FooQueue`s hold: the queue, and the deadline given to each call.
#[derive(Clone)]
pub struct QueueClient {
    queue: Arc<dyn PersistentQueue>,
    timeout: Option<Duration>,
    format: Format,
}

impl QueueClient {
    /// Persistent calls into `queue` (postcard, no deadline).
    pub fn new(queue: impl PersistentQueue) -> QueueClient {
        QueueClient::from_arc(Arc::new(queue))
    }

    /// Persistent calls into a shared queue.
    pub fn from_arc(queue: Arc<dyn PersistentQueue>) -> QueueClient {
        QueueClient { queue, timeout: None, format: Format::Postcard }
    }

    /// Each call expires `timeout` after it is submitted (an absolute time once stored): a call
    /// no worker reached by then ends as `Done(Err(DeadlineExceeded))` without running.
    #[must_use]
    pub fn with_timeout(&self, timeout: impl Into<Option<Duration>>) -> QueueClient {
        QueueClient { timeout: timeout.into(), ..self.clone() }
    }

    /// The queue underneath.
    pub fn queue(&self) -> &Arc<dyn PersistentQueue> {
        &self.queue
    }

    /// Encodes `args` for `method` and stores the call (under `id`, or a fresh id).
    pub async fn submit<A: serde::Serialize, R: DeserializeOwned + 'static>(
        &self,
        method: &crate::MethodRef,
        args: A,
        id: Option<&str>,
    ) -> Result<QueuedCall<R>, RpcError> {
        let body = codec::encode_to_vec(self.format, &args)?;
        let mut call = Call::new(method, self.format, body);
        call.deadline = self.timeout.map(|t| Instant::now() + t);
        QueuedCall::submit(Arc::clone(&self.queue), call, id).await
    }
}

impl fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueClient").field("timeout", &self.timeout).finish()
    }
}

pub(crate) const PENDING: u8 = 0;
const DONE_OK: u8 = 1;
const DONE_ERR: u8 = 2;
const DEAD: u8 = 3;

/// An outcome as stored bytes: a tag byte, then for a result its format and body, for an error
/// its code (8 bytes) and message, for a dead letter the attempts (4 bytes) first.
pub(crate) fn encode_state(state: &CallState) -> Bytes {
    let mut out = BytesMut::new();
    let error = |out: &mut BytesMut, e: &RpcError| {
        let (code, message) = e.to_wire();
        out.put_u64(code as u64);
        out.put_slice(message.as_bytes());
    };
    match state {
        CallState::Pending | CallState::Expired => out.put_u8(PENDING),
        CallState::Done(Ok(reply)) => {
            out.put_u8(DONE_OK);
            out.put_u8(u8::from(reply.format == Format::Json));
            out.put_slice(&reply.body);
        }
        CallState::Done(Err(e)) => {
            out.put_u8(DONE_ERR);
            error(&mut out, e);
        }
        CallState::DeadLetter { attempts, error: e } => {
            out.put_u8(DEAD);
            out.put_u32(*attempts);
            error(&mut out, e);
        }
    }
    out.freeze()
}

/// Stored bytes back as an outcome; malformed bytes are a `Done(Err(Protocol))`, never a panic.
pub(crate) fn decode_state(value: &[u8]) -> CallState {
    let error = |rest: &[u8]| match rest.split_first_chunk::<8>() {
        Some((code, message)) => {
            RpcError::from_wire(u64::from_be_bytes(*code), String::from_utf8_lossy(message).into_owned())
        }
        None => RpcError::Protocol("a malformed error in the result store".into()),
    };
    match value.split_first() {
        Some((&PENDING, _)) => CallState::Pending,
        Some((&DONE_OK, rest)) => match rest.split_first() {
            Some((&format, body)) => CallState::Done(Ok(Reply {
                format: if format == 1 { Format::Json } else { Format::Postcard },
                body: Bytes::copy_from_slice(body),
            })),
            None => CallState::Done(Err(RpcError::Protocol("a malformed result in the result store".into()))),
        },
        Some((&DONE_ERR, rest)) => CallState::Done(Err(error(rest))),
        Some((&DEAD, rest)) => match rest.split_first_chunk::<4>() {
            Some((attempts, rest)) => {
                CallState::DeadLetter { attempts: u32::from_be_bytes(*attempts), error: error(rest) }
            }
            None => {
                CallState::Done(Err(RpcError::Protocol("a malformed dead letter in the result store".into())))
            }
        },
        _ => CallState::Done(Err(RpcError::Protocol("a malformed entry in the result store".into()))),
    }
}

/// Whether an attempt's failure might not recur on another attempt (then the call is delivered
/// again, up to the bounded attempts): a panic, a cancel, an overload, a deadline that has not
/// passed for the call as a whole. Any other error is the call's final outcome.
pub(crate) fn worth_retrying(outcome: &Result<Reply, RpcError>, expired: bool) -> bool {
    matches!(outcome, Err(RpcError::HandlerPanicked | RpcError::Cancelled(_) | RpcError::Overloaded(_)))
        || (matches!(outcome, Err(RpcError::DeadlineExceeded)) && !expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_the_stored_encoding() {
        let reply = Reply { format: Format::Json, body: Bytes::from_static(b"[1]") };
        match decode_state(&encode_state(&CallState::Done(Ok(reply)))) {
            CallState::Done(Ok(r)) => assert_eq!((r.format, &r.body[..]), (Format::Json, &b"[1]"[..])),
            other => panic!("{other:?}"),
        }
        let dead = CallState::DeadLetter { attempts: 3, error: RpcError::HandlerPanicked };
        match decode_state(&encode_state(&dead)) {
            CallState::DeadLetter { attempts: 3, error: RpcError::HandlerPanicked } => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode_state(&[]), CallState::Done(Err(RpcError::Protocol(_)))));
        assert!(matches!(decode_state(&[DEAD, 0]), CallState::Done(Err(RpcError::Protocol(_)))));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("job-1_a=").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a.b").is_err());
        assert_eq!(new_call_id().len(), 32);
    }
}
