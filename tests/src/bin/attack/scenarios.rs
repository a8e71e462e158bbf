//! The runs `attack all` makes (issue 10's items H1-H8, each on the transports it applies to)
//! and how one run goes: start the server, measure the honest client idle, start the attacker,
//! measure during, stop the attacker, let the server settle, measure again, kill everything.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::endpoint::attacker_uid;
use crate::honest::{Honest, Load, Record};
use crate::rss::Track;
use crate::server::{LogBytes, ServerProcess};

/// One scenario on one transport.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// What `attack <key>` selects, e.g. `h2-n16-tcp` (a prefix such as `h2` selects several).
    pub(crate) key: String,
    /// The issue item and what the attackers do, for the table.
    pub(crate) title: String,
    /// The attacker-mode scenario name.
    attacker: &'static str,
    /// Its parameter, if any.
    param: Option<u64>,
    /// `tcp` or `unix`.
    pub(crate) transport: &'static str,
    /// What the honest client calls.
    load: Load,
    /// The item's own check, beside the three targets every run has.
    pub(crate) check: Check,
}

/// What an item needs beyond the common targets (RSS, refusals, p99, log bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing more.
    None,
    /// H8: the server cuts the flooding connection off at least once.
    CutOff,
}

/// One item of the list below, before it is expanded into a run per transport.
struct Spec {
    item: &'static str,
    title: String,
    attacker: &'static str,
    param: Option<u64>,
    transports: &'static [&'static str],
    load: Load,
    check: Check,
}

/// Every run of `attack all`, in order.
pub(crate) fn all() -> Vec<Run> {
    const TCP: &[&str] = &["tcp"];
    const BOTH: &[&str] = &["tcp", "unix"];
    let spec = |item, title: &str, attacker, transports| Spec {
        item,
        title: title.to_string(),
        attacker,
        param: None,
        transports,
        load: Load::Echo,
        check: Check::None,
    };
    let mut specs = vec![spec("h1", "H1 5,000 reset connects", "reset", TCP)];
    for (n, transports) in [(1, TCP), (4, TCP), (16, BOTH)] {
        let title = format!("H2 {n} non-reading conn(s) × 300 × 4 MiB");
        specs.push(Spec { param: Some(n), ..spec("h2", &title, "amplify", transports) });
    }
    specs.push(spec("h3", "H3 4 slow readers, 3 MB/s each, 300 outstanding", "slow-read", BOTH));
    specs.push(spec("h4", "H4 1,100 one-way calls (60 s handler), then close", "oneway", BOTH));
    specs.push(Spec {
        load: Load::Take100K,
        ..spec("h5", "H5 64 half-sent 4 MiB frames; honest sends 100 KiB", "half-frames", BOTH)
    });
    specs.push(spec("h6", "H6 1,023 slot holders pinging every 3 s", "slots", BOTH));
    specs.push(spec("h7", "H7 20,000 duplicate ids + 1,000 panics/s", "log-flood", BOTH));
    specs.push(Spec {
        check: Check::CutOff,
        ..spec("h8", "H8 ping flood, one request per 900 pings", "ping-flood", BOTH)
    });
    let mut runs = Vec::new();
    for s in specs {
        for &transport in s.transports {
            let n = s.param.map(|n| format!("-n{n}")).unwrap_or_default();
            runs.push(Run {
                key: format!("{}{n}-{transport}", s.item),
                title: s.title.clone(),
                attacker: s.attacker,
                param: s.param,
                transport,
                load: s.load,
                check: s.check,
            });
        }
    }
    runs
}

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The honest client alone.
    pub(crate) idle: Duration,
    /// The attack (the honest client goes on).
    pub(crate) attack: Duration,
    /// After the attackers are gone, before "RSS after" is read.
    pub(crate) settle: Duration,
    /// The server is killed if its RSS passes this many KiB (protects the machine).
    pub(crate) cap_kib: u64,
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The run.
    pub(crate) run: Run,
    /// Peak resident memory (VmHWM), KiB.
    pub(crate) peak_kib: u64,
    /// Resident memory after the settle phase; `None` if the server had exited (or was killed).
    pub(crate) after_kib: Option<u64>,
    /// Whether the harness killed the server for passing the cap.
    pub(crate) killed_at_cap: bool,
    /// The honest client's record.
    pub(crate) honest: Record,
    /// Bytes the server wrote to stderr from the attack's start to the end of the run.
    pub(crate) log_bytes: LogBytes,
    /// The attacker's own account (its `stats` line), or why there is none.
    pub(crate) attacker: String,
    /// How many times the server cut the attacker off, if it counts that (its `cut N` line).
    pub(crate) cut: Option<u64>,
}

/// Runs `run`.
pub(crate) async fn execute(run: &Run, timing: Timing) -> std::io::Result<Outcome> {
    let mut server = ServerProcess::start(run.transport).await?;
    let mut rss = Track::default();
    let mut killed_at_cap = false;
    let honest = Honest::start(server.endpoint.clone(), run.load);
    watch(&mut server, &mut rss, &mut killed_at_cap, timing.idle, timing.cap_kib).await;

    let log_before = server.log_bytes();
    honest.attack_started();
    let mut attacker = Command::new(std::env::current_exe()?);
    attacker.arg("attacker").arg(run.attacker).args(server.endpoint.to_args());
    attacker.arg(timing.attack.as_secs().to_string());
    attacker.args(run.param.map(|p| p.to_string()));
    if let Some(id) = attacker_uid() {
        attacker.uid(id).gid(id);
    }
    attacker.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = attacker.spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    watch(&mut server, &mut rss, &mut killed_at_cap, timing.attack, timing.cap_kib).await;
    let honest = honest.finish().await;

    // The attacker stops at the end of its time; give it a moment to report, then kill it.
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let (out, err) = (out.await.unwrap_or_default(), err.await.unwrap_or_default());
    let attacker_report = match out.lines().find_map(|l| l.strip_prefix("stats ")) {
        Some(stats) => stats.to_string(),
        None if status.is_none() => "killed after its time (no report)".into(),
        None => format!("exited {status:?} without a report: {}", err.lines().next().unwrap_or("")),
    };

    let cut = out.lines().find_map(|l| l.strip_prefix("cut ")).and_then(|n| n.trim().parse().ok());
    watch(&mut server, &mut rss, &mut killed_at_cap, timing.settle, timing.cap_kib).await;
    let after_kib = server.is_running().then_some(rss.last_kib);
    let log_bytes = server.log_bytes() - log_before;
    for line in server.log_head(3) {
        eprintln!("  server log: {line}");
    }
    server.kill().await;
    Ok(Outcome {
        run: run.clone(),
        peak_kib: rss.peak_kib,
        after_kib,
        killed_at_cap,
        honest,
        log_bytes,
        attacker: attacker_report,
        cut,
    })
}

/// Samples the server's memory every 50 ms for `how_long`, killing it past the cap.
async fn watch(
    server: &mut ServerProcess,
    rss: &mut Track,
    killed: &mut bool,
    how_long: Duration,
    cap_kib: u64,
) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        if let Some(s) = rss.update(server.pid) {
            if s.rss_kib > cap_kib && !*killed {
                eprintln!("  server RSS {} KiB passed the cap: killing it", s.rss_kib);
                server.kill().await;
                *killed = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
