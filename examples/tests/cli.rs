//! The `rpc` command-line caller against the calculator example, each a process of its own, over
//! TCP, a Unix socket and a FIFO: its output and its exit codes, for unary and streaming methods.

use super::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::{Calculator, Scratch};

/// Runs `rpc ARGS...`; returns (exit code, stdout, stderr).
fn rpc(args: &[&str]) -> (i32, String, String) {
    let Output { status, stdout, stderr } =
        Command::new(env!("CARGO_BIN_EXE_rpc")).args(args).output().expect("run rpc");
    let code = status.code().expect("rpc exited, not killed");
    (code, String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// Runs `rpc ARGS...` with `input` on its stdin (then closed); returns (exit code, stdout, stderr).
fn rpc_with_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rpc");
    let mut stdin = child.stdin.take().expect("stdin");
    // The tool may stop reading early (a bad line): a failed write is its business, not ours.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let Output { status, stdout, stderr } = child.wait_with_output().expect("wait for rpc");
    let code = status.code().expect("rpc exited, not killed");
    (code, String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

const ADD_TYPES: &str = "Calculator.add takes a JSON array of 2 arguments [a: i64, b: i64] and returns i64";

/// Every command, and every failure a script can tell apart, against one server.
fn exercise(addr: &str) {
    let (code, out, err) = rpc(&["list", addr]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Calculator\n  add(a: i64, b: i64) -> i64\n"), "{out}");
    assert!(out.contains("  oneway log(line: str) -> unit\n"), "{out}");
    assert!(out.contains("rpc.Introspection\n"), "{out}");

    let (code, out, _) = rpc(&["describe", addr, "Calculator.div"]);
    assert_eq!(code, 0);
    assert!(out.contains("call:      div(a: i64, b: i64) -> enum{Ok:i64,Err:enum{DivisionByZero}}"), "{out}");
    assert!(out.contains("MathError"), "the Rust type is shown too: {out}");
    let (code, out, _) = rpc(&["describe", addr, "Calculator", "--json"]);
    assert_eq!(code, 0);
    let methods: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    assert_eq!(methods.len(), 8);

    let (code, out, err) = rpc(&["call", addr, "Calculator.add", "[1, 2]", "--metadata", "who=test"]);
    assert_eq!((code, out.as_str()), (0, "3\n"), "{err}");
    let (code, out, _) = rpc(&["call", addr, "Calculator.div", "[1, 0]"]);
    assert_eq!((code, out.as_str()), (0, "{\"Err\":\"DivisionByZero\"}\n"), "an application error is data");
    let (code, out, _) = rpc(&["call", addr, "Calculator.sum", "[[1, 2, 3]]"]);
    assert_eq!((code, out.as_str()), (0, "6\n"));
    let (code, out, _) = rpc(&["call", addr, "Calculator.log", "[\"from the cli\"]"]);
    assert_eq!((code, out.as_str()), (0, ""), "a one-way call prints nothing");

    // Bad input: exit 2, and the method's expected types.
    for (json, says) in [
        ("[1, 2", "not valid JSON"),
        ("[1, \"two\"]", "could not decode the arguments"),
        ("[1]", "1 argument(s) given"),
        ("{\"a\": 1}", "must be a JSON array"),
    ] {
        let (code, out, err) = rpc(&["call", addr, "Calculator.add", json]);
        assert_eq!(code, 2, "{json}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(says) && err.contains(ADD_TYPES), "{json}: {err}");
    }
    let (code, _, err) = rpc(&["call", addr, "Calculator.mul", "[2, 3]"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "no method `mul`; its methods: add, div, sum, log, sleep, count, sum_stream, running_sum"
        ),
        "{err}"
    );
    let (code, _, err) = rpc(&["call", addr, "Abacus.add", "[2, 3]"]);
    assert_eq!(code, 2);
    assert!(err.contains("no service `Abacus`"), "{err}");

    // The deadline: the server would answer in a minute.
    let (code, _, err) = rpc(&["call", addr, "Calculator.sleep", "[60000]", "--deadline", "100ms"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("deadline exceeded"), "{err}");

    let (code, out, _) = rpc(&["health", addr]);
    assert_eq!(code, 0);
    assert!(out.contains("\"serving\": true"), "{out}");
    let (code, out, _) = rpc(&["stats", addr, "--json"]);
    assert_eq!(code, 0);
    let stats: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    let add = stats.iter().find(|m| m["method"] == "add").expect("add's stats");
    // add(1, 2) and the four bad calls that reached the server (one did not decode).
    assert_eq!((add["calls"].as_u64(), add["errors"].as_u64()), (Some(2), Some(1)), "{add}");
}

/// Streaming methods: a stream of results followed to its end or to the deadline, a stream of
/// arguments read from stdin, and a bad stdin line.
fn streams(addr: &str) {
    let (code, out, err) = rpc(&["call", addr, "Calculator.count", "[5, 0]"]);
    assert_eq!((code, out.as_str()), (0, "1\n2\n3\n4\n5\n"), "every item, one line each, then exit 0: {err}");
    let (code, out, err) = rpc(&["call", addr, "Calculator.count", "[0, 0]"]);
    assert_eq!((code, out.as_str()), (0, ""), "an empty stream: {err}");

    // A stream that would run for hours: followed until the deadline, then exit 4. Whatever
    // arrived before it was printed, in order.
    let (code, out, err) = rpc(&["call", addr, "Calculator.count", "[1000000, 20]", "--deadline", "300ms"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("deadline exceeded"), "{err}");
    for (i, line) in out.lines().enumerate() {
        assert_eq!(line, (i + 1).to_string(), "{out}");
    }

    // Arguments the server cannot decode end the stream before its first item.
    let (code, out, err) = rpc(&["call", addr, "Calculator.count", "[\"five\", 0]"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("could not decode") && err.contains("[to: u64, every_ms: u64]"), "{err}");

    // A stream of arguments from stdin: one item a line, blank lines skipped, EOF ends it.
    let (code, out, err) = rpc_with_stdin(&["call", addr, "Calculator.sum_stream"], "1\n2\n\n  \n39\n");
    assert_eq!((code, out.as_str()), (0, "{\"Ok\":42}\n"), "{err}");
    let (code, out, err) = rpc_with_stdin(&["call", addr, "Calculator.sum_stream"], "");
    assert_eq!((code, out.as_str()), (0, "{\"Ok\":0}\n"), "no items: {err}");
    let (code, out, err) = rpc_with_stdin(&["call", addr, "Calculator.running_sum"], "1\n2\n3\n-6\n");
    assert_eq!((code, out.as_str()), (0, "1\n3\n6\n0\n"), "bidi: a result per item: {err}");
    // An item of the wrong type is the handler's to judge: here an application error.
    let (code, out, _) = rpc_with_stdin(&["call", addr, "Calculator.sum_stream"], "1\n\"two\"\n");
    assert_eq!(code, 0);
    assert!(out.starts_with("{\"Err\":\"decode error: invalid type: string"), "{out}");

    // A line that is not JSON: exit 2, naming the line, and nothing printed.
    for method in ["Calculator.sum_stream", "Calculator.running_sum"] {
        let (code, out, err) = rpc_with_stdin(&["call", addr, method], "1\n{oops\n3\n");
        assert_eq!(code, 2, "{method}: {err}");
        assert!(out.is_empty() || out == "1\n", "only the items before the bad line: {out}");
        assert!(err.contains("stdin line 2 is not valid JSON"), "{method}: {err}");
        assert!(err.contains("reads values (stream<i64>) from stdin"), "the expected types: {err}");
    }
    // The JSON array holds the arguments other than the stream.
    let (code, _, err) = rpc_with_stdin(&["call", addr, "Calculator.sum_stream", "[[1]]"], "");
    assert_eq!(code, 2);
    assert!(err.contains("1 argument(s) given") && err.contains("JSON array of 0 arguments"), "{err}");
}

#[test]
fn the_cli_over_tcp() {
    let server = Calculator::start("tcp:127.0.0.1:0", &[]);
    exercise(&server.addr);
    streams(&server.addr);
}

#[test]
fn the_cli_over_a_unix_socket() {
    let dir = Scratch::new("cli-unix");
    let server = Calculator::start(&dir.addr("unix", "calc.sock"), &[]);
    exercise(&server.addr);
    streams(&server.addr);
}

/// Each item is printed as it arrives, while the stream goes on; Ctrl-C ends it with exit 130.
#[test]
fn the_cli_follows_a_stream_until_ctrl_c() {
    let server = Calculator::start("tcp:127.0.0.1:0", &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["call", &server.addr, "Calculator.count", "[1000000, 20]", "--deadline", "10m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rpc");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for expected in ["1", "2", "3"] {
        assert_eq!(lines.next().expect("a line").expect("read"), expected);
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child, which has not been waited for, so its pid is not reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait for rpc");
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}

/// A client stream whose stdin stays open: the deadline ends it (the thread reading stdin does
/// not keep the tool alive).
#[test]
fn the_cli_gives_up_on_an_open_stdin_at_the_deadline() {
    let server = Calculator::start("tcp:127.0.0.1:0", &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpc"))
        .args(["call", &server.addr, "Calculator.sum_stream", "--deadline", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rpc");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"1\n2\n").expect("write");
    let out = child.wait_with_output().expect("wait for rpc");
    drop(stdin);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_cli_over_a_fifo() {
    let dir = Scratch::new("cli-fifo");
    let server = Calculator::start(&dir.addr("fifo", "calc.fifo"), &[]);
    let (code, out, err) = rpc(&["call", &server.addr, "Calculator.add", "[40, 2]"]);
    assert_eq!((code, out.as_str()), (0, "42\n"), "{err}");
}

#[test]
fn without_introspection_the_cli_still_lists_and_calls() {
    let server = Calculator::start("tcp:127.0.0.1:0", &["--without-introspection"]);
    let (code, out, err) = rpc(&["list", &server.addr]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Calculator.add  unary  0x"), "from the HELLO: {out}");
    assert!(!out.contains("rpc.Introspection"), "{out}");
    assert!(err.contains("no types to show"), "{err}");
    let (code, out, _) = rpc(&["call", &server.addr, "Calculator.add", "[1, 2]"]);
    assert_eq!((code, out.as_str()), (0, "3\n"));
    // The HELLO's kinds are enough to call streaming methods.
    let (code, out, err) = rpc(&["call", &server.addr, "Calculator.count", "[2, 0]"]);
    assert_eq!((code, out.as_str()), (0, "1\n2\n"), "{err}");
    let (code, out, err) = rpc_with_stdin(&["call", &server.addr, "Calculator.running_sum"], "5\n5\n");
    assert_eq!((code, out.as_str()), (0, "5\n10\n"), "{err}");
    let (code, _, err) = rpc(&["call", &server.addr, "Calculator.mul", "[1, 2]"]);
    assert_eq!(code, 2);
    assert!(err.contains("its methods: add, div, sum, log, sleep, count, sum_stream, running_sum"), "{err}");
    let (code, _, err) = rpc(&["describe", &server.addr, "Calculator.add"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not host rpc.Introspection"), "{err}");
}

#[test]
fn connection_failures_and_usage_errors_have_their_own_exit_codes() {
    let dir = Scratch::new("cli-none");
    let (code, _, err) = rpc(&["list", &dir.addr("unix", "nobody.sock")]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    let (code, _, err) = rpc(&["list"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs an address") && err.contains("usage: rpc"), "{err}");
    let (code, _, err) = rpc(&["call", "tcp:127.0.0.1:1", "add"]);
    assert_eq!(code, 2);
    assert!(err.contains("write SERVICE.METHOD"), "{err}");
    let (code, out, _) = rpc(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("exit codes: 0 ok"), "{out}");
}
