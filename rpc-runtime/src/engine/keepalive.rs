//! Pings and pongs: answering a peer's ping, and the client's keepalive that detects a server
//! gone silent. (A server bounds the pings it answers: `limits::ControlBudget`.)

use std::time::Duration;

use rpc_transport::framed::Frame;
use tokio::time::Instant;

use crate::protocol;

/// A ping carrying `nonce`, if it fits in `max_frame_len`.
pub(crate) fn ping(nonce: u64, max_frame_len: usize) -> Option<Frame> {
    protocol::ping_frame(nonce, false).finish(max_frame_len).ok()
}

/// The pong that answers a ping carrying `nonce`.
pub(crate) fn pong(nonce: u64, max_frame_len: usize) -> Option<Frame> {
    protocol::ping_frame(nonce, true).finish(max_frame_len).ok()
}

/// Detects a silent peer: after `interval` without a frame while calls wait, send a ping; if
/// nothing at all arrives within another `interval`, the connection is dead.
pub(crate) struct Keepalive {
    interval: Option<Duration>,
    last_heard: Instant,
    ping_sent: Option<Instant>,
    nonce: u64,
}

impl Keepalive {
    /// A keepalive pinging after `interval` of silence (`None`: never).
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        Keepalive { interval, last_heard: Instant::now(), ping_sent: None, nonce: 0 }
    }

    /// Whether it pings at all.
    pub(crate) fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// Waits until a ping is due, or the one sent has gone unanswered for the interval.
    pub(crate) async fn wait(&self) {
        let Some(interval) = self.interval else { return std::future::pending().await };
        let from = self.ping_sent.unwrap_or(self.last_heard);
        tokio::time::sleep_until(from + interval).await;
    }

    /// `Some(limit)` if a ping went unanswered for the whole interval.
    pub(crate) fn expired(&self) -> Option<Duration> {
        let interval = self.interval?;
        self.ping_sent.filter(|sent| sent.elapsed() >= interval).map(|_| interval)
    }

    /// The nonce of the next ping.
    pub(crate) fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    /// A ping went out now.
    pub(crate) fn sent(&mut self) {
        self.ping_sent = Some(Instant::now());
    }

    /// Something arrived now (or there was nothing to wait for): the peer is alive.
    pub(crate) fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.ping_sent = None;
    }
}
