//! Checks a server runs on every call before decoding its arguments: authentication from the
//! call's metadata or the peer's credentials, rate limits, or any rule of your own.
//!
//! An [`Interceptor`] sees the call's service, method, peer and metadata and either lets it
//! through or refuses it with an [`RpcError`], which the caller receives as that error: the
//! handler never runs, and the connection carries on. [`Router::intercept`] adds one; several
//! run in the order added, and the first refusal wins.
//!
//! | refusal | the caller gets |
//! |---|---|
//! | [`bearer_token`] without the right token | [`RpcError::Unauthenticated`] |
//! | [`allow_uids`] for another user | [`RpcError::PermissionDenied`] |
//! | [`RateLimit`] with no room | [`RpcError::RateLimited`] `{ retry_after }` |
//!
//! ```
//! use std::time::Duration;
//! use rpc_runtime::intercept::{self, RateLimit};
//! use rpc_runtime::{service, transport::memory, Client, Metadata, Router, RpcError, Server};
//!
//! #[service]
//! trait Vault {
//!     async fn open(&self) -> String;
//! }
//! struct Impl;
//! impl Vault for Impl {
//!     async fn open(&self) -> String { "gold".into() }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), RpcError> {
//! let router = Router::new()
//!     .add_service(VaultServer::new(Impl))
//!     .intercept(intercept::bearer_token("s3cret"))
//!     .intercept(RateLimit::new(100, Duration::from_secs(1)));
//! let (listener, connector) = memory::listener();
//! let _server = Server::new(router).serve(listener);
//!
//! let client = Client::new(connector.connect()?);
//! let anonymous = VaultClient::from_client(client.clone());
//! assert!(matches!(anonymous.open().await, Err(RpcError::Unauthenticated(_))));
//!
//! let token = Metadata::from_iter([("authorization", "Bearer s3cret")]);
//! let trusted = VaultClient::from_client(client.with_metadata(token)?);
//! assert_eq!(trusted.open().await?, "gold");
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use rpc_transport::Peer;
use tokio::time::Instant;

use crate::describe::MethodKind;
use crate::{Metadata, RpcError};

/// What an [`Interceptor`] sees of a call: everything but its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub(crate) service: &'a str,
    pub(crate) method: &'a str,
    pub(crate) kind: MethodKind,
    pub(crate) peer: &'a Peer,
    pub(crate) metadata: &'a Metadata,
}

impl<'a> Incoming<'a> {
    /// The service's wire name.
    pub fn service(&self) -> &'a str {
        self.service
    }

    /// The method's wire name.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// How the method exchanges messages.
    pub fn kind(&self) -> MethodKind {
        self.kind
    }

    /// Who called: an address, or for a Unix socket the peer's uid, gid and pid.
    pub fn peer(&self) -> &'a Peer {
        self.peer
    }

    /// The call's metadata (credentials, trace context).
    pub fn metadata(&self) -> &'a Metadata {
        self.metadata
    }
}

/// A check that runs on every call a [`Router`](crate::Router) routes, before its arguments
/// are decoded; `Err` refuses the call with that error. Any
/// `Fn(&Incoming<'_>) -> Result<(), RpcError>` is one.
///
/// It runs on the connection's task, so it must not block; keep it to lookups and counters.
pub trait Interceptor: Send + Sync + 'static {
    /// Lets `call` through, or says why not.
    fn check(&self, call: &Incoming<'_>) -> Result<(), RpcError>;
}

impl<F> Interceptor for F
where
    F: Fn(&Incoming<'_>) -> Result<(), RpcError> + Send + Sync + 'static,
{
    fn check(&self, call: &Incoming<'_>) -> Result<(), RpcError> {
        self(call)
    }
}

/// Lets through calls whose metadata carries `authorization: Bearer {token}`; others get
/// [`RpcError::Unauthenticated`]. The comparison takes the same time wherever the tokens
/// differ.
pub fn bearer_token(token: impl Into<String>) -> impl Interceptor {
    let expected = format!("Bearer {}", token.into());
    move |call: &Incoming<'_>| match call.metadata.get("authorization") {
        None => Err(RpcError::Unauthenticated("the call carries no `authorization` metadata".into())),
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(RpcError::Unauthenticated("the bearer token is not accepted".into())),
    }
}

/// Lets through calls from Unix-socket peers whose user id is in `uids`, as the kernel
/// reported it when they connected; others get [`RpcError::PermissionDenied`] (a peer on
/// another transport has no uid). For one method only, wrap it:
/// `move |c: &Incoming| if c.method() == "stop" { admins.check(c) } else { Ok(()) }`
/// (with [`Interceptor`] in scope).
pub fn allow_uids(uids: impl IntoIterator<Item = u32>) -> impl Interceptor {
    let uids: Vec<u32> = uids.into_iter().collect();
    move |call: &Incoming<'_>| match call.peer {
        Peer::Unix { uid: Some(uid), .. } if uids.contains(uid) => Ok(()),
        Peer::Unix { uid: Some(uid), .. } => {
            Err(RpcError::PermissionDenied(format!("uid {uid} may not call `{}`", call.method).into()))
        }
        other => Err(RpcError::PermissionDenied(
            format!("`{}` needs a Unix-socket peer with known credentials; the peer is {other}", call.method)
                .into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// A token bucket over every call the router routes: at most `calls` per `per`, in bursts of up
/// to `calls`. A call that finds the bucket empty gets [`RpcError::RateLimited`] with the time
/// until a token is due. Uses Tokio's clock (so paused time in tests drives it).
pub struct RateLimit {
    capacity: f64,
    per_token: Duration,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    since: Instant,
}

impl RateLimit {
    /// `calls` per `per` (both above zero), starting full.
    ///
    /// # Panics
    ///
    /// Panics if `calls` or `per` is zero.
    pub fn new(calls: u32, per: Duration) -> RateLimit {
        assert!(calls > 0 && !per.is_zero(), "a rate limit needs calls > 0 and a nonzero period");
        RateLimit {
            capacity: f64::from(calls),
            per_token: per / calls,
            state: Mutex::new(Bucket { tokens: f64::from(calls), since: Instant::now() }),
        }
    }

    /// Takes a token, or says how long until one is due.
    fn take(&self) -> Result<(), Duration> {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(bucket.since).as_secs_f64() / self.per_token.as_secs_f64();
        bucket.tokens = (bucket.tokens + earned).min(self.capacity);
        bucket.since = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.per_token.mul_f64(1.0 - bucket.tokens))
        }
    }
}

impl Interceptor for RateLimit {
    fn check(&self, _: &Incoming<'_>) -> Result<(), RpcError> {
        self.take().map_err(|retry_after| RpcError::RateLimited { retry_after })
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("capacity", &self.capacity)
            .field("per_token", &self.per_token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming<'a>(peer: &'a Peer, metadata: &'a Metadata) -> Incoming<'a> {
        Incoming { service: "S", method: "m", kind: MethodKind::Unary, peer, metadata }
    }

    #[test]
    fn bearer_tokens_are_compared_whole() {
        let check = bearer_token("abc");
        let peer = Peer::Memory;
        let with = |v: &str| Metadata::from_iter([("authorization", v)]);
        assert!(check.check(&incoming(&peer, &with("Bearer abc"))).is_ok());
        for wrong in ["Bearer ab", "Bearer abcd", "Bearer abd", "abc", ""] {
            let outcome = check.check(&incoming(&peer, &with(wrong)));
            assert!(matches!(outcome, Err(RpcError::Unauthenticated(_))), "{wrong:?}: {outcome:?}");
        }
        let none = check.check(&incoming(&peer, &Metadata::new()));
        assert!(matches!(none, Err(RpcError::Unauthenticated(m)) if m.contains("no `authorization`")));
    }

    #[test]
    fn uids_are_checked_against_the_peers_credentials() {
        let check = allow_uids([0, 1000]);
        let metadata = Metadata::new();
        let unix = |uid| Peer::Unix { uid, gid: None, pid: None };
        assert!(check.check(&incoming(&unix(Some(1000)), &metadata)).is_ok());
        for peer in [unix(Some(1001)), unix(None), Peer::Memory] {
            let outcome = check.check(&incoming(&peer, &metadata));
            assert!(matches!(outcome, Err(RpcError::PermissionDenied(_))), "{peer}: {outcome:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_refills_at_its_rate() {
        let limit = RateLimit::new(2, Duration::from_secs(1));
        assert!(limit.take().is_ok() && limit.take().is_ok());
        assert_eq!(limit.take(), Err(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(limit.take(), Err(Duration::from_millis(250)));
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(limit.take().is_ok());
        assert!(limit.take().is_err());
        // Idle time fills the bucket, never past its size.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(limit.take().is_ok() && limit.take().is_ok() && limit.take().is_err());
    }
}
