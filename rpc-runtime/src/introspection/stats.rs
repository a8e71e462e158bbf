//! Per-method call statistics: counters and a fixed-bucket latency histogram, updated with
//! relaxed atomic adds (no lock, no allocation) by a `Recorder` the router puts in each
//! handler and the server finishes with the handler's outcome.
//!
//! Memory is fixed per method (`BUCKETS` counters of 8 bytes, about 1 KiB), whatever the
//! traffic. Latency is measured from the moment the router hands out the handler to the moment
//! its future finishes (or is dropped), so it includes time spent queued behind the
//! connection's in-flight limit, not the time to write the reply.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Sub-buckets per power of two: 4, so a bucket spans at most a quarter of its lower bound.
const SUB_BITS: u32 = 2;
/// Enough buckets for latencies up to 2^32 µs (71 minutes); longer ones land in the last.
const BUCKETS: usize = 128;

/// The counters of one method.
#[derive(Debug)]
pub(crate) struct MethodStats {
    calls: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    finished: AtomicU64,
    latency_us_total: AtomicU64,
    buckets: Box<[AtomicU64; BUCKETS]>,
}

impl Default for MethodStats {
    fn default() -> Self {
        MethodStats {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            latency_us_total: AtomicU64::new(0),
            buckets: Box::new([const { AtomicU64::new(0) }; BUCKETS]),
        }
    }
}

/// The bucket of a latency in microseconds: exact below 4 µs, then 4 per power of two.
fn bucket(us: u64) -> usize {
    if us < (1 << SUB_BITS) {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros();
    let sub = (us >> (octave - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let index = ((octave - SUB_BITS + 1) << SUB_BITS) as u64 + sub;
    (index as usize).min(BUCKETS - 1)
}

/// The largest latency (µs) that falls in bucket `index`: what a percentile reports, so a
/// percentile is never under the truth, and over it by at most a quarter.
fn bucket_upper(index: usize) -> u64 {
    let sub_count = 1u64 << SUB_BITS;
    if (index as u64) < sub_count {
        return index as u64;
    }
    let octave = (index as u64 >> SUB_BITS) + u64::from(SUB_BITS) - 1;
    let sub = index as u64 & (sub_count - 1);
    let width = 1u64 << (octave - u64::from(SUB_BITS));
    (1u64 << octave) + (sub + 1) * width - 1
}

impl MethodStats {
    /// Counts a call that starts now; the recorder counts its end.
    pub(crate) fn start(self: &Arc<Self>) -> Recorder {
        self.calls.fetch_add(1, Relaxed);
        Recorder { stats: Arc::clone(self), start: Instant::now(), done: false }
    }

    /// Counts a call refused before its handler existed (its arguments did not decode).
    pub(crate) fn rejected(&self) {
        self.calls.fetch_add(1, Relaxed);
        self.errors.fetch_add(1, Relaxed);
        self.finished.fetch_add(1, Relaxed);
    }

    fn finish(&self, start: Instant, outcome: Outcome) {
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => {
                self.errors.fetch_add(1, Relaxed);
            }
            Outcome::Cancelled => {
                self.cancelled.fetch_add(1, Relaxed);
            }
        }
        self.latency_us_total.fetch_add(us, Relaxed);
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
        // Last: `calls - finished` is the in-flight count, never negative for a reader that
        // reads `finished` first.
        self.finished.fetch_add(1, Relaxed);
    }

    /// A copy of the counters now (each read on its own: a snapshot taken while calls run may
    /// be off by the calls that finish meanwhile).
    pub(crate) fn snapshot(&self, service: &str, method: &str) -> MethodStatsSnapshot {
        let finished = self.finished.load(Relaxed);
        let calls = self.calls.load(Relaxed);
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let percentile = |p: u64| -> u64 {
            if total == 0 {
                return 0;
            }
            // The smallest bucket whose cumulative count reaches p% of the total.
            let rank = (total * p).div_ceil(100).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_upper(i);
                }
            }
            bucket_upper(BUCKETS - 1)
        };
        let sum = self.latency_us_total.load(Relaxed);
        MethodStatsSnapshot {
            service: service.to_owned(),
            method: method.to_owned(),
            calls,
            errors: self.errors.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            in_flight: calls.saturating_sub(finished),
            mean_us: sum.checked_div(total).unwrap_or(0),
            p50_us: percentile(50),
            p90_us: percentile(90),
            p99_us: percentile(99),
        }
    }
}

enum Outcome {
    Ok,
    Error,
    Cancelled,
}

/// One call's place in its method's statistics: the server calls [`Recorder::finish`] with the
/// handler's outcome; a recorder dropped unfinished counts its call as cancelled.
///
/// It rides in the [`Handler`](crate::Handler) rather than wrapping the handler's future, which
/// would cost a second allocation per call.
#[derive(Debug)]
pub(crate) struct Recorder {
    stats: Arc<MethodStats>,
    start: Instant,
    done: bool,
}

impl Recorder {
    /// The handler finished: with its result (`ok`), or with a framework error (a panic, a
    /// result that could not be encoded, the deadline passing on the server).
    pub(crate) fn finish(mut self, ok: bool) {
        self.done = true;
        self.stats.finish(self.start, if ok { Outcome::Ok } else { Outcome::Error });
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Dropped unfinished: cancelled by its caller, its connection closing, or a shutdown,
        // while queued or running.
        if !self.done {
            self.stats.finish(self.start, Outcome::Cancelled);
        }
    }
}

/// One method's statistics, as the introspection service reports them.
///
/// `calls` counts every call the router handed to the method (arguments decoded or not);
/// `errors` those that ended in a framework error (arguments that did not decode, a panic, a
/// result too large to encode, the deadline passing on the server; a method's own `Err` is a
/// successful call); `cancelled` those dropped before they finished (the caller cancelled, the
/// connection closed, a shutdown's grace period ran out). Latencies are in microseconds, from a histogram with four buckets per power of two:
/// a percentile is the upper bound of its bucket, at most 25% over the true value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MethodStatsSnapshot {
    /// The service's wire name.
    pub service: String,
    /// The method's wire name.
    pub method: String,
    /// Calls started.
    pub calls: u64,
    /// Calls that ended in a framework error.
    pub errors: u64,
    /// Calls stopped before they finished.
    pub cancelled: u64,
    /// Calls running (or queued) now.
    pub in_flight: u64,
    /// The mean latency of the calls that ended, in microseconds.
    pub mean_us: u64,
    /// The median latency, in microseconds.
    pub p50_us: u64,
    /// The 90th percentile latency, in microseconds.
    pub p90_us: u64,
    /// The 99th percentile latency, in microseconds.
    pub p99_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for us in [0u64, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 100, 1000, 65_535, 1 << 20, (1 << 32) - 1] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            assert!(bucket_upper(b) >= us, "{us} is above its bucket's bound {}", bucket_upper(b));
            assert!(bucket_upper(b) <= us + us / 4, "{us}: bound {} is more than 25% over", bucket_upper(b));
            if b > 0 {
                assert!(bucket_upper(b - 1) < us, "{us} belongs in an earlier bucket");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let stats = MethodStats::default();
        // A start in the future: `elapsed` saturates to zero, so the call `finish` records
        // lands in the first bucket whatever the machine's speed (no timing in this test).
        let start = Instant::now() + std::time::Duration::from_secs(3600);
        for _ in 0..101 {
            stats.calls.fetch_add(1, Relaxed);
        }
        // 90 calls of 10 µs, 10 of 1000 µs, recorded straight into the buckets, and one of 0 µs.
        for us in std::iter::repeat_n(10u64, 90).chain(std::iter::repeat_n(1000, 10)) {
            stats.buckets[bucket(us)].fetch_add(1, Relaxed);
            stats.finished.fetch_add(1, Relaxed);
        }
        stats.finish(start, Outcome::Error);
        let s = stats.snapshot("S", "m");
        assert_eq!((s.calls, s.errors, s.in_flight), (101, 1, 0));
        assert!((10..=12).contains(&s.p50_us), "{s:?}");
        assert!((10..=12).contains(&s.p90_us), "{s:?}");
        assert!((1000..=1250).contains(&s.p99_us), "{s:?}");
    }
}
