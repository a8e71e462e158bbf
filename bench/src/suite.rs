//! One placement (pinned or not): every figure, for every transport and implementation.
//!
//! For each transport the three servers run side by side, idle while another is measured.
//! Every measurement is repeated `reps` times with the implementations interleaved (floor, ours,
//! tarpc, floor, ...), so a slow moment of the machine does not land on one of them only; the
//! reported figure is the best repetition: the machine is shared, and interference from other
//! processes only ever slows a run down, so the least disturbed repetition is the closest to
//! what the code costs (the same rule for every implementation).
//!
//! Output: one line per figure, `result<TAB>transport<TAB>figure<TAB>impl<TAB>value`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::task::block_in_place;
use tokio::time::Instant;

use crate::blocking::Mode;
use crate::endpoint::{Impl, ServerProc, Transport};
use crate::{floor, ours, peer, sys, Plan};

/// What the client side of a benchmark needs from an RPC client (ours and tarpc alike).
pub(crate) trait Caller: Clone + Send + Sync + 'static {
    fn echo16(&self, x: [u8; 16]) -> impl Future<Output = [u8; 16]> + Send;
    fn echo_vec(&self, data: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;
    fn echo_buf(&self, data: Bytes) -> impl Future<Output = Bytes> + Send;
}

/// When a driver stops issuing calls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Until this instant (then the calls in flight are drained).
    Time(Instant),
    /// Until this many calls were issued.
    Calls(u64),
}

impl Until {
    /// Whether to issue another call, `issued` having been issued so far.
    pub(crate) fn more(self, issued: u64) -> bool {
        match self {
            Until::Time(end) => Instant::now() < end,
            Until::Calls(n) => issued < n,
        }
    }
}

/// The 16-byte argument.
pub(crate) const SMALL: [u8; 16] = *b"0123456789abcdef";
/// The size of the large argument and result.
pub(crate) const LARGE: usize = 64 * 1024;
/// Calls in flight on one connection, for figure (b).
const WINDOW: usize = 64;
/// Calls in flight on each of the many connections, for figure (d).
const MANY_WINDOW: usize = 16;

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut plan =
        Plan { warmup: Duration::ZERO, measure: Duration::ZERO, reps: 1, idle_conns: 0, many_conns: 0 };
    let mut transports = Transport::available();
    let mut pin = false;
    for arg in args {
        let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
        let num = || value.parse::<u64>().map_err(|_| format!("bad value in {arg:?}"));
        match key {
            "--warmup-ms" => plan.warmup = Duration::from_millis(num()?),
            "--measure-ms" => plan.measure = Duration::from_millis(num()?),
            "--reps" => plan.reps = num()?.max(1) as usize,
            "--idle-conns" => plan.idle_conns = num()? as usize,
            "--many-conns" => plan.many_conns = num()? as usize,
            "--transports" => {
                transports = value.split(',').map(Transport::parse).collect::<Result<_, _>>()?;
            }
            "--pin" => pin = true,
            _ => return Err(format!("unknown suite argument {arg:?}")),
        }
    }
    let cpus = sys::allowed_cpus();
    if pin && cpus != "0" {
        return Err(format!("asked to run pinned to CPU 0, but this process may use CPUs {cpus}"));
    }
    println!("info\tcpus\t{cpus}");
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("rpc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let task_dir = dir.clone();
    let result = in_task(&rt, async move {
        for transport in transports {
            run_transport(transport, &plan, &task_dir)
                .await
                .map_err(|e| format!("{}: {e}", transport.name()))?;
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs the client side in a task on the runtime's workers, as calls made by a server or by a
/// spawned task run, rather than on the thread that called `block_on` (where each call would
/// also pay for waking a worker thread, and waking back: the background tasks of an RPC client
/// live on the workers).
pub(crate) fn in_task<F>(rt: &tokio::runtime::Runtime, fut: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    rt.block_on(async { tokio::spawn(fut).await.map_err(|e| format!("the benchmark task failed: {e}"))? })
}

fn emit(transport: Transport, figure: &str, imp: Impl, value: f64) {
    println!("result\t{}\t{figure}\t{}\t{value:.3}", transport.name(), imp.name());
}

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn run_transport(transport: Transport, plan: &Plan, dir: &std::path::Path) -> BoxResult<()> {
    let mut servers = Vec::new();
    for imp in Impl::ALL {
        servers.push(ServerProc::spawn(imp, transport, dir).await?);
    }
    let mut conns = Vec::new();
    for (imp, server) in Impl::ALL.into_iter().zip(&servers) {
        conns.push(Conn::open(imp, server).await?);
    }

    // (a) Sequential round trips, 16-byte argument and result.
    let mut reps: Vec<Vec<Latencies>> = Impl::ALL.iter().map(|_| Vec::new()).collect();
    for _ in 0..plan.reps {
        for (conn, lats) in conns.iter_mut().zip(&mut reps) {
            lats.push(conn.sequential(Payload::Small, plan).await?);
        }
    }
    let mut medians = Vec::new();
    for (imp, lats) in Impl::ALL.into_iter().zip(reps) {
        // The repetition with the lowest median, reported whole (p50, p99 and calls/s).
        let mut lat = lats
            .into_iter()
            .map(|mut l| (l.percentile_us(0.50), l))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| l)
            .unwrap_or_default();
        emit(transport, "seq_p50_us", imp, lat.percentile_us(0.50));
        emit(transport, "seq_p99_us", imp, lat.percentile_us(0.99));
        emit(transport, "seq_calls_s", imp, lat.calls_per_sec());
        medians.push((imp, lat.percentile_us(0.50)));
    }
    // (a) again against a floor on tokio: the floor's event loop serving, a task calling.
    if transport.has_listener() {
        let raw = block_in_place(|| servers[0].connect_floor(Mode::Events))?;
        let mut c = floor::AsyncConn::new(raw.into_async()?);
        let request = floor::frame(SMALL.len());
        let mut best = f64::INFINITY;
        for _ in 0..plan.reps {
            let mut run = Timed::new(plan);
            while let Some(t) = run.next() {
                c.call(&request).await?;
                run.record(t);
            }
            best = best.min(run.finish().percentile_us(0.50));
        }
        for (imp, median) in medians {
            let value = if imp == Impl::Floor { best } else { median };
            emit(transport, "seq_p50_tokio_us", imp, value);
        }
    }

    // (b) 64 calls in flight on one connection.
    let mut rates = vec![Vec::new(); Impl::ALL.len()];
    for rep in 0..plan.reps {
        for ((conn, rate), server) in conns.iter_mut().zip(&mut rates).zip(&servers) {
            rate.push(conn.windowed(plan, server, rep).await?);
        }
    }
    for (imp, rate) in Impl::ALL.into_iter().zip(rates) {
        emit(transport, "inflight64_calls_s", imp, best(rate));
    }

    // (c) 64 KiB argument and result, one call at a time: MB/s of argument bytes (the same again
    // comes back). The floor moves raw bytes, so it has one figure for both argument types.
    let mut vec_rates = vec![Vec::new(); Impl::ALL.len()];
    let mut buf_rates = vec![Vec::new(); Impl::ALL.len()];
    for _ in 0..plan.reps {
        for (i, conn) in conns.iter_mut().enumerate() {
            let vec = conn.sequential(Payload::LargeVec, plan).await?.calls_per_sec();
            vec_rates[i].push(vec * LARGE as f64 / 1e6);
            let buf = match conn {
                Conn::Floor(_) => vec,
                _ => conn.sequential(Payload::LargeBuf, plan).await?.calls_per_sec(),
            };
            buf_rates[i].push(buf * LARGE as f64 / 1e6);
        }
    }
    for (i, imp) in Impl::ALL.into_iter().enumerate() {
        emit(transport, "echo64k_vec_mb_s", imp, best(vec_rates[i].clone()));
        emit(transport, "echo64k_buf_mb_s", imp, best(buf_rates[i].clone()));
    }
    drop(conns);
    if !transport.has_listener() {
        // A pipe to a child carries one connection: (d) and (e) do not apply.
        return Ok(());
    }

    // (d) Many connections, each with calls in flight.
    let mut rates = vec![Vec::new(); Impl::ALL.len()];
    for _ in 0..plan.reps {
        for ((imp, server), rate) in Impl::ALL.into_iter().zip(&servers).zip(&mut rates) {
            rate.push(many(imp, server, plan).await?);
        }
    }
    for (imp, rate) in Impl::ALL.into_iter().zip(rates) {
        emit(transport, "many_calls_s", imp, best(rate));
    }
    drop(servers);

    // (e) Server memory per idle connection, each on a fresh server.
    for imp in Impl::ALL {
        let kib = idle_memory(imp, transport, plan, dir).await?;
        emit(transport, "idle_kib_per_conn", imp, kib);
    }
    Ok(())
}

/// One client connection of any implementation.
pub(crate) enum Conn {
    Floor(floor::Conn),
    Ours(ours::BenchClient),
    Tarpc(peer::TarpcBenchClient),
}

#[derive(Debug, Clone, Copy)]
enum Payload {
    Small,
    LargeVec,
    LargeBuf,
}

impl Conn {
    /// Connects and makes one call, so the connection is fully set up on both sides.
    pub(crate) async fn open(imp: Impl, server: &ServerProc) -> BoxResult<Conn> {
        let mut conn = match imp {
            Impl::Floor => {
                let raw = block_in_place(|| server.connect_floor(Mode::Thread))?;
                Conn::Floor(floor::Conn::new(raw.into_blocking()?))
            }
            Impl::Ours => Conn::Ours(ours::BenchClient::new(server.connect_ours().await?)),
            Impl::Tarpc => Conn::Tarpc(peer::client(server.connect_raw().await?)),
        };
        match &mut conn {
            Conn::Floor(c) => block_in_place(|| c.call(&floor::frame(SMALL.len())))?,
            Conn::Ours(c) => check_small(Caller::echo16(c, SMALL).await),
            Conn::Tarpc(c) => check_small(Caller::echo16(c, SMALL).await),
        }
        Ok(conn)
    }

    /// Calls one at a time for the warmup, then for the measured time.
    async fn sequential(&mut self, payload: Payload, plan: &Plan) -> BoxResult<Latencies> {
        match self {
            Conn::Floor(c) => {
                let request = floor::frame(match payload {
                    Payload::Small => SMALL.len(),
                    Payload::LargeVec | Payload::LargeBuf => LARGE,
                });
                // The floor's calls block: this thread leaves the runtime for the measurement.
                block_in_place(|| {
                    let mut run = Timed::new(plan);
                    while let Some(t) = run.next() {
                        c.call(&request)?;
                        run.record(t);
                    }
                    Ok(run.finish())
                })
            }
            Conn::Ours(c) => Ok(sequential(c, payload, plan).await),
            Conn::Tarpc(c) => Ok(sequential(c, payload, plan).await),
        }
    }

    /// Calls/s with [`WINDOW`] calls in flight on this one connection.
    ///
    /// The floor alternates between its two ways of serving a connection: a thread on each side
    /// on even repetitions, an event loop on each side on odd ones (not over a pipe, which is
    /// served on a thread); the best repetition of either is its figure.
    async fn windowed(&mut self, plan: &Plan, server: &ServerProc, rep: usize) -> BoxResult<f64> {
        match self {
            Conn::Floor(_) if rep % 2 == 1 && server.transport.has_listener() => {
                let raw = block_in_place(|| server.connect_floor(Mode::Events))?;
                let mut c = floor::AsyncConn::new(raw.into_async()?);
                c.pipeline(WINDOW, Until::Time(Instant::now() + plan.warmup)).await?;
                let start = Instant::now();
                let n = c.pipeline(WINDOW, Until::Time(start + plan.measure)).await?;
                Ok(n as f64 / start.elapsed().as_secs_f64())
            }
            Conn::Floor(c) => block_in_place(|| {
                c.pipeline(WINDOW, Until::Time(Instant::now() + plan.warmup))?;
                let start = Instant::now();
                let n = c.pipeline(WINDOW, Until::Time(start + plan.measure))?;
                Ok(n as f64 / start.elapsed().as_secs_f64())
            }),
            Conn::Ours(c) => Ok(windowed(std::slice::from_ref(c), WINDOW, plan).await),
            Conn::Tarpc(c) => Ok(windowed(std::slice::from_ref(c), WINDOW, plan).await),
        }
    }
}

pub(crate) fn check_small(got: [u8; 16]) {
    assert_eq!(got, SMALL, "the echo came back altered");
}

async fn sequential<C: Caller>(c: &C, payload: Payload, plan: &Plan) -> Latencies {
    // Each result is the next argument: no copy of the payload per call on the client side.
    let mut vec = vec![7u8; LARGE];
    let mut buf = Bytes::from(vec![7u8; LARGE]);
    let mut run = Timed::new(plan);
    while let Some(t) = run.next() {
        match payload {
            Payload::Small => check_small(c.echo16(SMALL).await),
            Payload::LargeVec => vec = c.echo_vec(vec).await,
            Payload::LargeBuf => buf = c.echo_buf(buf).await,
        }
        run.record(t);
    }
    assert!(vec.len() == LARGE && buf.len() == LARGE, "the echo came back altered");
    run.finish()
}

/// One call at a time for the warmup, then for the measured time, timing each call of the
/// measured phase: `while let Some(t) = run.next() { call; run.record(t) }`.
struct Timed {
    /// The phases left: how long, and whether its calls are kept.
    phases: std::vec::IntoIter<(Duration, bool)>,
    current: Option<(Duration, bool)>,
    start: Instant,
    phase: Latencies,
    kept: Latencies,
}

impl Timed {
    fn new(plan: &Plan) -> Timed {
        let mut phases = vec![(plan.warmup, false), (plan.measure, true)].into_iter();
        let current = phases.next();
        let (phase, kept) = (Latencies::default(), Latencies::default());
        Timed { phases, current, start: Instant::now(), phase, kept }
    }

    /// When the next call starts, or `None` once the measured phase is over.
    fn next(&mut self) -> Option<Instant> {
        loop {
            let (dur, keep) = self.current?;
            if self.start.elapsed() < dur {
                return Some(Instant::now());
            }
            self.phase.elapsed = self.start.elapsed();
            let phase = std::mem::take(&mut self.phase);
            if keep {
                self.kept = phase;
            }
            self.current = self.phases.next();
            self.start = Instant::now();
        }
    }

    /// The call that started at `t` has returned.
    fn record(&mut self, t: Instant) {
        self.phase.samples.push(t.elapsed());
    }

    /// The measured phase's calls.
    fn finish(self) -> Latencies {
        self.kept
    }
}

/// Calls/s with `window` calls in flight on each of `clients`, each client driven by its own task.
async fn windowed<C: Caller>(clients: &[C], window: usize, plan: &Plan) -> f64 {
    async fn phase<C: Caller>(clients: &[C], window: usize, dur: Duration) -> u64 {
        let end = Until::Time(Instant::now() + dur);
        let tasks: Vec<_> = clients.iter().map(|c| tokio::spawn(drive(c.clone(), window, end))).collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("a driver task panicked");
        }
        total
    }
    phase(clients, window, plan.warmup).await;
    let start = Instant::now();
    let n = phase(clients, window, plan.measure).await;
    n as f64 / start.elapsed().as_secs_f64()
}

/// Keeps `window` calls in flight on `c` until `until` says stop; returns the calls completed.
pub(crate) async fn drive<C: Caller>(c: C, window: usize, until: Until) -> u64 {
    let mut calls: FuturesUnordered<_> = (0..window).map(|_| c.echo16(SMALL)).collect();
    let mut issued = window as u64;
    let mut done = 0;
    while let Some(got) = calls.next().await {
        check_small(got);
        done += 1;
        if until.more(issued) {
            calls.push(c.echo16(SMALL));
            issued += 1;
        }
    }
    done
}

/// Figure (d): `plan.many_conns` fresh connections, [`MANY_WINDOW`] calls in flight on each.
async fn many(imp: Impl, server: &ServerProc, plan: &Plan) -> BoxResult<f64> {
    if imp == Impl::Floor {
        return floor_many(server, plan).await;
    }
    let mut conns = Vec::new();
    for _ in 0..plan.many_conns {
        conns.push(Conn::open(imp, server).await?);
    }
    match imp {
        Impl::Floor => unreachable!("measured above"),
        Impl::Ours => {
            let clients: Vec<_> = conns
                .into_iter()
                .filter_map(|c| if let Conn::Ours(c) = c { Some(c) } else { None })
                .collect();
            Ok(windowed(&clients, MANY_WINDOW, plan).await)
        }
        Impl::Tarpc => {
            let clients: Vec<_> = conns
                .into_iter()
                .filter_map(|c| if let Conn::Tarpc(c) = c { Some(c) } else { None })
                .collect();
            Ok(windowed(&clients, MANY_WINDOW, plan).await)
        }
    }
}

/// Figure (e): the server's resident memory per idle connection, in KiB. A fresh server gets one
/// connection (so everything set up once is already counted), then `plan.idle_conns` more, each
/// having made one call; the growth of its `VmRSS` is divided by their number.
async fn idle_memory(imp: Impl, transport: Transport, plan: &Plan, dir: &std::path::Path) -> BoxResult<f64> {
    let server = ServerProc::spawn(imp, transport, dir).await?;
    let _first = Conn::open(imp, &server).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = sys::rss_kib(server.pid).ok_or("cannot read the server's VmRSS")?;
    let mut conns = Vec::with_capacity(plan.idle_conns);
    for _ in 0..plan.idle_conns {
        conns.push(Conn::open(imp, &server).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sys::rss_kib(server.pid).ok_or("cannot read the server's VmRSS")?;
    Ok(after.saturating_sub(before) as f64 / plan.idle_conns.max(1) as f64)
}

/// Latency samples of one-at-a-time calls, and the wall time they took.
#[derive(Debug, Default)]
struct Latencies {
    samples: Vec<Duration>,
    elapsed: Duration,
}

impl Latencies {
    fn percentile_us(&mut self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        self.samples.sort_unstable();
        let i = ((self.samples.len() as f64 * q).ceil() as usize).clamp(1, self.samples.len()) - 1;
        self.samples[i].as_secs_f64() * 1e6
    }

    fn calls_per_sec(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// The highest throughput of the repetitions.
fn best(values: Vec<f64>) -> f64 {
    values.into_iter().max_by(f64::total_cmp).unwrap_or(f64::NAN)
}

/// Figure (d) for the floor: its connections served by the server's event loop, each driven by a
/// task of the client's runtime (one readiness wake-up serves many connections; with a thread per
/// connection on each side, the same work is one context switch per connection and batch).
async fn floor_many(server: &ServerProc, plan: &Plan) -> BoxResult<f64> {
    let mode = Mode::Events;
    if mode == Mode::Thread {
        let mut floors = Vec::new();
        for _ in 0..plan.many_conns {
            let raw = block_in_place(|| server.connect_floor(Mode::Thread))?;
            floors.push(floor::Conn::new(raw.into_blocking()?));
        }
        return block_in_place(|| {
            let mut rate = 0.0;
            for (dur, keep) in [(plan.warmup, false), (plan.measure, true)] {
                let start = Instant::now();
                let end = Until::Time(start + dur);
                let total = std::thread::scope(|scope| {
                    let threads: Vec<_> = floors
                        .iter_mut()
                        .map(|c| scope.spawn(move || c.pipeline(MANY_WINDOW, end)))
                        .collect();
                    threads
                        .into_iter()
                        .map(|t| t.join().expect("a floor client panicked"))
                        .sum::<std::io::Result<u64>>()
                })?;
                if keep {
                    rate = total as f64 / start.elapsed().as_secs_f64();
                }
            }
            Ok(rate)
        });
    }
    let mut floors = Vec::new();
    for _ in 0..plan.many_conns {
        let raw = block_in_place(|| server.connect_floor(Mode::Events))?;
        let mut c = floor::AsyncConn::new(raw.into_async()?);
        c.pipeline(1, Until::Calls(1)).await?;
        floors.push(c);
    }
    let mut rate = 0.0;
    for (dur, keep) in [(plan.warmup, false), (plan.measure, true)] {
        let start = Instant::now();
        let end = Until::Time(start + dur);
        let tasks: Vec<_> = floors
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    let n = c.pipeline(MANY_WINDOW, end).await;
                    (c, n)
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            let (c, n) = t.await?;
            total += n?;
            floors.push(c);
        }
        if keep {
            rate = total as f64 / start.elapsed().as_secs_f64();
        }
    }
    Ok(rate)
}
