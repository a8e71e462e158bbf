//! Fuzz target `client_connection`: see `rpc_tests::fuzz::client_connection` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_tests::fuzz::client_connection(data));
