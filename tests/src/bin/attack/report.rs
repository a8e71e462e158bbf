//! The markdown table: one row per run, with the verdict against issue 10's targets.

use std::fmt::Write as _;
use std::time::Duration;

use crate::honest::Phase;
use crate::rss::mib;
use crate::scenarios::{Check, Outcome};

/// Resident memory the server may reach in any scenario.
pub(crate) const RSS_TARGET_KIB: u64 = 300 * 1024;
/// How many times its idle p99 the honest client's p99 may reach during an attack.
pub(crate) const P99_FACTOR: u32 = 10;
/// Bytes the runtime may log (through `tracing`) from an attack's start to the end of its run.
/// The issue asks for rate-limited logs without a number; this one is the harness's choice.
pub(crate) const LOG_TARGET: u64 = 1 << 20;

/// The header of the table.
pub(crate) fn header() -> String {
    "| scenario | transport | peak RSS | RSS after | honest p50 / p99 idle | honest p50 / p99 during | honest failures during | server log during (tracing + panic hook) | verdict | attackers' own account |\n\
     |---|---|---|---|---|---|---|---|---|---|\n"
        .to_string()
}

/// One row.
pub(crate) fn row(o: &Outcome) -> String {
    let peak = if o.killed_at_cap { format!("> {} (killed)", mib(o.peak_kib)) } else { mib(o.peak_kib) };
    let after = o.after_kib.map_or_else(|| "exited".to_string(), mib);
    let (idle, during) = (&o.honest.idle, &o.honest.during);
    format!(
        "| {} | {} | {peak} | {after} | {} | {} | {} | {} | {} | {} |\n",
        o.run.title,
        o.run.transport,
        latency(idle),
        latency(during),
        failures(during),
        log(o),
        verdict(o),
        o.attacker.replace('|', "/"),
    )
}

/// `pass`, or `FAIL:` and the targets missed.
pub(crate) fn verdict(o: &Outcome) -> String {
    let mut missed = Vec::new();
    if o.killed_at_cap || o.peak_kib >= RSS_TARGET_KIB {
        missed.push("RSS");
    }
    if o.honest.during.failed() > 0 {
        missed.push("refused/shed");
    }
    let p99_ok = match (o.honest.idle.percentile(99), o.honest.during.percentile(99)) {
        (Some(idle), Some(during)) => during < idle * P99_FACTOR,
        _ => false,
    };
    if !p99_ok {
        missed.push("p99");
    }
    if o.log_bytes.tracing >= LOG_TARGET {
        missed.push("log bytes");
    }
    match o.run.check {
        Check::None => {}
        Check::CutOff if o.cut.unwrap_or(0) == 0 => missed.push("never cut off"),
        Check::CutOff => {}
    }
    if missed.is_empty() {
        "pass".into()
    } else {
        format!("**FAIL**: {}", missed.join(", "))
    }
}

fn latency(p: &Phase) -> String {
    match (p.percentile(50), p.percentile(99)) {
        (Some(p50), Some(p99)) => format!("{} / {}", ms(p50), ms(p99)),
        _ => "no call succeeded".into(),
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn failures(p: &Phase) -> String {
    let failed_connects: u32 =
        p.failures.iter().filter(|(k, _)| k.starts_with("connect")).map(|(_, n)| n).sum();
    let failed_calls = p.failed() - failed_connects;
    let calls = p.latencies.len() as u32 + failed_calls;
    let connects = p.connects + failed_connects;
    let mut out = format!("calls {failed_calls} of {calls}, connects {failed_connects} of {connects}");
    let mut kinds: Vec<_> = p.failures.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1));
    for (i, (kind, n)) in kinds.iter().take(3).enumerate() {
        let sep = if i == 0 { ": " } else { ", " };
        let _ = write!(out, "{sep}{n} {}", kind.replace('|', "/"));
    }
    out
}

fn log(o: &Outcome) -> String {
    let l = o.log_bytes;
    if l.other == 0 {
        bytes(l.tracing)
    } else {
        format!("{} + {} panic hook", bytes(l.tracing), bytes(l.other))
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.0} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}
