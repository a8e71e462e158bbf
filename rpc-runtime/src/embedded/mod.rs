//! Without a broker, on one host (cargo feature `embedded`): the same semantics as the NATS
//! binding (`rpc_runtime::nats`, feature `nats`) for tests and single processes, and durable
//! persistent calls in a file.
//!
//! - [`Bus`] is an in-process bus: [`BusServer`] registers instances of a [`Router`](crate::Router)'s
//!   services, calls through a [`BusChannel`] (a `tower::Service<Call>`, like `NatsChannel`) are
//!   balanced across them, broadcast to all of them or gathered from all of them, and
//!   [`Bus::instances`] lists them. Calls keep their encoded bodies and go through
//!   [`Router::serve_call`](crate::Router::serve_call), so schema skew is caught as over NATS.
//! - [`FileQueue`] and [`FileWorker`]: persistent calls in a SQLite file (WAL journal, shared by
//!   the processes of one host), with the guarantees of the JetStream queue
//!   (`docs/embedded.md`). Both implement the runtime's
//!   [`PersistentQueue`](crate::queued::PersistentQueue), so a `#[rpc(persistent)]` method's
//!   generated `FooQueue` works over either.
//!
//! ```no_run
//! use rpc_runtime::embedded::{FileQueue, FileQueueConfig, FileWorker};
//! use rpc_runtime::service;
//!
//! #[service]
//! trait Mailer {
//!     #[rpc(persistent)]
//!     async fn send(&self, to: String) -> u64;
//! }
//!
//! struct Impl;
//! impl Mailer for Impl {
//!     async fn send(&self, _to: String) -> u64 {
//!         1
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_runtime::RpcError> {
//! let queue = FileQueue::open("calls.sqlite", FileQueueConfig::default()).await?;
//! // A caller: returns once the call is on disk.
//! let sent = MailerQueue::new(queue.clone()).submit_send("ann@example.com".into()).await?;
//! // A worker, here or in another process.
//! let worker = FileWorker::new(MailerServer::new(Impl)).serve(&queue);
//! let state = sent.wait(std::time::Duration::from_secs(5)).await?;
//! assert!(matches!(state, rpc_runtime::queued::CallState::Done(Ok(1))));
//! worker.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```

mod bus;
mod queue;
mod store;
mod worker;

pub use bus::{Bus, BusChannel, BusInstance, BusServer, BusServerHandle};
pub use queue::{FileQueue, FileQueueConfig};
pub use worker::{FileWorker, FileWorkerHandle};
