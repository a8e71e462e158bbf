//! The end of a broker or bus server's life: its running calls get a grace period, then are
//! cancelled. Shared by the NATS server and queue worker and the embedded bus and file worker.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Closes `tracker` to new calls, waits up to `grace` for the running ones, then cancels the
/// rest through `cancel` and waits for them to stop.
pub(crate) async fn drain(tracker: &TaskTracker, grace: Duration, cancel: &CancellationToken) {
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        cancel.cancel();
        tracker.wait().await;
    }
}
