//! Re-establishing a client's connection after it breaks.

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
    /// After a failed attempt: no new attempt before this instant; calls fail with `last_error`.
    retry_at: Option<Instant>,
    backoff: Option<Duration>,
    last_error: Option<RpcError>,
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

    fn usable(&self) -> Option<Arc<Shared>> {
        self.lock().current.as_ref().filter(|s| s.is_usable()).cloned()
    }

    /// A usable connection: the current one, or a new one.
    pub(super) async fn connection(&self) -> Result<Arc<Shared>, RpcError> {
        if let Some(shared) = self.usable() {
            return Ok(shared);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(shared) = self.usable() {
            return Ok(shared);
        }
        {
            let state = self.lock();
            if let (Some(at), Some(err)) = (state.retry_at, &state.last_error) {
                if Instant::now() < at {
                    return Err(err.clone());
                }
            }
        }
        match (self.connect)().await {
            Ok(conn) => {
                let shared = Arc::new(self.builder.start(conn));
                let mut state = self.lock();
                *state = State { current: Some(Arc::clone(&shared)), ..State::default() };
                tracing::debug!(peer = %shared.peer, "connected");
                Ok(shared)
            }
            Err(e) => {
                let err = RpcError::from(e);
                let mut state = self.lock();
                let backoff = state.backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                tracing::debug!(?backoff, "connect failed: {err}");
                state.backoff = Some(backoff);
                state.retry_at = Some(Instant::now() + backoff);
                state.last_error = Some(err.clone());
                Err(err)
            }
        }
    }
}
