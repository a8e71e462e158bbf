//! The client's reader task: checks the server's preface, then routes every frame.

use std::any::Any;
use std::sync::Arc;

use rpc_transport::framed::FrameReader;
use rpc_transport::BoxRead;

use super::in_flight::InFlight;
use crate::protocol::{self, ErrorCode, Message};
use crate::RpcError;

pub(super) async fn read_loop(
    mut reader: FrameReader<BoxRead>,
    in_flight: Arc<InFlight>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
) {
    let err = run(&mut reader, &in_flight).await;
    in_flight.close(err);
}

/// Reads until the connection fails; returns the error every remaining call gets.
async fn run(reader: &mut FrameReader<BoxRead>, in_flight: &InFlight) -> RpcError {
    match reader.read_raw(protocol::PREFACE.len()).await {
        Ok(Some(preface)) => {
            if let Err(e) = protocol::check_preface(&preface) {
                return e;
            }
        }
        Ok(None) => return RpcError::closed("the server closed the connection before its preface"),
        Err(e) => return RpcError::closed(e.to_string()),
    }
    let mut goaway: Option<String> = None;
    loop {
        let body = match reader.read_frame().await {
            Ok(Some(body)) => body,
            Ok(None) => {
                let reason = goaway.map_or_else(
                    || "the server closed the connection".to_string(),
                    |m| format!("the server closed the connection: {m}"),
                );
                return RpcError::closed(reason);
            }
            Err(e) => return RpcError::closed(e.to_string()),
        };
        match protocol::decode(body) {
            Ok(Message::Response { id, payload }) => {
                if !in_flight.complete(id, Ok(payload)) {
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
                    Some(ErrorCode::Overloaded) => RpcError::Overloaded(message.clone()),
                    _ => RpcError::closed(format!("the server is closing the connection: {message}")),
                };
                in_flight.refuse_new(refusal);
                goaway = Some(message);
            }
            Ok(Message::Pong) | Ok(Message::Ping { .. }) => {}
            Ok(Message::Request { .. }) | Ok(Message::Cancel { .. }) => {
                return RpcError::Protocol("the server sent a request or cancel frame".into());
            }
            Err((_, e)) => return e,
        }
    }
}
