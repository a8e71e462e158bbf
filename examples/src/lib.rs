//! Shared pieces of the runnable examples (see the README): the key-value service that the FIFO
//! and Unix-socket examples serve, the log set-up every example uses, and the addresses
//! (`tcp:`, `unix:`, `fifo:`) the `rpc` command-line caller and the calculator's `serve` mode take.

pub mod addr;
pub mod kv;
pub mod logs;
