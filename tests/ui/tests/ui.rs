//! Compile-time tests of `#[service]`: every misuse in `tests/ui` must fail with the message
//! pinned in its `.stderr`. (The cases that must compile, `tests/pass`, are modules of the
//! `pass` test binary: see `pass.rs`.)
//!
//! The `.stderr` files are rustc's exact output, so they are pinned to the toolchain CI uses;
//! see `tests/README.md` for how to re-bless them after a compiler upgrade.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr files are pinned to rustc 1.95; see tests/README.md"
)]
#[test]
fn ui() {
    // The cases are never debugged: without debug info the proc macros build faster.
    // trybuild's cargo inherits this (this binary holds one test, so nothing reads the
    // environment concurrently).
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");
    // Compile-fail cases only: trybuild checks them in one `cargo check --bins` (rustc on every
    // case in parallel, dependencies only checked). A pass case would make it build every
    // dependency and then each case in its own `cargo build` (see tests/README.md).
    trybuild::TestCases::new().compile_fail("tests/ui/**/*.rs");
}
