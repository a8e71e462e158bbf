//! Server-side checks on the router (`rpc_runtime::intercept`): authentication from metadata and
//! from a Unix peer's credentials, and a rate limit, each refusing with its typed error before
//! the handler runs, the connection carrying on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::intercept::{self, Incoming, Interceptor, RateLimit};
use rpc_runtime::transport::{memory, unix};
use rpc_runtime::{service, Client, Metadata, Router, RpcError, Server};
use rpc_tests::within;

/// Counts the calls its handler ran.
#[service]
pub trait Guarded {
    /// Counts and returns the count.
    async fn touch(&self) -> usize;
    /// Also counts; refused to all but root by the test's per-method rule.
    async fn shutdown(&self) -> usize;
}

#[derive(Clone, Default)]
struct Impl(Arc<AtomicUsize>);

impl Guarded for Impl {
    async fn touch(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    async fn shutdown(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn uid() -> u32 {
    // SAFETY: getuid(2) has no preconditions.
    unsafe { libc::getuid() }
}

#[tokio::test(flavor = "current_thread")]
async fn a_bearer_token_and_peer_credentials_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guarded.sock");
    let ran = Impl::default();
    let me = uid();
    let not_me = me.wrapping_add(1);
    let root_only = intercept::allow_uids([not_me]);
    let router = Router::new()
        .add_service(GuardedServer::new(ran.clone()))
        .intercept(intercept::bearer_token("s3cret"))
        .intercept(intercept::allow_uids([me]))
        .intercept(
            move |call: &Incoming<'_>| {
                if call.method() == "shutdown" {
                    root_only.check(call)
                } else {
                    Ok(())
                }
            },
        );
    let server = Server::new(router).serve(unix::bind(&path).await.unwrap());
    within(30, "the calls", async {
        let client = Client::new(unix::connect(&path).await.unwrap());
        let anonymous = GuardedClient::from_client(client.clone());
        let refused = anonymous.touch().await;
        assert!(matches!(&refused, Err(RpcError::Unauthenticated(m)) if m.contains("authorization")), "{refused:?}");
        assert!(refused.unwrap_err().never_started());

        let wrong = GuardedClient::from_client(
            client.with_metadata(Metadata::from_iter([("authorization", "Bearer guess")])).unwrap(),
        );
        assert!(matches!(wrong.touch().await, Err(RpcError::Unauthenticated(_))));

        let trusted = GuardedClient::from_client(
            client.with_metadata(Metadata::from_iter([("authorization", "Bearer s3cret")])).unwrap(),
        );
        assert_eq!(trusted.touch().await.unwrap(), 1);
        // The per-method rule: this uid may not call `shutdown`.
        let denied = trusted.shutdown().await;
        assert!(
            matches!(&denied, Err(RpcError::PermissionDenied(m)) if m.contains(&format!("uid {me}")) && m.contains("shutdown")),
            "{denied:?}"
        );
        // The connection carried on through every refusal, and only one call ran.
        assert_eq!(trusted.touch().await.unwrap(), 2);
    })
    .await;
    assert_eq!(ran.0.load(Ordering::SeqCst), 2);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_rate_limit_refuses_with_the_time_to_wait() {
    let ran = Impl::default();
    let router = Router::new()
        .add_service(GuardedServer::new(ran.clone()))
        .intercept(RateLimit::new(3, Duration::from_secs(1)));
    let (listener, connector) = memory::listener();
    let _server = Server::new(router).serve(listener);
    let client = GuardedClient::new(connector.connect().unwrap());
    for n in 1..=3 {
        assert_eq!(client.touch().await.unwrap(), n);
    }
    let limited = client.touch().await;
    let Err(RpcError::RateLimited { retry_after }) = limited else { panic!("{limited:?}") };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(334), "{retry_after:?}");
    assert!(RpcError::RateLimited { retry_after }.is_retryable());
    tokio::time::sleep(retry_after).await;
    assert_eq!(client.touch().await.unwrap(), 4);
    assert_eq!(ran.0.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "current_thread")]
async fn interceptors_run_for_in_process_calls_too() {
    let router = Router::new()
        .add_service(GuardedServer::new(Impl::default()))
        .intercept(intercept::bearer_token("t"));
    let client = GuardedClient::from_service(router);
    assert!(matches!(client.touch().await, Err(RpcError::Unauthenticated(_))));
}
