//! Typed RPC from a Rust trait: put [`service`] on a trait and get a client, a server and the
//! messages between them, carried over TCP, Unix sockets, pipes, FIFOs or in-memory connections.
//!
//! # Examples
//!
//! ```
//! use rpc_runtime::{service, transport::tcp, Server};
//!
//! #[service]
//! pub trait Calculator {
//!     /// Adds two numbers.
//!     async fn add(&self, a: i64, b: i64) -> i64;
//!     /// Divides, or says why it cannot.
//!     async fn div(&self, a: i64, b: i64) -> Result<i64, String>;
//! }
//!
//! struct Calc;
//!
//! impl Calculator for Calc {
//!     async fn add(&self, a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//!     async fn div(&self, a: i64, b: i64) -> Result<i64, String> {
//!         a.checked_div(b).ok_or_else(|| "division by zero".to_string())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let listener = tcp::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr();
//!     let server = Server::new(CalculatorServer::new(Calc)).serve(listener);
//!
//!     let client = CalculatorClient::new(tcp::connect(addr).await?);
//!     assert_eq!(client.add(1, 2).await?, 3);
//!     assert_eq!(client.div(1, 0).await?, Err("division by zero".to_string()));
//!
//!     server.shutdown(std::time::Duration::from_secs(1)).await;
//!     Ok(())
//! }
//! ```
//!
//! # Organization
//!
//! - [`service`]: the attribute macro, with the details of what it generates.
//! - [`Client`] and [`Server`]: the runtime the generated types wrap (deadlines, cancellation,
//!   limits, graceful shutdown).
//! - [`Context`]: what a handler can learn about its call.
//! - [`RpcError`]: how a call can fail, apart from the method's own errors.
//! - [`describe`]: service descriptors, readable type descriptions and signature hashes (see
//!   `docs/signatures.md`).
//! - [`introspection`]: the built-in `rpc.Introspection` service (services, methods and their
//!   types, health, per-method call statistics) every server hosts unless it opts out.
//! - [`codec`]: the wire formats ([`Format`]: postcard, the default, and JSON, cargo feature
//!   `json`, on by default) and the decode limits every format shares.
//! - [`transport`]: the connections and listeners, re-exported from `rpc-transport`.
//! - `nats` (cargo feature `nats`): the same services through a NATS broker, with balancing,
//!   broadcast, gather and discovery (`docs/nats.md`).
//!
//! The wire format is specified in `PROTOCOL.md` at the repository root.
#![doc(test(attr(deny(warnings))))]

// Lets generated code inside this crate (doctests, unit tests) name `::rpc_runtime`.
#[allow(unused_extern_crates)]
extern crate self as rpc_runtime;

pub mod blocking;
mod call;
mod channel;
pub mod client;
pub mod codec;
mod context;
pub mod describe;
#[cfg(any(feature = "nats", feature = "embedded"))]
mod drain;
#[cfg(feature = "embedded")]
pub mod embedded;
mod engine;
mod error;
pub mod hello;
pub mod intercept;
pub mod introspection;
pub mod limits;
mod metadata;
#[cfg(feature = "nats")]
pub mod nats;
mod protocol;
pub mod queued;
#[cfg(feature = "tower")]
pub mod retry;
mod router;
pub mod server;
mod service;
mod stream;
pub mod trace;

#[doc(hidden)]
pub mod __private;

#[doc(hidden)]
pub mod __fuzz;

pub use blocking::BlockingRuntime;
/// A shared byte buffer: as an argument or a result it is the same on the wire as a `Vec<u8>`,
/// and a long one is read as a view of the message it arrived in, with no copy (re-exported
/// from the `bytes` crate, with its `serde` feature on).
pub use bytes::Bytes;
pub use call::{Call, MethodRef, Reply};
pub use channel::{Channel, Layered};
pub use client::{Client, ClientBuilder};
pub use codec::{Format, MAX_DECODE_DEPTH, MAX_ZERO_SIZED_ELEMENTS};
pub use context::Context;
pub use error::RpcError;
pub use hello::Hello;
pub use metadata::{Metadata, MAX_METADATA_BYTES, MAX_METADATA_ENTRIES};
pub use router::Router;
pub use server::{Server, ServerConfig, ServerHandle};
pub use service::{Handler, HandlerFuture, ResponseBuf, Service};
pub use stream::Streaming;

/// The transports: connections and listeners over TCP, Unix sockets, pipes, FIFOs and memory.
pub use rpc_transport as transport;

#[doc = include_str!("../docs/service.md")]
pub use rpc_macros::service;

/// Compiles and runs the README's example as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
