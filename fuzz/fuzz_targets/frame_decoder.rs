//! Fuzz target `frame_decoder`: see `rpc_tests::fuzz::frame_decoder` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_tests::fuzz::frame_decoder(data));
