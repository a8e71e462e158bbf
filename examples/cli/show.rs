//! How methods and statistics are written for people.

use std::fmt::Write;

use rpc_runtime::introspection::{ArgInfo, MethodInfo, MethodStatsSnapshot};

/// `add(a: i64, b: i64) -> i64`, with the kind first unless unary.
pub(crate) fn signature(m: &MethodInfo) -> String {
    let args: Vec<String> = m.args.iter().map(|a| format!("{}: {}", a.name, a.ty.wire)).collect();
    let kind = if m.kind == "unary" { String::new() } else { format!("{} ", m.kind) };
    format!("{kind}{}({}) -> {}", m.name, args.join(", "), m.result.wire)
}

/// The full description of one method.
pub(crate) fn method(m: &MethodInfo) -> String {
    let mut out = format!("{}.{}\n", m.service, m.name);
    let _ = writeln!(out, "  kind:      {}", m.kind);
    let _ = writeln!(out, "  call:      {}", signature(m));
    let names: Vec<&str> = call_args(m).map(|a| a.name.as_str()).collect();
    let _ = writeln!(out, "  JSON args: [{}]", names.join(", "));
    if let Some(a) = m.args.iter().find(|a| is_stream(a)) {
        let _ = writeln!(out, "  stdin:     {}, one JSON item a line", a.name);
    }
    for a in &m.args {
        let _ = writeln!(out, "    {}: {}   (Rust: {})", a.name, a.ty.wire, a.ty.rust);
    }
    let _ = writeln!(out, "  result:    {}   (Rust: {})", m.result.wire, m.result.rust);
    let _ = writeln!(out, "  signature: {}", m.signature);
    let _ = write!(out, "  hash:      {:#018x}", m.signature_hash);
    out
}

/// Whether an argument is a stream of arguments (`stream<T>`): it travels after the call, not in it.
fn is_stream(a: &ArgInfo) -> bool {
    a.ty.wire.starts_with("stream<")
}

/// The arguments a call's JSON array gives: all but a stream of arguments, which is read from stdin.
pub(crate) fn call_args(m: &MethodInfo) -> impl Iterator<Item = &ArgInfo> {
    m.args.iter().filter(|a| !is_stream(a))
}

/// What a method expects, for an error message.
pub(crate) fn expected(m: &MethodInfo) -> String {
    let args: Vec<String> = call_args(m).map(|a| format!("{}: {}", a.name, a.ty.wire)).collect();
    let stdin = match m.args.iter().find(|a| is_stream(a)) {
        Some(a) => format!(", reads {} ({}) from stdin, one JSON item a line,", a.name, a.ty.wire),
        None => String::new(),
    };
    format!(
        "{}.{} takes a JSON array of {} argument{} [{}]{stdin} and returns {}",
        m.service,
        m.name,
        args.len(),
        if args.len() == 1 { "" } else { "s" },
        args.join(", "),
        m.result.wire
    )
}

/// A table of statistics.
pub(crate) fn stats(rows: &[MethodStatsSnapshot]) -> String {
    let mut out = format!(
        "{:<32} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "method", "calls", "errors", "cancelled", "in_flight", "p50_us", "p90_us", "p99_us"
    );
    for r in rows {
        let _ = write!(
            out,
            "\n{:<32} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("{}.{}", r.service, r.method),
            r.calls,
            r.errors,
            r.cancelled,
            r.in_flight,
            r.p50_us,
            r.p90_us,
            r.p99_us
        );
    }
    out
}
