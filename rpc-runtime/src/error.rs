//! The framework's error type, kept apart from each method's own application errors.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::ErrorCode;

/// Why a call failed, from the framework's point of view.
///
/// Application errors are part of a method's declared return type (`Result<T, MyError>`) and
/// arrive inside `Ok`; this type only describes what went wrong in getting the call there and
/// back. It is cheap to clone, so one connection failure can be reported to every pending call.
///
/// To decide whether to retry, ask [`never_started`](RpcError::never_started): it is true only
/// when the server certainly did not run the call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The connection is gone (or was never established); the call may or may not have run. The
    /// reason says what ended it, including what the transport knows (a child process's exit
    /// status, for [`pipe::spawn`](crate::transport::pipe::spawn)).
    #[error("connection closed: {0}")]
    ConnectionClosed(Arc<str>),
    /// An I/O error while setting up a connection; it is also the [`source`](std::error::Error::source).
    #[error("i/o error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// A reconnecting client has no connection: its last attempt failed with `source`, and the
    /// next one is due in `retry_in` (zero when due now). The call never started.
    ///
    /// Returned at once when [`wait_for_ready`](crate::ClientBuilder::wait_for_ready) is off, or
    /// when the next attempt would come after the call's deadline.
    #[error("server unavailable: {source}; next connection attempt in {retry_in:?}")]
    Unavailable {
        /// Why the last connection attempt failed.
        source: Arc<io::Error>,
        /// How long after this error was made the next attempt is due.
        retry_in: Duration,
    },
    /// The call's deadline passed before a response arrived.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The server cancelled the call before it completed (for example when a shutdown's grace
    /// period ran out).
    #[error("call cancelled by the server: {0}")]
    Cancelled(Arc<str>),
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
    /// The server refused the call because it is at a limit, which the message names; the call
    /// never started.
    #[error("server overloaded: {0}")]
    Overloaded(Arc<str>),
    /// The server is shutting down and did not start the call; it is safe to retry elsewhere.
    #[error("server is shutting down; the call was not started")]
    ShuttingDown,
    /// The peer broke the wire protocol (bad preface, malformed frame, version mismatch).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server hosts no service of this name (the client was built for another server, or
    /// the server does not host this service any more). The call never ran.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// The caller's and the server's signatures of the method differ: the argument or result
    /// types changed on one side (a `i32` became a `u32`, a field was added to a struct). The
    /// server refused the call without running it; rebuild the older side from the newer trait.
    #[error("signature mismatch on `{method}`: {detail}")]
    SignatureMismatch {
        /// The method, as `service.method`.
        method: String,
        /// What differs, as the server reported it: both hashes and the server's signature.
        detail: String,
    },
    /// A call's or reply's metadata is over its bounds (see [`crate::Metadata`]); the message
    /// says which. From a client, the call never started.
    #[error("metadata too large: {0}")]
    MetadataTooLarge(Arc<str>),
    /// A middleware layer between a generated client and its connection failed the call (a
    /// tower timeout, a rate limiter, a load balancer with no endpoint); its error is the
    /// [`source`](std::error::Error::source).
    #[error("layer error: {0}")]
    Layer(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The server refused the call before running it: it carried no credentials, or ones the
    /// server does not accept (an interceptor such as [`intercept::bearer_token`] said so; the
    /// message says why). The call never ran.
    ///
    /// [`intercept::bearer_token`]: crate::intercept::bearer_token
    #[error("unauthenticated: {0}")]
    Unauthenticated(Arc<str>),
    /// The server knows who called and refused the call before running it (an interceptor such
    /// as [`intercept::allow_uids`](crate::intercept::allow_uids) said so). The call never ran.
    #[error("permission denied: {0}")]
    PermissionDenied(Arc<str>),
    /// The server's rate limit refused the call before running it; retrying after `retry_after`
    /// may succeed (see [`intercept::RateLimit`](crate::intercept::RateLimit)).
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long until the limit has room again, as the server estimated it.
        retry_after: Duration,
    },
    /// A blocking client was called from inside an async runtime, where blocking the thread
    /// would stall its other tasks (or deadlock a single-threaded runtime): use the async client
    /// there. The call was not sent.
    #[error(
        "a blocking client was called from inside an async runtime; use the async client there (`.await` its calls)"
    )]
    BlockingInRuntime,
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
    /// twice: the server refused it ([`ShuttingDown`](RpcError::ShuttingDown),
    /// [`Overloaded`](RpcError::Overloaded)), or there was no connection to send it on
    /// ([`Unavailable`](RpcError::Unavailable)). A call that failed any other way may have run.
    pub fn never_started(&self) -> bool {
        matches!(
            self,
            RpcError::ShuttingDown
                | RpcError::Overloaded(_)
                | RpcError::Unavailable { .. }
                | RpcError::UnknownService(_)
                | RpcError::SignatureMismatch { .. }
                | RpcError::MetadataTooLarge(_)
                | RpcError::Unauthenticated(_)
                | RpcError::PermissionDenied(_)
                | RpcError::RateLimited { .. }
                | RpcError::BlockingInRuntime
        )
    }

    /// Whether retrying the call is safe (it never started, see [`never_started`]) and may
    /// succeed: true for the same errors, except those a retry would meet again (an unknown
    /// service, a signature mismatch, metadata over its bounds, refused credentials). A
    /// rate-limited call should wait its `retry_after` first.
    ///
    /// [`never_started`]: RpcError::never_started
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RpcError::ShuttingDown
                | RpcError::Overloaded(_)
                | RpcError::Unavailable { .. }
                | RpcError::RateLimited { .. }
        )
    }

    /// Converts a middleware layer's error: an `RpcError` inside it comes out as itself.
    pub fn from_layer(error: Box<dyn std::error::Error + Send + Sync>) -> RpcError {
        match error.downcast::<RpcError>() {
            Ok(e) => *e,
            Err(other) => RpcError::Layer(Arc::from(other)),
        }
    }

    /// The I/O error underneath, for [`Io`](RpcError::Io) and [`Unavailable`](RpcError::Unavailable)
    /// (its [`kind`](io::Error::kind) tells a refused connection from a missing path).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            RpcError::Io(e) | RpcError::Unavailable { source: e, .. } => Some(e),
            _ => None,
        }
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
            RpcError::Overloaded(m) => (ErrorCode::Overloaded, m.to_string()),
            RpcError::ShuttingDown => (ErrorCode::ShuttingDown, "server is shutting down".into()),
            RpcError::Cancelled(m) => (ErrorCode::Cancelled, m.to_string()),
            RpcError::FrameTooLarge { len, max } => (ErrorCode::FrameTooLarge, format!("{len} {max}")),
            RpcError::Encode(m) => {
                (ErrorCode::Internal, format!("the server could not encode the response: {m}"))
            }
            RpcError::Protocol(m) => (ErrorCode::Protocol, m.clone()),
            RpcError::UnknownService(s) => (ErrorCode::UnknownService, s.clone()),
            // The client knows the method; `service.method: detail` keeps the message readable
            // for any peer and parseable for ours.
            RpcError::SignatureMismatch { method, detail } => {
                (ErrorCode::SignatureMismatch, format!("{method}: {detail}"))
            }
            RpcError::MetadataTooLarge(m) => (ErrorCode::MetadataTooLarge, m.to_string()),
            RpcError::Unauthenticated(m) => (ErrorCode::Unauthenticated, m.to_string()),
            RpcError::PermissionDenied(m) => (ErrorCode::PermissionDenied, m.to_string()),
            // Whole milliseconds, rounded up: a peer that waits that long finds room.
            RpcError::RateLimited { retry_after } => {
                let micros = retry_after.as_micros();
                (ErrorCode::RateLimited, micros.div_ceil(1000).to_string())
            }
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
            Some(ErrorCode::Overloaded) => RpcError::Overloaded(message.into()),
            Some(ErrorCode::ShuttingDown) => RpcError::ShuttingDown,
            Some(ErrorCode::Cancelled) => RpcError::Cancelled(message.into()),
            Some(ErrorCode::FrameTooLarge) => {
                let mut parts = message.split(' ').map(|p| p.parse::<usize>().unwrap_or(0));
                RpcError::FrameTooLarge { len: parts.next().unwrap_or(0), max: parts.next().unwrap_or(0) }
            }
            Some(ErrorCode::Protocol | ErrorCode::StreamProtocol) => RpcError::Protocol(message),
            Some(ErrorCode::UnsupportedFormat) => RpcError::Decode(message),
            Some(ErrorCode::UnknownService) => RpcError::UnknownService(message),
            Some(ErrorCode::SignatureMismatch) => match message.split_once(": ") {
                Some((method, detail)) => {
                    RpcError::SignatureMismatch { method: method.to_owned(), detail: detail.to_owned() }
                }
                None => RpcError::SignatureMismatch { method: String::new(), detail: message },
            },
            Some(ErrorCode::MetadataTooLarge) => RpcError::MetadataTooLarge(message.into()),
            Some(ErrorCode::Unauthenticated) => RpcError::Unauthenticated(message.into()),
            Some(ErrorCode::PermissionDenied) => RpcError::PermissionDenied(message.into()),
            Some(ErrorCode::RateLimited) => match message.trim().parse::<u64>() {
                Ok(ms) => RpcError::RateLimited { retry_after: Duration::from_millis(ms) },
                Err(_) => RpcError::Remote { code, message },
            },
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
            RpcError::Unavailable {
                source: Arc::new(io::Error::new(io::ErrorKind::NotFound, secret)),
                retry_in: Duration::from_secs(1),
            },
            RpcError::closed(format!("connect {secret}: refused")),
            RpcError::Remote { code: 99, message: secret.into() },
        ] {
            let (code, message) = e.to_wire();
            assert_eq!((code, message.as_str()), (ErrorCode::Internal, "internal error"), "{e}");
        }
    }

    #[test]
    fn io_errors_have_a_source_and_say_when_to_retry() {
        use std::error::Error as _;
        let refused = Arc::new(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        let io = RpcError::Io(Arc::clone(&refused));
        assert_eq!(io.source().map(|s| s.to_string()), Some("refused".to_string()));
        let unavailable = RpcError::Unavailable { source: refused, retry_in: Duration::from_millis(1500) };
        assert_eq!(unavailable.to_string(), "server unavailable: refused; next connection attempt in 1.5s");
        assert_eq!(unavailable.io_error().map(io::Error::kind), Some(io::ErrorKind::ConnectionRefused));
        assert!(unavailable.source().is_some());
        assert!(unavailable.never_started() && unavailable.is_retryable());
        assert!(!io.never_started(), "an i/o error says nothing about the call");
        assert!(!RpcError::closed("eof").never_started(), "a closed connection may have run the call");
        assert!(RpcError::Overloaded("limit".into()).never_started());
    }

    #[test]
    fn refusals_cross_the_wire_as_themselves() {
        for e in [
            RpcError::Unauthenticated("no token".into()),
            RpcError::PermissionDenied("uid 5".into()),
            RpcError::RateLimited { retry_after: Duration::from_millis(250) },
        ] {
            let (code, message) = e.to_wire();
            let back = RpcError::from_wire(code as u64, message);
            assert_eq!(back.to_string(), e.to_string());
            assert!(back.never_started());
        }
        // A partial millisecond rounds up: waiting that long finds room.
        let (_, message) = RpcError::RateLimited { retry_after: Duration::from_micros(1500) }.to_wire();
        assert_eq!(message, "2");
    }

    #[test]
    fn display_is_lower_case() {
        for e in [
            RpcError::closed("x"),
            RpcError::Io(Arc::new(io::Error::other("x"))),
            RpcError::Unavailable { source: Arc::new(io::Error::other("x")), retry_in: Duration::ZERO },
            RpcError::DeadlineExceeded,
            RpcError::Cancelled("x".into()),
            RpcError::UnknownMethod("x".into()),
            RpcError::FrameTooLarge { len: 2, max: 1 },
            RpcError::Encode("x".into()),
            RpcError::Decode("x".into()),
            RpcError::HandlerPanicked,
            RpcError::Overloaded("x".into()),
            RpcError::ShuttingDown,
            RpcError::Protocol("x".into()),
            RpcError::Unauthenticated("x".into()),
            RpcError::PermissionDenied("x".into()),
            RpcError::RateLimited { retry_after: Duration::from_millis(5) },
            RpcError::Remote { code: 1, message: "x".into() },
        ] {
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        }
    }
}
