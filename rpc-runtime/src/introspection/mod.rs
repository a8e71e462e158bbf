//! The built-in `rpc.Introspection` service: what a server hosts, each method's types in readable
//! form, the server's health, and per-method call statistics.
//!
//! Every [`Router`] (so every [`Server`](crate::Server)) hosts it unless told not to
//! ([`Router::without_introspection`]), for tools (the `rpc` command-line caller, dashboards,
//! peers in other languages) that know nothing of the server's traits. It is an ordinary
//! `#[service]`, so a Rust program calls it with the generated [`IntrospectionClient`]:
//!
//! ```
//! use rpc_runtime::introspection::IntrospectionClient;
//! use rpc_runtime::{service, transport::memory, Client, Server};
//!
//! #[service]
//! trait Echo {
//!     async fn echo(&self, text: String) -> String;
//! }
//! struct Impl;
//! impl Echo for Impl {
//!     async fn echo(&self, text: String) -> String { text }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), rpc_runtime::RpcError> {
//! let (listener, connector) = memory::listener();
//! let _server = Server::new(EchoServer::new(Impl)).serve(listener);
//! let client = Client::new(connector.connect()?);
//! EchoClient::from_client(client.clone()).echo("hi".into()).await?;
//!
//! let intro = IntrospectionClient::from_client(client);
//! let services = intro.list().await?;
//! assert_eq!(services[0].name, "Echo");
//! let echo = &intro.describe("Echo".into(), Some("echo".into())).await?.unwrap()[0];
//! assert_eq!((echo.args[0].name.as_str(), echo.args[0].ty.wire.as_str()), ("text", "str"));
//! assert!(intro.health().await?.serving);
//! let stats = intro.stats().await?;
//! assert_eq!((stats[0].method.as_str(), stats[0].calls), ("echo", 1));
//! # Ok(()) }
//! ```
//!
//! Statistics are recorded at the router's dispatch: the router starts a recorder in each
//! handler it hands out, and the server finishes it with the handler's outcome (two clock reads
//! and a few relaxed atomic adds per call, measured in BENCHMARKS.md); [`Router::without_stats`]
//! turns them off. The service itself does not appear in its own statistics.

mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::stats::MethodStatsSnapshot;
pub(crate) use self::stats::{MethodStats, Recorder};
use crate::describe::{MethodDescriptor, TypeDescription};
use crate::router::Router;

/// The wire name of the built-in introspection service.
pub const SERVICE_NAME: &str = "rpc.Introspection";

/// The introspection service: hosted by every [`Router`] unless it opts out.
///
/// Its methods never fail for the server's sake; an unknown service or method given to
/// `describe` is an application error (`Err`) naming what exists.
#[rpc_macros::service(name = "rpc.Introspection", crate = crate)]
pub trait Introspection {
    /// The services the server hosts (this one included), in the order they were added, with
    /// their methods' kinds and signature hashes.
    async fn list(&self) -> Vec<ServiceInfo>;
    /// The methods of `service` (only `method`, if given) with their argument names and types
    /// and result type; `Err` names the services, or the service's methods, when one is unknown.
    async fn describe(&self, service: String, method: Option<String>) -> Result<Vec<MethodInfo>, String>;
    /// Whether the server is serving (see [`Health`]).
    async fn health(&self) -> HealthStatus;
    /// Call statistics per method of every service but this one (empty if the router records
    /// none: [`Router::without_stats`]).
    async fn stats(&self) -> Vec<MethodStatsSnapshot>;
}

/// One service, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The service's wire name.
    pub name: String,
    /// Its methods, in declaration order.
    pub methods: Vec<MethodSummary>,
}

/// One method, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// The method's wire name.
    pub name: String,
    /// Its kind: `unary`, `oneway`, `server_stream`, `client_stream` or `bidi`.
    pub kind: String,
    /// Its signature hash (`docs/signatures.md`).
    pub signature_hash: u64,
}

/// One method, as `describe` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// The service's wire name.
    pub service: String,
    /// The method's wire name.
    pub name: String,
    /// Its kind: `unary`, `oneway`, `server_stream`, `client_stream` or `bidi`.
    pub kind: String,
    /// Its arguments, in the order a call's JSON array gives them.
    pub args: Vec<ArgInfo>,
    /// Its result type (`unit` when it returns nothing).
    pub result: TypeInfo,
    /// The text its hash is computed over, e.g. `unary (i64,i64)->i64`.
    pub signature: String,
    /// Its signature hash.
    pub signature_hash: u64,
}

/// One argument of a method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgInfo {
    /// The argument's name in the trait.
    pub name: String,
    /// Its type.
    pub ty: TypeInfo,
}

/// A type, readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeInfo {
    /// The Rust type, as `std::any::type_name` spells it (for people).
    pub rust: String,
    /// Its canonical wire shape (`docs/signatures.md`), e.g. `{x:i32,y:i32}`.
    pub wire: String,
}

/// What `health` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// Whether the server takes calls.
    pub serving: bool,
    /// `serving`, `not serving`, or `shutting down`.
    pub status: String,
}

/// A router's health: serving until told otherwise ([`Health::set_serving`]) or until a server
/// of the router begins shutting down.
///
/// A server in its shutdown refuses new calls, a health check included (the caller gets
/// [`RpcError::ShuttingDown`](crate::RpcError::ShuttingDown)); to let load balancers drain a
/// server first, set it not serving, wait, then shut down.
#[derive(Debug, Clone, Default)]
pub struct Health {
    state: Arc<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    not_serving: AtomicBool,
    shutting_down: AtomicBool,
}

impl Health {
    /// Sets whether the server reports itself serving.
    pub fn set_serving(&self, serving: bool) {
        self.state.not_serving.store(!serving, Ordering::Relaxed);
    }

    /// Whether it reports itself serving.
    pub fn is_serving(&self) -> bool {
        !self.state.not_serving.load(Ordering::Relaxed) && !self.state.shutting_down.load(Ordering::Relaxed)
    }

    /// Marks a shutdown begun (for good).
    pub(crate) fn shutting_down(&self) {
        self.state.shutting_down.store(true, Ordering::Relaxed);
    }

    fn status(&self) -> HealthStatus {
        let status = if self.state.shutting_down.load(Ordering::Relaxed) {
            "shutting down"
        } else if self.state.not_serving.load(Ordering::Relaxed) {
            "not serving"
        } else {
            "serving"
        };
        HealthStatus { serving: self.is_serving(), status: status.to_owned() }
    }
}

/// The introspection service's view of the router that hosts it. Made per call (the router is
/// an `Arc`), so the router never holds itself.
pub(crate) struct View(pub(crate) Router);

impl View {
    fn descriptors(&self) -> impl Iterator<Item = &'static crate::describe::ServiceDescriptor> + '_ {
        self.0.services().chain(std::iter::once(descriptor()))
    }
}

/// The introspection service's own descriptor.
pub(crate) fn descriptor() -> &'static crate::describe::ServiceDescriptor {
    <IntrospectionClient as crate::describe::Described>::descriptor()
}

impl Introspection for View {
    async fn list(&self) -> Vec<ServiceInfo> {
        self.descriptors()
            .map(|d| ServiceInfo {
                name: d.name().to_owned(),
                methods: d
                    .methods()
                    .iter()
                    .map(|m| MethodSummary {
                        name: m.name().to_owned(),
                        kind: m.kind().as_str().to_owned(),
                        signature_hash: m.signature_hash(),
                    })
                    .collect(),
            })
            .collect()
    }

    async fn describe(&self, service: String, method: Option<String>) -> Result<Vec<MethodInfo>, String> {
        let Some(d) = self.descriptors().find(|d| d.name() == service) else {
            let names: Vec<_> = self.descriptors().map(|d| d.name()).collect();
            return Err(format!("no service `{service}`; the server hosts: {}", names.join(", ")));
        };
        let info = |m: &MethodDescriptor| method_info(d.name(), m);
        match method {
            None => Ok(d.methods().iter().map(info).collect()),
            Some(name) => match d.method(&name) {
                Some(m) => Ok(vec![info(m)]),
                None => {
                    let names: Vec<_> = d.methods().iter().map(|m| m.name()).collect();
                    Err(format!("`{service}` has no method `{name}`; its methods: {}", names.join(", ")))
                }
            },
        }
    }

    async fn health(&self) -> HealthStatus {
        self.0.health().status()
    }

    async fn stats(&self) -> Vec<MethodStatsSnapshot> {
        self.0.stats()
    }
}

fn method_info(service: &str, m: &MethodDescriptor) -> MethodInfo {
    let ty =
        |t: &TypeDescription| TypeInfo { rust: t.rust_name().to_owned(), wire: t.canonical().to_owned() };
    MethodInfo {
        service: service.to_owned(),
        name: m.name().to_owned(),
        kind: m.kind().as_str().to_owned(),
        args: m.args().iter().map(|a| ArgInfo { name: a.name().to_owned(), ty: ty(a.ty()) }).collect(),
        result: ty(m.result()),
        signature: m.signature().to_owned(),
        signature_hash: m.signature_hash(),
    }
}
