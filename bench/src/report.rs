//! Result lines in, markdown tables out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::endpoint::Impl;
use crate::Plan;

/// What the tables measure, printed above them.
const ABOUT: &str = "
Reproduce with `cargo run --release -p rpc-bench -- full` (about ten minutes; `-- smoke` is the
tiny version CI runs). Each transport is measured with the server in a child process of the
benchmark. **floor** is a hand-written echo of 4-byte-length-prefixed frames, as fast as a careful
one can be (`bench/src/floor.rs`): blocking std I/O with a thread per connection on both sides,
each read taking every whole frame in a 120,000-byte buffer and the server echoing all of them
with one write straight from that buffer (no copy, no per-frame allocation), pipes and FIFOs
enlarged to 1 MiB (`F_SETPIPE_SZ`); for many connections at once, one event-loop thread (tokio,
current-thread) on each side instead. **ours** is this framework, **tarpc** is tarpc 0.38 over its
serde transport with bincode (`serde-transport-bincode`: tokio-util's length-delimited framing and
`tokio_serde::formats::Bincode`); both run on tokio's default multi-threaded runtime and drive
calls from a task on it. All three set `TCP_NODELAY`.

- (a) one call at a time, 16-byte argument and result (`[u8; 16]`): latency percentiles, calls/s.
  Its second row has the same figures for ours and tarpc, against the floor's echo on its event
  loop (tokio, current-thread) called from a task on the runtime (tokio's stock socket types):
  what a tokio program pays for a round trip before any RPC work. Not for a pipe to a child,
  which is served on a thread.
- (b) 64 calls in flight on one connection (ours and tarpc: a `FuturesUnordered` refilled as calls
  finish; the floor: 64 frames outstanding, each batch of responses answered with one write, on
  a thread in even repetitions and on an event loop in odd ones, best of either).
- (c) one call at a time, 64 KiB argument and 64 KiB result; MB/s of argument bytes (as many come
  back), with the argument and result typed `Vec<u8>` and `bytes::Bytes` (serde feature; ours decodes it as a view of the received frame, tarpc copies it). The floor moves
  raw bytes, so it has one figure for both rows.
- (d) 100 connections, 16 calls in flight on each: aggregate calls/s.
- (e) the server's resident memory (`VmRSS`) per connection, with 1,000 idle connections that
  have each made one call. A pipe to a child carries one connection, so (d) and (e) do not apply
  to it.

**Pinned** runs both processes on CPU 0 (`taskset -c 0`; the server inherits the mask): every
wake-up of the other side is a context switch on the same core, with no cross-core wake-up, so
the figures measure the work each implementation does per call (CPU time, including the
kernel's). **Unpinned** lets the scheduler use both cores: closer to a deployment, but on this
VM a cross-core wake-up costs tens of microseconds and dominates latency, and how often it
happens depends on scheduling luck more than on the code. The targets are judged on the pinned
figures. Ratios are ours / floor and ours / tarpc of the figure in that row (for latency and
memory lower is better, for throughput higher is better).
";

/// A figure: its key in the result lines, its label, and ours' target (pinned runs only).
struct Figure {
    key: &'static str,
    label: &'static str,
    decimals: usize,
    target: Option<Target>,
}

#[derive(Clone, Copy)]
enum Target {
    /// ours / floor at most this.
    FloorRatioAtMost(f64),
    /// ours / floor at least this.
    FloorRatioAtLeast(f64),
    /// ours / floor at least this, and ours above tarpc.
    FloorRatioAtLeastAheadOfTarpc(f64),
    /// ours' own figure at most this.
    KibAtMost(f64),
}

impl Target {
    /// Whether ours meets it, and the figure shown for it (a ratio, or KiB); `None` if a value
    /// is missing.
    fn check(self, floor: Option<f64>, ours: Option<f64>, tarpc: Option<f64>) -> Option<(bool, String)> {
        let ratio = |o: f64, f: f64| format!("{:.2}", o / f);
        match self {
            Target::FloorRatioAtMost(t) => {
                let (o, f) = (ours?, floor?);
                Some((o / f <= t, ratio(o, f)))
            }
            Target::FloorRatioAtLeast(t) => {
                let (o, f) = (ours?, floor?);
                Some((o / f >= t, ratio(o, f)))
            }
            Target::FloorRatioAtLeastAheadOfTarpc(t) => {
                let (o, f, p) = (ours?, floor?, tarpc?);
                Some((o / f >= t && o > p, format!("{}, {:.2}× tarpc", ratio(o, f), o / p)))
            }
            Target::KibAtMost(t) => Some((ours? <= t, format!("{} KiB", format_num(ours?, 1)))),
        }
    }

    fn describe(self) -> String {
        match self {
            Target::FloorRatioAtMost(t) => format!("≤ {t}× floor"),
            Target::FloorRatioAtLeast(t) => format!("≥ {t}× floor"),
            Target::FloorRatioAtLeastAheadOfTarpc(t) => format!("≥ {t}× floor and > tarpc"),
            Target::KibAtMost(t) => format!("≤ {t} KiB"),
        }
    }
}

const FIGURES: &[Figure] = &[
    Figure {
        key: "seq_p50_us",
        label: "(a) sequential p50, µs",
        decimals: 1,
        target: Some(Target::FloorRatioAtMost(1.15)),
    },
    Figure {
        key: "seq_p50_tokio_us",
        label: "(a) sequential p50 against the floor on tokio, µs",
        decimals: 1,
        target: None,
    },
    Figure { key: "seq_p99_us", label: "(a) sequential p99, µs", decimals: 1, target: None },
    Figure { key: "seq_calls_s", label: "(a) sequential, calls/s", decimals: 0, target: None },
    Figure {
        key: "inflight64_calls_s",
        label: "(b) 64 in flight, calls/s",
        decimals: 0,
        target: Some(Target::FloorRatioAtLeast(0.5)),
    },
    Figure {
        key: "echo64k_vec_mb_s",
        label: "(c) 64 KiB echo, `Vec<u8>`, MB/s",
        decimals: 0,
        target: Some(Target::FloorRatioAtLeastAheadOfTarpc(0.8)),
    },
    Figure {
        key: "echo64k_buf_mb_s",
        label: "(c) 64 KiB echo, `Bytes`, MB/s",
        decimals: 0,
        target: Some(Target::FloorRatioAtLeastAheadOfTarpc(0.8)),
    },
    Figure {
        key: "many_calls_s",
        label: "(d) {many} conns × 16 in flight, calls/s",
        decimals: 0,
        target: None,
    },
    Figure {
        key: "idle_kib_per_conn",
        label: "(e) server KiB per idle conn (of {idle})",
        decimals: 1,
        target: Some(Target::KibAtMost(8.0)),
    },
];

#[derive(Default)]
struct Placement {
    /// (transport, figure, impl) → value.
    values: BTreeMap<(String, String, String), f64>,
    transports: Vec<String>,
    cpus: String,
    load: Option<(f64, f64)>,
}

/// Everything one `full` or `smoke` run measured.
pub(crate) struct Report {
    plan: Plan,
    pinned: Placement,
    unpinned: Placement,
}

impl Report {
    pub(crate) fn new(plan: Plan) -> Report {
        Report { plan, pinned: Placement::default(), unpinned: Placement::default() }
    }

    fn placement(&mut self, pinned: bool) -> &mut Placement {
        if pinned {
            &mut self.pinned
        } else {
            &mut self.unpinned
        }
    }

    /// Takes one line of a suite's output.
    pub(crate) fn add_line(&mut self, pinned: bool, line: &str) -> Result<(), String> {
        let fields: Vec<&str> = line.split('\t').collect();
        let p = self.placement(pinned);
        match fields.as_slice() {
            ["info", "cpus", cpus] => p.cpus = cpus.to_string(),
            ["result", transport, figure, imp, value] => {
                let value: f64 = value.parse().map_err(|_| format!("bad result line {line:?}"))?;
                if !p.transports.iter().any(|t| t == transport) {
                    p.transports.push(transport.to_string());
                }
                p.values.insert((transport.to_string(), figure.to_string(), imp.to_string()), value);
            }
            _ => return Err(format!("unexpected line from the suite: {line:?}")),
        }
        Ok(())
    }

    pub(crate) fn set_load(&mut self, pinned: bool, before: f64, after: f64) {
        self.placement(pinned).load = Some((before, after));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pinned.values.is_empty() && self.unpinned.values.is_empty()
    }

    /// The markdown section for `BENCHMARKS.md`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## Runtime\n");
        let _ = writeln!(out, "{}", ABOUT.trim());
        let _ = writeln!(out, "\nMachine:\n");
        for (k, v) in crate::sys::machine() {
            let _ = writeln!(out, "- {k}: {v}");
        }
        let p = &self.plan;
        let _ = writeln!(
            out,
            "\nEach figure: {} ms warmup, {} ms measured, {} repetitions with the implementations interleaved\n\
             (the best repetition is reported: the machine is shared, and interference only slows a run\n\
             down); (d) uses {} connections, (e) {} idle connections. The 1-minute load average (other\n\
             processes' work on the machine) is given with each table.\n",
            p.warmup.as_millis(),
            p.measure.as_millis(),
            p.reps,
            p.many_conns,
            p.idle_conns
        );
        for (pinned, placement) in [(true, &self.pinned), (false, &self.unpinned)] {
            if placement.values.is_empty() {
                continue;
            }
            let title = if pinned {
                "Pinned: client and server processes both on CPU 0 (`taskset -c 0`)"
            } else {
                "Unpinned: both processes free on every CPU"
            };
            let _ = writeln!(out, "### {title}\n");
            if let Some((before, after)) = placement.load {
                let _ = writeln!(
                    out,
                    "CPUs allowed: {}; 1-minute load average {before:.2} before, {after:.2} after.\n",
                    placement.cpus
                );
            }
            render_table(&mut out, placement, pinned, &self.plan);
            if pinned {
                render_targets(&mut out, placement, &self.plan);
            }
        }
        out
    }
}

fn render_table(out: &mut String, p: &Placement, pinned: bool, plan: &Plan) {
    let mut header = "| transport | figure | floor | ours | tarpc | ours/floor | ours/tarpc |".to_string();
    let mut rule = "|---|---|---:|---:|---:|---:|---:|".to_string();
    if pinned {
        header.push_str(" target (ours) |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for transport in &p.transports {
        for fig in FIGURES {
            let get = |imp: Impl| {
                p.values.get(&(transport.clone(), fig.key.to_string(), imp.name().to_string())).copied()
            };
            let (floor, ours, tarpc) = (get(Impl::Floor), get(Impl::Ours), get(Impl::Tarpc));
            if floor.is_none() && ours.is_none() && tarpc.is_none() {
                continue;
            }
            let num = |v: Option<f64>| v.map_or("–".to_string(), |v| format_num(v, fig.decimals));
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "–".to_string(),
            };
            let label = fig
                .label
                .replace("{many}", &plan.many_conns.to_string())
                .replace("{idle}", &format_num(plan.idle_conns as f64, 0));
            let _ = write!(
                out,
                "| {transport} | {label} | {} | {} | {} | {} | {} |",
                num(floor),
                num(ours),
                num(tarpc),
                ratio(ours, floor),
                ratio(ours, tarpc)
            );
            if pinned {
                let verdict = match fig.target {
                    None => String::new(),
                    Some(t) => match t.check(floor, ours, tarpc) {
                        Some((met, _)) => verdict(met, t.describe()),
                        None => "–".into(),
                    },
                };
                let _ = write!(out, " {verdict} |");
            }
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out);
}

/// One row per target, one column per transport: ours' figure against the floor (and tarpc) of
/// the same pinned run.
fn render_targets(out: &mut String, p: &Placement, plan: &Plan) {
    let _ = writeln!(out, "#### Targets (pinned, ours / floor of the same run)\n");
    let mut header = "| target |".to_string();
    let mut rule = "|---|".to_string();
    for t in &p.transports {
        let _ = write!(header, " {t} |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for fig in FIGURES {
        let Some(target) = fig.target else { continue };
        let label = fig.label.rsplit_once(',').map_or(fig.label, |(l, _)| l);
        let label = label.replace("{idle}", &format_num(plan.idle_conns as f64, 0));
        let _ = write!(out, "| {label} {} |", target.describe());
        for t in &p.transports {
            let get =
                |imp: Impl| p.values.get(&(t.clone(), fig.key.to_string(), imp.name().to_string())).copied();
            let cell = match target.check(get(Impl::Floor), get(Impl::Ours), get(Impl::Tarpc)) {
                Some((met, shown)) => format!("{shown} {}", if met { "met" } else { "**missed**" }),
                None => "n/a".into(),
            };
            let _ = write!(out, " {cell} |");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
}

fn verdict(met: bool, target: String) -> String {
    format!("{target}: {}", if met { "met" } else { "**missed**" })
}

/// `1234567` → `1,234,567`; fractions keep `decimals` digits.
fn format_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}
