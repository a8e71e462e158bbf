//! The engines over a native message transport (`memory::message_pair`), with the other end
//! played by hand in messages: the preface as the first message, the limits on native messages,
//! and the guard held by the connection's halves.

use rpc_runtime::transport::framed::{Frame as OutFrame, FrameBuf};
use rpc_runtime::transport::memory;
use rpc_runtime::transport::message::{MessageLimits, MessageReader, MessageWriter};
use rpc_runtime::{RpcError, Server};
use rpc_tests::wire::{self, Frame};
use rpc_tests::*;

/// The other end of a message connection, as messages.
fn by_hand(conn: rpc_runtime::transport::Connection) -> (MessageReader, MessageWriter) {
    let (reader, writer, _) = conn.into_messages(&MessageLimits::new(usize::MAX));
    (reader, writer)
}

fn message(body: &[u8]) -> OutFrame {
    let mut buf = FrameBuf::with_capacity(body.len());
    buf.extend_from_slice(body);
    buf.finish(usize::MAX).expect("no maximum")
}

/// The client sends its preface as one 8-byte message, then its HELLO as a message; a server
/// whose first message names version 1 gets the error that names both versions.
#[tokio::test]
async fn a_native_peer_of_another_version_gets_a_clear_error() {
    within(60, "a v1 server over messages", async {
        let (ours, theirs) = memory::message_pair();
        let client = KitchenClient::new(ours);
        let (mut reader, mut writer) = by_hand(theirs);
        let mut v1 = wire::PREFACE;
        v1[6] = 1;
        writer.queue_preface(&v1);
        writer.flush().await.unwrap();
        let call = tokio::spawn(async move { client.add(1, 2).await });
        assert_eq!(&reader.recv().await.unwrap().unwrap()[..], &wire::PREFACE, "the preface, one message");
        assert!(matches!(wire::parse(&reader.recv().await.unwrap().unwrap()), Frame::Hello { .. }));
        match call.await.unwrap() {
            Err(RpcError::Protocol(m)) => assert!(m.contains("version 1, this side speaks version 2"), "{m}"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// A first message that is not 8 bytes is not a preface: the server sends its own preface and
/// HELLO (without waiting) and closes, having run nothing.
#[tokio::test]
async fn a_first_message_of_the_wrong_length_is_not_a_preface() {
    within(60, "a short first message", async {
        let (ours, theirs) = memory::message_pair();
        let _server = Server::new(kitchen_router(KitchenImpl::new())).serve_connection(theirs);
        let (mut reader, mut writer) = by_hand(ours);
        writer.queue_preface(&wire::PREFACE[..7]);
        writer.send(&mut vec![message(&wire::hello())]).await.unwrap();
        assert_eq!(&reader.recv().await.unwrap().unwrap()[..], &wire::PREFACE);
        assert!(matches!(wire::parse(&reader.recv().await.unwrap().unwrap()), Frame::Hello { .. }));
        assert!(reader.recv().await.unwrap().is_none(), "closed after the failed preface check");
    })
    .await;
}

/// A native message over the server's maximum gets what an oversized frame gets: a GOAWAY
/// with code 8 (`FRAME_TOO_LARGE`) naming the limit, then the end of the connection.
#[tokio::test]
async fn an_oversized_native_message_gets_frame_too_large() {
    within(60, "an oversized message", async {
        let (ours, theirs) = memory::message_pair();
        let server = Server::new(kitchen_router(KitchenImpl::new())).max_frame_len(1024);
        let _server = server.serve_connection(theirs);
        let (mut reader, mut writer) = by_hand(ours);
        writer.queue_preface(&wire::PREFACE);
        writer.send(&mut vec![message(&wire::hello()), message(&[2; 1025])]).await.unwrap();
        assert_eq!(&reader.recv().await.unwrap().unwrap()[..], &wire::PREFACE);
        let mut frames = Vec::new();
        while let Some(body) = reader.recv().await.unwrap() {
            frames.push(wire::parse(&body));
        }
        match frames.as_slice() {
            [Frame::Hello { .. }, Frame::GoAway { code: wire::code::FRAME_TOO_LARGE, message }] => {
                assert!(message.contains("1025") && message.contains("1024"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// The transport's guard lives as long as the connection's halves: a server connection keeps it
/// while it serves, and drops it once the client hangs up and the connection is closed.
#[tokio::test]
async fn the_guard_lives_as_long_as_the_served_connection() {
    within(60, "the guard", async {
        let (ours, theirs) = memory::message_pair();
        let (alive, gone) = tokio::sync::oneshot::channel::<()>();
        let _server =
            Server::new(kitchen_router(KitchenImpl::new())).serve_connection(theirs.with_guard(alive));
        let client = KitchenClient::new(ours);
        assert_eq!(client.add(2, 3).await.unwrap(), 5);
        let mut gone = gone;
        assert!(gone.try_recv().is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty));
        drop(client);
        assert!(gone.await.is_err(), "the guard was dropped (never sent on) once the connection closed");
    })
    .await;
}
