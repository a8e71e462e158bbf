//! `rpc-bench`: this framework against a raw length-prefixed echo (the floor) and tarpc, over
//! every transport (TCP, Unix socket, a pipe to a child, FIFOs), with the server in a child
//! process.
//!
//! ```text
//! cargo run --release -p rpc-bench -- full      # everything, pinned and unpinned (~10 minutes)
//! cargo run --release -p rpc-bench -- smoke     # tiny counts; proves the benchmark still runs
//! cargo run --release -p rpc-bench -- full --pinned-only --transport tcp --secs 0.5
//! ```
//!
//! # Organization
//!
//! - `main.rs`: the command line, and the orchestrator that runs one `suite` child process per
//!   placement (pinned to CPU 0, then unpinned) and prints the tables.
//! - `suite.rs`: one placement: for each transport, starts the three servers, measures every
//!   metric for each implementation, interleaved, and prints one result line per figure.
//! - `server.rs`: the `server` subcommand, run in the child process.
//! - `floor.rs`, `ours.rs`, `peer.rs`: the three implementations (raw echo, this framework,
//!   tarpc), each a server and the client side of every metric.
//! - `endpoint.rs`: how each transport is set up between the two processes.
//! - `blocking.rs`: the floor's transports, with blocking std I/O and a thread per connection.
//! - `streaming.rs`: `stream`, a server stream of small and large items against a raw floor.
//! - `profile.rs`: a fixed number of calls of one workload, to count instructions with callgrind.
//! - `report.rs`: result lines in, markdown tables out.
//! - `sys.rs`: facts read from `/proc`: CPU affinity, load, a process's resident memory.

mod blocking;
mod endpoint;
mod floor;
mod nats;
mod ours;
mod peer;
mod persistent;
mod profile;
mod report;
mod server;
mod streaming;
mod suite;
mod sys;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use endpoint::Transport;

/// How long and how often each figure is measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Time each measurement runs before its clock starts.
    pub(crate) warmup: Duration,
    /// Time each measurement runs with the clock on.
    pub(crate) measure: Duration,
    /// Repetitions of every measurement (implementations interleaved); the best is reported.
    pub(crate) reps: usize,
    /// Connections held open for the idle-memory figure.
    pub(crate) idle_conns: usize,
    /// Connections for the many-connections figure, and calls in flight on each.
    pub(crate) many_conns: usize,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            warmup: Duration::from_millis(200),
            measure: Duration::from_secs(1),
            reps: 5,
            idle_conns: 1000,
            many_conns: 100,
        }
    }

    fn smoke() -> Plan {
        Plan {
            warmup: Duration::from_millis(5),
            measure: Duration::from_millis(30),
            reps: 1,
            idle_conns: 20,
            many_conns: 4,
        }
    }

    fn to_args(self) -> Vec<String> {
        vec![
            format!("--warmup-ms={}", self.warmup.as_millis()),
            format!("--measure-ms={}", self.measure.as_millis()),
            format!("--reps={}", self.reps),
            format!("--idle-conns={}", self.idle_conns),
            format!("--many-conns={}", self.many_conns),
        ]
    }
}

const USAGE: &str = "usage: rpc-bench full|smoke [--pinned-only|--unpinned-only] [--transport tcp,unix,pipe,fifo] [--secs S] [--reps N]
       rpc-bench suite ...      (internal: one placement, result lines on stdout)
       rpc-bench stream          server-streaming items/s and MB/s against a raw floor, Unix socket
       rpc-bench profile IMPL seq|window|vec|buf CALLS [TRANSPORT]   (fixed call count, for callgrind)
       rpc-bench server IMPL TRANSPORT ENDPOINT   (internal: the server child process)
       rpc-bench nats [URL] [--secs S]   (the NATS binding against bare async-nats; starts nats-server without a URL)
       rpc-bench persistent [--secs S]   (a persistent call until stored against a bare JetStream publish+ack; starts nats-server)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("full") => orchestrate(Plan::full(), &args[1..]),
        Some("smoke") => orchestrate(Plan::smoke(), &args[1..]),
        Some("suite") => suite::main(&args[1..]),
        Some("server") => server::main(&args[1..]),
        Some("profile") => profile::main(&args[1..]),
        Some("stream") => streaming::main(&args[1..]),
        Some("stream-server") => streaming::server_main(&args[1..]),
        Some("nats") => nats::main(&args[1..]),
        Some("persistent") => persistent::main(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one `suite` child per placement and prints the report.
fn orchestrate(mut plan: Plan, args: &[String]) -> Result<(), String> {
    let mut placements = vec![true, false];
    let mut transports = Transport::available();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pinned-only" => placements = vec![true],
            "--unpinned-only" => placements = vec![false],
            "--transport" => {
                let list = it.next().ok_or("--transport needs a value")?;
                transports = list.split(',').map(Transport::parse).collect::<Result<_, _>>()?;
            }
            "--secs" => {
                let secs: f64 = it.next().and_then(|s| s.parse().ok()).ok_or("--secs needs a number")?;
                plan.measure = Duration::from_secs_f64(secs);
            }
            "--reps" => {
                plan.reps = it.next().and_then(|s| s.parse().ok()).ok_or("--reps needs a number")?;
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut report = report::Report::new(plan);
    for pinned in placements {
        let load_before = sys::loadavg();
        // `taskset -c 0` pins the suite, and the server processes it starts inherit the mask.
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.arg("suite").args(plan.to_args());
        cmd.arg(format!(
            "--transports={}",
            transports.iter().map(|t| t.name()).collect::<Vec<_>>().join(",")
        ));
        if pinned {
            cmd.arg("--pin");
        }
        eprintln!("== {} ==", if pinned { "pinned: both processes on CPU 0" } else { "unpinned" });
        let mut child =
            cmd.stdout(Stdio::piped()).spawn().map_err(|e| format!("cannot start the suite: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            eprintln!("  {line}");
            report.add_line(pinned, &line)?;
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("the suite failed ({status})"));
        }
        report.set_load(pinned, load_before, sys::loadavg());
    }
    print!("{}", report.render());
    if report.is_empty() {
        return Err("no figures were produced".into());
    }
    Ok(())
}
