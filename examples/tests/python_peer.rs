//! The Python client (`examples/python/calc_client.py`, standard library only, written from
//! PROTOCOL.md) against the calculator example, over TCP and a Unix socket.

use super::common;

use std::path::PathBuf;
use std::process::Command;

use common::{Calculator, Scratch};

/// `python3`, installed with apt-get (python3-minimal) if it is missing; checked once (a pyenv
/// shim takes half a second to start).
fn python() -> &'static str {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(ensure_python);
    "python3"
}

fn ensure_python() {
    let found = |cmd: &str| Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found("python3") {
        let installed = Command::new("sh")
            .args(["-c", "apt-get update -qq && apt-get install -y -qq python3-minimal"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed && found("python3"),
            "python3 is not installed and apt-get could not install it: install python3 to run the Python peer's test"
        );
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/calc_client.py")
}

/// Runs the client with `args`; returns (exit code, stdout), printing its stderr on failure.
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(python()).arg(script()).args(args).output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().expect("python exited");
    if code != 0 {
        eprintln!("stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (code, stdout)
}

fn calls(addr: &str) {
    let (code, out) = run(&[addr]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "services: Calculator (8 methods), rpc.Introspection (4 methods)",
        "add(1, 2) = 3",
        "div(84, 2) = {\"Ok\": 42}",
        "div(1, 0) = {\"Err\": \"DivisionByZero\"}",
        "sum([1..10]) = 55",
        "mul(2, 3) = ERROR UNKNOWN_METHOD: mul",
        "add(1, \"two\") = ERROR BAD_REQUEST: invalid type: string \"two\", expected i64",
        "add with a wrong hash = ERROR SIGNATURE_MISMATCH: Calculator.add: ",
        "Abacus.add(1, 2) = ERROR UNKNOWN_SERVICE: Abacus",
        "all answers as expected",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let hashes = out.lines().find(|l| l.starts_with("add's signature hash")).expect("hash line");
    let (computed, advertised) = hashes.split_once(", advertised ").expect("both hashes");
    assert!(computed.ends_with(advertised), "Python's FNV-1a differs from the server's: {hashes}");
}

#[test]
fn the_python_peer_calls_the_calculator_over_tcp() {
    let server = Calculator::start("tcp:127.0.0.1:0", &[]);
    calls(&server.addr);
}

#[test]
fn the_python_peer_calls_the_calculator_over_a_unix_socket() {
    let dir = Scratch::new("python-unix");
    let server = Calculator::start(&dir.addr("unix", "calc.sock"), &[]);
    calls(&server.addr);
}

#[test]
fn the_python_peers_wrong_frames_get_the_servers_named_errors() {
    let server = Calculator::start("tcp:127.0.0.1:0", &[]);
    let (code, out) = run(&[&server.addr, "bad-frame"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("GOAWAY PROTOCOL: protocol error: unknown frame kind 99"), "{out}");
    let (code, out) = run(&[&server.addr, "bad-flags"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bad flags: ERROR PROTOCOL: unknown call flags 0x80"), "{out}");
    assert!(out.contains("then add(2, 2) = 4"), "the connection carried on: {out}");
}
