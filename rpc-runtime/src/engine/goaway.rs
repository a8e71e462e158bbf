//! GOAWAY: the frame that says a connection takes no new calls, and why; what each end does
//! when it sends or receives one.

use std::time::Duration;

use rpc_transport::framed::Frame;

use crate::protocol::{self, ErrorCode};
use crate::RpcError;

/// How long closing waits for room in the outbound queue to send its goaway (never longer than
/// a write may take): the queue may be full of pongs, say, and the peer should learn why.
pub(crate) const GOAWAY_WAIT: Duration = Duration::from_secs(1);

/// A goaway frame with `code` and `reason`, if it fits in `max_frame_len`.
pub(crate) fn frame(code: ErrorCode, reason: &str, max_frame_len: usize) -> Option<Frame> {
    protocol::goaway_frame(code, reason).finish(max_frame_len).ok()
}

/// What new calls fail with once a server's goaway with `code` and `message` arrived: a server
/// shutting down or over its limits says so, so a caller can retry elsewhere.
pub(crate) fn refusal(code: u64, message: &str) -> RpcError {
    match ErrorCode::from_u64(code) {
        Some(ErrorCode::ShuttingDown) => RpcError::ShuttingDown,
        Some(ErrorCode::Overloaded) => RpcError::Overloaded(message.into()),
        _ => RpcError::closed(format!("the server is closing the connection: {message}")),
    }
}

/// Why a connection the peer closed ended, with the goaway's message if one came first.
pub(crate) fn closed_reason(peer: &str, goaway: Option<&str>) -> String {
    match goaway {
        Some(m) => format!("the {peer} closed the connection: {m}"),
        None => format!("the {peer} closed the connection"),
    }
}
