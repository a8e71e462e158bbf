//! The handshake both ends run: our preface and HELLO go out without waiting (the writer sends
//! them first), and the peer's preface (and, for a server, its HELLO) is read and checked here.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rpc_transport::framed::{Frame, FrameError};
use rpc_transport::message::MessageReader;

use super::Role;
use crate::hello::Hello;
use crate::protocol::{self, ErrorCode};
use crate::RpcError;

/// Why the handshake failed.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The peer sent no preface (or no HELLO) within the handshake timeout.
    TimedOut(Stage),
    /// The peer closed the connection before finishing its handshake.
    Closed,
    /// Reading failed (the connection broke, or a HELLO longer than the maximum frame).
    Read(Stage, FrameError),
    /// The peer does not speak this protocol, or another version of it.
    Preface(RpcError),
    /// The peer's HELLO breaks a rule (PROTOCOL.md, HELLO).
    Hello(RpcError),
}

/// Which part of the peer's handshake was being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The 8-byte preface (or a native transport's first message).
    Preface,
    /// The HELLO frame.
    Hello,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Preface => "preface",
            Stage::Hello => "HELLO",
        })
    }
}

impl HandshakeError {
    /// The goaway a server closes with, if the peer should hear why. A peer with a wrong
    /// preface gets none: our preface is already on its way, so it learns our version from it.
    pub(crate) fn goaway_code(&self) -> Option<ErrorCode> {
        match self {
            HandshakeError::TimedOut(Stage::Hello) => Some(ErrorCode::Idle),
            HandshakeError::Read(Stage::Hello, FrameError::TooLarge { .. }) => Some(ErrorCode::FrameTooLarge),
            HandshakeError::Hello(_) => Some(ErrorCode::Protocol),
            _ => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::TimedOut(what) => write!(f, "no {what} within the handshake timeout"),
            HandshakeError::Closed => f.write_str("the peer closed the connection during the handshake"),
            HandshakeError::Read(_, e) => e.fmt(f),
            HandshakeError::Preface(e) | HandshakeError::Hello(e) => e.fmt(f),
        }
    }
}

/// Reads and checks the peer's preface, then, if `role` waits for it, the peer's HELLO, each
/// within `timeout` (`None`: no limit; a client's calls carry their own deadlines). Returns
/// the HELLO read, if any: a client takes the server's in its loop (see [`Role::waits_for_hello`]).
pub(crate) async fn run(
    reader: &mut MessageReader,
    role: Role,
    timeout: Option<Duration>,
) -> Result<Option<Hello>, HandshakeError> {
    let preface = within(timeout, Stage::Preface, reader.recv_preface(protocol::PREFACE.len())).await?;
    protocol::check_preface(&preface).map_err(HandshakeError::Preface)?;
    if !role.waits_for_hello() {
        return Ok(None);
    }
    // The peer's calls may follow its HELLO in the same read: they stay buffered in `reader`.
    let body = within(timeout, Stage::Hello, reader.recv()).await?;
    protocol::decode_hello(body).map(Some).map_err(HandshakeError::Hello)
}

/// Reads one message within `timeout`; `stage` names it in an error.
async fn within<T>(
    timeout: Option<Duration>,
    stage: Stage,
    read: impl Future<Output = Result<Option<T>, FrameError>>,
) -> Result<T, HandshakeError> {
    let read = match timeout {
        Some(limit) => {
            tokio::time::timeout(limit, read).await.map_err(|_| HandshakeError::TimedOut(stage))?
        }
        None => read.await,
    };
    match read {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(HandshakeError::Closed),
        Err(e) => Err(HandshakeError::Read(stage, e)),
    }
}

/// What the peer's HELLO changes for us: the longest frame we may send it, and the credit it
/// gives each stream we send items on.
pub(crate) struct PeerLimits {
    /// Ours, or the peer's if smaller.
    pub(crate) max_frame_len: usize,
    /// The peer's `stream_window`, at most [`MAX_CREDIT`](crate::stream::credit::MAX_CREDIT).
    pub(crate) stream_window: u64,
}

impl PeerLimits {
    /// The limits `hello` sets on a connection whose own maximum frame is `ours`.
    pub(crate) fn new(hello: &Hello, ours: usize) -> PeerLimits {
        let theirs = usize::try_from(hello.max_frame_len).unwrap_or(usize::MAX);
        PeerLimits {
            max_frame_len: ours.min(theirs),
            stream_window: hello.stream_window.min(crate::stream::credit::MAX_CREDIT),
        }
    }
}

/// Our HELLO, saying `max_frame_len`, `max_concurrent_calls` and `services` (a client's are 0
/// and none), encoded within `limit`. A server whose services do not fit says so and sends a
/// HELLO without them rather than none; a client whose HELLO does not fit sends none.
pub(crate) fn hello_frame(
    max_frame_len: usize,
    max_concurrent_calls: u64,
    services: Vec<crate::hello::AdvertisedService>,
    limit: usize,
) -> Option<Frame> {
    let hello = Hello {
        version: u64::from(protocol::VERSION),
        max_frame_len: max_frame_len as u64,
        max_concurrent_calls,
        stream_window: crate::hello::DEFAULT_STREAM_WINDOW,
        formats: crate::hello::local_formats(),
        services,
    };
    match protocol::encode_hello(&hello).finish(limit) {
        Ok(frame) => Some(frame),
        Err(_) if hello.services.is_empty() => None,
        // Hundreds of services with long names in a tiny frame limit.
        Err(e) => {
            tracing::warn!(
                "the server's HELLO does not fit in a frame ({e}); sending it without its services"
            );
            let bare = Hello { services: Vec::new(), ..hello };
            protocol::encode_hello(&bare).finish(usize::MAX).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rpc_transport::memory;
    use rpc_transport::message::{MessageLimits, MessageReader};
    use tokio::io::AsyncWriteExt;

    use super::{hello_frame, run, HandshakeError, Stage};
    use crate::engine::Role;
    use crate::protocol::{self, ErrorCode};

    /// Our reading end of an in-memory byte connection, and the peer's raw write half.
    fn connection() -> (MessageReader, rpc_transport::BoxWrite) {
        let (ours, theirs) = memory::pair();
        let (reader, _writer, _) = ours.into_messages(&MessageLimits::new(64 * 1024));
        let (_read, write, _, _) = theirs.into_parts();
        (reader, write)
    }

    fn hello_bytes() -> Vec<u8> {
        hello_frame(2048, 0, Vec::new(), 2048).expect("a client's HELLO fits").as_bytes().to_vec()
    }

    /// A hang guard: every read below has its bytes (or its end) in place before it starts.
    const GUARD: Option<Duration> = Some(Duration::from_secs(30));

    #[tokio::test]
    async fn a_server_reads_the_preface_and_hello_and_a_client_leaves_the_hello_to_its_loop() {
        for role in [Role::Server, Role::Client] {
            let (mut reader, mut peer) = connection();
            peer.write_all(&protocol::PREFACE).await.unwrap();
            peer.write_all(&hello_bytes()).await.unwrap();
            let got = run(&mut reader, role, GUARD).await.unwrap();
            match role {
                Role::Server => assert_eq!(got.map(|h| h.max_frame_len), Some(2048)),
                Role::Client => {
                    assert!(got.is_none());
                    let next = reader.recv().await.unwrap().expect("the HELLO is still there");
                    assert_eq!(protocol::decode_hello(next).unwrap().max_frame_len, 2048);
                }
            }
        }
    }

    #[tokio::test]
    async fn each_failure_gets_the_goaway_the_server_sent_before() {
        // A peer of another protocol: no goaway (ours, with our preface, tells it).
        let (mut reader, mut peer) = connection();
        peer.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let e = run(&mut reader, Role::Server, GUARD).await.unwrap_err();
        assert!(matches!(e, HandshakeError::Preface(_)) && e.goaway_code().is_none(), "{e}");

        // A HELLO that breaks a rule: PROTOCOL.
        let (mut reader, mut peer) = connection();
        peer.write_all(&protocol::PREFACE).await.unwrap();
        let mut bad = hello_bytes();
        bad[5] = 3; // the version, right after the 4-byte length and the kind
        peer.write_all(&bad).await.unwrap();
        let e = run(&mut reader, Role::Server, GUARD).await.unwrap_err();
        assert!(matches!(e, HandshakeError::Hello(_)), "{e}");
        assert_eq!(e.goaway_code(), Some(ErrorCode::Protocol));

        // A peer that hangs up: no goaway, nobody to read it.
        let (mut reader, mut peer) = connection();
        peer.write_all(&protocol::PREFACE).await.unwrap();
        drop(peer);
        let e = run(&mut reader, Role::Server, GUARD).await.unwrap_err();
        assert!(matches!(e, HandshakeError::Closed) && e.goaway_code().is_none(), "{e}");
    }

    #[tokio::test]
    async fn a_hello_that_never_comes_times_out_with_idle() {
        let (mut reader, mut peer) = connection();
        peer.write_all(&protocol::PREFACE).await.unwrap();
        // The peer stays connected and silent: only the timer can end this.
        let e = run(&mut reader, Role::Server, Some(Duration::from_millis(20))).await.unwrap_err();
        assert!(matches!(e, HandshakeError::TimedOut(Stage::Hello)), "{e}");
        assert_eq!(e.goaway_code(), Some(ErrorCode::Idle));
        assert_eq!(e.to_string(), "no HELLO within the handshake timeout");
        drop(peer);
    }
}
