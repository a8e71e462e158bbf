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
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/**/*.rs");
    t.pass("tests/pass/*.rs");
}
