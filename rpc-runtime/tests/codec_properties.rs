//! Property tests of the envelope and payload codecs (reliability cases A3, A4, A6 and D3).

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use rpc_runtime::__fuzz::{decode_envelope, decode_payload, encode_envelope, encode_payload, Envelope};
use serde::{Deserialize, Serialize};

fn envelope() -> impl Strategy<Value = Envelope> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (
            (any::<u64>(), 0u8..5, 0u8..2, bytes(), bytes(), any::<u64>()),
            (prop::option::of(any::<u64>()), metadata(), bytes())
        )
            .prop_map(|((id, kind, format, service, method, hash), (us, metadata, payload))| {
                Envelope::Call {
                    id,
                    kind,
                    format,
                    service,
                    method,
                    hash,
                    timeout: us.map(Duration::from_micros),
                    metadata,
                    payload,
                }
            }),
        (any::<u64>(), metadata(), bytes()).prop_map(|(id, metadata, payload)| Envelope::Reply {
            id,
            metadata,
            payload
        }),
        (any::<u64>(), bytes()).prop_map(|(id, payload)| Envelope::Item { id, payload }),
        any::<u64>().prop_map(|id| Envelope::End { id }),
        (any::<u64>(), any::<u64>()).prop_map(|(id, credit)| Envelope::Credit { id, credit }),
        (1024u64.., any::<u64>(), 1u64.., 1u64..4, services()).prop_map(
            |(max_frame_len, max_concurrent_calls, stream_window, formats, services)| Envelope::Hello {
                max_frame_len,
                max_concurrent_calls,
                stream_window,
                formats,
                services
            }
        ),
        (any::<u64>(), any::<u64>(), ".{0,40}").prop_map(|(id, code, message)| Envelope::Error {
            id,
            code,
            message
        }),
        any::<u64>().prop_map(|id| Envelope::Cancel { id }),
        any::<u64>().prop_map(|nonce| Envelope::Ping { nonce }),
        Just(Envelope::Pong { nonce: 0 }),
        (any::<u64>(), ".{0,40}").prop_map(|(code, message)| Envelope::GoAway { code, message }),
    ]
}

fn metadata() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((".{0,12}", ".{0,24}"), 0..4)
}

fn services() -> impl Strategy<Value = Vec<rpc_runtime::__fuzz::AdvertisedEntry>> {
    let method = ("[a-z_]{1,12}", 0u8..5, any::<u64>());
    prop::collection::vec(("[A-Za-z.]{1,16}", prop::collection::vec(method, 0..4)), 0..3)
}

/// A message with every kind of field the checklist names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Message {
    a: u64,
    b: u16,
    kind: Kind,
    tags: BTreeMap<u8, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Empty,
    Bytes(Vec<u8>),
    Text(String),
    Maybe(Option<i32>),
    Pair { x: char, y: bool },
}

fn message() -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        Just(Kind::Empty),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Kind::Bytes),
        ".{0,20}".prop_map(Kind::Text),
        prop::option::of(any::<i32>()).prop_map(Kind::Maybe),
        (any::<char>(), any::<bool>()).prop_map(|(x, y)| Kind::Pair { x, y }),
    ];
    (any::<u64>(), any::<u16>(), kind, prop::collection::btree_map(any::<u8>(), ".{0,8}", 0..4))
        .prop_map(|(a, b, kind, tags)| Message { a, b, kind, tags })
}

proptest! {
    /// Encode then decode is the identity for any envelope.
    #[test]
    fn envelope_round_trips(env in envelope()) {
        prop_assert_eq!(decode_envelope(&encode_envelope(&env)), Ok(env));
    }

    /// Decoding any byte string returns `Ok` or `Err` and never panics; whatever decodes
    /// re-encodes to the same envelope.
    #[test]
    fn arbitrary_envelopes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(env) = decode_envelope(&data) {
            prop_assert_eq!(decode_envelope(&encode_envelope(&env)), Ok(env));
        }
    }

    /// Every strict prefix of a valid envelope with no payload is rejected (a payload runs to
    /// the end of the frame, so only the fields before it can be checked).
    #[test]
    fn strict_envelope_prefixes_are_rejected(id in any::<u64>(), code in any::<u64>(), message in ".{0,20}") {
        for env in [Envelope::Error { id, code, message: message.clone() }, Envelope::Cancel { id }, Envelope::GoAway { code, message: message.clone() }] {
            let body = encode_envelope(&env);
            for cut in 0..body.len() {
                prop_assert!(decode_envelope(&body[..cut]).is_err(), "{:?} cut at {}", env, cut);
            }
        }
    }

    /// Payload round trip, and every strict prefix of a payload is rejected.
    #[test]
    fn payload_round_trips_and_prefixes_fail(m in message()) {
        let bytes = encode_payload(&m, 1 << 16).unwrap();
        prop_assert_eq!(decode_payload::<Message>(&bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            prop_assert!(decode_payload::<Message>(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
        }
    }

    /// Trailing bytes after a valid payload are rejected.
    #[test]
    fn trailing_bytes_are_rejected(m in message(), junk in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode_payload(&m, 1 << 16).unwrap();
        bytes.extend(junk);
        prop_assert!(decode_payload::<Message>(&bytes).is_err());
    }

    /// Arbitrary payload bytes never panic, whatever the target type.
    #[test]
    fn arbitrary_payloads_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload::<Message>(&data);
        let _ = decode_payload::<(Vec<Vec<u64>>, BTreeMap<String, Option<bool>>)>(&data);
    }
}
