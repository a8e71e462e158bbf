//! Rate limits for log lines a peer can trigger (H7): a peer must not be able to turn its input
//! into unbounded disk or CPU in the server's log.

use tokio::time::Instant;

/// Log lines allowed in a burst.
pub(crate) const LOG_BURST: u32 = 10;
/// Log lines allowed per second once the burst is spent.
pub(crate) const LOG_PER_SEC: u32 = 1;

/// A token bucket for log lines: [`LOG_BURST`] at once, then [`LOG_PER_SEC`] per second. Lines it
/// refuses are counted, and the next line it allows reports how many were suppressed.
#[derive(Debug)]
pub(crate) struct LogLimit {
    tokens: u32,
    refilled: Instant,
    suppressed: u64,
}

impl LogLimit {
    pub(crate) fn new() -> Self {
        LogLimit { tokens: LOG_BURST, refilled: Instant::now(), suppressed: 0 }
    }

    /// `Some(n)` if a line may be logged now, `n` being the lines suppressed since the last one
    /// logged (to be reported with it); `None` if this one is suppressed.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        if self.tokens == 0 {
            let now = Instant::now();
            let secs = now.duration_since(self.refilled).as_secs();
            if secs > 0 {
                let add = secs.saturating_mul(u64::from(LOG_PER_SEC)).min(u64::from(LOG_BURST));
                self.tokens = add as u32;
                self.refilled = now;
            }
        }
        if self.tokens == 0 {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        if self.tokens == LOG_BURST {
            // A full bucket's refill clock starts when it is first drawn on.
            self.refilled = Instant::now();
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Lines suppressed and not yet reported; report them once when the connection ends.
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// Logs through a [`LogLimit`]: `limited!(limit, warn, field = x, "message {}", y)`. A line
/// that follows suppressed ones carries `suppressed = n`.
macro_rules! limited {
    ($limit:expr, $level:ident, $($rest:tt)+) => {
        if let Some(suppressed) = $limit.allow() {
            if suppressed == 0 {
                tracing::$level!($($rest)+);
            } else {
                tracing::$level!(suppressed, $($rest)+);
            }
        }
    };
}
pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_second_counting_the_rest() {
        let mut limit = LogLimit::new();
        for _ in 0..LOG_BURST {
            assert_eq!(limit.allow(), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(limit.allow(), None);
        }
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert_eq!(limit.allow(), Some(100), "the next line reports what was suppressed");
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.take_suppressed(), 1);
        assert_eq!(limit.take_suppressed(), 0);
    }
}
