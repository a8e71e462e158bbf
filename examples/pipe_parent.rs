//! A parent process that spawns its server as a child and calls it over the child's stdin/stdout.
//!
//! ```text
//! cargo run -p rpc-examples --example pipe_parent
//! ```
//!
//! The child is this same binary, run again with the argument `child`: it serves on its own
//! stdin/stdout with `pipe::stdio()`, which moves the RPC stream to private descriptors and points
//! stdout at stderr, so the child's `println!` shows up in the terminal instead of corrupting
//! frames. The parent makes a few calls, closes the connection (the child's server sees the end of
//! its stdin and exits) and reports the child's exit status.

use rpc_runtime::transport::pipe;
use rpc_runtime::{service, Server};

/// Greets people, from some process.
#[service]
pub trait Greeter {
    /// Returns a greeting for `name`.
    async fn greet(&self, name: String) -> String;
    /// The process id of the server.
    async fn pid(&self) -> u32;
}

struct Greet;

impl Greeter for Greet {
    async fn greet(&self, name: String) -> String {
        // stdout now goes to stderr: this cannot corrupt the RPC stream.
        println!("[child] greeting {name}");
        format!("hello, {name}, from process {}", std::process::id())
    }

    async fn pid(&self) -> u32 {
        std::process::id()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    match std::env::args().nth(1).as_deref() {
        Some("child") => child().await,
        _ => parent().await,
    }
}

async fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("child");
    // The child's stderr is inherited: its logs appear in this terminal.
    let (conn, mut child) = pipe::spawn(cmd)?;
    println!("spawned the server as child process {}", child.pid());

    let client = GreeterClient::new(conn);
    println!("{}", client.greet("parent".into()).await?);
    assert_eq!(client.pid().await?, child.pid());

    // Closing the connection ends the child's stdin; its server returns and the process exits.
    // (Dropping `child` instead would kill it.)
    drop(client);
    let status = child.wait().await?;
    println!("child exited: {status}");
    Ok(())
}

async fn child() -> Result<(), Box<dyn std::error::Error>> {
    // First thing: nothing may be printed on stdout before this.
    let conn = pipe::stdio()?;
    eprintln!("[child] serving on stdin/stdout");
    Server::new(GreeterServer::new(Greet)).serve_connection(conn).await;
    eprintln!("[child] the parent closed the connection; exiting");
    Ok(())
}
