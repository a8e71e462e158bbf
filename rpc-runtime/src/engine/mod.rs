//! What the client and the server share about one connection (h2's `proto/connection.rs` and
//! `proto/peer.rs` are the model): the role each end plays ([`Role`]), the connection's explicit
//! [`State`], the handshake (preface and HELLO), goaway, keepalive pings, the server's limit
//! rules, and the writer task.
//!
//! Each role keeps its own loop, since what it does with a call differs (the client completes
//! pending calls, the server starts handlers); both loops move through the same states and call
//! the same functions for everything else. `docs/engine-v2.md` has the state diagram.

pub(crate) mod goaway;
pub(crate) mod handshake;
pub(crate) mod keepalive;
pub(crate) mod limits;
pub(crate) mod queue;
mod role;
mod state;
pub(crate) mod writer;

pub(crate) use role::Role;
pub(crate) use state::{Event, State};
