//! The framework's error type, kept apart from each method's own application errors.

use std::io;
use std::sync::Arc;

use crate::protocol::ErrorCode;

/// Why a call failed, from the framework's point of view.
///
/// Application errors are part of a method's declared return type (`Result<T, MyError>`) and
/// arrive inside `Ok`; this type only describes what went wrong in getting the call there and
/// back. It is cheap to clone, so one connection failure can be reported to every pending call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The connection is gone (or was never established); the call may or may not have run.
    #[error("connection closed: {0}")]
    ConnectionClosed(Arc<str>),
    /// An I/O error while setting up a connection.
    #[error("i/o error: {0}")]
    Io(Arc<io::Error>),
    /// The call's deadline passed before a response arrived.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The server cancelled the call before it completed (for example when a shutdown's grace
    /// period ran out).
    #[error("call cancelled by the server: {0}")]
    Cancelled(String),
    /// The server does not know the method (an older server, or another service).
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    /// A message was longer than the maximum frame length (ours when sending, the peer's when
    /// the server reports that its response would not fit).
    #[error("message of {len} bytes exceeds the maximum frame length of {max} bytes")]
    FrameTooLarge {
        /// The length of the message, or a lower bound on it.
        len: usize,
        /// The maximum frame length in force.
        max: usize,
    },
    /// A value could not be encoded.
    #[error("encode error: {0}")]
    Encode(String),
    /// A message could not be decoded (by us, or by the server, which then reported it).
    #[error("decode error: {0}")]
    Decode(String),
    /// The handler panicked; the panic's details are in the server's log, not on the wire.
    #[error("the handler panicked (details are in the server's log)")]
    HandlerPanicked,
    /// The server refused the call because it is at a limit; the call never started.
    #[error("server overloaded: {0}")]
    Overloaded(String),
    /// The server is shutting down and did not start the call; it is safe to retry elsewhere.
    #[error("server is shutting down; the call was not started")]
    ShuttingDown,
    /// The peer broke the wire protocol (bad preface, malformed frame, version mismatch).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server reported an error code this client does not know.
    #[error("remote error {code}: {message}")]
    Remote {
        /// The numeric error code.
        code: u64,
        /// The server's message.
        message: String,
    },
}

impl RpcError {
    /// Whether the call certainly never started on the server, so retrying it cannot run it
    /// twice.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RpcError::ShuttingDown | RpcError::Overloaded(_))
    }

    pub(crate) fn closed(reason: impl Into<Arc<str>>) -> Self {
        RpcError::ConnectionClosed(reason.into())
    }

    /// The wire code and the message sent to the peer for this error.
    pub(crate) fn to_wire(&self) -> (ErrorCode, String) {
        match self {
            RpcError::UnknownMethod(m) => (ErrorCode::UnknownMethod, m.clone()),
            RpcError::Decode(m) => (ErrorCode::BadRequest, m.clone()),
            RpcError::HandlerPanicked => (ErrorCode::Internal, "the handler panicked".into()),
            RpcError::DeadlineExceeded => (ErrorCode::DeadlineExceeded, "deadline exceeded".into()),
            RpcError::Overloaded(m) => (ErrorCode::Overloaded, m.clone()),
            RpcError::ShuttingDown => (ErrorCode::ShuttingDown, "server is shutting down".into()),
            RpcError::Cancelled(m) => (ErrorCode::Cancelled, m.clone()),
            RpcError::FrameTooLarge { len, max } => (ErrorCode::FrameTooLarge, format!("{len} {max}")),
            RpcError::Encode(m) => {
                (ErrorCode::Internal, format!("the server could not encode the response: {m}"))
            }
            RpcError::Protocol(m) => (ErrorCode::Protocol, m.clone()),
            // I/O and connection errors describe this side's environment (paths, addresses):
            // they go to the log, never to the peer.
            other => {
                tracing::debug!("reporting an internal error to the peer: {other}");
                (ErrorCode::Internal, "internal error".into())
            }
        }
    }

    /// Rebuilds an error from a peer's error frame.
    pub(crate) fn from_wire(code: u64, message: String) -> Self {
        match ErrorCode::from_u64(code) {
            Some(ErrorCode::UnknownMethod) => RpcError::UnknownMethod(message),
            Some(ErrorCode::BadRequest) => {
                RpcError::Decode(format!("the server could not decode the request: {message}"))
            }
            Some(ErrorCode::Internal) if message == "the handler panicked" => RpcError::HandlerPanicked,
            Some(ErrorCode::DeadlineExceeded) => RpcError::DeadlineExceeded,
            Some(ErrorCode::Overloaded) => RpcError::Overloaded(message),
            Some(ErrorCode::ShuttingDown) => RpcError::ShuttingDown,
            Some(ErrorCode::Cancelled) => RpcError::Cancelled(message),
            Some(ErrorCode::FrameTooLarge) => {
                let mut parts = message.split(' ').map(|p| p.parse::<usize>().unwrap_or(0));
                RpcError::FrameTooLarge { len: parts.next().unwrap_or(0), max: parts.next().unwrap_or(0) }
            }
            Some(ErrorCode::Protocol) => RpcError::Protocol(message),
            _ => RpcError::Remote { code, message },
        }
    }
}

impl From<io::Error> for RpcError {
    fn from(e: io::Error) -> Self {
        RpcError::Io(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G4: errors about this side's environment reach the peer without their details.
    #[test]
    fn environment_errors_are_not_sent_to_peers() {
        let secret = "/srv/app/secret.sock";
        for e in [
            RpcError::Io(Arc::new(io::Error::new(io::ErrorKind::NotFound, secret))),
            RpcError::closed(format!("connect {secret}: refused")),
            RpcError::Remote { code: 99, message: secret.into() },
        ] {
            let (code, message) = e.to_wire();
            assert_eq!((code, message.as_str()), (ErrorCode::Internal, "internal error"), "{e}");
        }
    }
}
