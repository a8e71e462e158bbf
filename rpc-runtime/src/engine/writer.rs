//! The task that owns a connection's write half: preface, HELLO, then queued frames (the server
//! writes through it, and writes to it directly while it waits, see [`queue`]; a refusal too; the
//! client's queue, `client::outgoing`, works the same way for callers).

use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;

use rpc_transport::framed::Frame;
use rpc_transport::message::MessageWriter;
use tokio::time::Instant;

use super::queue;

/// Frames written in one batch at most; more wait for the next flush.
const BATCH: usize = 64;

/// What goes before the frames from the queue: the preface (raw on a byte stream, the first
/// message on a native transport), and the HELLO if there is one (a refusal sends none).
pub(crate) struct Greeting<'a> {
    pub(crate) preface: &'a [u8],
    /// Not counted by the `written` callback: it was never queued.
    pub(crate) hello: Option<Frame>,
}

/// The queue a writer takes its frames from; its senders may write to the parked sink.
pub(crate) type Queue = queue::Receiver<Frame, MessageWriter>;

/// Writes the preface, then every frame sent on `rx`, coalescing what is queued into one write and
/// one flush. Ends when every sender is gone (then shuts the write side down so the peer sees EOF)
/// or when a write fails or takes longer than `write_timeout` (a peer that stopped reading).
pub(crate) async fn write_loop(
    writer: MessageWriter,
    preface: &[u8],
    rx: Queue,
    write_timeout: Duration,
) -> io::Result<()> {
    let greeting = Greeting { preface, hello: None };
    write_frames(writer, greeting, rx, write_timeout, |_| {}).await
}

/// [`write_loop`] for a server: a batch must be written within `write_timeout` of when its
/// oldest frame was queued (not of when the write began, which a peer draining slowly could
/// restart for ever). `written(bytes)` is called after each batch is flushed, and once more for
/// what is left unwritten when the loop ends. [`queue::Sender::close`] makes the loop write what
/// is queued by then, shut down and return, even while senders remain (work that outlives its
/// connection holds a sender, and must not hold the socket).
///
/// While it waits, the writer parks its sink in the queue, where the connection may write to it
/// directly (see [`queue`]); what such a write leaves in the sink is sent, and counted, with the
/// next batch.
pub(crate) async fn write_frames(
    mut writer: MessageWriter,
    greeting: Greeting<'_>,
    mut rx: Queue,
    write_timeout: Duration,
    mut written: impl FnMut(usize),
) -> io::Result<()> {
    writer.queue_preface(greeting.preface);
    // Grown on demand: 64 slots up front were about 2 KiB held by every idle connection.
    let mut batch = Vec::new();
    // The HELLO's bytes, which go with the first batch but were never queued.
    let mut uncounted = 0;
    if let Some(hello) = greeting.hello {
        uncounted = hello.len();
        batch.push(hello);
    }
    // When the oldest frame of the batch was queued.
    let mut oldest: Option<Instant> = None;
    // Bytes a sender left in the sink, sent with this batch.
    let mut held = 0;
    let result = loop {
        let bytes: usize = batch.iter().map(Frame::len).sum::<usize>() + std::mem::take(&mut held)
            - std::mem::take(&mut uncounted);
        let sent = {
            let mut send = std::pin::pin!(writer.send(&mut batch));
            // Most batches are written at once: the timer (and the clock read) is armed only
            // when the socket is full. A timer per batch was a tenth of a cheap call's cost.
            match std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
                Poll::Ready(done) => Ok(done),
                Poll::Pending => {
                    let deadline = oldest.unwrap_or_else(Instant::now) + write_timeout;
                    tokio::time::timeout_at(deadline, send).await
                }
            }
        };
        match sent {
            Ok(Ok(())) => written(bytes),
            Ok(Err(e)) => break Err(e),
            Err(_) => {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the peer has not read the oldest queued frame for {write_timeout:?} (write timeout)"
                    ),
                ))
            }
        }
        rx.park(writer);
        let taken = rx.take(&mut batch, BATCH).await;
        // Taken apart at once, so that nothing of it is kept across the next wait.
        let queue::Taken { sink, frames, since, flush_due, held: left_held, failed } = taken;
        writer = sink;
        if let Some(e) = failed {
            written(left_held);
            break Err(e);
        }
        if frames == 0 && !flush_due {
            let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
            break Ok(());
        }
        oldest = since;
        held = left_held;
    };
    // Whatever was not written is released too: queued frames, and the batch a failure left.
    rx.close();
    let mut left: usize = batch.iter().map(Frame::len).sum::<usize>() + held + rx.take_held();
    while let Some(frame) = rx.try_recv() {
        left += frame.len();
    }
    if left > 0 {
        written(left);
    }
    result
}
