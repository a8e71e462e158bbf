//! Describing how a spawned child ended, for its connection's [`EndReason`](crate::EndReason).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::sys::{self, ChildExit};

/// How long to wait for the child to finish exiting after its end of the pipe closed. A child
/// closes its descriptors as it exits, a moment before it becomes waitable; one that closed its
/// stdout (or stdin) and kept running is described as still running after this bound.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// `child process 1234 exited with status 3`, `... was killed by signal 9`, or what is known.
pub(super) async fn describe(pid: u32, reaped: Arc<Mutex<Option<ExitStatus>>>) -> Option<String> {
    let deadline = Instant::now() + EXIT_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        // The handle's owner may have reaped it already; then its status is the record.
        if let Some(status) = *reaped.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some(from_status(pid, status));
        }
        match sys::peek_child_exit(pid) {
            Ok(Some(exit)) => return Some(from_exit(pid, exit)),
            Ok(None) => {}
            // Reaped between the two looks (or the handle was dropped and tokio reaped it).
            Err(_) => {
                let status = *reaped.lock().unwrap_or_else(|e| e.into_inner());
                return Some(
                    status.map_or_else(|| format!("child process {pid} exited"), |s| from_status(pid, s)),
                );
            }
        }
        if Instant::now() >= deadline {
            return Some(format!("child process {pid} is still running"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn from_exit(pid: u32, exit: ChildExit) -> String {
    match exit {
        ChildExit::Exited(code) => format!("child process {pid} exited with status {code}"),
        ChildExit::Killed(signal) => format!("child process {pid} was killed by signal {signal}"),
    }
}

fn from_status(pid: u32, status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => from_exit(pid, ChildExit::Exited(code)),
        (None, Some(signal)) => from_exit(pid, ChildExit::Killed(signal)),
        (None, None) => format!("child process {pid} exited ({status})"),
    }
}
