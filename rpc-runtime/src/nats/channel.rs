//! The client side: calls as NATS requests, one-way calls as publishes, broadcasts and gathers.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{HeaderMap, Message, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::connection::NatsConnection;
use super::{headers, subject};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::call::{Call, MethodRef, Reply};
use crate::codec::{self, Format};
use crate::describe::MethodKind;
use crate::RpcError;

/// Calls through a NATS broker: a `tower::Service<Call>`, so a generated client works over it
/// with `FooClient::from_service(channel)` (and any tower layer fits in between).
///
/// A unary call is a request on `{prefix}.{service}.{method}` answered by one instance of the
/// service (the broker picks one from the queue group); a one-way call is a publish on the same
/// subject, with no reply. Errors:
///
/// - no instance of the service is subscribed: [`RpcError::Unavailable`] at once (the broker's
///   "no responders"; the call never started, retry when an instance is up). If instances of
///   the service are up but none has the method (they are older than the caller's trait), the
///   error is [`RpcError::UnknownMethod`] instead: the channel asks the service API which is
///   the case, on this error path only.
/// - the call's headers and body are larger than the broker's maximum payload:
///   [`RpcError::FrameTooLarge`], before anything is sent.
/// - the broker connection is lost while the call waits: [`RpcError::ConnectionClosed`] (it may
///   have run); made while the client is reconnecting: [`RpcError::Unavailable`].
/// - the server's errors come back as themselves ([`RpcError::SignatureMismatch`],
///   [`RpcError::DeadlineExceeded`], ...), carried in the service API's error headers.
///
/// A call without a deadline waits for its reply as long as the connection lasts.
#[derive(Clone)]
pub struct NatsChannel {
    inner: Arc<Inner>,
}

struct Inner {
    connection: NatsConnection,
    prefix: Arc<str>,
    /// Call ids are `base + n`: a random base keeps ids of different callers apart in logs.
    base: u64,
    next: AtomicU64,
    broadcasting: bool,
    /// The deadline of a call that has none.
    timeout: Option<Duration>,
}

impl NatsChannel {
    /// A channel over `connection`, on the subject prefix [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX).
    pub fn new(connection: &NatsConnection) -> NatsChannel {
        NatsChannel {
            inner: Arc::new(Inner {
                connection: connection.clone(),
                prefix: super::DEFAULT_PREFIX.into(),
                base: std::collections::hash_map::RandomState::new().build_hasher().finish(),
                next: AtomicU64::new(1),
                broadcasting: false,
                timeout: None,
            }),
        }
    }

    /// Uses the subject prefix `prefix` (dot-separated tokens), the one the servers use.
    ///
    /// # Errors
    ///
    /// [`RpcError::Io`] (`InvalidInput`) if `prefix` is not a NATS subject.
    pub fn with_prefix(self, prefix: &str) -> Result<NatsChannel, RpcError> {
        subject::check_prefix(prefix)?;
        Ok(self.rebuild(|inner| inner.prefix = prefix.into()))
    }

    /// A channel whose one-way calls reach every instance of the service (multicast), for a
    /// generated client: `FooClient::from_service(channel.broadcasting())`. A unary call through
    /// it fails with [`RpcError::Encode`]: gather its replies with [`NatsChannel::gather`].
    pub fn broadcasting(&self) -> NatsChannel {
        self.rebuild(|inner| inner.broadcasting = true)
    }

    /// Gives each call without a deadline (a generated client's, outside a handler) the deadline
    /// `timeout` from when it is sent; the server learns it too, and stops the handler then.
    pub fn with_timeout(&self, timeout: Duration) -> NatsChannel {
        self.rebuild(|inner| inner.timeout = Some(timeout))
    }

    fn rebuild(&self, change: impl FnOnce(&mut Inner)) -> NatsChannel {
        let mut inner = Inner {
            connection: self.inner.connection.clone(),
            prefix: Arc::clone(&self.inner.prefix),
            base: self.inner.base,
            next: AtomicU64::new(self.inner.next.load(Ordering::Relaxed)),
            broadcasting: self.inner.broadcasting,
            timeout: self.inner.timeout,
        };
        change(&mut inner);
        NatsChannel { inner: Arc::new(inner) }
    }

    /// The connection underneath.
    pub fn connection(&self) -> &NatsConnection {
        &self.inner.connection
    }

    /// Sends `call` and waits for its reply (nothing for a one-way call).
    pub async fn send(&self, mut call: Call) -> Result<Reply, RpcError> {
        if call.deadline.is_none() {
            call.deadline = self.inner.timeout.map(|t| Instant::now() + t);
        }
        match call.kind {
            MethodKind::Unary if self.inner.broadcasting => Err(RpcError::Encode(format!(
                "`{}.{}` is unary: a broadcasting channel carries one-way calls; gather the replies with NatsChannel::gather",
                call.service, call.method
            ))),
            MethodKind::Unary => self.request(call).await,
            MethodKind::Oneway => {
                let subject = self.subject(&call)?;
                let (headers, _) = self.prepare(&call)?;
                self.check_size(&headers, &call.body)?;
                self.connected()?;
                self.client().publish_with_headers(subject, headers, call.body).await.map_err(publish_error)?;
                Ok(Reply { format: call.format, body: Bytes::new() })
            }
            other => Err(RpcError::Encode(format!(
                "`{}.{}` is a {other} method: streams are not carried over NATS",
                call.service, call.method
            ))),
        }
    }

    /// Calls the method on every instance of the service and collects the replies that arrive
    /// within `window` (or by the call's deadline, if that comes first), in arrival order: one
    /// entry per instance that answered, its reply or its error. An empty list means no
    /// instance answered in time. Each instance runs the call once; the call must be unary.
    ///
    /// [`NatsChannel::gather_method`] encodes the arguments and decodes the replies.
    ///
    /// # Errors
    ///
    /// Those of the call as a whole: a name that is not a subject, metadata over its bounds, a
    /// message over the broker's maximum payload, no connection.
    pub async fn gather(
        &self,
        mut call: Call,
        window: Duration,
    ) -> Result<Vec<Result<Reply, RpcError>>, RpcError> {
        let end = Instant::now() + window;
        call.deadline = Some(call.deadline.map_or(end, |d| d.min(end)));
        if call.kind != MethodKind::Unary {
            return Err(RpcError::Encode(format!(
                "`{}.{}` is a {} method: only unary calls have replies to gather",
                call.service, call.method, call.kind
            )));
        }
        subject::check_names(&call.service, &call.method)?;
        let subject = subject::broadcast(&self.inner.prefix, &call.service, &call.method);
        let (headers, deadline) = self.prepare(&call)?;
        let deadline = deadline.unwrap_or(end);
        self.check_size(&headers, &call.body)?;
        self.connected()?;
        let client = self.client();
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| self.lost(e))?;
        client
            .publish_with_reply_and_headers(subject, inbox, headers, call.body)
            .await
            .map_err(publish_error)?;
        let mut out = Vec::new();
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                message = replies.next() => match message {
                    // The broker answers "no responders" only when nobody listens at all.
                    Some(message) if message.status == Some(StatusCode::NO_RESPONDERS) => break,
                    Some(message) => out.push(reply_of(call.format, message)),
                    None => break,
                },
                () = &mut sleep => break,
            }
        }
        Ok(out)
    }

    /// [`NatsChannel::gather`] with typed arguments and results (postcard): `args` is the tuple of
    /// the method's arguments (`(a, b)`, or `(x,)` for one), each entry the decoded result of an
    /// instance. `method` names the method, for example
    /// `static HELLO: MethodRef = MethodRef::dynamic("Greeter", "hello", MethodKind::Unary, HASH)`
    /// (a hash of 0 skips the signature check).
    pub async fn gather_method<A, R>(
        &self,
        method: &'static MethodRef,
        args: A,
        window: Duration,
    ) -> Result<Vec<Result<R, RpcError>>, RpcError>
    where
        A: Serialize,
        R: DeserializeOwned + 'static,
    {
        let body = codec::encode_to_vec(Format::Postcard, &args)?;
        let replies = self.gather(Call::new(method, Format::Postcard, body), window).await?;
        Ok(replies
            .into_iter()
            .map(|reply| {
                reply.and_then(|r| codec::decode_from::<codec::Decoded<R>>(r.format, &r.body).map(|d| d.0))
            })
            .collect())
    }

    /// Publishes a one-way call to every instance of its service (the typed way is a generated
    /// client over [`NatsChannel::broadcasting`]). Returns once the message is handed to the
    /// client; like any one-way call, no instance reports back.
    pub async fn broadcast(&self, mut call: Call) -> Result<(), RpcError> {
        call.kind = MethodKind::Oneway;
        subject::check_names(&call.service, &call.method)?;
        let subject = subject::broadcast(&self.inner.prefix, &call.service, &call.method);
        let (headers, _) = self.prepare(&call)?;
        self.check_size(&headers, &call.body)?;
        self.connected()?;
        self.client().publish_with_headers(subject, headers, call.body).await.map_err(publish_error)
    }

    async fn request(&self, call: Call) -> Result<Reply, RpcError> {
        let subject = self.subject(&call)?;
        let (headers, deadline) = self.prepare(&call)?;
        self.check_size(&headers, &call.body)?;
        // Taken before the state check: a loss after it fails the call.
        let lost = self.inner.connection.lost();
        self.connected()?;
        let len = headers::wire_len(&headers) + call.body.len();
        let request = async_nats::Request::new().headers(headers).payload(call.body.clone()).timeout(None);
        let client = self.client();
        let sent = client.send_request(subject, request);
        let deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = sent => outcome,
            () = lost => return Err(RpcError::closed(
                "the connection to the NATS broker was lost; the call may or may not have run",
            )),
            () = deadline => return Err(RpcError::DeadlineExceeded),
        };
        match outcome {
            Ok(message) => reply_of(call.format, message),
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Err(self.no_responders(&call).await),
            // The broker's limit changed since the check (a reconnect to another broker).
            Err(e) if e.kind() == RequestErrorKind::MaxPayloadExceeded => {
                Err(RpcError::FrameTooLarge { len, max: self.inner.connection.max_payload() })
            }
            Err(e) => Err(self.lost(e)),
        }
    }

    /// Tells "no instance of the service" (retryable) from "instances, but none with the method"
    /// (they are older than the caller), by asking the service API for an instance's endpoints.
    ///
    /// An instance that lists the method but was not subscribed to it is reconnecting (after a
    /// broker restart, a client restores the service API's subscriptions and the endpoints'
    /// one by one): that is a retryable `Unavailable` too, never `UnknownMethod`.
    async fn no_responders(&self, call: &Call) -> RpcError {
        let info = format!("$SRV.INFO.{}", subject::registry_name(&call.service));
        let asked = self.client().request(info, Bytes::new());
        let unavailable = |why: &str| RpcError::Unavailable {
            source: Arc::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!(
                    "no instance of `{}` is subscribed to {} (no responders{why})",
                    call.service,
                    subject::call(&self.inner.prefix, &call.service, &call.method)
                ),
            )),
            retry_in: Duration::ZERO,
        };
        match tokio::time::timeout(Duration::from_secs(1), asked).await {
            Ok(Ok(answer)) if answer.status.is_none() => {
                match serde_json::from_slice::<async_nats::service::Info>(&answer.payload) {
                    Ok(info) if info.endpoints.iter().any(|e| e.name == call.method) => {
                        unavailable("; an instance lists the method and is resubscribing")
                    }
                    Ok(_) => RpcError::UnknownMethod(call.method.to_string()),
                    Err(_) => unavailable("; the service API's answer did not parse"),
                }
            }
            _ => unavailable(""),
        }
    }

    fn client(&self) -> &async_nats::Client {
        self.inner.connection.client()
    }

    fn subject(&self, call: &Call) -> Result<String, RpcError> {
        subject::check_names(&call.service, &call.method)?;
        Ok(if self.inner.broadcasting {
            subject::broadcast(&self.inner.prefix, &call.service, &call.method)
        } else {
            subject::call(&self.inner.prefix, &call.service, &call.method)
        })
    }

    /// The call's headers, and its deadline; a deadline already past fails the call here.
    fn prepare(&self, call: &Call) -> Result<(HeaderMap, Option<Instant>), RpcError> {
        call.metadata.check()?;
        let timeout = match call.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(RpcError::DeadlineExceeded);
                }
                Some(left)
            }
            None => None,
        };
        let id = self.inner.base.wrapping_add(self.inner.next.fetch_add(1, Ordering::Relaxed));
        let headers = headers::encode_call(id, call.format, call.signature, timeout, &call.metadata)?;
        Ok((headers, call.deadline))
    }

    /// Refuses a message the broker would refuse, saying its size and the limit.
    fn check_size(&self, headers: &HeaderMap, body: &Bytes) -> Result<(), RpcError> {
        let len = headers::wire_len(headers) + body.len();
        let max = self.inner.connection.max_payload();
        if len > max {
            return Err(RpcError::FrameTooLarge { len, max });
        }
        Ok(())
    }

    fn connected(&self) -> Result<(), RpcError> {
        if self.inner.connection.is_connected() {
            Ok(())
        } else {
            Err(self.inner.connection.unavailable())
        }
    }

    /// A client error other than the broker's answers: the connection is the likely cause.
    fn lost(&self, e: impl fmt::Display) -> RpcError {
        if self.inner.connection.is_connected() {
            RpcError::closed(format!("the NATS client failed the call: {e}"))
        } else {
            RpcError::closed(format!("the connection to the NATS broker was lost: {e}"))
        }
    }
}

/// A reply message as the call's outcome: the result, or the error its headers carry.
fn reply_of(format: Format, message: Message) -> Result<Reply, RpcError> {
    if let Some(error) = headers::decode_error(message.headers.as_ref()) {
        return Err(error);
    }
    if let Some(status) = message.status {
        if status != StatusCode::OK {
            return Err(RpcError::Remote {
                code: u64::from(status.as_u16()),
                message: message.description.unwrap_or_else(|| "status from the broker".into()),
            });
        }
    }
    Ok(Reply { format, body: message.payload })
}

fn publish_error(e: async_nats::PublishError) -> RpcError {
    match e.kind() {
        async_nats::client::PublishErrorKind::InvalidSubject => RpcError::Encode(e.to_string()),
        _ => RpcError::closed(format!("the NATS client could not publish the call: {e}")),
    }
}

impl tower_service::Service<Call> for NatsChannel {
    type Response = Reply;
    type Error = RpcError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, RpcError>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let channel = self.clone();
        Box::pin(async move { channel.send(call).await })
    }
}

impl fmt::Debug for NatsChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsChannel")
            .field("prefix", &self.inner.prefix)
            .field("broadcasting", &self.inner.broadcasting)
            .field("connection", &self.inner.connection)
            .finish()
    }
}
