//! The well-behaved client that runs beside every attack: one call every 20 ms with a 2 s
//! deadline, a fresh connection every second (opened before the old one is dropped, as a pool
//! refreshing would), and a record of every latency and every failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_runtime::RpcError;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::endpoint::Endpoint;
use crate::service::TargetClient;

/// The honest client's pace.
const PERIOD: Duration = Duration::from_millis(20);
/// How long a connection is used before a new one replaces it.
const REFRESH: Duration = Duration::from_secs(1);
/// The deadline of each call, and the bound on each connect.
const DEADLINE: Duration = Duration::from_secs(2);

/// What the honest client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// `echo(i)`: a few bytes each way.
    Echo,
    /// `take` with a 100 KiB argument (over the 64 KiB at which frames reserve receive budget).
    Take100K,
}

/// Latencies and failures of one phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Phase {
    /// The latency of every call that succeeded.
    pub(crate) latencies: Vec<Duration>,
    /// Failed calls and connects, by kind.
    pub(crate) failures: BTreeMap<String, u32>,
    /// Connections opened.
    pub(crate) connects: u32,
}

impl Phase {
    /// The `pct` percentile of the latencies, if there were any.
    pub(crate) fn percentile(&self, pct: usize) -> Option<Duration> {
        let mut v = self.latencies.clone();
        v.sort_unstable();
        (!v.is_empty()).then(|| v[(v.len() * pct / 100).min(v.len() - 1)])
    }

    /// Failed calls and connects in all.
    pub(crate) fn failed(&self) -> u32 {
        self.failures.values().sum()
    }

    fn fail(&mut self, kind: String) {
        *self.failures.entry(kind).or_default() += 1;
    }
}

/// The record of both phases.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    /// Before the attack started.
    pub(crate) idle: Phase,
    /// While it ran.
    pub(crate) during: Phase,
}

/// A running honest client.
#[derive(Debug)]
pub(crate) struct Honest {
    attacking: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Record>,
}

impl Honest {
    /// Starts calling `endpoint`.
    pub(crate) fn start(endpoint: Endpoint, load: Load) -> Honest {
        let attacking = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(endpoint, load, Arc::clone(&attacking), Arc::clone(&stop)));
        Honest { attacking, stop, task }
    }

    /// From now on, calls count as "during the attack".
    pub(crate) fn attack_started(&self) {
        self.attacking.store(true, Ordering::SeqCst);
    }

    /// Stops after the call in progress and returns the record.
    pub(crate) async fn finish(mut self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        (&mut self.task).await.expect("the honest client does not panic")
    }
}

impl Drop for Honest {
    /// A run that fails half-way must not leave its honest client calling forever.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn run(endpoint: Endpoint, load: Load, attacking: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> Record {
    let mut record = Record::default();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let payload = vec![0x42u8; 100 * 1024];
    let mut client: Option<TargetClient> = None;
    let mut last_connect = Instant::now();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        i += 1;
        let phase = if attacking.load(Ordering::SeqCst) { &mut record.during } else { &mut record.idle };
        // With no connection, every tick tries one (a failure stands for the call it blocks);
        // with one, a replacement is tried once a second and the old one kept if that fails.
        if client.is_none() || last_connect.elapsed() >= REFRESH {
            last_connect = Instant::now();
            match tokio::time::timeout(DEADLINE, endpoint.connect()).await {
                Ok(Ok(conn)) => {
                    phase.connects += 1;
                    client = Some(TargetClient::new(conn).with_timeout(DEADLINE));
                }
                Ok(Err(e)) => phase.fail(format!("connect {:?}", e.kind())),
                Err(_) => phase.fail("connect timed out".into()),
            }
        }
        let Some(c) = &client else { continue };
        let start = Instant::now();
        let outcome = match load {
            Load::Echo => c.echo(i).await.map(drop),
            Load::Take100K => c.take(payload.clone()).await.map(drop),
        };
        match outcome {
            Ok(()) => phase.latencies.push(start.elapsed()),
            Err(e) => {
                phase.fail(kind(&e));
                // A failed call may have lost its connection: start afresh.
                client = None;
            }
        }
    }
    record
}

/// A short, stable name for an error (the table groups failures by it).
fn kind(e: &RpcError) -> String {
    match e {
        RpcError::ConnectionClosed(reason) => {
            let reason = reason.split(" (os error").next().unwrap_or_default();
            let short: String = reason.chars().take(60).collect();
            format!("closed ({short})")
        }
        RpcError::Overloaded(_) => "Overloaded".into(),
        RpcError::DeadlineExceeded => "DeadlineExceeded".into(),
        RpcError::Io(e) => format!("io {:?}", e.kind()),
        other => {
            let text = other.to_string();
            text.chars().take(40).collect()
        }
    }
}
