//! Transports, and the message-level seam between them and `rpc-runtime`.
//!
//! Every transport yields the same [`Connection`]: a read half, a write half and a description of
//! the peer. The RPC runtime speaks only to that type, so one service runs unchanged over any of
//! them. It reads and writes whole messages ([`Connection::into_messages`]); a byte-stream
//! transport gets them cut and joined by the shared [`framed`] adapter (length header, maximum,
//! slow-frame timer, receive budget), and a transport that carries messages itself (a channel, a
//! broker) plugs in natively through [`message::MessageRead`] and [`message::MessageWrite`]. This
//! crate knows nothing about RPC messages: it moves opaque messages and bytes.
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
//! - [`Connection`], [`Peer`], [`EndReason`] and the [`Listener`] trait: what every transport
//!   produces.
//! - [`message`]: the seam: the traits a native message transport implements, and the
//!   [`MessageReader`](message::MessageReader)/[`MessageWriter`](message::MessageWriter) the
//!   runtime uses, with their [`MessageLimits`](message::MessageLimits).
//! - [`framed`]: the length-prefixed frame reader and writer with a maximum frame length, the
//!   adapter every byte-stream transport shares.
//! - [`tcp`], [`unix`], [`pipe`], [`fifo`]: byte-stream transports; [`memory`]: in-process
//!   connections, of byte streams or of native messages.
#![doc(test(attr(deny(warnings))))]
// Raw system calls live in `sys` only, each behind a safe wrapper.
#![deny(unsafe_code)]

mod annotate;
mod connection;
pub mod fifo;
pub mod framed;
pub mod memory;
pub mod message;
pub mod pipe;
mod socket;
#[allow(unsafe_code)]
mod sys;
pub mod tcp;
pub mod unix;

pub use connection::{BoxRead, BoxWrite, Connection, EndReason, Listener, Peer};
