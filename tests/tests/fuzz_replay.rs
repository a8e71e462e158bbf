//! Replays the fuzz corpus and every crash input through the fuzz target bodies, on stable.
//!
//! `fuzz/corpus/<target>/` holds the committed seeds (and whatever a fuzzing run added and was
//! committed); `fuzz/artifacts/<target>/` holds inputs that once crashed a target, kept as
//! regression tests. See FUZZING.md.

use std::path::{Path, PathBuf};

use rpc_runtime::RpcError;
use rpc_tests::wire::{code, Frame};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(inputs.len() >= 5, "the {target} corpus is missing (found {})", inputs.len());
    for (path, bytes) in inputs {
        if let Err(panic) = std::panic::catch_unwind(|| run(&bytes)) {
            eprintln!("{target}: input {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn replay_frame_decoder() {
    replay("frame_decoder", rpc_tests::fuzz::frame_decoder);
}

#[test]
fn replay_envelope() {
    replay("envelope", rpc_tests::fuzz::envelope);
}

#[test]
fn replay_server_connection() {
    replay("server_connection", rpc_tests::fuzz::server_connection);
}

#[test]
fn replay_server_handshake() {
    replay("server_handshake", rpc_tests::fuzz::server_handshake);
}

#[test]
fn replay_server_router() {
    replay("server_router", rpc_tests::fuzz::server_router);
}

#[test]
fn replay_client_connection() {
    replay("client_connection", rpc_tests::fuzz::client_connection);
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target).join(name))
        .unwrap()
}

/// The error frames the server sent, as (id, code).
fn errors(frames: &[Frame]) -> Vec<(u64, u64)> {
    frames
        .iter()
        .filter_map(|f| if let Frame::Error { id, code, .. } = f { Some((*id, *code)) } else { None })
        .collect()
}

/// The goaway the server ended with, as (code, message).
fn goaway(frames: &[Frame]) -> (u64, String) {
    match frames.last() {
        Some(Frame::GoAway { code, message }) => (*code, message.clone()),
        other => panic!("expected a goaway last, got {other:?} in {frames:?}"),
    }
}

/// The server target is not vacuous: the `calls` seed gets its two responses and a pong.
#[test]
fn server_target_serves_the_calls_seed() {
    let frames = rpc_tests::fuzz::server_connection_frames(&seed("server_connection", "calls"));
    // Pongs go out at once; responses when their handler task has run.
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert!(frames.contains(&Frame::Pong { nonce: 1 }), "{frames:?}");
    assert!(frames.contains(&Frame::Response { id: 1, payload: vec![3] }), "{frames:?}");
    assert!(frames.contains(&Frame::Response { id: 2, payload: vec![2, b'h', b'i'] }), "{frames:?}");
    assert!(matches!(frames.last(), Some(Frame::GoAway { .. })), "{frames:?}");
}

/// The server target reaches each bad-call check of issue 11 and gets its named error.
#[test]
fn server_target_names_each_bad_call() {
    let run = |name| rpc_tests::fuzz::server_connection_frames(&seed("server_connection", name));
    assert_eq!(errors(&run("unknown_service")), [(1, code::UNKNOWN_SERVICE)]);
    assert_eq!(
        errors(&run("signature_mismatch")),
        [(1, code::SIGNATURE_MISMATCH), (2, code::SIGNATURE_MISMATCH)]
    );
    assert_eq!(errors(&run("metadata_too_many")), [(1, code::METADATA_TOO_LARGE)]);
    assert_eq!(errors(&run("unknown_format")), [(1, code::BAD_REQUEST)]);
    assert_eq!(errors(&run("bad_call_kind")), [(1, code::PROTOCOL)]);
    assert_eq!(goaway(&run("second_hello")).0, code::PROTOCOL);
    // Stream frames for streams never opened: violations, the ninth closes with the stream code.
    let (c, message) = goaway(&run("stream_violations"));
    assert_eq!(c, code::STREAM_PROTOCOL, "{message}");
    assert!(message.contains("not an open stream"), "{message}");
}

/// The handshake target reaches the HELLO checks: each malformed HELLO gets a goaway naming its
/// rule, and a good one lets the calls behind it run.
#[test]
fn handshake_target_names_each_bad_hello() {
    let run = |name| rpc_tests::fuzz::server_handshake_frames(&seed("server_handshake", name));
    for (name, rule) in [
        ("hello_bad_version", "version 1"),
        ("hello_frame_below_min", "below the minimum 1024"),
        ("hello_window_zero", "stream window of 0"),
        ("hello_no_common_format", "no format"),
        ("hello_too_many_services", "257 services"),
        ("hello_too_many_methods", "more than 4096 methods"),
        ("hello_methods_over_services", "more than 4096 methods"),
        ("hello_empty_name", "0 bytes"),
        ("hello_long_name", "257 bytes"),
        ("hello_bad_method_kind", "unknown method kind 5"),
        ("hello_trailing", "trailing"),
        ("two_hellos", "second HELLO"),
        ("call_before_hello", "expected a HELLO frame first"),
    ] {
        let frames = run(name);
        let (c, message) = goaway(&frames);
        assert_eq!((frames.len(), c), (1, code::PROTOCOL), "{name}: {frames:?}");
        assert!(message.contains(rule), "{name}: {message}");
    }
    for name in ["hello_then_calls", "hello_absurd_limits", "hello_max_name", "hello_server"] {
        let frames = run(name);
        assert!(frames.contains(&Frame::Response { id: 1, payload: vec![3] }), "{name}: {frames:?}");
        assert!(frames.contains(&Frame::Pong { nonce: 3 }), "{name}: {frames:?}");
    }
}

/// The router target routes by service name and reaches the unknown-service, signature and
/// metadata-bytes checks.
#[test]
fn router_target_routes_and_checks() {
    let run = |name| rpc_tests::fuzz::server_router_frames(&seed("server_router", name));
    let frames = run("calls");
    for (id, payload) in [(1, vec![3]), (2, vec![0]), (3, vec![4])] {
        assert!(frames.contains(&Frame::Response { id, payload }), "{frames:?}");
    }
    // An empty name means the only service, and a router of two has none.
    assert_eq!(errors(&run("empty_service")), [(1, code::UNKNOWN_SERVICE)]);
    assert_eq!(errors(&run("unknown_service")), [(1, code::UNKNOWN_SERVICE), (2, code::UNKNOWN_SERVICE)]);
    assert_eq!(errors(&run("wrong_service")), [(1, code::UNKNOWN_METHOD), (2, code::UNKNOWN_METHOD)]);
    let frames = run("signature_mismatch");
    assert_eq!(errors(&frames), [(1, code::SIGNATURE_MISMATCH), (3, code::SIGNATURE_MISMATCH)]);
    assert!(frames.contains(&Frame::Response { id: 2, payload: vec![1] }), "{frames:?}");
    let frames = run("metadata_too_big");
    assert_eq!(errors(&frames), [(1, code::METADATA_TOO_LARGE)]);
    assert!(frames.contains(&Frame::Response { id: 2, payload: vec![0] }), "{frames:?}");
}

/// The client target is not vacuous: its calls get the seed's replies and errors, and a stream
/// frame for a unary call closes the connection with a protocol error naming it.
#[test]
fn client_target_takes_replies_and_errors() {
    let run = |name| rpc_tests::fuzz::client_connection_results(&seed("client_connection", name));
    let r = run("replies");
    assert_eq!((r.add.unwrap(), r.echo.unwrap(), r.sleep.unwrap()), (3, b"hi".to_vec(), 5));
    r.note.unwrap();
    let hello = r.hello.expect("the client took the server's HELLO");
    let names: Vec<_> = hello.services().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["Fuzzed", "admin.Stats"]);
    let sent: Vec<_> = r
        .sent
        .iter()
        .filter_map(|f| match f {
            Frame::Request { id, service, method, .. } => Some((*id, service.as_str(), method.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [(1, "Fuzzed", "add"), (2, "Fuzzed", "echo"), (3, "Fuzzed", "sleep"), (4, "Fuzzed", "note")]
    );

    let r = run("errors");
    assert!(matches!(r.add, Err(RpcError::UnknownMethod(ref m)) if m == "add"), "{:?}", r.add);
    assert!(matches!(r.echo, Err(RpcError::SignatureMismatch { .. })), "{:?}", r.echo);
    assert!(matches!(r.sleep, Err(RpcError::Remote { code: 99, .. })), "{:?}", r.sleep);

    let r = run("stream_frames");
    assert!(matches!(r.add, Err(RpcError::Protocol(ref m)) if m.contains("stream frame")), "{:?}", r.add);
}
