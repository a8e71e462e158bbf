use std::time::Duration;

use bytes::Bytes;
use rpc_transport::framed::FrameBuf;

use super::*;
use crate::codec::Format;
use crate::hello::{AdvertisedMethod, AdvertisedService};

fn body(buf: FrameBuf) -> Bytes {
    Bytes::from(buf.body_to_vec())
}

fn target(hash: u64) -> Target<'static> {
    Target { service: b"Calc", method: b"add", kind: MethodKind::Unary, hash }
}

#[test]
fn call_round_trips() {
    let mut md = Metadata::new();
    md.insert("traceparent", "00-ab-cd-01");
    let mut buf = call_header(300, target(0xfeed), Format::Json, Some(Duration::from_millis(1500)), &md);
    buf.extend_from_slice(&[1, 2, 3]);
    match decode(body(buf)).unwrap() {
        Message::Call { head, body } => {
            assert_eq!((head.id, head.kind, head.format), (300, MethodKind::Unary, 1));
            assert_eq!((&head.service[..], &head.method[..]), (&b"Calc"[..], &b"add"[..]));
            assert_eq!(head.hash, 0xfeed);
            assert_eq!(head.timeout, Some(Duration::from_millis(1500)));
            assert_eq!(head.metadata, md);
            assert_eq!(&body[..], &[1, 2, 3]);
        }
        other => panic!("decoded {other:?}"),
    }
}

/// The worked example in PROTOCOL.md, byte for byte.
#[test]
fn protocol_md_example() {
    let hash = 0x0123_4567_89ab_cdef;
    let mut call =
        call_header(1, target(hash), Format::Postcard, Some(Duration::from_secs(1)), &Metadata::new());
    crate::codec::encode_into(Format::Postcard, &mut call, &(1i64, 2i64), 1 << 20).unwrap();
    let frame = call.finish(1 << 20).unwrap();
    assert_eq!(
        frame.as_bytes(),
        [
            0, 0, 0, 0x1b, // length 27
            2, 1, 0, 1, 0, // CALL, id 1, unary, flags: deadline, postcard
            4, b'C', b'a', b'l', b'c', 3, b'a', b'd', b'd', // service, method
            0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, // hash, little-endian
            0xc0, 0x84, 0x3d, // deadline 1,000,000 µs
            2, 4, // arguments (1, 2) as zigzag varints
        ]
    );
    let mut reply = reply_header(1);
    crate::codec::encode_into(Format::Postcard, &mut reply, &3i64, 1 << 20).unwrap();
    assert_eq!(reply.finish(1 << 20).unwrap().as_bytes(), [0, 0, 0, 4, 3, 1, 0, 6]);
    assert_eq!(PREFACE, [0x89, 0x52, 0x50, 0x43, 0x0d, 0x0a, 0x02, 0x00]);
}

#[test]
fn hello_round_trips_and_bounds_hold() {
    let hello = Hello {
        version: 2,
        max_frame_len: 1 << 20,
        max_concurrent_calls: 64,
        stream_window: 16,
        formats: 3,
        services: vec![AdvertisedService {
            name: "Calc".into(),
            methods: vec![AdvertisedMethod {
                name: "add".into(),
                kind: MethodKind::Unary,
                signature_hash: 7,
            }],
        }],
    };
    let decoded = decode_hello(body(encode_hello(&hello))).unwrap();
    assert_eq!(decoded, hello);

    let absurd = Hello { max_frame_len: 10, ..hello.clone() };
    let err = decode_hello(body(encode_hello(&absurd))).unwrap_err().to_string();
    assert!(err.contains("below the minimum"), "{err}");
    let no_window = Hello { stream_window: 0, ..hello.clone() };
    assert!(decode_hello(body(encode_hello(&no_window))).unwrap_err().to_string().contains("window"));
    let no_format = Hello { formats: 1 << 9, ..hello.clone() };
    assert!(decode_hello(body(encode_hello(&no_format))).unwrap_err().to_string().contains("no format"));

    // A count that claims more methods than the frame could hold neither allocates for them nor
    // passes.
    let mut lie = vec![kind::HELLO, 2, 0x80, 0x80, 0x40, 1, 1, 1, 1, 1, b'X'];
    lie.extend_from_slice(&[0xff, 0xff, 0x03]);
    assert!(decode_hello(Bytes::from(lie)).is_err());
    // More services than allowed.
    let many = vec![kind::HELLO, 2, 0x80, 0x80, 0x40, 1, 1, 1, 0xff, 0x0f];
    let err = decode_hello(Bytes::from(many)).unwrap_err().to_string();
    assert!(err.contains("services"), "{err}");
}

#[test]
fn metadata_over_its_bounds_fails_the_call_alone() {
    let mut md = Metadata::new();
    for i in 0..=crate::MAX_METADATA_ENTRIES {
        md.insert(format!("k{i}"), "v");
    }
    let buf = call_header(9, target(1), Format::Postcard, None, &md);
    let (id, err) = decode(body(buf)).unwrap_err();
    assert_eq!(id, Some(9));
    assert!(matches!(err, RpcError::MetadataTooLarge(_)), "{err}");

    let big: Metadata = [("k", "x".repeat(crate::MAX_METADATA_BYTES))].into_iter().collect();
    let (id, err) = decode(body(call_header(10, target(1), Format::Postcard, None, &big))).unwrap_err();
    assert_eq!(id, Some(10));
    assert!(matches!(err, RpcError::MetadataTooLarge(_)), "{err}");
}

#[test]
fn stream_frames_round_trip() {
    let mut item = item_header(5);
    item.extend_from_slice(&[9, 9]);
    assert!(matches!(decode(body(item)).unwrap(), Message::Item { id: 5, body } if body[..] == [9, 9]));
    assert!(matches!(decode(body(end_frame(6))).unwrap(), Message::End { id: 6 }));
    assert!(matches!(decode(body(credit_frame(7, 32))).unwrap(), Message::Credit { id: 7, credit: 32 }));
}

#[test]
fn overlong_varint_is_rejected() {
    let mut raw = vec![kind::CANCEL];
    raw.extend_from_slice(&[0xff; 11]);
    let err = decode(Bytes::from(raw)).unwrap_err().1;
    assert!(err.to_string().contains("overflows"), "{err}");
}

#[test]
fn malformed_call_reports_its_id() {
    let raw = vec![kind::CALL, 7, 0, 0, 0, 200];
    let (id, err) = decode(Bytes::from(raw)).unwrap_err();
    assert_eq!(id, Some(7));
    assert!(err.to_string().contains("service name"), "{err}");
    let raw = vec![kind::CALL, 8, 9];
    let (id, err) = decode(Bytes::from(raw)).unwrap_err();
    assert_eq!(id, Some(8));
    assert!(err.to_string().contains("unknown call kind 9"), "{err}");
}

#[test]
fn preface_mismatch_names_the_version() {
    let mut other = PREFACE;
    other[6] = 1;
    let err = check_preface(&other).unwrap_err().to_string();
    assert!(err.contains("version 1, this side speaks version 2"), "{err}");
    let err = check_preface(b"GET / HT").unwrap_err().to_string();
    assert!(err.contains("does not speak"), "{err}");
}
