//! A `Relay` server in its own process that prints every span it closes, for the test that
//! follows a trace across processes (`tests/tracing_across.rs`).
//!
//! ```text
//! trace-server        # prints "ready tcp 127.0.0.1:PORT", then a "SPAN ..." line per closed span
//! trace-server quiet  # prints only the ready line (for tests that do not read spans)
//! ```
//!
//! Its `relay` method calls `echo` on this same server through a second connection, so one
//! call from the test makes two server spans and a client span here.

use std::io::Write;

use rpc_runtime::transport::tcp;
use rpc_runtime::Server;
use rpc_tests::relay::{RelayClient, RelayImpl, RelayServer};
use rpc_tests::spans::SpanCapture;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().nth(1).as_deref() != Some("quiet") {
        tracing::subscriber::set_global_default(SpanCapture::print()).expect("the only subscriber");
    }
    let listener = tcp::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr();
    // The listener's backlog completes the connection before the server accepts it.
    let onward = RelayClient::new(tcp::connect(addr).await.expect("connect to itself"));
    let server = Server::new(RelayServer::new(RelayImpl { onward: Some(onward) })).serve(listener);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready tcp {addr}").expect("stdout");
        out.flush().expect("stdout");
    }
    server.wait().await;
}
