//! The task that owns a connection's write half, shared by clients and servers.

use std::io;
use std::time::Duration;

use rpc_transport::framed::{Frame, FrameWriter};
use rpc_transport::BoxWrite;
use tokio::sync::mpsc;

/// Frames written in one batch at most; more wait for the next flush.
const BATCH: usize = 64;

/// Writes the preface, then every frame sent on `rx`, coalescing what is queued into one write and
/// one flush. Ends when every sender is gone (then shuts the write side down so the peer sees EOF)
/// or when a write fails or takes longer than `write_timeout` (a peer that stopped reading).
pub(crate) async fn write_loop(
    writer: BoxWrite,
    preface: &[u8],
    mut rx: mpsc::Receiver<Frame>,
    write_timeout: Duration,
) -> io::Result<()> {
    let mut writer = FrameWriter::new(writer);
    writer.queue_raw(preface);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let timed = tokio::time::timeout(write_timeout, writer.send(&mut batch)).await;
        match timed {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the peer has not read for {write_timeout:?} (write timeout)"),
                ))
            }
        }
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
            return Ok(());
        }
    }
}
