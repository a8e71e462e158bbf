//! The pass cases of `#[service]`: programs that must compile without warnings (each file is
//! `#![deny(warnings)]`) and run, each a module of this one test binary and its `main` one test.
//!
//! They used to be trybuild pass cases; trybuild builds those one `cargo build` at a time in a
//! target directory of its own, compiling every dependency again (and with codegen, where the
//! compile-fail cases only check them), which was most of the UI test's cold time. Here they
//! share the workspace's build. Each file is still written as a whole program (`pub fn main`,
//! its own `use`s, crate-level-style inner attributes that apply to its module), so it reads as
//! what a user writes. `unreachable_pub` is allowed because a `pub` item of a test binary's
//! module is unreachable by construction; a user's binary would have the same items at its root.

// `#[cfg(all())]` is the case's point: a configured-in method.
#[allow(unreachable_pub, clippy::non_minimal_cfg)]
#[path = "pass/cfg-and-docs.rs"]
mod cfg_and_docs;
#[allow(unreachable_pub)]
#[path = "pass/clone-named-method.rs"]
mod clone_named_method;
#[allow(unreachable_pub)]
#[path = "pass/deprecated-method.rs"]
mod deprecated_method;
#[allow(unreachable_pub)]
#[path = "pass/desugared-future.rs"]
mod desugared_future;
#[allow(unreachable_pub)]
#[path = "pass/generic-concrete-types.rs"]
mod generic_concrete_types;
#[allow(unreachable_pub)]
#[path = "pass/no-arguments-unit-returns.rs"]
mod no_arguments_unit_returns;
#[allow(unreachable_pub)]
#[path = "pass/no-implicit-prelude.rs"]
mod no_implicit_prelude;
#[allow(unreachable_pub)]
#[path = "pass/persistent.rs"]
mod persistent;
#[allow(unreachable_pub)]
#[path = "pass/raw-identifiers.rs"]
mod raw_identifiers;
#[allow(unreachable_pub)]
#[path = "pass/run-to-completion.rs"]
mod run_to_completion;
#[allow(unreachable_pub)]
#[path = "pass/shadowed-names.rs"]
mod shadowed_names;
#[allow(unreachable_pub)]
#[path = "pass/streams.rs"]
mod streams;
#[allow(unreachable_pub)]
#[path = "pass/trait-named-s.rs"]
mod trait_named_s;

#[test]
fn cfg_and_docs() {
    cfg_and_docs::main();
}

#[test]
fn clone_named_method() {
    clone_named_method::main();
}

#[test]
fn deprecated_method() {
    deprecated_method::main();
}

#[test]
fn desugared_future() {
    desugared_future::main();
}

#[test]
fn generic_concrete_types() {
    generic_concrete_types::main();
}

#[test]
fn no_arguments_unit_returns() {
    no_arguments_unit_returns::main();
}

#[test]
fn no_implicit_prelude() {
    no_implicit_prelude::main();
}

#[test]
fn persistent() {
    persistent::main();
}

#[test]
fn raw_identifiers() {
    raw_identifiers::main();
}

#[test]
fn run_to_completion() {
    run_to_completion::main();
}

#[test]
fn shadowed_names() {
    shadowed_names::main();
}

#[test]
fn streams() {
    streams::main();
}

#[test]
fn trait_named_s() {
    trait_named_s::main();
}

/// Every file in `tests/pass/` is a module above: one added without its `#[path]` line here
/// would silently never be compiled.
#[test]
fn every_pass_case_is_a_module_of_this_binary() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = std::fs::read_to_string(tests.join("pass.rs")).expect("read pass.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(tests.join("pass")).expect("read tests/pass/") {
        let name = entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 name");
        if name.ends_with(".rs") && !this.contains(&format!("#[path = \"pass/{name}\"]")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "add `#[path = \"pass/<file>\"] mod <name>;` and a test to tests/pass.rs for {missing:?}"
    );
}
