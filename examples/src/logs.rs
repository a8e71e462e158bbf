//! Turns on the framework's logs, as every example does: `RUST_LOG=rpc_runtime=debug`.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Prints `tracing` events to stderr, filtered by `RUST_LOG` (by default warnings and errors).
///
/// `RUST_LOG` takes `target=level` pairs separated by commas, e.g.
/// `RUST_LOG=rpc_runtime=debug,rpc_transport=debug` or just `RUST_LOG=debug`. The runtime logs
/// under the targets `rpc_runtime` (connections opened and closed, calls refused, limits hit,
/// handler panics) and `rpc_transport` (accept errors, FIFO registrations).
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::WARN));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .try_init();
}
