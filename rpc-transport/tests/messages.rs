//! The message-level seam: the framed adapter over a real socket, native message halves, and the
//! limits and guard both share.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rpc_transport::framed::{Frame, FrameBuf, FrameError, ReceiveBudget, UNBUDGETED_FRAME_LEN};
use rpc_transport::message::{MessageLimits, MessageReader, MessageWriter};
use rpc_transport::{memory, Connection, Peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const PREFACE: &[u8] = b"PREFACE!";

fn frame(body: &[u8]) -> Frame {
    let mut buf = FrameBuf::with_capacity(body.len());
    buf.extend_from_slice(body);
    buf.finish(usize::MAX).expect("no maximum")
}

fn halves(conn: Connection, limits: &MessageLimits) -> (MessageReader, MessageWriter) {
    let (reader, writer, _) = conn.into_messages(limits);
    (reader, writer)
}

/// Over a byte stream (a real Unix socket), the preface goes as raw bytes and each frame with
/// its 4-byte header; raw bytes coming back are cut into the preface and messages.
#[tokio::test]
async fn a_byte_stream_is_framed_by_the_shared_adapter() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let (read, write) = ours.into_split();
    let (mut reader, mut writer) =
        halves(Connection::new(read, write, Peer::Memory), &MessageLimits::new(1024));
    assert!(!reader.is_native() && !writer.is_native());

    writer.queue_preface(PREFACE);
    writer.send(&mut vec![frame(b"one"), frame(b"")]).await.unwrap();
    let mut got = vec![0; PREFACE.len() + 4 + 3 + 4];
    theirs.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [PREFACE, &[0, 0, 0, 3], b"one", &[0, 0, 0, 0]].concat());

    theirs.write_all(&[PREFACE, &[0, 0, 0, 2], b"hi", &[0, 0, 0, 1], b"!"].concat()).await.unwrap();
    assert_eq!(&reader.recv_preface(PREFACE.len()).await.unwrap().unwrap()[..], PREFACE);
    assert_eq!(&reader.recv().await.unwrap().unwrap()[..], b"hi");
    assert_eq!(&reader.next_buffered().unwrap().unwrap()[..], b"!", "arrived in the same read");
    drop(theirs);
    assert!(reader.recv().await.unwrap().is_none(), "a clean end between messages");
}

/// Over a native message transport, the preface is the first message and each frame's body is
/// one message, however the frames were laid out or cut when written.
#[tokio::test]
async fn a_native_transport_carries_the_preface_and_each_body_as_a_message() {
    let (a, b) = memory::message_pair();
    assert!(a.carries_messages());
    let (_, mut writer) = halves(a, &MessageLimits::new(1024));
    let (mut reader, _) = halves(b, &MessageLimits::new(1024));
    assert!(reader.is_native() && writer.is_native());

    writer.queue_preface(PREFACE);
    writer.send(&mut vec![frame(b"one")]).await.unwrap();
    // Frames coalesced into one buffer, handed over in awkward pieces: a header cut in two, a
    // body cut in two, an empty body.
    let joined = [frame(b"two").as_bytes(), frame(b"").as_bytes(), frame(b"three").as_bytes()].concat();
    for piece in [&joined[..2], &joined[2..5], &joined[5..]] {
        writer.write_frames(piece).await.unwrap();
    }
    writer.flush().await.unwrap();
    writer.shutdown().await.unwrap();

    assert_eq!(&reader.recv_preface(PREFACE.len()).await.unwrap().unwrap()[..], PREFACE);
    for want in [&b"one"[..], b"two", b"", b"three"] {
        assert_eq!(&reader.recv().await.unwrap().unwrap()[..], want);
    }
    assert!(reader.recv().await.unwrap().is_none(), "the end after the last message");
}

/// A native message over the maximum gets the same typed error as a framed one, with the same
/// numbers.
#[tokio::test]
async fn an_oversized_message_gets_the_same_error_framed_or_native() {
    for (a, b) in [memory::pair(), memory::message_pair()] {
        let native = a.carries_messages();
        let (_, mut writer) = halves(a, &MessageLimits::new(16));
        let (mut reader, _) = halves(b, &MessageLimits::new(8));
        writer.send(&mut vec![frame(&[7; 9])]).await.unwrap();
        match reader.recv().await {
            Err(FrameError::TooLarge { declared: 9, max: 8 }) => {}
            other => panic!("native: {native}: {other:?}"),
        }
    }
}

/// A large native message must find room in the receive budget, as a framed one must: one that
/// cannot fit gets `BudgetExhausted`; one that fits is delivered and leaves the budget empty.
#[tokio::test]
async fn native_messages_honour_the_receive_budget() {
    let budget = ReceiveBudget::new(2 * UNBUDGETED_FRAME_LEN);
    let limits = MessageLimits::new(1 << 20).receive_budget(Arc::clone(&budget));
    let (a, b) = memory::message_pair();
    let (_, mut writer) = halves(a, &limits);
    let (mut reader, _) = halves(b, &limits);

    let fits = vec![1; UNBUDGETED_FRAME_LEN + 1];
    writer.send(&mut vec![frame(&fits)]).await.unwrap();
    assert_eq!(reader.recv().await.unwrap().unwrap().len(), fits.len());
    assert_eq!(budget.in_use(), 0, "given back once delivered");

    let too_big = 3 * UNBUDGETED_FRAME_LEN;
    writer.send(&mut vec![frame(&vec![2; too_big])]).await.unwrap();
    match reader.recv().await {
        Err(FrameError::BudgetExhausted { declared, budget: limit }) => {
            assert_eq!((declared, limit), (too_big as u64, 2 * UNBUDGETED_FRAME_LEN));
        }
        other => panic!("{other:?}"),
    }
}

/// A native writer whose peer does not read waits once the transport's bound is reached, and
/// goes on when the peer reads.
#[tokio::test]
async fn a_peer_that_does_not_read_holds_the_writer_back() {
    let (a, b) = memory::message_pair();
    let (_, mut writer) = halves(a, &MessageLimits::default());
    let (mut reader, _) = halves(b, &MessageLimits::default());
    let count = memory::BUFFER / 1024 + 2;
    let mut frames: Vec<Frame> = (0..count).map(|_| frame(&[3; 1024])).collect();
    {
        let mut send = pin!(writer.send(&mut frames));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(send.as_mut().poll(&mut cx).is_pending(), "more than the bound: the writer waits");
        let (sent, ()) = tokio::join!(send, async {
            for _ in 0..count {
                assert_eq!(reader.recv().await.unwrap().unwrap().len(), 1024);
            }
        });
        sent.unwrap();
    }
    assert!(frames.is_empty());
}

/// The guard lives in both halves: it is dropped with the second of them, whichever that is,
/// for byte streams and native messages alike.
#[tokio::test]
async fn the_guard_is_dropped_with_the_second_half() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let pairs: [fn() -> (Connection, Connection); 2] = [memory::pair, memory::message_pair];
    for pair in pairs {
        for reader_first in [true, false] {
            let dropped = Arc::new(AtomicBool::new(false));
            let (conn, _peer_end) = pair();
            let conn = conn.with_guard(Flag(Arc::clone(&dropped)));
            let (reader, writer, _) = conn.into_messages(&MessageLimits::default());
            if reader_first {
                drop(reader);
                assert!(!dropped.load(Ordering::SeqCst), "the writer still holds it");
                drop(writer);
            } else {
                drop(writer);
                assert!(!dropped.load(Ordering::SeqCst), "the reader still holds it");
                drop(reader);
            }
            assert!(dropped.load(Ordering::SeqCst), "dropped with the second half");
        }
    }
}

/// A connection that carries messages has no bytes to give: `try_into_parts` gives it back.
#[test]
fn a_message_connection_has_no_byte_parts() {
    let (a, _b) = memory::message_pair();
    let Err(back) = a.try_into_parts() else { panic!("no byte halves") };
    assert!(back.carries_messages());
    let (c, _d) = memory::pair();
    assert!(c.try_into_parts().is_ok());
}

/// `poll_write_frames` on a native transport takes a frame in pieces without waiting, and hands
/// over the message only once it is whole.
#[tokio::test]
async fn a_frame_given_in_pieces_is_sent_once_whole() {
    let (a, b) = memory::message_pair();
    let (_, mut writer) = halves(a, &MessageLimits::default());
    let (mut reader, _) = halves(b, &MessageLimits::default());
    let bytes = frame(b"whole").as_bytes().to_vec();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(writer.poll_write_frames(&mut cx, &bytes[..6]), Poll::Ready(Ok(4))), "the header");
    assert!(matches!(writer.poll_write_frames(&mut cx, &bytes[4..6]), Poll::Ready(Ok(2))));
    assert!(reader.next_buffered().unwrap().is_none(), "nothing until the frame is whole");
    assert!(matches!(writer.poll_write_frames(&mut cx, &bytes[6..]), Poll::Ready(Ok(3))));
    assert_eq!(&reader.next_buffered().unwrap().unwrap()[..], b"whole");
}

/// TCP and Unix connections write straight to the socket and register for writability only
/// when it is full (`socket.rs`): a write that finds no room waits, and completes once the peer
/// reads; a shutdown reaches the peer as the end of the stream. (That no writable event is asked
/// for otherwise shows in the system calls, not here: BENCHMARKS.md counts them.)
#[tokio::test]
async fn a_socket_write_that_finds_no_room_waits_for_the_peer_to_read() {
    let listener = rpc_transport::tcp::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let unix_listener = rpc_transport::unix::bind(&path).await.unwrap();
    let pairs = [
        {
            let mut l = listener;
            let (a, b) =
                tokio::join!(rpc_transport::tcp::connect(addr), rpc_transport::Listener::accept(&mut l));
            (a.unwrap(), b.unwrap().unwrap())
        },
        {
            let mut l = unix_listener;
            let (a, b) =
                tokio::join!(rpc_transport::unix::connect(&path), rpc_transport::Listener::accept(&mut l));
            (a.unwrap(), b.unwrap().unwrap())
        },
    ];
    for (a, b) in pairs {
        let (_ra, mut wa, _, _ga) = a.into_parts();
        let (mut rb, _wb, _, _gb) = b.into_parts();
        // Far more than a socket's buffers hold, even with the kernel's largest defaults
        // (loopback TCP autotunes up to about 10 MiB in flight).
        let payload = vec![3u8; 64 << 20];
        let mut write = pin!(wa.write_all(&payload));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(write.as_mut().poll(&mut cx).is_pending(), "the socket filled up");
        let read = async {
            let mut got = vec![0u8; payload.len()];
            rb.read_exact(&mut got).await.unwrap();
            got
        };
        let (written, got) = tokio::join!(write, read);
        written.unwrap();
        assert!(got == payload, "every byte arrived in order");
        wa.shutdown().await.unwrap();
        assert_eq!(rb.read(&mut [0u8; 1]).await.unwrap(), 0, "the end of the stream");
    }
}
