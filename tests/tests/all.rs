//! Every integration suite of `rpc-tests`, in one test binary: one link of the test crate
//! instead of one per file, which was most of the README's cold test time. Each file stays a
//! suite of its own, a module here, so tests keep their names (`streaming::...`,
//! `reliability_b_connection::b1_...`) and one suite runs with
//! `cargo test -p rpc-tests --test all reliability_b_connection::`.
//!
//! What a file would otherwise install per process is installed here, once: the counting
//! allocator (per-thread counts, so suites running side by side do not disturb each other's
//! memory budgets).

// A `pub` item of a suite is a module's item now, no longer the crate root's; `pub` in a test
// binary exports nothing either way.
#![allow(unreachable_pub)]

#[global_allocator]
static ALLOC: rpc_tests::alloc::CountingAlloc = rpc_tests::alloc::CountingAlloc;

#[path = "behaviour.rs"]
mod behaviour;
#[path = "blocking_client.rs"]
mod blocking_client;
#[path = "bytes_payloads.rs"]
mod bytes_payloads;
#[path = "call_semantics.rs"]
mod call_semantics;
#[path = "calls_over_backends.rs"]
mod calls_over_backends;
#[path = "codec_json.rs"]
mod codec_json;
#[path = "cross_process.rs"]
mod cross_process;
#[path = "engine_v2.rs"]
mod engine_v2;
#[path = "fuzz_replay.rs"]
mod fuzz_replay;
#[path = "hot_path.rs"]
mod hot_path;
#[path = "interceptors.rs"]
mod interceptors;
#[path = "introspection.rs"]
mod introspection;
#[path = "message_connection.rs"]
mod message_connection;
#[cfg(feature = "nats")]
#[path = "nats_calls.rs"]
mod nats_calls;
#[cfg(feature = "nats")]
#[path = "nats_queue.rs"]
mod nats_queue;
#[path = "opentelemetry.rs"]
mod opentelemetry;
#[path = "queue_over_backends.rs"]
mod queue_over_backends;
#[path = "reliability_a_framing.rs"]
mod reliability_a_framing;
#[path = "reliability_b_connection.rs"]
mod reliability_b_connection;
#[path = "reliability_c_server.rs"]
mod reliability_c_server;
#[path = "reliability_d_client.rs"]
mod reliability_d_client;
#[path = "reliability_e_resources.rs"]
mod reliability_e_resources;
#[path = "reliability_f_pipes.rs"]
mod reliability_f_pipes;
#[path = "reliability_g_security.rs"]
mod reliability_g_security;
#[path = "reliability_h_hostile.rs"]
mod reliability_h_hostile;
#[path = "signatures.rs"]
mod signatures;
#[path = "streaming.rs"]
mod streaming;
#[path = "streaming_rules.rs"]
mod streaming_rules;
#[path = "tower_layers.rs"]
mod tower_layers;
#[path = "tracing_across.rs"]
mod tracing_across;

/// Every file in `tests/` is a module above: with `autotests = false`, cargo no longer finds a
/// new suite by itself, so one added without its `#[path]` line here would silently never run.
#[test]
fn every_suite_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = std::fs::read_to_string(dir.join("all.rs")).expect("read all.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/") {
        let name = entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 name");
        if name.ends_with(".rs") && name != "all.rs" && !this.contains(&format!("#[path = \"{name}\"]")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "add `#[path = \"<file>\"] mod <name>;` to tests/all.rs for {missing:?}");
}
