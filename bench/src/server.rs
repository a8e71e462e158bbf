//! The `server` subcommand: one implementation serving one transport, in its own process.
//!
//! It prints `READY <endpoint>` on stdout once it listens, and exits when its stdin reaches EOF
//! (the benchmark closed it, or died), so no server outlives a run.

use std::io::{Read, Write};

use crate::endpoint::{Impl, RawListener, Transport};
use crate::{floor, ours, peer};

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let [imp, transport, endpoint] = args else {
        return Err("usage: rpc-bench server IMPL TRANSPORT ENDPOINT".into());
    };
    let imp = Impl::parse(imp)?;
    let transport = Transport::parse(transport)?;
    if transport != Transport::Pipe {
        // Over a pipe, stdin is the connection itself, and its end ends the server.
        std::thread::spawn(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    if imp == Impl::Floor {
        // Blocking I/O, a thread per connection: no runtime.
        return crate::blocking::serve(transport, endpoint, ready, floor::echo, floor::echo_async)
            .map_err(|e| format!("floor server: {e}"));
    }
    // The same runtime as the client side: tokio's default multi-threaded one, one worker per
    // CPU this process may use (one when pinned).
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(serve(imp, transport, endpoint)).map_err(|e| format!("{} server: {e}", imp.name()))
}

async fn serve(imp: Impl, transport: Transport, endpoint: &str) -> std::io::Result<()> {
    use rpc_runtime::transport::{fifo, pipe, tcp, unix};
    match imp {
        Impl::Ours => match transport {
            Transport::Tcp => {
                let listener = tcp::bind(endpoint).await?;
                ready(&listener.local_addr().to_string());
                ours::serve(listener).await
            }
            Transport::Unix => {
                let listener = unix::bind(endpoint).await?;
                ready(endpoint);
                ours::serve(listener).await
            }
            Transport::Pipe => ours::serve_one(pipe::stdio()?).await,
            Transport::Fifo => {
                let listener = fifo::bind(endpoint).await?;
                ready(endpoint);
                ours::serve(listener).await
            }
        },
        Impl::Floor => unreachable!("the floor runs without a runtime"),
        Impl::Tarpc => {
            let listener = match transport {
                Transport::Tcp => {
                    let l = tokio::net::TcpListener::bind(endpoint).await?;
                    ready(&l.local_addr()?.to_string());
                    RawListener::Tcp(l)
                }
                Transport::Unix => {
                    let l = tokio::net::UnixListener::bind(endpoint)?;
                    ready(endpoint);
                    RawListener::Unix(l)
                }
                Transport::Pipe => {
                    let (r, w, _peer, _guard) = pipe::stdio()?.into_parts();
                    return peer::serve_one(r, w).await;
                }
                Transport::Fifo => {
                    let l = fifo::bind(endpoint).await?;
                    ready(endpoint);
                    RawListener::Fifo(l)
                }
            };
            peer::serve(listener).await
        }
    }
}

fn ready(endpoint: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "READY {endpoint}");
    let _ = out.flush();
}
