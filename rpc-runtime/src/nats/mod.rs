//! Calls through a NATS broker (cargo feature `nats`): the same generated clients and servers,
//! with the broker balancing calls over many server instances, broadcasting to all of them, and
//! listing them.
//!
//! The binding works at the call seam, not on the byte-stream engine: NATS already multiplexes,
//! so a call is one request message and its reply one message (`docs/nats.md` specifies the
//! subjects and headers).
//!
//! - [`connect`] opens a [`NatsConnection`]: the `async_nats` client and a signal that fails
//!   pending calls when the broker connection drops.
//! - [`NatsChannel`] is a `tower::Service<Call>`: generated clients call through it with
//!   `FooClient::from_service(channel)`. It also [broadcasts](NatsChannel::broadcast) one-way
//!   calls to every instance and [gathers](NatsChannel::gather) the replies of all instances.
//! - [`NatsServer`] serves a [`Router`](crate::Router)'s services: every instance of a service
//!   joins one queue group, so the broker shares the calls among them; each registers with the
//!   NATS service API (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`), so `nats micro ls` lists it
//!   with its methods and counts, and [`instances`] lists the live ones.
//! - [`CallQueue`] and [`QueueWorker`]: persistent calls on JetStream, stored before the
//!   caller's await returns, run later (at least once) by whichever worker is up, their outcome
//!   fetched by id.
//!
//! ```no_run
//! use rpc_runtime::nats::{self, NatsChannel, NatsServer};
//! use rpc_runtime::service;
//!
//! #[service]
//! trait Greeter {
//!     async fn hello(&self, name: String) -> String;
//! }
//!
//! struct Impl;
//! impl Greeter for Impl {
//!     async fn hello(&self, name: String) -> String {
//!         format!("hello {name}")
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_runtime::RpcError> {
//! let connection = nats::connect("nats://127.0.0.1:4222").await?;
//! // A worker: run as many as you like, the broker balances between them.
//! let worker = NatsServer::new(GreeterServer::new(Impl)).serve(&connection).await?;
//! // A caller.
//! let greeter = GreeterClient::from_service(NatsChannel::new(&connection));
//! assert_eq!(greeter.hello("nats".into()).await?, "hello nats");
//! worker.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```

mod channel;
mod connection;
mod discovery;
mod headers;
mod queue;
mod server;
mod subject;
mod worker;

pub use channel::NatsChannel;
pub use connection::{connect, connect_with, NatsConnection};
pub use discovery::{instances, Instance};
pub use queue::{CallHandle, CallQueue, CallState, QueueConfig};
pub use server::{NatsServer, NatsServerHandle};
pub use subject::DEFAULT_PREFIX;
pub use worker::{QueueWorker, QueueWorkerHandle};

/// The `async-nats` crate this binding is built on, for its `ConnectOptions` and `Client`.
pub use async_nats;
