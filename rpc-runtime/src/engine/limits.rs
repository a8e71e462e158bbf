//! The server's limit rules, in one place: the defaults of [`ServerConfig`], and the per-connection
//! counters that enforce the rules which are not a plain setting (the control-frame bucket,
//! cancel credit, the protocol-violation count, a stream's item credit, the receive budget's
//! wiring). [`crate::limits`] lists them all for users, with the threat each answers.
//!
//! A rule that is broken returns a [`Breach`]: the goaway the connection closes with.

use std::sync::Arc;
use std::time::Duration;

use rpc_transport::framed::ReceiveBudget;
use rpc_transport::message::MessageLimits;
use tokio::time::Instant;

use crate::protocol::ErrorCode;
use crate::server::ServerConfig;

/// Default of [`ServerConfig::max_in_flight`].
pub(crate) const MAX_IN_FLIGHT: usize = 128;
/// Default of [`ServerConfig::max_connections`].
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Default of [`ServerConfig::max_connections_per_peer`].
pub(crate) const MAX_CONNECTIONS_PER_PEER: usize = 256;
/// Default of [`ServerConfig::idle_timeout`]: the idle timer.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of [`ServerConfig::frame_timeout`]: the slow-frame timer.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServerConfig::handshake_timeout`]: the handshake timer.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServerConfig::write_timeout`].
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServerConfig::max_deadline`].
pub(crate) const MAX_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default of [`ServerConfig::oneway_deadline`].
pub(crate) const ONEWAY_DEADLINE: Duration = Duration::from_secs(60);
/// Default of [`ServerConfig::outbound_queue`].
pub(crate) const OUTBOUND_QUEUE: usize = 128;
/// Default of [`ServerConfig::response_budget_per_connection`].
pub(crate) const RESPONSE_BUDGET_PER_CONNECTION: usize = 8 * 1024 * 1024;
/// Default of [`ServerConfig::max_response_budget`].
pub(crate) const MAX_RESPONSE_BUDGET: usize = 128 * 1024 * 1024;
/// Default of [`ServerConfig::max_control_frames_per_sec`].
pub(crate) const MAX_CONTROL_FRAMES_PER_SEC: u32 = 1000;
/// Default of [`ServerConfig::max_protocol_violations`].
pub(crate) const MAX_PROTOCOL_VIOLATIONS: u32 = 8;
/// Default of [`ServerConfig::max_receive_budget`].
pub(crate) const MAX_RECEIVE_BUDGET: usize = 256 * 1024 * 1024;
/// Default of [`ServerConfig::max_detached_calls`].
pub(crate) const MAX_DETACHED_CALLS: usize = 1024;

/// Requests read while every handler slot is busy, waiting for one. Reading stops when this many
/// are waiting: that is the backpressure. Reading on until then lets the cancels and pings
/// queued behind a request through, so a cancel can always free a slot.
pub(crate) const PARKED_REQUESTS: usize = 8;

/// Cancels a connection may send beyond one per request it sent (E2).
pub(crate) const CANCEL_SLACK: u64 = 1024;

/// How long a refused connection is kept open to let the client read why.
pub(crate) const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// The same for a peer refused for being over its own connection cap: it is reconnecting in a
/// loop, typically, and a short linger keeps what its refusals cost the server small.
pub(crate) const PEER_CAP_LINGER: Duration = Duration::from_millis(100);

/// A broken rule: the connection closes with a goaway carrying `code` and `message`.
#[derive(Debug)]
pub(crate) struct Breach {
    /// The goaway's code.
    pub(crate) code: ErrorCode,
    /// What rule was broken, for the peer and the log.
    pub(crate) message: String,
}

/// What the transport enforces for a server connection: the maximum frame, the slow-frame timer
/// and the server-wide receive budget (framed or native, the transport applies them alike).
pub(crate) fn message_limits(config: &ServerConfig, receive: &Arc<ReceiveBudget>) -> MessageLimits {
    MessageLimits::new(config.max_frame_len)
        .slow_message_timeout(config.frame_timeout)
        .receive_budget(Arc::clone(receive))
}

/// A token bucket for pings and pongs (E2, H8: a ping flood costs the server a pong each without
/// ever starting a call), refilled at [`ServerConfig::max_control_frames_per_sec`] a second and
/// holding as many; requests do not refill it.
pub(crate) struct ControlBudget {
    /// When the bucket was last refilled (or last full).
    since: Instant,
    tokens: u32,
    max: u32,
}

impl ControlBudget {
    /// A full bucket of `max` tokens.
    pub(crate) fn new(max: u32) -> Self {
        ControlBudget { since: Instant::now(), tokens: max, max }
    }

    /// Takes a token for one ping or pong; a [`Breach`] if there is none.
    pub(crate) fn take(&mut self) -> Result<(), Breach> {
        let max = self.max;
        let now = Instant::now();
        if self.tokens >= max {
            // A full bucket refills from when it is first drawn on.
            self.since = now;
        } else if self.tokens == 0 {
            let elapsed = now.duration_since(self.since).as_millis();
            let refill = (elapsed * u128::from(max) / 1000).min(u128::from(max)) as u32;
            if refill > 0 {
                self.since = now;
                self.tokens = refill;
            }
        }
        if self.tokens == 0 {
            return Err(Breach {
                code: ErrorCode::Protocol,
                message: format!("too many control frames: more than {max} pings or pongs per second"),
            });
        }
        self.tokens -= 1;
        Ok(())
    }
}

/// Cancels a connection may still send: one per request received, plus [`CANCEL_SLACK`]. A
/// client cancels each call at most once, so only a flood runs out.
pub(crate) struct CancelCredit(u64);

impl CancelCredit {
    /// The credit of a new connection: the slack.
    pub(crate) fn new() -> Self {
        CancelCredit(CANCEL_SLACK)
    }

    /// A request arrived: one more cancel is allowed.
    pub(crate) fn on_request(&mut self) {
        self.0 = self.0.saturating_add(1);
    }

    /// Spends one cancel; a [`Breach`] if there is none left.
    pub(crate) fn take(&mut self) -> Result<(), Breach> {
        if self.0 == 0 {
            return Err(Breach {
                code: ErrorCode::Protocol,
                message: format!("too many cancels: more than {CANCEL_SLACK} beyond one per request"),
            });
        }
        self.0 -= 1;
        Ok(())
    }
}

/// Protocol violations that do not by themselves close the connection; past
/// [`ServerConfig::max_protocol_violations`], the connection is closed (H7).
pub(crate) struct Violations {
    count: u32,
    max: u32,
}

impl Violations {
    /// None so far, and at most `max` allowed.
    pub(crate) fn new(max: u32) -> Self {
        Violations { count: 0, max }
    }

    /// Counts one violation of a rule whose goaway code is `code`; a [`Breach`] once there have
    /// been more than allowed, naming `what` (the last one).
    pub(crate) fn count(&mut self, code: ErrorCode, what: &str) -> Result<(), Breach> {
        self.count = self.count.saturating_add(1);
        let max = self.max;
        if self.count > max {
            return Err(Breach {
                code,
                message: format!("too many protocol violations: more than {max}; the last: {what}"),
            });
        }
        Ok(())
    }
}

/// Whether the `received`th item on a stream is within the credit its sender was given: the
/// first `window`, plus what was `granted` since (which cannot overflow: it saturates).
pub(crate) fn item_within_credit(received: u64, window: u64, granted: u64) -> bool {
    received <= window.saturating_add(granted)
}

#[cfg(test)]
mod tests {
    use super::{item_within_credit, CancelCredit, ControlBudget, Violations, CANCEL_SLACK};
    use crate::protocol::ErrorCode;

    #[test]
    fn counters_breach_one_past_their_allowance() {
        let mut v = Violations::new(2);
        assert!(v.count(ErrorCode::Protocol, "a").is_ok() && v.count(ErrorCode::Protocol, "b").is_ok());
        let breach = v.count(ErrorCode::StreamProtocol, "c").unwrap_err();
        assert_eq!(breach.code, ErrorCode::StreamProtocol);
        assert!(breach.message.ends_with("the last: c"), "{}", breach.message);

        let mut c = CancelCredit::new();
        c.on_request();
        for _ in 0..=CANCEL_SLACK {
            c.take().unwrap();
        }
        assert!(c.take().unwrap_err().message.contains("too many cancels"));

        assert!(item_within_credit(16, 16, 0) && !item_within_credit(17, 16, 0));
        assert!(item_within_credit(u64::MAX, u64::MAX, u64::MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn control_budget_refills_with_time() {
        let mut b = ControlBudget::new(10);
        for _ in 0..10 {
            b.take().unwrap();
        }
        assert!(b.take().unwrap_err().message.contains("too many control frames"));
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        for _ in 0..5 {
            b.take().unwrap();
        }
        assert!(b.take().is_err());
    }
}
