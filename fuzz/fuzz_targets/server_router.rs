//! Fuzz target `server_router`: see `rpc_tests::fuzz::server_router` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_tests::fuzz::server_router(data));
