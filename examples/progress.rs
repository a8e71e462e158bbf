//! Progress reports from a child process over pipes: a long call that streams how far it got.
//!
//! ```text
//! cargo run -p rpc-examples --example progress
//! ```
//!
//! The parent spawns this binary again as `progress child`, serving on its stdin/stdout, and
//! calls `build`, a server-streaming method whose items are progress reports followed by the
//! result: one call, one stream, no polling. The item type is an enum, so a report and the final
//! answer (or an application error) travel in the same stream.

use futures::StreamExt;
use rpc_runtime::transport::pipe;
use rpc_runtime::{service, Server, Streaming};
use serde::{Deserialize, Serialize};

/// What a long job says while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Progress {
    /// `done` of `total` steps finished.
    Step {
        /// Steps finished.
        done: u32,
        /// Steps in all.
        total: u32,
    },
    /// The job's result.
    Finished(String),
    /// The job failed.
    Failed(String),
}

/// Builds things, slowly, in another process.
#[service]
pub trait Builder {
    /// Builds `target` in `steps` steps, reporting each.
    async fn build(&self, target: String, steps: u32) -> Streaming<Progress>;
}

struct Worker;

impl Builder for Worker {
    async fn build(&self, target: String, steps: u32) -> Streaming<Progress> {
        if target.is_empty() {
            return Streaming::iter([Progress::Failed("nothing to build".into())]);
        }
        let reports = futures::stream::iter(1..=steps).then(move |done| async move {
            // The work of one step.
            tokio::task::yield_now().await;
            Progress::Step { done, total: steps }
        });
        let result = futures::stream::once(async move { Progress::Finished(format!("{target}.tar")) });
        Streaming::new(reports.chain(result))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    if std::env::args().nth(1).as_deref() == Some("child") {
        let conn = pipe::stdio()?;
        Server::new(BuilderServer::new(Worker)).serve_connection(conn).await;
        return Ok(());
    }
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("child");
    let (conn, mut child) = pipe::spawn(cmd)?;
    let client = BuilderClient::new(conn);

    let mut reports = client.build("release".into(), 4).await?;
    while let Some(report) = reports.next().await {
        match report? {
            Progress::Step { done, total } => println!("progress: {done}/{total}"),
            Progress::Finished(artifact) => println!("finished: {artifact}"),
            Progress::Failed(why) => println!("failed: {why}"),
        }
    }
    let mut failed = client.build(String::new(), 4).await?;
    println!("empty target: {:?}", failed.next().await.transpose()?);

    drop((client, reports, failed));
    println!("child exited: {}", child.wait().await?);
    Ok(())
}
