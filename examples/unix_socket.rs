//! A daemon and its command-line client over a Unix socket.
//!
//! ```text
//! cargo run -p rpc-examples --example unix_socket                                # both, in one process
//! cargo run -p rpc-examples --example unix_socket -- serve /tmp/rpc-kv.sock       # the daemon, until Ctrl-C
//! cargo run -p rpc-examples --example unix_socket -- set /tmp/rpc-kv.sock colour blue
//! cargo run -p rpc-examples --example unix_socket -- get /tmp/rpc-kv.sock colour
//! ```
//!
//! The daemon's socket is created owner-only (mode 0600, inside a private directory until it is in
//! place), and the listener also checks each peer's uid (`SO_PEERCRED`) against an allow-list:
//! here, only the user running the daemon. A stale socket file left by a crashed daemon is
//! replaced; a live daemon's is never stolen. The file is removed when the daemon stops.
//! Run with `RUST_LOG=rpc_runtime=debug` to see connections come and go.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rpc_examples::kv::{KeyValueClient, KeyValueServer, Store};
use rpc_runtime::transport::unix;
use rpc_runtime::{Server, ServerHandle};

/// Binds the daemon's socket and serves the key-value store on it.
async fn serve(path: &Path) -> std::io::Result<ServerHandle> {
    let mut listener = unix::bind(path).await?;
    // The uid this process runs as: the owner of its own /proc entry.
    let me = std::fs::metadata("/proc/self")?.uid();
    listener.allow_uids([me]);
    Ok(Server::new(KeyValueServer::new(Store::default())).serve(listener))
}

/// The command-line client: one call per run.
async fn cli(command: &str, path: &Path, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let client = KeyValueClient::new(unix::connect(path).await?);
    match (command, args) {
        ("set", [key, value]) => {
            let previous = client.set(key.clone(), value.clone()).await?;
            println!("{key}: {previous:?} -> {value:?}");
        }
        ("get", [key]) => println!("{key}: {:?}", client.get(key.clone()).await?),
        ("whoami", []) => println!("{}", client.whoami().await?),
        _ => {
            return Err(
                "usage: unix_socket [serve PATH | set PATH KEY VALUE | get PATH KEY | whoami PATH]".into()
            )
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo().await,
        [command, path, rest @ ..] if command == "serve" && rest.is_empty() => {
            let server = serve(Path::new(path)).await?;
            println!("serving on {path}; press Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
            server.shutdown(Duration::from_secs(5)).await;
            println!("stopped; {path} removed");
            Ok(())
        }
        [command, path, rest @ ..] => cli(command, Path::new(path), rest).await,
        _ => Err("usage: unix_socket [serve PATH | set PATH KEY VALUE | get PATH KEY | whoami PATH]".into()),
    }
}

/// The daemon and a client in one process, on a socket in a fresh temporary directory.
async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rpc-unix-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("kv.sock");
    let server = serve(&path).await?;
    println!("daemon listening on {}", path.display());

    let client = KeyValueClient::new(unix::connect(&path).await?);
    println!("whoami             = {}", client.whoami().await?);
    println!("set(colour, blue)  = {:?}", client.set("colour".into(), "blue".into()).await?);
    println!("get(colour)        = {:?}", client.get("colour".into()).await?);

    server.shutdown(Duration::from_secs(5)).await;
    // The client learns that the daemon went away without making a call.
    println!("client sees        : {}", client.as_client().closed().await);
    println!("socket removed     : {}", !path.exists());
    std::fs::remove_dir(&dir)?;
    Ok(())
}
