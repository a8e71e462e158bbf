//! The task that owns a connection's write half: preface, HELLO, then queued frames (the server
//! writes through it; a refusal too; the client's queue, `client::outgoing`, writes directly while idle).

use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;

use rpc_transport::framed::Frame;
use rpc_transport::message::MessageWriter;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue;

/// Frames written in one batch at most; more wait for the next flush.
const BATCH: usize = 64;

/// Something the writer can write: a bare frame (a client's), or a frame that knows when it was
/// queued (a server's, whose write timeout counts from the oldest queued frame).
pub(crate) trait Outgoing: Send + 'static {
    /// When the frame was queued, if the sender recorded it.
    fn queued_at(&self) -> Option<Instant>;
    /// The frame itself.
    fn into_frame(self) -> Frame;
}

impl Outgoing for Frame {
    fn queued_at(&self) -> Option<Instant> {
        None
    }

    fn into_frame(self) -> Frame {
        self
    }
}

/// What goes before the frames from the queue: the preface (raw on a byte stream, the first
/// message on a native transport), and the HELLO if there is one (a refusal sends none).
pub(crate) struct Greeting<'a> {
    pub(crate) preface: &'a [u8],
    /// Not counted by the `written` callback: it was never queued.
    pub(crate) hello: Option<Frame>,
}

/// Writes the preface, then every frame sent on `rx`, coalescing what is queued into one write and
/// one flush. Ends when every sender is gone (then shuts the write side down so the peer sees EOF)
/// or when a write fails or takes longer than `write_timeout` (a peer that stopped reading).
pub(crate) async fn write_loop(
    writer: MessageWriter,
    preface: &[u8],
    rx: queue::Receiver<Frame>,
    write_timeout: Duration,
) -> io::Result<()> {
    let greeting = Greeting { preface, hello: None };
    write_frames(writer, greeting, rx, write_timeout, &CancellationToken::new(), |_| {}).await
}

/// [`write_loop`] for a server: frames carry their queue time, and a batch must be written within
/// `write_timeout` of when its oldest frame was queued (not of when the write began, which a
/// peer draining slowly could restart for ever). `written(bytes)` is called after each batch is
/// flushed, and once more for what is left unwritten when the loop ends. Cancelling `finish`
/// makes the loop write what is queued by then, shut down and return, even while senders remain
/// (work that outlives its connection holds a sender, and must not hold the socket).
pub(crate) async fn write_frames<T: Outgoing>(
    mut writer: MessageWriter,
    greeting: Greeting<'_>,
    mut rx: queue::Receiver<T>,
    write_timeout: Duration,
    finish: &CancellationToken,
    mut written: impl FnMut(usize),
) -> io::Result<()> {
    writer.queue_preface(greeting.preface);
    // Grown on demand: 64 slots of each up front were about 4 KiB held by every idle connection.
    let mut queued = Vec::new();
    let mut batch = Vec::new();
    // The HELLO's bytes, which go with the first batch but were never queued.
    let mut uncounted = 0;
    if let Some(hello) = greeting.hello {
        uncounted = hello.len();
        batch.push(hello);
    }
    // When the oldest frame of the batch was queued, if the sender said (a server's frames).
    let mut oldest: Option<Instant> = None;
    let result = loop {
        let bytes: usize = batch.iter().map(Frame::len).sum::<usize>() - std::mem::take(&mut uncounted);
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
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut queued, BATCH) => n,
            _ = finish.cancelled() => {
                // Write what is queued now, and stop: later sends fail.
                rx.close();
                rx.recv_many(&mut queued, BATCH).await
            }
        };
        if n == 0 {
            let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
            break Ok(());
        }
        oldest = queued.first().and_then(Outgoing::queued_at);
        batch.extend(queued.drain(..).map(Outgoing::into_frame));
    };
    // Whatever was not written is released too: queued frames, and the batch a failure left.
    rx.close();
    let mut left: usize = batch.iter().map(Frame::len).sum();
    while let Some(item) = rx.try_recv() {
        left += item.into_frame().len();
    }
    if left > 0 {
        written(left);
    }
    result
}
