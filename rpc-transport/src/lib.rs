//! Byte-stream transports and length-delimited framing for `rpc-runtime`.
//!
//! Every transport yields the same [`Connection`]: a read half, a write half and a description of
//! the peer. The RPC runtime speaks only to that type, so one service runs unchanged over any of
//! them. This crate knows nothing about RPC messages: it moves bytes and cuts them into frames.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use rpc_transport::{tcp, Listener};
//!
//! let mut listener = tcp::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr();
//! let (client, server) = tokio::join!(tcp::connect(addr), listener.accept());
//! assert_eq!(server?.expect("the listener is open").peer().to_string(), format!("tcp:{}", client?.local().unwrap_or_default()));
//! # Ok(())
//! # }
//! ```
//!
//! # Organization
//!
//! - [`Connection`], [`Peer`] and the [`Listener`] trait: what every transport produces.
//! - [`framed`]: the length-prefixed frame reader and writer with a maximum frame length.
//! - [`tcp`], [`unix`], [`pipe`], [`fifo`], [`memory`]: the transports.
#![doc(test(attr(deny(warnings))))]
// Raw system calls live in `sys` only, each behind a safe wrapper.
#![deny(unsafe_code)]

mod connection;
pub mod fifo;
pub mod framed;
pub mod memory;
pub mod pipe;
#[allow(unsafe_code)]
mod sys;
pub mod tcp;
pub mod unix;

pub use connection::{BoxRead, BoxWrite, Connection, Listener, Peer};
