//! A `Probe` server in its own process, for cases that kill, stop or impersonate a process.
//!
//! ```text
//! probe-server tcp [IDLE_MS]        # prints "ready tcp 127.0.0.1:PORT"
//! probe-server unix PATH [IDLE_MS]  # prints "ready unix PATH"
//! probe-server call-unix PATH       # connects, calls add(2, 3), prints "ok 5" or "err KIND: TEXT"
//! probe-server stdio                # serves on stdin/stdout (the child side of a pipe)
//! ```

use std::io::Write;
use std::time::Duration;

use rpc_runtime::transport::{pipe, tcp, unix};
use rpc_runtime::{RpcError, Server};
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};

fn server(idle_ms: Option<&String>) -> Server {
    let server = Server::new(ProbeServer::new(ProbeImpl::default()));
    match idle_ms {
        Some(ms) => server.idle_timeout(Duration::from_millis(ms.parse().expect("IDLE_MS"))),
        None => server,
    }
}

fn ready(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {line}").expect("stdout");
    out.flush().expect("stdout");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("tcp") => {
            let listener = tcp::bind("127.0.0.1:0").await.expect("bind");
            ready(format!("tcp {}", listener.local_addr()));
            server(args.get(1)).serve(listener).wait().await;
        }
        Some("unix") => {
            let listener = unix::bind(&args[1]).await.expect("bind");
            ready(format!("unix {}", args[1]));
            server(args.get(2)).serve(listener).wait().await;
        }
        Some("stdio") => {
            let conn = pipe::stdio().expect("stdio");
            server(None).serve_connection(conn).wait().await;
        }
        Some("call-unix") => {
            let outcome = match unix::connect(&args[1]).await {
                Err(e) => format!("err connect {:?}: {e}", e.kind()),
                Ok(conn) => match ProbeClient::new(conn).add(2, 3).await {
                    Ok(n) => format!("ok {n}"),
                    Err(RpcError::ConnectionClosed(reason)) => format!("err closed: {reason}"),
                    Err(e) => format!("err other: {e}"),
                },
            };
            println!("{outcome}");
        }
        _ => {
            eprintln!("usage: probe-server tcp|unix PATH [IDLE_MS] | call-unix PATH | stdio");
            std::process::exit(2);
        }
    }
}
