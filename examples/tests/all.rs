//! Every test of the examples crate, in one test binary (one link instead of one per file):
//! each file is a module, so tests keep their names (`cli::...`, `run_examples::...`).

// The calculator server process, shared by `cli` and `python_peer`.
mod common;

#[path = "cli.rs"]
mod cli;
#[path = "python_peer.rs"]
mod python_peer;
#[path = "run_examples.rs"]
mod run_examples;

/// Every file in `tests/` is a module above: with `autotests = false`, cargo no longer finds a
/// new test file by itself, so one added without its `#[path]` line here would silently never run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = std::fs::read_to_string(dir.join("all.rs")).expect("read all.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/") {
        let name = entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 name");
        if name.ends_with(".rs") && name != "all.rs" && !this.contains(&format!("#[path = \"{name}\"]")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "add `#[path = \"<file>\"] mod <name>;` to tests/all.rs for {missing:?}");
}
