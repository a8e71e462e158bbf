//! The floor's transports: listeners that hand each connection to a thread of its own (blocking
//! std I/O) or to one shared event loop (tokio, current thread), as the client asks with the
//! connection's first byte, and client connections.
//!
//! The same kernel objects as this framework's transports (TCP with `TCP_NODELAY`, Unix sockets,
//! the child's stdin and stdout, a pair of FIFOs per connection), set up the simplest way a
//! hand-written program would (the FIFO registration is a line naming the client's directory, not
//! `FIFO.md`'s handshake: set-up is not measured). Pipes and FIFOs are enlarged to 1 MiB
//! (`F_SETPIPE_SZ`, the unprivileged maximum), so a 64 KiB frame goes through in one write.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use rpc_runtime::transport::{BoxRead, BoxWrite};
use tokio::net::unix::pipe;

use crate::endpoint::{Endpoint, Transport};

/// The read half of a floor connection.
pub(crate) type Reader = Box<dyn io::Read + Send>;
/// The write half of a floor connection.
pub(crate) type Writer = Box<dyn io::Write + Send>;

/// A connection thread needs little stack: its buffer is on the heap.
const STACK: usize = 64 * 1024;
const PIPE_SIZE: libc::c_int = 1024 * 1024;

/// How the peer of a floor connection wants it served, sent as its first byte (not over a pipe,
/// which is always [`Mode::Thread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// Blocking I/O on a thread of its own: the fastest for one busy connection.
    Thread = b'T',
    /// A task on one event-loop thread shared by every such connection: the fastest for many
    /// connections at once, where one readiness wake-up serves many of them.
    Events = b'E',
}

/// A floor connection's kernel objects, before it is given to a thread or an event loop.
#[derive(Debug)]
pub(crate) enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// A read end and a write end (a pair of FIFOs, or a child's stdout and stdin).
    Pipes(File, File),
}

impl Raw {
    /// Blocking halves.
    pub(crate) fn into_blocking(self) -> io::Result<(Reader, Writer)> {
        Ok(match self {
            Raw::Tcp(s) => (Box::new(s.try_clone()?), Box::new(s)),
            Raw::Unix(s) => (Box::new(s.try_clone()?), Box::new(s)),
            Raw::Pipes(r, w) => (Box::new(r), Box::new(w)),
        })
    }

    /// Tokio halves, registered with the current runtime.
    pub(crate) fn into_async(self) -> io::Result<(BoxRead, BoxWrite)> {
        Ok(match self {
            Raw::Tcp(s) => {
                s.set_nonblocking(true)?;
                let (r, w) = tokio::net::TcpStream::from_std(s)?.into_split();
                (Box::new(r), Box::new(w))
            }
            Raw::Unix(s) => {
                s.set_nonblocking(true)?;
                let (r, w) = tokio::net::UnixStream::from_std(s)?.into_split();
                (Box::new(r), Box::new(w))
            }
            Raw::Pipes(r, w) => {
                (Box::new(pipe::Receiver::from_file(r)?), Box::new(pipe::Sender::from_file(w)?))
            }
        })
    }

    fn write_mode(&mut self, mode: Mode) -> io::Result<()> {
        let byte = [mode as u8];
        match self {
            Raw::Tcp(s) => s.write_all(&byte),
            Raw::Unix(s) => s.write_all(&byte),
            Raw::Pipes(_, w) => w.write_all(&byte),
        }
    }

    fn read_mode(&mut self) -> io::Result<Mode> {
        let mut byte = [0u8];
        match self {
            Raw::Tcp(s) => s.read_exact(&mut byte)?,
            Raw::Unix(s) => s.read_exact(&mut byte)?,
            Raw::Pipes(r, _) => r.read_exact(&mut byte)?,
        }
        match byte[0] {
            b'T' => Ok(Mode::Thread),
            b'E' => Ok(Mode::Events),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unknown mode")),
        }
    }
}

/// Serves `transport` at `endpoint` forever (over a pipe: until stdin ends); `ready` is told the
/// endpoint once clients may connect. Each connection says how it wants to be served ([`Mode`]):
/// by `echo` on a thread of its own, or by `echo_async` on the shared event-loop thread.
pub(crate) fn serve(
    transport: Transport,
    endpoint: &str,
    ready: impl FnOnce(&str),
    echo: fn(Reader, Writer) -> io::Result<()>,
    echo_async: fn(BoxRead, BoxWrite) -> BoxFuture<'static, io::Result<()>>,
) -> io::Result<()> {
    if transport == Transport::Pipe {
        let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        enlarge_pipe(&stdin);
        enlarge_pipe(&stdout);
        return echo(Box::new(stdin), Box::new(stdout));
    }
    let events = EventLoop::start(echo_async)?;
    let take = |mut raw: Raw| -> io::Result<()> {
        match raw.read_mode()? {
            Mode::Thread => {
                let (r, w) = raw.into_blocking()?;
                std::thread::Builder::new().stack_size(STACK).spawn(move || {
                    let _ = echo(r, w);
                })?;
            }
            Mode::Events => events.send(raw)?,
        }
        Ok(())
    };
    match transport {
        Transport::Tcp => {
            let listener = TcpListener::bind(endpoint)?;
            ready(&listener.local_addr()?.to_string());
            for stream in listener.incoming() {
                let stream = stream?;
                stream.set_nodelay(true)?;
                take(Raw::Tcp(stream))?;
            }
        }
        Transport::Unix => {
            let listener = UnixListener::bind(endpoint)?;
            ready(endpoint);
            for stream in listener.incoming() {
                take(Raw::Unix(stream?))?;
            }
        }
        Transport::Fifo => {
            mkfifo(Path::new(endpoint))?;
            // Read and write: the listener never sees end-of-stream between clients.
            let registrations = OpenOptions::new().read(true).write(true).open(endpoint)?;
            ready(endpoint);
            for line in BufReader::new(registrations).lines() {
                let dir = PathBuf::from(line?);
                // The client opens in the same order, so neither waits for the other for long.
                let from_client = File::open(dir.join("c2s"))?;
                let to_client = OpenOptions::new().write(true).open(dir.join("s2c"))?;
                enlarge_pipe(&from_client);
                take(Raw::Pipes(from_client, to_client))?;
            }
        }
        Transport::Pipe => unreachable!("served above"),
    }
    Ok(())
}

/// A thread running a current-thread tokio runtime, serving the connections sent to it.
struct EventLoop {
    tx: tokio::sync::mpsc::UnboundedSender<Raw>,
}

impl EventLoop {
    fn start(echo: fn(BoxRead, BoxWrite) -> BoxFuture<'static, io::Result<()>>) -> io::Result<EventLoop> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Raw>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        std::thread::Builder::new().name("floor-events".into()).spawn(move || {
            rt.block_on(async move {
                while let Some(raw) = rx.recv().await {
                    if let Ok((r, w)) = raw.into_async() {
                        tokio::spawn(echo(r, w));
                    }
                }
            })
        })?;
        Ok(EventLoop { tx })
    }

    fn send(&self, raw: Raw) -> io::Result<()> {
        self.tx.send(raw).map_err(|_| io::Error::other("the event loop stopped"))
    }
}

/// A client connection to the floor's server, to be served in `mode`.
pub(crate) fn connect(endpoint: &Endpoint, mode: Mode) -> io::Result<Raw> {
    let mut raw = match endpoint {
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            Raw::Tcp(stream)
        }
        Endpoint::Unix(path) => Raw::Unix(UnixStream::connect(path)?),
        Endpoint::StdPipe(halves) => {
            let (stdout, stdin) = halves
                .lock()
                .expect("not poisoned")
                .take()
                .ok_or_else(|| io::Error::other("a pipe to a child carries one connection"))?;
            enlarge_pipe(&stdout);
            enlarge_pipe(&stdin);
            if mode != Mode::Thread {
                return Err(io::Error::other("the floor serves a pipe on a thread"));
            }
            return Ok(Raw::Pipes(File::from(OwnedFd::from(stdout)), File::from(OwnedFd::from(stdin))));
        }
        Endpoint::Fifo(path) => connect_fifo(path)?,
        Endpoint::Pipe(_) => return Err(io::Error::other("this pipe is for a tokio client")),
    };
    raw.write_mode(mode)?;
    Ok(raw)
}

/// A FIFO connection: makes a private directory with two FIFOs, registers it with one line (less
/// than `PIPE_BUF` bytes, so never interleaved with another client's) on the server's FIFO, and
/// opens its ends in the order the server does. The FIFOs are removed once both sides hold them.
fn connect_fifo(server: &Path) -> io::Result<Raw> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "floor-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    let result = (|| {
        mkfifo(&dir.join("c2s"))?;
        mkfifo(&dir.join("s2c"))?;
        let mut line = dir.as_os_str().as_bytes().to_vec();
        line.push(b'\n');
        OpenOptions::new().write(true).open(server)?.write_all(&line)?;
        let to_server = OpenOptions::new().write(true).open(dir.join("c2s"))?;
        let from_server = File::open(dir.join("s2c"))?;
        enlarge_pipe(&from_server);
        Ok(Raw::Pipes(from_server, to_server))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn mkfifo(path: &Path) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; mkfifo reads nothing else.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Best effort: a pipe keeps its default 64 KiB where the limit forbids more.
fn enlarge_pipe(fd: &impl AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; it fails harmlessly if it is not a pipe.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
}
