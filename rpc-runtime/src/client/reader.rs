//! The client's reader task: checks the server's preface, then routes every frame.

use std::sync::Arc;
use std::time::Duration;

use rpc_transport::message::MessageReader;
use rpc_transport::EndReason;

use super::in_flight::InFlight;
use super::outgoing::Outgoing;
use crate::engine::handshake::{self, HandshakeError};
use crate::engine::keepalive::{self, Keepalive};
use crate::engine::{goaway, Event, Role, State};
use crate::hello::Hello;
use crate::protocol::{self, Message};
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
    const ROLE: Role = Role::Client;
    let in_flight = &*parts.in_flight;
    match handshake::run(reader, ROLE, None).await {
        Ok(_) => {}
        Err(HandshakeError::Closed) => {
            return parts.ended("the server closed the connection before its preface".into()).await
        }
        Err(HandshakeError::Preface(e) | HandshakeError::Hello(e)) => return e,
        Err(e) => return parts.ended(e.to_string()).await,
    }
    // The server's HELLO comes in this loop: our calls were sent without waiting for it.
    let mut state = State::Handshaking;
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
                    if let Some(frame) = keepalive::ping(keepalive.next_nonce(), parts.max_frame_len) {
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
            Ok(None) => return parts.ended(goaway::closed_reason(ROLE.peer_name(), goaway.as_deref())).await,
            Err(e) => return parts.ended(e.to_string()).await,
        };
        let message = protocol::decode(body);
        // The server's HELLO comes first, unless the server refuses the connection at once with
        // a goaway.
        if !state.greeted() && matches!(message, Ok(ref m) if !ROLE.may_precede_hello(m)) {
            return RpcError::Protocol("the server sent a frame before its HELLO".into());
        }
        match message {
            Ok(Message::Hello(hello)) if !state.greeted() => {
                in_flight.set_peer_window(hello.stream_window);
                let _ = parts.hello.set(*hello);
                state = state.on(Event::HelloReceived);
                tracing::trace!(%state, "the server's HELLO arrived");
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
                in_flight.refuse_new(goaway::refusal(code, &message));
                state = state.on(Event::GoAway);
                tracing::debug!(%state, code, "the server sent a goaway: {message}");
                goaway = Some(message);
            }
            Ok(Message::Pong) => {}
            Ok(Message::Ping { nonce }) => {
                if let Some(frame) = keepalive::pong(nonce, parts.max_frame_len) {
                    let _ = parts.out.try_push(frame, false);
                }
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
            Ok(m @ (Message::Call { .. } | Message::Cancel { .. } | Message::Hello(_))) => {
                return RpcError::Protocol(ROLE.forbidden(&m).into());
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
