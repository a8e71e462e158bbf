//! `Relay`: a service whose handler calls another service, for the tests that follow a trace
//! through a process, and for the balancing tests that ask which process answered
//! (`src/bin/trace-server.rs`).

use rpc_runtime::{service, Context, RpcError};

/// Echoes, directly or through another call.
#[service]
pub trait Relay {
    /// Returns `text`.
    async fn echo(&self, text: String) -> String;
    /// Calls `echo(text)` on the server `onward` points at, and returns its result.
    async fn relay(&self, text: String) -> Result<String, String>;
    /// The `traceparent` the caller sent, as the handler's context shows it.
    async fn traceparent(&self) -> Option<String>;
    /// The server's process id: which of several servers answered.
    async fn pid(&self) -> u32;
}

/// Serves `Relay`; `relay` calls through `onward`.
#[derive(Debug, Default)]
pub struct RelayImpl {
    /// Where `relay` sends its call.
    pub onward: Option<RelayClient>,
}

impl Relay for RelayImpl {
    async fn echo(&self, text: String) -> String {
        text
    }

    async fn relay(&self, text: String) -> Result<String, String> {
        let onward = self.onward.as_ref().ok_or("no onward client")?;
        onward.echo(text).await.map_err(|e: RpcError| e.to_string())
    }

    async fn traceparent(&self) -> Option<String> {
        Context::current()?.metadata().get("traceparent").map(str::to_owned)
    }

    async fn pid(&self) -> u32 {
        std::process::id()
    }
}
