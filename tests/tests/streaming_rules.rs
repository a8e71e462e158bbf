//! The stream rules (PROTOCOL.md, Streams) against a hand-written peer: each broken rule gets
//! `ERROR` code 13 for the stream and counts as a violation, frames for a stream that has ended
//! are discarded, and the connection's other calls carry on.

use rpc_runtime::transport::memory;
use rpc_runtime::Server;
use rpc_tests::streams::{StreamsImpl, StreamsServer};
use rpc_tests::wire::{self, code, varint, Frame, RawPeer};
use rpc_tests::within;

const SERVER_STREAM: u8 = 2;
const CLIENT_STREAM: u8 = 3;

async fn peer() -> (RawPeer, rpc_runtime::ServerHandle) {
    let (listener, connector) = memory::listener();
    let server = Server::new(StreamsServer::new(StreamsImpl::new())).serve(listener);
    let mut peer = RawPeer::new(connector.connect().unwrap());
    peer.handshake().await;
    (peer, server)
}

/// Reads frames until the error for `id` (skipping items, ends and credits of other streams).
async fn error_for(peer: &mut RawPeer, id: u64) -> (u64, String) {
    loop {
        match peer.expect_frame().await {
            Frame::Error { id: got, code, message } if got == id => return (code, message),
            Frame::Item { .. } | Frame::End { .. } | Frame::Credit { .. } => {}
            other => panic!("expected an error for {id}, got {other:?}"),
        }
    }
}

/// A unary call still works: `produced(99, 0)` answers 0 at once.
async fn unary_carries_on(peer: &mut RawPeer, id: u64) {
    let payload = [varint(99), varint(0)].concat();
    peer.send_frame(&wire::stream_call(id, 0, "Streams", "produced", &payload)).await.unwrap();
    loop {
        match peer.expect_frame().await {
            Frame::Response { id: got, payload } if got == id => {
                assert_eq!(payload, [0]);
                return;
            }
            Frame::Item { .. } | Frame::End { .. } | Frame::Credit { .. } => {}
            other => panic!("expected the reply to {id}, got {other:?}"),
        }
    }
}

/// The handler never reads, so no credit comes back: 16 items fit the window, the 17th is
/// beyond the credit.
#[tokio::test]
async fn an_item_beyond_the_credit_is_a_stream_error() {
    within(30, "beyond credit", async {
        let (mut peer, _server) = peer().await;
        peer.send_frame(&wire::stream_call(1, CLIENT_STREAM, "Streams", "hold", &[])).await.unwrap();
        for i in 0..17u64 {
            peer.send_frame(&wire::item(1, &varint(i))).await.unwrap();
        }
        let (c, message) = error_for(&mut peer, 1).await;
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("beyond the credit"), "{message}");
        unary_carries_on(&mut peer, 2).await;
    })
    .await;
}

#[tokio::test]
async fn an_item_after_end_is_a_stream_error() {
    within(30, "item after END", async {
        let (mut peer, _server) = peer().await;
        peer.send_frame(&wire::stream_call(1, CLIENT_STREAM, "Streams", "hold", &[])).await.unwrap();
        peer.send_frame(&wire::end(1)).await.unwrap();
        peer.send_frame(&wire::item(1, &[7])).await.unwrap();
        let (c, message) = error_for(&mut peer, 1).await;
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("after the client's END"), "{message}");
        unary_carries_on(&mut peer, 2).await;
    })
    .await;
}

/// Credit past 2^32 - 1 outstanding is refused; the other stream carries on to its end.
#[tokio::test]
async fn a_credit_overflow_is_a_stream_error() {
    within(30, "credit overflow", async {
        let (mut peer, _server) = peer().await;
        // A stream that sends nothing keeps its 16 items of credit: 2^32 - 1 more overflows.
        let count = |tag, n| [varint(tag), varint(n)].concat();
        peer.send_frame(&wire::stream_call(1, SERVER_STREAM, "Streams", "sleepy", &[])).await.unwrap();
        peer.send_frame(&wire::credit(1, u64::from(u32::MAX))).await.unwrap();
        let (c, message) = error_for(&mut peer, 1).await;
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("2^32 - 1"), "{message}");
        peer.send_frame(&wire::stream_call(3, SERVER_STREAM, "Streams", "count", &count(2, 3)))
            .await
            .unwrap();
        let mut items = 0;
        loop {
            match peer.expect_frame().await {
                Frame::Item { id: 3 } => items += 1,
                Frame::End { id: 3 } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(items, 3);
    })
    .await;
}

/// A stream frame naming a unary call in flight, or an id never opened, is a stream error; a
/// frame for a stream that has ended is discarded without one.
#[tokio::test]
async fn frames_for_unary_calls_and_unknown_ids_are_errors_and_ended_streams_are_ignored() {
    within(30, "unary and unknown ids", async {
        let (mut peer, _server) = peer().await;
        // `produced(5, 1)` waits for an item that never comes: a unary call in flight.
        let waiting = [varint(5), varint(1)].concat();
        peer.send_frame(&wire::stream_call(1, 0, "Streams", "produced", &waiting)).await.unwrap();
        peer.send_frame(&wire::item(1, &[0])).await.unwrap();
        let (c, message) = error_for(&mut peer, 1).await;
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("unary or one-way"), "{message}");

        peer.send_frame(&wire::credit(77, 1)).await.unwrap();
        let (c, message) = error_for(&mut peer, 77).await;
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("never opened"), "{message}");

        // A stream of no items ends at once; a credit for it afterwards is discarded.
        let empty = [varint(6), varint(0)].concat();
        peer.send_frame(&wire::stream_call(2, SERVER_STREAM, "Streams", "count", &empty)).await.unwrap();
        assert_eq!(peer.expect_frame().await, Frame::End { id: 2 });
        peer.send_frame(&wire::credit(2, 1)).await.unwrap();
        unary_carries_on(&mut peer, 3).await;
    })
    .await;
}

/// Past the violation limit, the connection is closed with a goaway naming the stream rule.
#[tokio::test]
async fn too_many_stream_violations_close_the_connection() {
    within(30, "too many violations", async {
        let (mut peer, _server) = peer().await;
        for i in 0..9 {
            peer.send_frame(&wire::end(1000 + i)).await.unwrap();
        }
        let (c, message) = peer.goaway_then_close().await.expect("a goaway");
        assert_eq!(c, code::STREAM_PROTOCOL);
        assert!(message.contains("too many protocol violations"), "{message}");
    })
    .await;
}
