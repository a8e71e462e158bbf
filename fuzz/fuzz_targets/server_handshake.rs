//! Fuzz target `server_handshake`: see `rpc_tests::fuzz::server_handshake` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_tests::fuzz::server_handshake(data));
