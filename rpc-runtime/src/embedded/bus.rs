//! The in-process bus: instances of services registered by name, calls balanced across them,
//! one-way calls broadcast to all of them, replies gathered from all of them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use rpc_transport::Peer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::call::{Call, MethodRef, Reply};
use crate::codec::{self, Format};
use crate::describe::MethodKind;
use crate::{Router, RpcError};

/// The deadline of a one-way call that has none, as on every transport.
const ONEWAY_DEADLINE: Duration = Duration::from_secs(60);

/// A bus inside one process: the broker-less counterpart of a NATS connection. Servers register
/// instances of their services on it ([`BusServer`]); clients call through a [`BusChannel`].
///
/// Clones share one bus.
#[derive(Clone, Default)]
pub struct Bus {
    inner: Arc<BusInner>,
}

#[derive(Default)]
struct BusInner {
    /// The live instances of each service, by the service's wire name.
    services: Mutex<HashMap<String, Vec<Arc<Instance>>>>,
    /// Round-robin position: each call goes to the next instance.
    turn: AtomicUsize,
    next_id: AtomicU64,
}

/// One registered instance of one service.
struct Instance {
    id: String,
    router: Router,
    methods: Vec<String>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// A live instance of a service, as [`Bus::instances`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusInstance {
    /// The instance's id on this bus (unique per registration).
    pub id: String,
    /// Its methods' names.
    pub methods: Vec<String>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Bus {
        Bus::default()
    }

    /// The live instances of `service`, sorted by id (at once: the bus knows them all).
    pub fn instances(&self, service: &str) -> Vec<BusInstance> {
        let services = self.inner.services.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<BusInstance> = services
            .get(service)
            .into_iter()
            .flatten()
            .map(|i| BusInstance { id: i.id.clone(), methods: i.methods.clone() })
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    fn all(&self, service: &str) -> Vec<Arc<Instance>> {
        let services = self.inner.services.lock().unwrap_or_else(|p| p.into_inner());
        services.get(service).cloned().unwrap_or_default()
    }

    /// The next instance of `service`, round robin; none registered is
    /// [`RpcError::Unavailable`].
    fn pick(&self, service: &str) -> Result<Arc<Instance>, RpcError> {
        let services = self.inner.services.lock().unwrap_or_else(|p| p.into_inner());
        match services.get(service) {
            Some(instances) if !instances.is_empty() => {
                let turn = self.inner.turn.fetch_add(1, Ordering::Relaxed);
                Ok(Arc::clone(&instances[turn % instances.len()]))
            }
            _ => Err(unavailable(service)),
        }
    }

    fn unregister(&self, ids: &[String]) {
        let mut services = self.inner.services.lock().unwrap_or_else(|p| p.into_inner());
        for instances in services.values_mut() {
            instances.retain(|i| !ids.contains(&i.id));
        }
        services.retain(|_, instances| !instances.is_empty());
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services = self.inner.services.lock().unwrap_or_else(|p| p.into_inner());
        let counts: HashMap<&str, usize> = services.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
        f.debug_struct("Bus").field("instances", &counts).finish()
    }
}

fn unavailable(service: &str) -> RpcError {
    RpcError::Unavailable {
        source: Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("no instance of `{service}` is registered on the bus"),
        )),
        retry_in: Duration::ZERO,
    }
}

/// Serves a [`Router`]'s services on a [`Bus`]: one instance of each service, sharing the calls
/// with the other instances of it (round robin), hearing every broadcast.
///
/// Each call runs [`Router::serve_call`] on its own task (kind, signature and metadata checks,
/// deadline, panics), so a schema mismatch is caught exactly as over a network. At most
/// [`max_concurrent`](BusServer::max_concurrent) run at once; a call beyond that is
/// [`RpcError::Overloaded`] at once.
#[derive(Debug, Clone)]
pub struct BusServer {
    router: Router,
    max_concurrent: usize,
}

impl BusServer {
    /// Serves `router` (or one service).
    pub fn new(router: impl Into<Router>) -> BusServer {
        BusServer { router: router.into(), max_concurrent: 1024 }
    }

    /// How many calls may run at once on this instance (default 1024).
    #[must_use]
    pub fn max_concurrent(mut self, calls: usize) -> BusServer {
        self.max_concurrent = calls.max(1);
        self
    }

    /// Registers the instance; a call made after this returns may reach it.
    pub fn serve(self, bus: &Bus) -> BusServerHandle {
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(self.max_concurrent));
        let mut ids = Vec::new();
        let mut services = bus.inner.services.lock().unwrap_or_else(|p| p.into_inner());
        for descriptor in self.router.services() {
            let n = bus.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}#{n}", descriptor.name());
            ids.push(id.clone());
            let instance = Arc::new(Instance {
                id,
                router: self.router.clone(),
                methods: descriptor.methods().iter().map(|m| m.name().to_owned()).collect(),
                permits: Arc::clone(&permits),
                tracker: tracker.clone(),
                cancel: cancel.clone(),
            });
            services.entry(descriptor.name().to_owned()).or_default().push(instance);
        }
        drop(services);
        BusServerHandle { bus: bus.clone(), ids, tracker, cancel }
    }
}

/// A registered [`BusServer`].
pub struct BusServerHandle {
    bus: Bus,
    ids: Vec<String>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl BusServerHandle {
    /// The instance ids, one per service, in the router's order.
    pub fn instance_ids(&self) -> &[String] {
        &self.ids
    }

    /// Leaves the bus (no new calls reach this instance), lets the calls running finish within
    /// `grace`, then cancels the rest (their callers get [`RpcError::Cancelled`]).
    pub async fn shutdown(self, grace: Duration) {
        self.bus.unregister(&self.ids);
        crate::drain::drain(&self.tracker, grace, &self.cancel).await;
    }
}

impl Drop for BusServerHandle {
    /// Dropping the handle leaves the bus at once (calls running are cancelled).
    fn drop(&mut self) {
        self.bus.unregister(&self.ids);
        self.cancel.cancel();
    }
}

impl fmt::Debug for BusServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusServerHandle").field("ids", &self.ids).finish()
    }
}

impl Instance {
    /// Starts `call` on this instance; the receiver gets its outcome.
    fn start(self: &Arc<Self>, call: Call) -> Result<oneshot::Receiver<Result<Reply, RpcError>>, RpcError> {
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| RpcError::Overloaded("the instance is running its most concurrent calls".into()))?;
        let (tx, rx) = oneshot::channel();
        let instance = Arc::clone(self);
        self.tracker.spawn(async move {
            let _permit = permit;
            let peer = Peer::Other { transport: "bus".into(), address: instance.id.clone() };
            let outcome = tokio::select! {
                outcome = instance.router.serve_call(call, peer) => outcome,
                () = instance.cancel.cancelled() => Err(RpcError::Cancelled("the server shut down before the call finished".into())),
            };
            let _ = tx.send(outcome);
        });
        Ok(rx)
    }
}

/// Calls through a [`Bus`]: a `tower::Service<Call>`, so a generated client works over it with
/// `FooClient::from_service(channel)`, exactly as over a `NatsChannel`.
///
/// A unary call goes to one instance of the service (round robin); a one-way call likewise, and
/// returns once started. No instance registered: [`RpcError::Unavailable`] at once (retryable,
/// never started). The server's errors come back as themselves.
#[derive(Clone)]
pub struct BusChannel {
    bus: Bus,
    broadcasting: bool,
    timeout: Option<Duration>,
}

impl BusChannel {
    /// A channel on `bus`.
    pub fn new(bus: &Bus) -> BusChannel {
        BusChannel { bus: bus.clone(), broadcasting: false, timeout: None }
    }

    /// A channel whose one-way calls reach every instance of the service; a unary call through
    /// it fails with [`RpcError::Encode`] (gather replies with [`BusChannel::gather`]).
    pub fn broadcasting(&self) -> BusChannel {
        BusChannel { broadcasting: true, ..self.clone() }
    }

    /// Gives each call without a deadline the deadline `timeout` from when it is sent.
    pub fn with_timeout(&self, timeout: Duration) -> BusChannel {
        BusChannel { timeout: Some(timeout), ..self.clone() }
    }

    /// The bus underneath.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Sends `call` and waits for its reply (nothing for a one-way call).
    pub async fn send(&self, mut call: Call) -> Result<Reply, RpcError> {
        if call.deadline.is_none() {
            call.deadline = self.timeout.map(|t| Instant::now() + t);
        }
        if call.deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(RpcError::DeadlineExceeded);
        }
        match call.kind {
            MethodKind::Unary if self.broadcasting => Err(RpcError::Encode(format!(
                "`{}.{}` is unary: a broadcasting channel carries one-way calls; gather the replies with BusChannel::gather",
                call.service, call.method
            ))),
            MethodKind::Unary => {
                let deadline = call.deadline;
                let rx = self.bus.pick(&call.service)?.start(call)?;
                wait(rx, deadline).await
            }
            MethodKind::Oneway => {
                let format = call.format;
                if self.broadcasting {
                    self.broadcast(call)?;
                } else {
                    call.deadline = call.deadline.or_else(|| Some(Instant::now() + ONEWAY_DEADLINE));
                    self.bus.pick(&call.service)?.start(call)?;
                }
                Ok(Reply { format, body: Bytes::new() })
            }
            other => Err(RpcError::Encode(format!(
                "`{}.{}` is a {other} method: streams are not carried over the bus",
                call.service, call.method
            ))),
        }
    }

    /// Starts a one-way call on every instance of its service (none: nothing happens, as with a
    /// multicast nobody hears). An instance at its concurrency limit misses it.
    pub fn broadcast(&self, mut call: Call) -> Result<(), RpcError> {
        call.kind = MethodKind::Oneway;
        call.deadline = call.deadline.or_else(|| Some(Instant::now() + ONEWAY_DEADLINE));
        for instance in self.bus.all(&call.service) {
            if let Err(e) = instance.start(call.clone()) {
                tracing::debug!(target: "rpc_runtime::embedded", instance = %instance.id, "broadcast missed: {e}");
            }
        }
        Ok(())
    }

    /// Calls the method on every instance of the service and collects the replies that arrive
    /// within `window` (or by the call's deadline), in arrival order: one entry per instance that
    /// answered. Unlike over NATS, the bus knows how many instances there are, so it returns as
    /// soon as all have answered.
    pub async fn gather(
        &self,
        mut call: Call,
        window: Duration,
    ) -> Result<Vec<Result<Reply, RpcError>>, RpcError> {
        if call.kind != MethodKind::Unary {
            return Err(RpcError::Encode(format!(
                "`{}.{}` is a {} method: only unary calls have replies to gather",
                call.service, call.method, call.kind
            )));
        }
        let end = Instant::now() + window;
        let deadline = call.deadline.map_or(end, |d| d.min(end));
        call.deadline = Some(deadline);
        let mut pending: FuturesUnordered<_> = self
            .bus
            .all(&call.service)
            .into_iter()
            .map(|instance| {
                let started = instance.start(call.clone());
                async move {
                    match started {
                        Ok(rx) => rx.await.unwrap_or_else(|_| Err(cancelled())),
                        Err(e) => Err(e),
                    }
                }
            })
            .collect();
        let mut out = Vec::new();
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                next = pending.next() => match next {
                    Some(reply) => out.push(reply),
                    None => break,
                },
                () = &mut sleep => break,
            }
        }
        Ok(out)
    }

    /// [`BusChannel::gather`] with typed arguments and results (postcard).
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
}

async fn wait(
    rx: oneshot::Receiver<Result<Reply, RpcError>>,
    deadline: Option<Instant>,
) -> Result<Reply, RpcError> {
    let outcome = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, rx).await {
            Ok(outcome) => outcome,
            Err(_) => return Err(RpcError::DeadlineExceeded),
        },
        None => rx.await,
    };
    outcome.unwrap_or_else(|_| Err(cancelled()))
}

fn cancelled() -> RpcError {
    RpcError::Cancelled("the server shut down before the call finished".into())
}

impl tower_service::Service<Call> for BusChannel {
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

impl fmt::Debug for BusChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusChannel")
            .field("broadcasting", &self.broadcasting)
            .field("timeout", &self.timeout)
            .finish()
    }
}
