//! Fuzz target `envelope`: see `rpc_tests::fuzz::envelope` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_tests::fuzz::envelope(data));
