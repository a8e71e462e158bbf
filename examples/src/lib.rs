//! Shared pieces of the runnable examples (see the README): the key-value service that the FIFO
//! and Unix-socket examples serve, and the log set-up every example uses.

pub mod kv;
pub mod logs;
