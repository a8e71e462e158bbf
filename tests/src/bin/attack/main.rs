//! The attack harness of issue 10: hostile peers in separate processes against a server in
//! its own process, the server's memory read from `/proc`, and an honest client's latency and
//! failures beside them. Not a test: run it by hand (it takes about 5 minutes and several
//! hundred MiB to a few GiB of memory).
//!
//! ```text
//! cargo run --release -p rpc-tests --bin attack -- all            # every scenario
//! cargo run --release -p rpc-tests --bin attack -- h2             # the runs whose key starts with h2
//! cargo run --release -p rpc-tests --bin attack -- all --secs 30 --cap-mib 4096
//! ```
//!
//! It prints one markdown table (the format of `docs/reliability.md`, "Attack harness").
//! Internally it re-executes itself as `attack server ...` (the server under attack) and
//! `attack attacker ...` (a hostile peer).

mod endpoint;
mod honest;
mod logger;
mod peers;
mod report;
mod rss;
mod scenarios;
mod server;
mod service;

use std::time::Duration;

const USAGE: &str = "usage: attack all|KEY-PREFIX [--secs N] [--cap-mib M]   (keys: attack list)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => runtime(true).block_on(server::run(&args[1..])),
        Some("attacker") => runtime(false).block_on(peers::run(&args[1..])),
        Some("list") => {
            for run in scenarios::all() {
                println!("{:<14} {} ({})", run.key, run.title, run.transport);
            }
        }
        Some(_) => runtime(true).block_on(orchestrate(&args)),
        None => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Multi-thread for the server (as a deployment would run it) and the orchestrator (so that
/// sampling never delays the honest client); current-thread for attackers.
fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("a tokio runtime")
}

async fn orchestrate(args: &[String]) {
    let selector = args[0].as_str();
    let mut timing = scenarios::Timing {
        idle: Duration::from_secs(2),
        attack: Duration::from_secs(10),
        settle: Duration::from_secs(3),
        cap_kib: 2048 * 1024,
    };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value: u64 = rest.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{USAGE}"));
        match flag.as_str() {
            "--secs" => timing.attack = Duration::from_secs(value),
            "--cap-mib" => timing.cap_kib = value * 1024,
            _ => panic!("{USAGE}"),
        }
    }
    let runs: Vec<_> =
        scenarios::all().into_iter().filter(|r| selector == "all" || r.key.starts_with(selector)).collect();
    if runs.is_empty() {
        eprintln!("no run matches {selector:?}; `attack list` shows the keys");
        std::process::exit(2);
    }
    let mut table = report::header();
    for run in &runs {
        eprintln!("{}: {} over {} ...", run.key, run.title, run.transport);
        match scenarios::execute(run, timing).await {
            Ok(outcome) => {
                let row = report::row(&outcome);
                eprint!("  {row}");
                table.push_str(&row);
            }
            Err(e) => {
                eprintln!("  {}: the run failed: {e}", run.key);
                table.push_str(&format!("| {} | {} | run failed: {e} |\n", run.title, run.transport));
            }
        }
    }
    let attackers = match endpoint::attacker_uid() {
        Some(uid) => format!("attackers run as uid {uid}"),
        None => "attackers run as the harness's own uid".to_string(),
    };
    println!(
        "Attack harness: {} run(s), {} s of attack each (honest client alone for {} s before, {} s settle after), server killed past {} MiB RSS, {attackers}.\n",
        runs.len(),
        timing.attack.as_secs(),
        timing.idle.as_secs(),
        timing.settle.as_secs(),
        timing.cap_kib / 1024
    );
    print!("{table}");
}
