//! The one connection type every transport produces.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::message::{Guard, MessageLimits, MessageRead, MessageReader, MessageWrite, MessageWriter};

/// The read half of a connection, boxed so every transport has the same type.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection, boxed so every transport has the same type.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Who is on the other end of a [`Connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP peer and its address.
    Tcp(SocketAddr),
    /// A Unix-socket peer, with its credentials when the OS reports them (`SO_PEERCRED`).
    Unix {
        /// The peer's user id.
        uid: Option<u32>,
        /// The peer's group id.
        gid: Option<u32>,
        /// The peer's process id.
        pid: Option<i32>,
    },
    /// A process on the other end of a pair of anonymous pipes.
    Pipe {
        /// The child's process id, when this side spawned it.
        pid: Option<u32>,
    },
    /// A peer reached through a pair of FIFOs. For a pair named by the user, the path is the FIFO
    /// this side reads from; a listener's client sees the listener's well-known path, and the
    /// listener sees the client's private FIFO.
    Fifo(PathBuf),
    /// The other end of an in-memory pair.
    Memory,
    /// A peer reached through a transport outside this crate (a message broker, a tunnel):
    /// `transport` names it (`nats`), `address` says where the peer is in its terms (a subject,
    /// a client id).
    Other {
        /// The transport's name.
        transport: std::borrow::Cow<'static, str>,
        /// The peer's address on that transport.
        address: String,
    },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "tcp:{addr}"),
            Peer::Unix { uid, pid, .. } => match (uid, pid) {
                (Some(uid), Some(pid)) => write!(f, "unix:uid={uid},pid={pid}"),
                _ => f.write_str("unix"),
            },
            Peer::Pipe { pid: Some(pid) } => write!(f, "pipe:pid={pid}"),
            Peer::Pipe { pid: None } => f.write_str("pipe"),
            Peer::Fifo(path) => write!(f, "fifo:{}", path.display()),
            Peer::Memory => f.write_str("memory"),
            Peer::Other { transport, address } => write!(f, "{transport}:{address}"),
        }
    }
}

/// A bidirectional connection to one peer, as two independently driven halves.
///
/// Built from two byte streams ([`Connection::new`]: TCP, Unix sockets, pipes, FIFOs) or from two
/// halves that carry whole messages natively ([`Connection::from_messages`]: a channel, a broker).
/// The runtime takes it apart with [`into_messages`](Connection::into_messages) and sees messages
/// either way (see [`message`](crate::message)).
///
/// The halves are separate so that reading and writing always run concurrently: two peers that
/// both write more than a pipe buffer at once never deadlock.
pub struct Connection {
    halves: Halves,
    peer: Peer,
    local: Option<String>,
    guard: Option<Box<dyn Any + Send + Sync>>,
    end_reason: Option<EndReason>,
}

/// What a transport hands over.
enum Halves {
    Bytes(BoxRead, BoxWrite),
    Messages(Box<dyn MessageRead>, Box<dyn MessageWrite>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("messages", &self.carries_messages())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Builds a connection from a read half, a write half and a description of the peer.
    pub fn new(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        peer: Peer,
    ) -> Self {
        Self::with_halves(Halves::Bytes(Box::new(reader), Box::new(writer)), peer)
    }

    /// Builds a connection from the two halves of a transport that carries whole messages.
    ///
    /// The runtime's limits (maximum message length, receive budget) apply to what `reader`
    /// delivers as they do to framed messages; the connection preface travels as the first
    /// message each way (PROTOCOL.md, "Message connections").
    pub fn from_messages(reader: impl MessageRead, writer: impl MessageWrite, peer: Peer) -> Self {
        Self::with_halves(Halves::Messages(Box::new(reader), Box::new(writer)), peer)
    }

    fn with_halves(halves: Halves, peer: Peer) -> Self {
        Connection { halves, peer, local: None, guard: None, end_reason: None }
    }

    /// Attaches a value that lives as long as the connection (a child process handle, FIFO files
    /// to remove, a lock); after [`into_messages`](Connection::into_messages), both halves hold
    /// it, and it is dropped with the second.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Records a description of this side's own address (used in logs and in `Display`).
    pub fn with_local(mut self, local: impl Into<String>) -> Self {
        self.local = Some(local.into());
        self
    }

    /// Attaches what the transport can say about why the connection ended, beyond end-of-stream
    /// or a failed write (a child process's exit status); see [`EndReason`].
    pub fn with_end_reason(mut self, reason: EndReason) -> Self {
        self.end_reason = Some(reason);
        self
    }

    /// What the transport can say about why the connection ended, if it attached anything.
    /// Take it before [`into_messages`](Connection::into_messages).
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end_reason.clone()
    }

    /// The peer on the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// This side's own address, if the transport has one.
    pub fn local(&self) -> Option<String> {
        self.local.clone()
    }

    /// Whether the transport carries whole messages natively (built with
    /// [`from_messages`](Connection::from_messages)) rather than byte streams.
    pub fn carries_messages(&self) -> bool {
        matches!(self.halves, Halves::Messages(..))
    }

    /// Splits the connection into its two halves as messages, and the peer: byte streams through
    /// the [`framed`](crate::framed) adapter, native halves as they are, both under `limits`.
    /// Each half holds the guard, which is dropped with the second of them.
    pub fn into_messages(self, limits: &MessageLimits) -> (MessageReader, MessageWriter, Peer) {
        let guard: Option<Guard> = self.guard.map(Arc::from);
        let (reader, writer) = match self.halves {
            Halves::Bytes(read, write) => {
                (MessageReader::framed(read, limits, guard.clone()), MessageWriter::framed(write, guard))
            }
            Halves::Messages(read, write) => {
                (MessageReader::native(read, limits, guard.clone()), MessageWriter::native(write, guard))
            }
        };
        (reader, writer, self.peer)
    }

    /// Splits a byte-stream connection into its read half, write half, peer and guard, for a
    /// caller that speaks the bytes itself (a test playing a peer by hand); a connection that
    /// carries messages is given back.
    ///
    /// Keep the guard alive for as long as either half is in use.
    #[allow(clippy::type_complexity)]
    pub fn try_into_parts(
        self,
    ) -> Result<(BoxRead, BoxWrite, Peer, Option<Box<dyn Any + Send + Sync>>), Box<Self>> {
        match self.halves {
            Halves::Bytes(read, write) => Ok((read, write, self.peer, self.guard)),
            Halves::Messages(..) => Err(Box::new(self)),
        }
    }

    /// [`try_into_parts`](Connection::try_into_parts) for a connection known to be made of byte
    /// streams (every transport in this crate but [`memory::message_pair`](crate::memory::message_pair)).
    ///
    /// # Panics
    ///
    /// If the connection carries messages ([`carries_messages`](Connection::carries_messages)):
    /// it has no bytes to give; use [`into_messages`](Connection::into_messages).
    pub fn into_parts(self) -> (BoxRead, BoxWrite, Peer, Option<Box<dyn Any + Send + Sync>>) {
        match self.try_into_parts() {
            Ok(parts) => parts,
            Err(conn) => {
                panic!("into_parts on a connection that carries messages ({conn:?}): use into_messages")
            }
        }
    }
}

type Describe = dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync;

/// Asks a transport why a connection ended, once its user has seen end-of-stream or an error.
///
/// The RPC runtime knows no transport, so when a connection ends it asks this hook (if the
/// transport attached one with [`Connection::with_end_reason`]) and adds the answer to the error
/// its calls get: [`pipe::spawn`](crate::pipe::spawn) answers `child process 1234 exited with
/// status 3` or `child process 1234 was killed by signal 9`. Cheap to clone.
#[derive(Clone)]
pub struct EndReason(Arc<Describe>);

impl EndReason {
    /// A hook that runs `describe` each time it is asked. The future should finish promptly (it
    /// delays the errors reported to callers): bound any wait inside it.
    pub fn new<F, Fut>(describe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        EndReason(Arc::new(move || Box::pin(describe())))
    }

    /// Why the connection ended, if the transport can tell.
    pub async fn describe(&self) -> Option<String> {
        (self.0)().await
    }
}

impl fmt::Debug for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndReason").finish_non_exhaustive()
    }
}

/// A source of incoming connections: a bound socket, a FIFO rendezvous point.
pub trait Listener: Send + 'static {
    /// Waits for the next peer and returns its connection.
    ///
    /// - `Ok(Some(conn))`: a new peer.
    /// - `Ok(None)`: the listener has ended for good (its connectors are gone, its FIFO can no
    ///   longer be read); a server stops accepting. No OS error means this: the end is a value,
    ///   so a failure about one peer can never be mistaken for it.
    /// - `Err(e)`: one attempt failed (a peer that reset before it was accepted, a transient
    ///   `EMFILE`); servers log it and keep accepting.
    fn accept(&mut self) -> impl Future<Output = io::Result<Option<Connection>>> + Send + '_;

    /// A human-readable description of where this listener listens.
    fn describe(&self) -> String;
}
