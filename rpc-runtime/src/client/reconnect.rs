//! Re-establishing a client's connection after it breaks, with backoff and wait-for-ready.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_transport::Connection;
use tokio::time::Instant;

use super::{ClientBuilder, Shared};
use crate::RpcError;

type ConnectFn = dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<Connection>> + Send>> + Send + Sync;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Holds the current connection and makes a new one when it is gone.
pub(super) struct Reconnector {
    builder: ClientBuilder,
    connect: Box<ConnectFn>,
    state: Mutex<State>,
    /// Held while connecting, so concurrent calls make one attempt, not one each.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Shared>>,
    /// After a failed attempt: no new attempt before this instant.
    retry_at: Option<Instant>,
    backoff: Option<Duration>,
    /// The last attempt's error, while `retry_at` is set.
    last_error: Option<Arc<io::Error>>,
}

impl Reconnector {
    pub(super) fn new<F, Fut>(builder: ClientBuilder, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Connection>> + Send + 'static,
    {
        Reconnector {
            builder,
            connect: Box::new(move || Box::pin(connect())),
            state: Mutex::new(State::default()),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current connection, whether usable or not.
    pub(super) fn peek(&self) -> Option<Arc<Shared>> {
        self.lock().current.clone()
    }

    pub(super) fn usable(&self) -> Option<Arc<Shared>> {
        self.lock().current.as_ref().filter(|s| s.is_usable()).cloned()
    }

    /// A usable connection for a call with `deadline`: the current one, or a new one.
    ///
    /// During the backoff after a failed attempt, a call that waits for ready (the default)
    /// sleeps until the next attempt if it comes before the call's deadline, and keeps doing so
    /// after each failure; otherwise it fails at once with [`RpcError::Unavailable`], which says
    /// when the next attempt is.
    pub(super) async fn connection(&self, deadline: Option<Instant>) -> Result<Arc<Shared>, RpcError> {
        loop {
            if let Some(shared) = self.usable() {
                return Ok(shared);
            }
            let connecting = self.connecting.lock().await;
            if let Some(shared) = self.usable() {
                return Ok(shared);
            }
            let backing_off = {
                let state = self.lock();
                match (state.retry_at, &state.last_error) {
                    (Some(at), Some(err)) if Instant::now() < at => Some((at, Arc::clone(err))),
                    _ => None,
                }
            };
            let (retry_at, err) = match backing_off {
                Some(wait) => wait,
                None => match self.attempt().await {
                    Ok(shared) => return Ok(shared),
                    Err(failed) => failed,
                },
            };
            drop(connecting);
            let waits = self.builder.wait_for_ready && deadline.is_none_or(|d| retry_at < d);
            if !waits {
                let retry_in = retry_at.saturating_duration_since(Instant::now());
                return Err(RpcError::Unavailable { source: err, retry_in });
            }
            tokio::time::sleep_until(retry_at).await;
        }
    }

    /// One connection attempt; on failure, the instant of the next one and the error.
    async fn attempt(&self) -> Result<Arc<Shared>, (Instant, Arc<io::Error>)> {
        match (self.connect)().await {
            Ok(conn) => {
                let shared = Arc::new(self.builder.start(conn));
                let mut state = self.lock();
                *state = State { current: Some(Arc::clone(&shared)), ..State::default() };
                tracing::debug!(peer = %shared.peer, "connected");
                Ok(shared)
            }
            Err(e) => {
                let err = Arc::new(e);
                let mut state = self.lock();
                let backoff = state.backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                tracing::debug!(?backoff, "connect failed: {err}");
                let retry_at = Instant::now() + backoff;
                state.backoff = Some(backoff);
                state.retry_at = Some(retry_at);
                state.last_error = Some(Arc::clone(&err));
                Err((retry_at, err))
            }
        }
    }
}
