//! Fuzz target `server_connection`: see `rpc_tests::fuzz::server_connection` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_tests::fuzz::server_connection(data));
