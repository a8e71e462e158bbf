//! The client's reader task: checks the server's preface, then routes every frame.

use std::sync::Arc;
use std::time::Duration;

use rpc_transport::message::MessageReader;
use rpc_transport::EndReason;
use tokio::time::Instant;

use super::in_flight::InFlight;
use super::outgoing::Outgoing;
use crate::hello::Hello;
use crate::protocol::{self, ErrorCode, Message};
use crate::RpcError;

/// What the reader needs besides the stream.
pub(super) struct ReaderParts {
    pub(super) in_flight: Arc<InFlight>,
    /// For pings and pongs (dropped when the queue is full).
    pub(super) out: Arc<Outgoing>,
    pub(super) keepalive: Option<Duration>,
    pub(super) max_frame_len: usize,
    /// What the transport can add when the connection ends (a child's exit status).
    pub(super) end_reason: Option<EndReason>,
    /// Where the server's HELLO goes once read.
    pub(super) hello: Arc<std::sync::OnceLock<Hello>>,
}

pub(super) async fn read_loop(mut reader: MessageReader, parts: ReaderParts) {
    // The deadlines are kept until the very end (describing how the connection ended may wait
    // for a child to exit).
    let err = super::deadlines::keep(&parts.in_flight, run(&mut reader, &parts)).await;
    parts.in_flight.close(err);
}

/// Reads until the connection fails; returns the error every remaining call gets.
async fn run(reader: &mut MessageReader, parts: &ReaderParts) -> RpcError {
    let in_flight = &*parts.in_flight;
    match reader.recv_preface(protocol::PREFACE.len()).await {
        Ok(Some(preface)) => {
            if let Err(e) = protocol::check_preface(&preface) {
                return e;
            }
        }
        Ok(None) => return parts.ended("the server closed the connection before its preface".into()).await,
        Err(e) => return parts.ended(e.to_string()).await,
    }
    let mut goaway: Option<String> = None;
    let mut keepalive = Keepalive::new(parts.keepalive);
    loop {
        let read = tokio::select! {
            read = reader.recv() => read,
            _ = keepalive.wait(), if keepalive.enabled() => {
                if let Some(limit) = keepalive.expired() {
                    return RpcError::closed(format!("the server did not answer a keepalive ping within {limit:?}"));
                }
                if in_flight.len() > 0 {
                    // Only while calls wait: an idle client must not keep an idle connection busy.
                    if let Ok(frame) = protocol::ping_frame(keepalive.next_nonce(), false).finish(parts.max_frame_len) {
                        let _ = parts.out.try_push(frame, false);
                    }
                    keepalive.sent();
                } else {
                    keepalive.heard();
                }
                continue;
            }
        };
        keepalive.heard();
        let body = match read {
            Ok(Some(body)) => body,
            Ok(None) => {
                let reason = goaway.map_or_else(
                    || "the server closed the connection".to_string(),
                    |m| format!("the server closed the connection: {m}"),
                );
                return parts.ended(reason).await;
            }
            Err(e) => return parts.ended(e.to_string()).await,
        };
        let message = protocol::decode(body);
        // The server's HELLO comes first (calls were sent without waiting for it), unless the
        // server refuses the connection at once with a goaway.
        if parts.hello.get().is_none()
            && matches!(message, Ok(ref m) if !matches!(m, Message::Hello(_) | Message::GoAway { .. }))
        {
            return RpcError::Protocol("the server sent a frame before its HELLO".into());
        }
        match message {
            Ok(Message::Hello(hello)) if parts.hello.get().is_none() => {
                in_flight.set_peer_window(hello.stream_window);
                let _ = parts.hello.set(*hello);
            }
            // Reply metadata is part of the protocol; no API reads it yet, so it is not kept.
            Ok(Message::Reply { id, metadata: _, body }) => {
                if !in_flight.complete(id, Ok(body)) {
                    tracing::trace!(id, "dropped a response for a call that is no longer waiting");
                }
            }
            Ok(Message::Error { id, code, message }) => {
                if !in_flight.complete(id, Err(RpcError::from_wire(code, message))) {
                    tracing::trace!(id, "dropped an error for a call that is no longer waiting");
                }
            }
            Ok(Message::GoAway { code, message }) => {
                let refusal = match ErrorCode::from_u64(code) {
                    Some(ErrorCode::ShuttingDown) => RpcError::ShuttingDown,
                    Some(ErrorCode::Overloaded) => RpcError::Overloaded(message.as_str().into()),
                    _ => RpcError::closed(format!("the server is closing the connection: {message}")),
                };
                in_flight.refuse_new(refusal);
                goaway = Some(message);
            }
            Ok(Message::Pong) => {}
            Ok(Message::Ping { nonce }) => {
                if let Ok(frame) = protocol::ping_frame(nonce, true).finish(parts.max_frame_len) {
                    let _ = parts.out.try_push(frame, false);
                }
            }
            Ok(Message::Call { .. } | Message::Cancel { .. } | Message::Hello(_)) => {
                return RpcError::Protocol("the server sent a call, cancel or second HELLO frame".into());
            }
            // A stream frame that breaks the stream rules closes the connection (PROTOCOL.md).
            Ok(Message::Item { id, body }) => {
                if let Err(e) = in_flight.push_item(id, body) {
                    return e;
                }
            }
            Ok(Message::End { id }) => {
                if let Err(e) = in_flight.end_stream(id) {
                    return e;
                }
            }
            Ok(Message::Credit { id, credit }) => {
                if let Err(e) = in_flight.grant(id, credit) {
                    return e;
                }
            }
            Err((_, e)) => return e,
        }
    }
}

impl ReaderParts {
    /// The error for a connection that ended with `reason` (end-of-stream, a read error), with
    /// what the transport knows added.
    async fn ended(&self, reason: String) -> RpcError {
        RpcError::closed(with_end_reason(reason, self.end_reason.as_ref()).await)
    }
}

/// `reason`, followed by the transport's account of the end in parentheses, if it has one.
pub(super) async fn with_end_reason(reason: String, end: Option<&EndReason>) -> String {
    match end {
        Some(end) => match end.describe().await {
            Some(why) => format!("{reason} ({why})"),
            None => reason,
        },
        None => reason,
    }
}

/// Detects a silent server: after `interval` without a frame while calls wait, send a ping; if
/// nothing at all arrives within another `interval`, the connection is dead.
struct Keepalive {
    interval: Option<Duration>,
    last_heard: Instant,
    ping_sent: Option<Instant>,
    nonce: u64,
}

impl Keepalive {
    fn new(interval: Option<Duration>) -> Self {
        Keepalive { interval, last_heard: Instant::now(), ping_sent: None, nonce: 0 }
    }

    fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else { return std::future::pending().await };
        let from = self.ping_sent.unwrap_or(self.last_heard);
        tokio::time::sleep_until(from + interval).await;
    }

    /// `Some(limit)` if a ping went unanswered for the whole interval.
    fn expired(&self) -> Option<Duration> {
        let interval = self.interval?;
        self.ping_sent.filter(|sent| sent.elapsed() >= interval).map(|_| interval)
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    fn sent(&mut self) {
        self.ping_sent = Some(Instant::now());
    }

    fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.ping_sent = None;
    }
}
