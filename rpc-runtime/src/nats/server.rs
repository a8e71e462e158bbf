//! The server side: each service of a router as a NATS service, its instances in one queue group,
//! every request fed to [`Router::serve_call`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::service::{self, ServiceExt};
use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use rpc_transport::Peer;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::NatsConnection;
use super::{headers, subject};
use crate::call::Call;
use crate::describe::MethodKind;
use crate::{Router, RpcError};

/// Serves a [`Router`]'s services through a NATS broker.
///
/// For each service, an instance:
///
/// - registers with the NATS service API under the service's name (dots become `_`; the true
///   name is in the metadata key `rpc.service`), one endpoint per method on
///   `{prefix}.{service}.{method}`, with the method's kind, signature and hash as endpoint
///   metadata, so `nats micro ls/info/stats` list the instance, its methods and its counts;
/// - joins the queue group `{prefix}.{service}`: the broker gives each call to one instance;
/// - subscribes to `{prefix}.$all.{service}.*` without a queue group: broadcasts and gathers
///   reach every instance.
///
/// Each request is decoded from its headers into a [`Call`] and run by
/// [`Router::serve_call`] (kind, signature and metadata checks, deadline, panics), on its own task.
/// At most [`max_concurrent`](NatsServer::max_concurrent) run at once; a request beyond that is
/// answered [`RpcError::Overloaded`] at once (it never started, so the caller may retry, and
/// the broker may give the retry to another instance). A malformed request (a header that does
/// not parse, a format the server does not speak) is answered with the named error and the
/// server carries on.
#[derive(Debug, Clone)]
pub struct NatsServer {
    router: Router,
    prefix: String,
    version: String,
    max_concurrent: usize,
    max_deadline: Duration,
    oneway_deadline: Duration,
}

impl NatsServer {
    /// Serves `router` (or one service) on the prefix [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX).
    pub fn new(router: impl Into<Router>) -> NatsServer {
        NatsServer {
            router: router.into(),
            prefix: super::DEFAULT_PREFIX.to_owned(),
            version: "0.0.0".to_owned(),
            max_concurrent: 1024,
            max_deadline: Duration::from_secs(24 * 60 * 60),
            oneway_deadline: Duration::from_secs(60),
        }
    }

    /// The subject prefix (checked by [`serve`](NatsServer::serve)).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> NatsServer {
        self.prefix = prefix.to_owned();
        self
    }

    /// The version the service API reports (semantic versioning, `0.0.0` by default).
    #[must_use]
    pub fn version(mut self, version: &str) -> NatsServer {
        self.version = version.to_owned();
        self
    }

    /// How many calls may run at once on this instance (default 1024).
    #[must_use]
    pub fn max_concurrent(mut self, calls: usize) -> NatsServer {
        self.max_concurrent = calls.max(1);
        self
    }

    /// The longest deadline a call may ask for (default 24 h); a call without one that is
    /// one-way gets 60 s, as on the byte-stream transports.
    #[must_use]
    pub fn max_deadline(mut self, max: Duration) -> NatsServer {
        self.max_deadline = max;
        self
    }

    /// Subscribes and starts serving; returns once the broker has the subscriptions, so a call
    /// made after this returns reaches this instance (or another).
    ///
    /// # Errors
    ///
    /// [`RpcError::Io`] (`InvalidInput`) for a prefix, service or method name that cannot be a
    /// subject, or a version that is not semantic; [`RpcError::ConnectionClosed`] if the broker
    /// refused a subscription.
    pub async fn serve(self, connection: &NatsConnection) -> Result<NatsServerHandle, RpcError> {
        subject::check_prefix(&self.prefix)?;
        let client = connection.client().clone();
        let mut sources: Vec<BoxStream<'static, Incoming>> = Vec::new();
        let mut services = Vec::new();
        for descriptor in self.router.services() {
            let name = descriptor.name();
            for m in descriptor.methods() {
                subject::check_names(name, m.name()).map_err(|e| invalid(e.to_string()))?;
            }
            let metadata = HashMap::from([
                ("rpc.service".to_owned(), name.to_owned()),
                ("rpc.prefix".to_owned(), self.prefix.clone()),
            ]);
            let registered = client
                .service_builder()
                .description(format!("rpc service `{name}`"))
                .metadata(metadata)
                .queue_group(format!("{}.{name}", self.prefix))
                .start(subject::registry_name(name), &self.version)
                .await
                .map_err(|e| invalid(format!("registering `{name}` with the NATS service API: {e}")))?;
            for m in descriptor.methods() {
                let metadata = HashMap::from([
                    ("kind".to_owned(), m.kind().to_string()),
                    ("signature".to_owned(), m.signature().to_owned()),
                    ("hash".to_owned(), format!("{:016x}", m.signature_hash())),
                ]);
                let endpoint = registered
                    .endpoint_builder()
                    .name(m.name())
                    .metadata(metadata)
                    .add(subject::call(&self.prefix, name, m.name()))
                    .await
                    .map_err(|e| refused(&e))?;
                let service_name: &'static str = name;
                let method: &'static str = m.name();
                sources.push(
                    endpoint
                        .map(move |request| Incoming::Call { service: service_name, method, request })
                        .boxed(),
                );
            }
            let all = subject::broadcast_all(&self.prefix, name);
            let broadcasts = client.subscribe(all).await.map_err(|e| refused(&e))?;
            let service_name: &'static str = name;
            sources.push(
                broadcasts.map(move |message| Incoming::Broadcast { service: service_name, message }).boxed(),
            );
            services.push(registered);
        }
        // The subscriptions are sent; a flush makes sure the broker has them before we return.
        client.flush().await.map_err(|e| refused(&e))?;
        let ids = services.iter().map(|s| s.info()).collect::<Vec<_>>();
        let mut instance_ids = Vec::with_capacity(ids.len());
        for info in ids {
            instance_ids.push(info.await.id);
        }
        let cancel_calls = CancellationToken::new();
        let shared = Arc::new(Shared {
            router: self.router,
            client,
            permits: Arc::new(Semaphore::new(self.max_concurrent)),
            max_deadline: self.max_deadline,
            oneway_deadline: self.oneway_deadline,
            cancel_calls: cancel_calls.clone(),
        });
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let task = tokio::spawn(run(
            Arc::clone(&shared),
            stream::select_all(sources),
            services,
            stop.clone(),
            tracker.clone(),
        ));
        Ok(NatsServerHandle { task: Some(task), stop, cancel_calls, tracker, instance_ids })
    }
}

/// A request from one of the subscriptions. Moved once into its task, never stored in bulk, so
/// the size difference of the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Incoming {
    /// A balanced call to a method's endpoint.
    Call { service: &'static str, method: &'static str, request: service::Request },
    /// A broadcast or gather to every instance.
    Broadcast { service: &'static str, message: Message },
}

struct Shared {
    router: Router,
    client: async_nats::Client,
    permits: Arc<Semaphore>,
    max_deadline: Duration,
    oneway_deadline: Duration,
    /// Cancels the calls still running once the grace period is over. Shared here, not cloned
    /// per call: a clone locks the token's tree.
    cancel_calls: CancellationToken,
}

async fn run(
    shared: Arc<Shared>,
    mut incoming: stream::SelectAll<BoxStream<'static, Incoming>>,
    services: Vec<service::Service>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            () = stop.cancelled() => break,
        };
        let Some(incoming) = next else { break };
        match Arc::clone(&shared.permits).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&shared);
                let mut call = Box::pin(async move {
                    let _permit = permit;
                    handle(&shared, incoming).await;
                });
                // Most calls finish on their first poll (the reply is queued on the broker
                // connection without waiting): run that poll here, as a bare responder would,
                // and give the call a task of its own only if it has to wait. A handler's panic
                // is caught inside `serve_call`; this guards the loop against anything else.
                let first = std::future::poll_fn(|cx| {
                    Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))))
                })
                .await;
                match first {
                    Ok(Poll::Ready(())) => {}
                    Ok(Poll::Pending) => {
                        tracker.spawn(call);
                    }
                    Err(_) => {
                        tracing::error!(target: "rpc_runtime::nats", "a call panicked outside its handler");
                    }
                }
            }
            Err(_) => {
                // Answered here, not on a task: a flood of refusals waits for the broker
                // connection instead of piling up tasks.
                let busy = RpcError::Overloaded("the instance is running its most concurrent calls".into());
                respond(&shared, &incoming, Err(busy)).await;
            }
        }
    }
    // Stop taking calls: the service API forgets this instance, and dropping the subscriptions
    // unsubscribes them.
    for service in services {
        let _ = service.stop().await;
    }
    drop(incoming);
}

/// Runs one request and answers it.
async fn handle(shared: &Shared, incoming: Incoming) {
    let (service, message) = match &incoming {
        Incoming::Call { service, request, .. } => (*service, &request.message),
        Incoming::Broadcast { service, message } => (*service, message),
    };
    let outcome = match decode(shared, service, &incoming, message) {
        Ok(call) => {
            let peer = Peer::Other {
                transport: "nats".into(),
                address: message.reply.as_ref().map_or_else(String::new, |r| r.to_string()),
            };
            tokio::select! {
                // The call first: most finish at once, and polling the token first would register
                // a waiter (a lock) for nothing.
                biased;
                outcome = shared.router.serve_call(call, peer) => outcome,
                () = shared.cancel_calls.cancelled() => Err(RpcError::Cancelled("the server shut down before the call finished".into())),
            }
        }
        Err(e) => {
            tracing::debug!(target: "rpc_runtime::nats", subject = %message.subject, "refused a malformed request: {e}");
            Err(e)
        }
    };
    respond(shared, &incoming, outcome.map(|reply| reply.body)).await;
}

/// A request message as a [`Call`].
fn decode(
    shared: &Shared,
    service: &'static str,
    incoming: &Incoming,
    message: &Message,
) -> Result<Call, RpcError> {
    let method: std::borrow::Cow<'static, str> = match incoming {
        Incoming::Call { method, .. } => (*method).into(),
        Incoming::Broadcast { .. } => {
            // `{prefix}.$all.{service}.{method}`: the last token, as the subscription has one.
            let method = message.subject.rsplit('.').next().unwrap_or_default();
            method.to_owned().into()
        }
    };
    let fields = headers::decode_call(message.headers.as_ref())?;
    // A request with a reply subject is unary; without, one-way (a unary method called one-way
    // runs and its result is dropped, as on any transport).
    let kind = if message.reply.is_some() { MethodKind::Unary } else { MethodKind::Oneway };
    let timeout = match fields.timeout {
        Some(t) if t.is_zero() => return Err(RpcError::DeadlineExceeded),
        Some(t) => Some(t.min(shared.max_deadline)),
        None if kind == MethodKind::Oneway => Some(shared.oneway_deadline),
        None => None,
    };
    Ok(Call {
        service: service.into(),
        method,
        kind,
        format: fields.format,
        signature: fields.signature,
        deadline: timeout.map(|t| Instant::now() + t),
        metadata: fields.metadata,
        body: message.payload.clone(),
        // A client-side mark for retry policies; a server has no use for it.
        idempotent: false,
    })
}

/// Sends the reply or the error; a one-way call (no reply subject) gets nothing.
async fn respond(shared: &Shared, incoming: &Incoming, outcome: Result<Bytes, RpcError>) {
    let message = match incoming {
        Incoming::Call { request, .. } => &request.message,
        Incoming::Broadcast { message, .. } => message,
    };
    if message.reply.is_none() {
        if let Err(e) = outcome {
            tracing::debug!(target: "rpc_runtime::nats", subject = %message.subject, "one-way call failed: {e}");
        }
        return;
    }
    // A reply over the broker's limit is refused by the client; say so instead.
    let max = shared.client.max_payload();
    let outcome = match outcome {
        Ok(body) if body.len() > max => Err(RpcError::FrameTooLarge { len: body.len(), max }),
        other => other,
    };
    let sent = match incoming {
        Incoming::Call { request, .. } => {
            let result = outcome.map_err(|e| {
                let (code, status) = headers::error_parts(&e);
                service::error::Error { code, status }
            });
            request.respond(result).await
        }
        Incoming::Broadcast { message, .. } => {
            let reply = message.reply.clone().expect("checked above");
            match outcome {
                Ok(body) => shared.client.publish(reply, body).await,
                Err(e) => {
                    let (code, status) = headers::error_parts(&e);
                    let mut h = HeaderMap::new();
                    h.insert(service::NATS_SERVICE_ERROR, status.as_str());
                    h.insert(service::NATS_SERVICE_ERROR_CODE, code.to_string().as_str());
                    shared.client.publish_with_headers(reply, h, Bytes::new()).await
                }
            }
        }
    };
    if let Err(e) = sent {
        tracing::debug!(target: "rpc_runtime::nats", subject = %message.subject, "could not send a reply: {e}");
    }
}

/// A running [`NatsServer`].
pub struct NatsServerHandle {
    task: Option<JoinHandle<()>>,
    stop: CancellationToken,
    cancel_calls: CancellationToken,
    tracker: TaskTracker,
    instance_ids: Vec<String>,
}

impl NatsServerHandle {
    /// The ids the service API gave this instance's registrations, one per service, in the
    /// router's order (what [`instances`](super::instances) reports as [`Instance::id`](super::Instance::id)).
    pub fn instance_ids(&self) -> &[String] {
        &self.instance_ids
    }

    /// Stops taking calls (unsubscribes and leaves the service API), lets the calls running
    /// finish within `grace`, then cancels the rest (their callers get
    /// [`RpcError::Cancelled`]).
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        crate::drain::drain(&self.tracker, grace, &self.cancel_calls).await;
    }
}

impl fmt::Debug for NatsServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsServerHandle").field("instance_ids", &self.instance_ids).finish()
    }
}

impl Drop for NatsServerHandle {
    /// Dropping the handle stops the instance at once (calls running are cancelled).
    fn drop(&mut self) {
        self.stop.cancel();
        self.cancel_calls.cancel();
    }
}

fn invalid(message: String) -> RpcError {
    RpcError::Io(Arc::new(std::io::Error::new(std::io::ErrorKind::InvalidInput, message)))
}

fn refused(e: &dyn fmt::Display) -> RpcError {
    RpcError::closed(format!("the NATS broker refused a subscription: {e}"))
}
