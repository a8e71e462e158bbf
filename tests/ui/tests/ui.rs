//! Compile-time tests of `#[service]`: every misuse in `tests/ui` must fail with the message
//! pinned in its `.stderr`, and every case in `tests/pass` must compile without warnings.
//!
//! The `.stderr` files are rustc's exact output, so they are pinned to the toolchain CI uses;
//! see `tests/README.md` for how to re-bless them after a compiler upgrade.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr files are pinned to rustc 1.95; see tests/README.md"
)]
#[test]
fn ui() {
    // The cases are compiled and run, never debugged: without debug info the dependencies and
    // the pass cases build and link faster. trybuild's cargo inherits this (this binary holds
    // one test, so nothing reads the environment concurrently).
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");
    // Two runs, compile-fail first. A run with no pass case is checked in one `cargo check
    // --bins` (rustc on every case in parallel, dependencies only checked); a run with a pass
    // case builds each case in its own `cargo build`, one after the other (see tests/README.md).
    trybuild::TestCases::new().compile_fail("tests/ui/**/*.rs");
    trybuild::TestCases::new().pass("tests/pass/*.rs");
}
