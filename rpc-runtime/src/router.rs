//! Several services behind one server: calls routed by service name, each checked against the
//! method's kind and signature hash before anything of the user's runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::describe::{MethodDescriptor, MethodKind, ServiceDescriptor};
use crate::hello::AdvertisedService;
use crate::service::{Handler, ResponseBuf, Service};
use crate::RpcError;

/// The services one [`Server`](crate::Server) hosts, by wire name (`#[service(name = "...")]`,
/// the trait's name by default).
///
/// A server built from one service has a router of one. Each call names its service (a call
/// with an empty name goes to the only service of a router of one, for hand-written peers); a
/// name no service has is [`RpcError::UnknownService`], a method the service does not have is
/// [`RpcError::UnknownMethod`], and a call whose signature hash differs from the method's is
/// [`RpcError::SignatureMismatch`]: the handler does not run, and the connection carries on.
///
/// ```
/// use rpc_runtime::{service, transport::memory, Router, Server};
///
/// #[service]
/// trait Greeter {
///     async fn hello(&self) -> String;
/// }
/// #[service(name = "admin.Stats")]
/// trait Stats {
///     async fn calls(&self) -> u64;
/// }
///
/// struct Impl;
/// impl Greeter for Impl {
///     async fn hello(&self) -> String { "hello".into() }
/// }
/// impl Stats for Impl {
///     async fn calls(&self) -> u64 { 7 }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), rpc_runtime::RpcError> {
/// let router = Router::new().add(GreeterServer::new(Impl)).add(StatsServer::new(Impl));
/// let (listener, connector) = memory::listener();
/// let _server = Server::new(router).serve(listener);
/// let client = rpc_runtime::Client::new(connector.connect()?);
/// // Two generated clients share one connection.
/// let greeter = GreeterClient::from_client(client.clone());
/// let stats = StatsClient::from_client(client);
/// assert_eq!(greeter.hello().await?, "hello");
/// assert_eq!(stats.calls().await?, 7);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<&'static str, Route>,
    /// Service names in the order they were added, for the HELLO.
    order: Vec<&'static str>,
}

#[derive(Clone)]
struct Route {
    service: Arc<dyn Service>,
    methods: HashMap<&'static str, &'static MethodDescriptor>,
}

impl Router {
    /// No services.
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds `service` under its descriptor's name.
    ///
    /// # Panics
    ///
    /// Panics if a service of the same name was added already: two services cannot share a
    /// name on one server (give one another with `#[service(name = "...")]`).
    #[must_use]
    #[track_caller]
    pub fn add(mut self, service: impl Service) -> Router {
        let descriptor = service.descriptor();
        let name = descriptor.name();
        assert!(
            !self.routes.contains_key(name),
            "two services named `{name}` added to one router; rename one with `#[service(name = \"...\")]`"
        );
        let methods = descriptor.methods().iter().map(|m| (m.name(), m)).collect();
        self.routes.insert(name, Route { service: Arc::new(service), methods });
        self.order.push(name);
        self
    }

    /// The descriptors of the services, in the order they were added.
    pub fn services(&self) -> impl Iterator<Item = &'static ServiceDescriptor> + '_ {
        self.order.iter().map(|name| self.routes[name].service.descriptor())
    }

    /// What the server's HELLO says of its services.
    pub(crate) fn advertise(&self) -> Vec<AdvertisedService> {
        self.services().map(AdvertisedService::from_descriptor).collect()
    }

    /// Checks a call against the services and prepares its handler.
    pub(crate) fn prepare(
        &self,
        service: &str,
        method: &str,
        kind: MethodKind,
        hash: u64,
        payload: &[u8],
        response: ResponseBuf,
    ) -> Result<Handler, RpcError> {
        let route = match self.routes.get(service) {
            Some(route) => route,
            // An empty name is the only service, for hand-written peers (PROTOCOL.md).
            None if service.is_empty() && self.routes.len() == 1 => {
                self.routes.values().next().expect("one route")
            }
            None => return Err(RpcError::UnknownService(service.to_owned())),
        };
        let Some(descriptor) = route.methods.get(method) else {
            return Err(RpcError::UnknownMethod(method.to_owned()));
        };
        // A one-way call of a unary method runs it and drops the result; any other difference
        // means the caller was built from another trait.
        let compatible = descriptor.kind() == kind
            || (kind == MethodKind::Oneway && descriptor.kind() == MethodKind::Unary);
        if !compatible {
            return Err(RpcError::SignatureMismatch {
                method: format!("{service}.{method}"),
                detail: format!(
                    "called as a {kind} method; the server's is {}: the caller was built from another version of the trait",
                    descriptor.kind()
                ),
            });
        }
        // 0: a caller without a schema (it read the method from the HELLO) skips the check.
        if hash != 0 && hash != descriptor.signature_hash() {
            return Err(RpcError::SignatureMismatch {
                method: format!("{service}.{method}"),
                detail: format!(
                    "the caller's signature hash is {hash:#018x}, the server's is {:#018x} for `{}`; \
                     the argument or result types differ: rebuild the older side from the newer trait",
                    descriptor.signature_hash(),
                    descriptor.signature()
                ),
            });
        }
        route.service.call(method, payload, response)
    }
}

impl<S: Service> From<S> for Router {
    fn from(service: S) -> Router {
        Router::new().add(service)
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router").field("services", &self.order).finish()
    }
}
