//! The codec seam: argument tuples and results round-trip through postcard and JSON alike, JSON
//! has the documented layout, and the decode limits of reliability A3, A5 and A6 hold for JSON
//! as they do for postcard.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rpc_runtime::__fuzz::{
    decode_args_as, decode_payload_as, decode_result_as, encode_args_as, encode_payload_as, encode_result_as,
};
use rpc_runtime::{Format, RpcError, MAX_DECODE_DEPTH, MAX_ZERO_SIZED_ELEMENTS};
use rpc_tests::alloc::{MemScope, MIB};
use rpc_tests::probe::Tree;
use serde::{Deserialize, Serialize};

const FORMATS: [Format; 2] = [Format::Postcard, Format::Json];
const MAX: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    kind: Kind,
    scores: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Sized(u32),
    Pair(i8, i8),
    Named { at: i64 },
}

fn record() -> Record {
    Record {
        id: 7,
        name: "seven".into(),
        tags: vec!["a".into(), "b".into()],
        kind: Kind::Named { at: -3 },
        scores: [("x".to_string(), 1.5)].into_iter().collect(),
    }
}

fn decode_err<T: serde::de::DeserializeOwned + std::fmt::Debug>(format: Format, bytes: &[u8]) -> String {
    match decode_payload_as::<T>(format, bytes) {
        Err(RpcError::Decode(m)) => m,
        other => panic!(
            "{format}: expected a Decode error for {:?}, got {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn argument_tuples_round_trip_in_every_format() {
    for format in FORMATS {
        let args = (3i32, vec![1u8, 2, 255], String::from("héllo"), record(), Some(Kind::Pair(1, -1)));
        let bytes = encode_args_as(format, &args, MAX).unwrap();
        let back: (i32, Vec<u8>, String, Record, Option<Kind>) = decode_args_as(format, &bytes).unwrap();
        assert_eq!(back, args, "{format}");

        let none = encode_args_as(format, &(), MAX).unwrap();
        decode_args_as::<()>(format, &none).unwrap();
        let one = encode_args_as(format, &(u64::MAX,), MAX).unwrap();
        assert_eq!(decode_args_as::<(u64,)>(format, &one).unwrap(), (u64::MAX,));
    }
}

#[test]
fn results_round_trip_in_every_format() {
    for format in FORMATS {
        let ok: Result<Record, String> = Ok(record());
        let bytes = encode_result_as(format, &ok, MAX).unwrap();
        assert_eq!(decode_result_as::<Result<Record, String>>(format, &bytes).unwrap(), ok, "{format}");
        let err: Result<Record, String> = Err("no".into());
        let bytes = encode_result_as(format, &err, MAX).unwrap();
        assert_eq!(decode_result_as::<Result<Record, String>>(format, &bytes).unwrap(), err, "{format}");
        let blob: Vec<u8> = (0..=255).collect();
        let bytes = encode_result_as(format, &blob, MAX).unwrap();
        assert_eq!(decode_result_as::<Vec<u8>>(format, &bytes).unwrap(), blob, "{format}");
        let bytes = encode_result_as(format, &(), MAX).unwrap();
        decode_result_as::<()>(format, &bytes).unwrap();
    }
}

#[test]
fn json_layout_is_an_argument_array_and_serde_default_results() {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    assert_eq!(text(encode_args_as(Format::Json, &(3i32, 4i32), MAX).unwrap()), "[3,4]");
    assert_eq!(text(encode_args_as(Format::Json, &(), MAX).unwrap()), "[]");
    assert_eq!(text(encode_args_as(Format::Json, &(vec![1u8, 2],), MAX).unwrap()), "[[1,2]]");
    assert_eq!(text(encode_args_as(Format::Json, &(String::from("x"),), MAX).unwrap()), r#"["x"]"#);
    assert_eq!(text(encode_result_as(Format::Json, &Ok::<i64, String>(3), MAX).unwrap()), r#"{"Ok":3}"#);
    assert_eq!(
        text(encode_result_as(Format::Json, &Err::<i64, String>("e".into()), MAX).unwrap()),
        r#"{"Err":"e"}"#
    );
    assert_eq!(
        text(encode_result_as(Format::Json, &record(), MAX).unwrap()),
        r#"{"id":7,"name":"seven","tags":["a","b"],"kind":{"Named":{"at":-3}},"scores":{"x":1.5}}"#
    );
    // A peer that writes whitespace is read alike.
    assert_eq!(decode_args_as::<(i32, i32)>(Format::Json, b" [ 3 , 4 ] \n").unwrap(), (3, 4));
}

#[test]
fn an_encoding_over_the_maximum_is_frame_too_large_in_every_format() {
    for format in FORMATS {
        match encode_payload_as(format, &vec![7u32; 10_000], 100) {
            Err(RpcError::FrameTooLarge { max: 100, len }) => assert!(len > 100, "{format}"),
            other => panic!("{format}: {other:?}"),
        }
    }
}

/// A3 for JSON: bodies that are valid frames but wrong for the method's types are typed
/// `Decode` errors that say what was wrong.
#[test]
fn a3_invalid_json_bodies_are_typed_decode_errors() {
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("too few arguments", b"[1]", "invalid length 1"),
        ("too many arguments", b"[1,2,3]", "trailing"),
        ("not an array", br#"{"a":1,"b":2}"#, "invalid type: map"),
        ("a string for an i32", br#"["1",2]"#, "invalid type: string"),
        ("out of range", b"[1,4294967296]", "invalid value"),
        ("not JSON", b"[1,2", "EOF"),
        ("bad UTF-8", b"[\"\xff\xfe\",2]", "invalid unicode code point"),
        ("trailing garbage", b"[1,2] x", "trailing"),
        ("two values", b"[1,2][3,4]", "trailing"),
    ];
    for (what, body, want) in &cases {
        let message = match decode_args_as::<(i32, i32)>(Format::Json, body) {
            Err(RpcError::Decode(m)) => m,
            other => panic!("{what}: expected Decode, got {other:?}"),
        };
        assert!(message.contains(want), "{what}: expected {want:?} in {message:?}");
    }
    let m = decode_err::<Kind>(Format::Json, br#"{"Square":3}"#);
    assert!(m.contains("unknown variant `Square`"), "{m}");
    let m = decode_err::<Record>(Format::Json, br#"{"id":1}"#);
    assert!(m.contains("missing field `name`"), "{m}");
    // The same schema skew postcard reads as garbage, JSON names.
    let m = decode_err::<(u32, u32)>(Format::Json, b"[-3,4]");
    assert!(m.contains("invalid value: integer `-3`"), "{m}");
}

fn on_2mib_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(2 * MIB).spawn(f).unwrap().join().expect("no stack overflow")
}

/// A5 for JSON: 100,000 nested levels are an error naming a depth limit, with no stack
/// overflow on a 2 MiB stack; nesting within the limit decodes.
#[test]
fn a5_deep_json_nesting_is_an_error_not_a_stack_overflow() {
    on_2mib_stack(|| {
        let want_ours = format!("depth limit of {MAX_DECODE_DEPTH} levels");
        let deep_enum = format!("[{}{{\"Leaf\":7}}{}]", "{\"Node\":".repeat(100_000), "}".repeat(100_000));
        let m = decode_err::<(Tree,)>(Format::Json, deep_enum.as_bytes());
        assert!(m.contains(&want_ours), "{m}");

        let deep_branches =
            format!("{}{{\"Leaf\":7}}{}", "{\"Branch\":[".repeat(100_000), "]}".repeat(100_000));
        let m = decode_err::<Tree>(Format::Json, deep_branches.as_bytes());
        assert!(m.contains(&want_ours), "{m}");

        // The deepest chain the limit allows decodes, as with postcard.
        for format in [Format::Postcard, Format::Json] {
            let ok = encode_args_as(format, &(Tree::chain(MAX_DECODE_DEPTH / 2 - 2),), 1 << 20).unwrap();
            let (tree,): (Tree,) = decode_args_as(format, &ok).expect("nesting within the limit decodes");
            assert_eq!(tree.depth(), (MAX_DECODE_DEPTH / 2 - 2) as u64, "{format}");
            let over = encode_args_as(format, &(Tree::chain(MAX_DECODE_DEPTH),), 1 << 20).unwrap();
            let m = match decode_args_as::<(Tree,)>(format, &over) {
                Err(RpcError::Decode(m)) => m,
                other => panic!("{format}: {other:?}"),
            };
            assert!(m.contains(&want_ours), "{format}: {m}");
        }
    });
}

/// A6 for JSON: JSON declares no lengths, so nothing can be reserved from one; the zero-sized
/// element limit is the same as postcard's (counted by type, so `null` for `()` counts), and
/// large inputs cost memory in proportion to what they hold.
#[test]
fn a6_json_zero_sized_elements_and_memory() {
    assert!(MemScope::is_counting());
    let nulls = |n: usize| format!("[{}]", vec!["null"; n].join(","));
    assert_eq!(
        decode_payload_as::<Vec<()>>(Format::Json, nulls(MAX_ZERO_SIZED_ELEMENTS).as_bytes()).unwrap().len(),
        MAX_ZERO_SIZED_ELEMENTS
    );
    let m = decode_err::<Vec<()>>(Format::Json, nulls(MAX_ZERO_SIZED_ELEMENTS + 1).as_bytes());
    assert!(m.contains("more zero-sized elements than the limit of 1024"), "{m}");
    // The same count, in postcard: the same verdict.
    for n in [MAX_ZERO_SIZED_ELEMENTS, MAX_ZERO_SIZED_ELEMENTS + 1] {
        let postcard = encode_payload_as(Format::Postcard, &vec![(); n], 64).unwrap();
        let json = encode_payload_as(Format::Json, &vec![(); n], 1 << 20).unwrap();
        assert_eq!(
            decode_payload_as::<Vec<()>>(Format::Postcard, &postcard).is_ok(),
            decode_payload_as::<Vec<()>>(Format::Json, &json).is_ok(),
            "{n} units"
        );
    }
    // Empty structs and unit structs are zero-sized too; `Option::None` is not.
    #[derive(Debug, Serialize, Deserialize)]
    struct Empty {}
    assert!(decode_payload_as::<Vec<Empty>>(
        Format::Json,
        format!("[{}]", vec!["{}"; 1025].join(",")).as_bytes()
    )
    .is_err());
    assert_eq!(
        decode_payload_as::<Vec<Option<u8>>>(Format::Json, nulls(5000).as_bytes()).unwrap().len(),
        5000
    );

    // Memory follows the input: a 1 MiB body of small numbers, maps and strings decodes
    // within a few times its size, and a truncated one fails without reserving more.
    fn check<T: serde::de::DeserializeOwned>(name: &str, body: &[u8], ok: bool) {
        let mem = MemScope::start();
        let started = std::time::Instant::now();
        let result = decode_payload_as::<T>(Format::Json, body);
        assert_eq!(result.is_ok(), ok, "{name}");
        drop(result);
        mem.assert_within(4 * MIB, name);
        assert!(started.elapsed() < Duration::from_secs(5), "{name}: took {:?}", started.elapsed());
    }
    let numbers = format!("[{}]", vec!["1"; 500_000].join(","));
    check::<Vec<u8>>("500,000 numbers", numbers.as_bytes(), true);
    check::<Vec<u8>>("500,000 numbers, truncated", &numbers.as_bytes()[..numbers.len() - 1], false);
    let map = format!("{{{}}}", (0..50_000).map(|i| format!("\"{i}\":{i}")).collect::<Vec<_>>().join(","));
    check::<HashMap<String, u32>>("a map of 50,000 entries", map.as_bytes(), true);
    check::<BTreeMap<String, u32>>("a map, truncated", &map.as_bytes()[..map.len() - 1], false);
}

#[rpc_runtime::service]
trait Calc {
    async fn add(&self, a: i32, b: i32) -> i32;
    async fn label(&self, blob: Vec<u8>, tag: Option<String>) -> Result<String, String>;
    async fn ping(&self);
}

struct CalcImpl;

impl Calc for CalcImpl {
    async fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }
    async fn label(&self, blob: Vec<u8>, tag: Option<String>) -> Result<String, String> {
        tag.map(|t| format!("{t}:{}", blob.len())).ok_or_else(|| "no tag".to_string())
    }
    async fn ping(&self) {}
}

/// Generated code decodes a request in the format it is given: the same call in JSON and in
/// postcard gives the same request, and JSON's errors are typed.
#[tokio::test]
async fn generated_decoders_take_the_format() {
    let json = CalcRequest::decode(Format::Json, "add", b"[2,3]").unwrap();
    let postcard_body = encode_args_as(Format::Postcard, &(2i32, 3i32), MAX).unwrap();
    let postcard = CalcRequest::decode(Format::Postcard, "add", &postcard_body).unwrap();
    let server = CalcServer::new(CalcImpl);
    for request in [json, postcard] {
        assert!(matches!(server.handle(request).await, CalcResponse::Add(5)));
    }
    let request = CalcRequest::decode(Format::Json, "label", br#"[[1,2,3],"t"]"#).unwrap();
    match server.handle(request).await {
        CalcResponse::Label(Ok(s)) => assert_eq!(s, "t:3"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(CalcRequest::decode(Format::Json, "ping", b"[]").unwrap(), CalcRequest::Ping {}));
    assert!(matches!(CalcRequest::decode(Format::Json, "ping", b"[1]"), Err(RpcError::Decode(_))));
    assert!(matches!(CalcRequest::decode(Format::Json, "add", b"[2]"), Err(RpcError::Decode(_))));
    assert!(
        matches!(CalcRequest::decode(Format::Json, "sub", b"[2,3]"), Err(RpcError::UnknownMethod(m)) if m == "sub")
    );
}
