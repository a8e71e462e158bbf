//! Replays the fuzz corpus and every crash input through the fuzz target bodies, on stable.
//!
//! `fuzz/corpus/<target>/` holds the committed seeds (and whatever a fuzzing run added and was
//! committed); `fuzz/artifacts/<target>/` holds inputs that once crashed a target, kept as
//! regression tests. See FUZZING.md.

use std::path::{Path, PathBuf};

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

/// The server target is not vacuous: the `calls` seed gets its two responses and a pong.
#[test]
fn server_target_serves_the_calls_seed() {
    use rpc_tests::wire::Frame;
    let seed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/server_connection/calls"))
            .unwrap();
    let frames = rpc_tests::fuzz::server_connection_frames(&seed);
    // Pongs go out at once; responses when their handler task has run.
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert!(frames.contains(&Frame::Pong { nonce: 1 }), "{frames:?}");
    assert!(frames.contains(&Frame::Response { id: 1, payload: vec![3] }), "{frames:?}");
    assert!(frames.contains(&Frame::Response { id: 2, payload: vec![2, b'h', b'i'] }), "{frames:?}");
    assert!(matches!(frames.last(), Some(Frame::GoAway { .. })), "{frames:?}");
}
