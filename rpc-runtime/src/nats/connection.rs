//! The broker connection: the `async_nats` client, and a signal of each loss of the connection so
//! that pending calls fail at once instead of waiting for a reply that will never come.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{ConnectOptions, Event, ToServerAddrs};
use tokio::sync::watch;

use crate::RpcError;

/// A connection to a NATS broker, shared by [`NatsChannel`](super::NatsChannel)s and
/// [`NatsServer`](super::NatsServer)s (clone it freely: clones share the connection).
///
/// The client reconnects by itself when the broker goes away (`async_nats`'s policy: forever,
/// backing off up to 4 s). Meanwhile calls fail at once: a call pending when the connection was
/// lost gets [`RpcError::ConnectionClosed`] (it may or may not have run), a call made while
/// disconnected gets [`RpcError::Unavailable`] (it never started).
#[derive(Clone)]
pub struct NatsConnection {
    client: async_nats::Client,
    /// The link's state as the client's events tell it; a pending call watches it.
    link: watch::Receiver<Link>,
}

/// What the event callback keeps up to date.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// How many times the connection was lost.
    losses: u64,
    /// Whether the client is connected now.
    connected: bool,
}

/// Connects to the broker at `addrs` (`nats://host:port`, or several) with `async_nats`'s
/// default options.
///
/// # Errors
///
/// [`RpcError::Unavailable`] when no broker answers at `addrs`.
pub async fn connect(addrs: impl ToServerAddrs) -> Result<NatsConnection, RpcError> {
    connect_with(ConnectOptions::new(), addrs).await
}

/// Connects with `options` (credentials, TLS, a connection name, reconnect policy).
///
/// The options' event callback is replaced: this binding needs the disconnect events, and logs
/// every event through `tracing` (target `rpc_runtime::nats`).
///
/// # Errors
///
/// [`RpcError::Unavailable`] when no broker answers at `addrs`.
pub async fn connect_with(
    options: ConnectOptions,
    addrs: impl ToServerAddrs,
) -> Result<NatsConnection, RpcError> {
    // `connect` returns once connected (no retry of the first connection).
    let (tx, link) = watch::channel(Link { losses: 0, connected: true });
    let tx = Arc::new(tx);
    let options = options.event_callback(move |event| {
        let tx = Arc::clone(&tx);
        async move {
            match event {
                Event::Disconnected => {
                    tracing::debug!(target: "rpc_runtime::nats", "lost the broker connection");
                    tx.send_modify(|l| {
                        l.losses += 1;
                        l.connected = false;
                    });
                }
                Event::Connected => {
                    tracing::debug!(target: "rpc_runtime::nats", "connected to the broker");
                    tx.send_modify(|l| l.connected = true);
                }
                other => tracing::debug!(target: "rpc_runtime::nats", "broker event: {other}"),
            }
        }
    });
    let client = options.connect(addrs).await.map_err(|e| RpcError::Unavailable {
        source: Arc::new(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("connecting to the NATS broker: {e}"),
        )),
        retry_in: Duration::ZERO,
    })?;
    Ok(NatsConnection { client, link })
}

impl NatsConnection {
    /// The `async_nats` client underneath, for anything this binding does not cover.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether the client is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The largest message (headers and body) the broker accepts, in bytes.
    pub fn max_payload(&self) -> usize {
        self.client.max_payload()
    }

    /// Waits until the client is connected and the broker has its subscriptions (after a
    /// reconnection, the client re-sends them first; a round trip after that confirms them).
    ///
    /// # Errors
    ///
    /// [`RpcError::ConnectionClosed`] if the connection was lost again during the round trip.
    pub async fn wait_connected(&self) -> Result<(), RpcError> {
        let mut link = self.link.clone();
        // The sender lives in the client's event callback, as long as the client.
        let _ = link.wait_for(|l| l.connected).await;
        self.client
            .flush()
            .await
            .map_err(|e| RpcError::closed(format!("the NATS broker did not answer: {e}")))
    }

    /// Completes when the connection is lost after this call (taken before a call is sent).
    pub(crate) fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut link = self.link.clone();
        let seen = link.borrow_and_update().losses;
        async move {
            if link.wait_for(|l| l.losses != seen).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The error for a call made while the connection is down: it never started.
    pub(crate) fn unavailable(&self) -> RpcError {
        RpcError::Unavailable {
            source: Arc::new(io::Error::new(
                io::ErrorKind::NotConnected,
                "not connected to the NATS broker (the client is reconnecting)",
            )),
            retry_in: Duration::ZERO,
        }
    }
}

impl fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConnection").field("state", &self.client.connection_state()).finish()
    }
}
