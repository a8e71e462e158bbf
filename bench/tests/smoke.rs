//! Runs the benchmark end to end with tiny counts, so it never rots. Asserts that it completes
//! and printed a figure for every implementation, never anything about speed.

use std::process::Command;

#[test]
fn smoke_mode_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_rpc-bench")).arg("smoke").output().expect("run rpc-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rpc-bench smoke failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let rows: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("| tcp |") || l.starts_with("| unix |")).collect();
    assert!(!rows.is_empty(), "no table rows in:\n{stdout}");
    for row in rows {
        // | transport | figure | floor | ours | tarpc | ...
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for cell in &cells[3..6] {
            let number = cell.replace(',', "");
            assert!(number.parse::<f64>().is_ok_and(f64::is_finite), "not a number in {row:?}: {cell:?}");
        }
    }
    for placement in ["### Pinned", "### Unpinned"] {
        assert!(stdout.contains(placement), "no {placement} section in:\n{stdout}");
    }
}
