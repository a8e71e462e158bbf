//! A tower retry policy for calls: repeats only what is safe to repeat (cargo feature `tower`).
//!
//! [`RetryPolicy`] retries a call when a retry cannot run it twice, or when running it twice
//! does no harm:
//!
//! - the error says the call never started and may succeed next time
//!   ([`RpcError::is_retryable`]: the server was shutting down or overloaded, there was no
//!   connection, or a rate limit refused it, in which case it first waits the `retry_after`);
//! - or the method is marked `#[rpc(idempotent)]` ([`Call::idempotent`]) and the call failed in
//!   a way that says nothing about the method itself: its connection closed or failed, or the
//!   server cancelled it.
//!
//! Nothing else is retried: a deadline that passed, an error the method returned, a handler
//! that panicked, a call the server refused for good (unknown method, signature mismatch,
//! credentials). A call's deadline is absolute, so retries never extend it.
//!
//! ```
//! use rpc_runtime::retry::RetryPolicy;
//! # fn layered(client: rpc_runtime::Client) {
//! let retrying = tower::ServiceBuilder::new().retry(RetryPolicy::new(3)).service(client);
//! # let _ = retrying; }
//! ```

use std::time::Duration;

use crate::{Call, Reply, RpcError};

/// Retries a call up to a number of times when that is safe (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    retries_left: usize,
    max_wait: Duration,
}

impl RetryPolicy {
    /// At most `retries` retries per call, waiting at most 1 s for a rate limit's `retry_after`.
    pub fn new(retries: usize) -> RetryPolicy {
        RetryPolicy { retries_left: retries, max_wait: Duration::from_secs(1) }
    }

    /// Waits at most `max` before a retry a rate limit asked to delay (a longer `retry_after`
    /// is not retried).
    pub fn max_wait(mut self, max: Duration) -> RetryPolicy {
        self.max_wait = max;
        self
    }

    /// How long to wait before retrying `call` after `error`, or `None` not to retry.
    pub fn should_retry(&self, call: &Call, error: &RpcError) -> Option<Duration> {
        if self.retries_left == 0 {
            return None;
        }
        match error {
            RpcError::RateLimited { retry_after } => (*retry_after <= self.max_wait).then_some(*retry_after),
            e if e.is_retryable() => Some(Duration::ZERO),
            RpcError::ConnectionClosed(_) | RpcError::Io(_) | RpcError::Cancelled(_) if call.idempotent => {
                Some(Duration::ZERO)
            }
            _ => None,
        }
    }
}

impl tower::retry::Policy<Call, Reply, RpcError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, call: &mut Call, result: &mut Result<Reply, RpcError>) -> Option<Self::Future> {
        let error = result.as_ref().err()?;
        let wait = self.should_retry(call, error)?;
        self.retries_left -= 1;
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        Some(call.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe::MethodKind;
    use crate::{Format, MethodRef};

    static PLAIN: MethodRef = MethodRef::dynamic("S", "m", MethodKind::Unary, 0);
    static IDEMPOTENT: MethodRef = MethodRef::dynamic("S", "get", MethodKind::Unary, 0).idempotent(true);

    #[test]
    fn only_what_is_safe_is_retried() {
        let policy = RetryPolicy::new(1);
        let plain = Call::new(&PLAIN, Format::Postcard, Vec::new());
        let idempotent = Call::new(&IDEMPOTENT, Format::Postcard, Vec::new());
        let closed = RpcError::closed("reset");
        assert_eq!(policy.should_retry(&plain, &RpcError::ShuttingDown), Some(Duration::ZERO));
        assert_eq!(policy.should_retry(&plain, &closed), None, "it may have run");
        assert_eq!(policy.should_retry(&idempotent, &closed), Some(Duration::ZERO));
        for never in
            [RpcError::DeadlineExceeded, RpcError::HandlerPanicked, RpcError::UnknownMethod("m".into())]
        {
            assert_eq!(policy.should_retry(&idempotent, &never), None, "{never}");
        }
        let limited = RpcError::RateLimited { retry_after: Duration::from_millis(20) };
        assert_eq!(policy.should_retry(&plain, &limited), Some(Duration::from_millis(20)));
        let too_long = RpcError::RateLimited { retry_after: Duration::from_secs(5) };
        assert_eq!(policy.should_retry(&plain, &too_long), None);
        assert_eq!(RetryPolicy::new(0).should_retry(&plain, &RpcError::ShuttingDown), None);
    }
}
