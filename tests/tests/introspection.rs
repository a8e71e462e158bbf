//! The built-in `rpc.Introspection` service over real sockets: it lists and describes what the
//! server hosts, reports health and per-method statistics, and is gone when a router opts out.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::introspection::IntrospectionClient;
use rpc_runtime::transport::{tcp, unix, Connection};
use rpc_runtime::{service, Call, Client, Format, MethodRef, Router, RpcError, Server, ServerHandle};
use rpc_tests::within;
use tokio::sync::Semaphore;

/// A service with an argument of each sort the descriptions must show.
#[service(name = "math.Calc")]
pub trait Calc {
    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides, or says why not.
    async fn div(&self, a: i64, b: i64) -> Result<i64, String>;
    /// Returns once the test lets it (one permit per call).
    async fn wait(&self) -> u32;
}

#[derive(Clone)]
struct Impl {
    gate: Arc<Semaphore>,
}

impl Calc for Impl {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b).ok_or_else(|| "division by zero".into())
    }
    async fn wait(&self) -> u32 {
        self.gate.acquire().await.expect("gate open").forget();
        7
    }
}

fn calc() -> (CalcServer<Impl>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    (CalcServer::new(Impl { gate: Arc::clone(&gate) }), gate)
}

/// A server of `router` on TCP and on a Unix socket, and a connection to each.
async fn serve_both(router: Router, dir: &std::path::Path) -> (ServerHandle, ServerHandle, Vec<Connection>) {
    let listener = tcp::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let path = dir.join("intro.sock");
    let server = Server::new(router);
    let a = server.serve(listener);
    let b = server.serve(unix::bind(&path).await.unwrap());
    let conns = vec![tcp::connect(addr).await.unwrap(), unix::connect(&path).await.unwrap()];
    (a, b, conns)
}

#[tokio::test]
async fn list_and_describe_report_what_the_server_hosts() {
    within(60, "list and describe", async {
        let dir = tempfile::tempdir().unwrap();
        let (svc, _gate) = calc();
        let (_a, _b, conns) = serve_both(Router::from(svc), dir.path()).await;
        for conn in conns {
            let intro = IntrospectionClient::new(conn);
            let services = intro.list().await.unwrap();
            let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["math.Calc", "rpc.Introspection"]);
            let methods: Vec<_> =
                services[0].methods.iter().map(|m| (m.name.as_str(), m.kind.as_str())).collect();
            assert_eq!(methods, [("add", "unary"), ("div", "unary"), ("wait", "unary")]);
            let local = CalcClient::descriptor().method("div").unwrap();
            assert_eq!(services[0].methods[1].signature_hash, local.signature_hash());

            let div = intro.describe("math.Calc".into(), Some("div".into())).await.unwrap().unwrap();
            assert_eq!(div.len(), 1);
            let div = &div[0];
            let args: Vec<_> = div.args.iter().map(|a| (a.name.as_str(), a.ty.wire.as_str())).collect();
            assert_eq!(args, [("a", "i64"), ("b", "i64")]);
            assert_eq!(div.result.wire, "enum{Ok:i64,Err:str}");
            assert!(div.result.rust.contains("Result<i64"), "{}", div.result.rust);
            assert_eq!(div.signature, "unary (i64,i64)->enum{Ok:i64,Err:str}");
            assert_eq!(div.signature_hash, local.signature_hash());

            let all = intro.describe("math.Calc".into(), None).await.unwrap().unwrap();
            assert_eq!(all.len(), 3);
            let err = intro.describe("math.Calc".into(), Some("mul".into())).await.unwrap().unwrap_err();
            assert!(err.contains("no method `mul`") && err.contains("add, div, wait"), "{err}");
            let err = intro.describe("Nope".into(), None).await.unwrap().unwrap_err();
            assert!(err.contains("math.Calc, rpc.Introspection"), "{err}");
        }
    })
    .await;
}

#[tokio::test]
async fn stats_count_calls_errors_cancellations_and_calls_in_flight() {
    within(60, "stats", async {
        let dir = tempfile::tempdir().unwrap();
        let (svc, gate) = calc();
        let (_a, _b, mut conns) = serve_both(Router::from(svc), dir.path()).await;
        let unix_conn = conns.pop().unwrap();
        let client = Client::new(conns.pop().unwrap());
        let calc = CalcClient::from_client(client.clone());
        for i in 0..10 {
            assert_eq!(calc.add(i, 1).await.unwrap(), i + 1);
        }
        // An application error is a successful call.
        assert!(calc.div(1, 0).await.unwrap().is_err());
        // Arguments that do not decode are a framework error.
        let mut bad = Call::new(&ADD, Format::Json, &b"[1, \"two\"]"[..]);
        bad.signature = 0;
        let e = tower::ServiceExt::oneshot(client.clone(), bad).await.unwrap_err();
        assert!(matches!(e, RpcError::Decode(_)), "{e:?}");

        // One call held in its handler: in flight, seen from the other socket.
        let held = tokio::spawn({
            let calc = calc.clone();
            async move { calc.wait().await }
        });
        let intro = IntrospectionClient::new(unix_conn);
        let wait_stats = loop {
            let s = intro.stats().await.unwrap();
            let wait = s.into_iter().find(|m| m.method == "wait").unwrap();
            if wait.in_flight == 1 {
                break wait;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!((wait_stats.calls, wait_stats.errors), (1, 0));
        gate.add_permits(1);
        assert_eq!(held.await.unwrap().unwrap(), 7);

        // A call its caller drops is cancelled on the server.
        let dropped = tokio::spawn({
            let calc = calc.clone();
            async move { calc.wait().await }
        });
        while wait_stats_now(&intro).await.in_flight == 0 {
            tokio::task::yield_now().await;
        }
        dropped.abort();
        loop {
            let wait = wait_stats_now(&intro).await;
            if wait.in_flight == 0 {
                assert_eq!((wait.calls, wait.errors, wait.cancelled), (2, 0, 1), "{wait:?}");
                break;
            }
            tokio::task::yield_now().await;
        }

        // A call whose deadline passes is stopped on the server.
        let e = calc.with_timeout(Duration::from_millis(50)).wait().await.unwrap_err();
        assert!(matches!(e, RpcError::DeadlineExceeded), "{e:?}");

        let stats = loop {
            let s = intro.stats().await.unwrap();
            let wait = s.iter().find(|m| m.method == "wait").unwrap();
            if wait.in_flight == 0 && wait.calls == 3 {
                break s;
            }
            tokio::task::yield_now().await;
        };
        let names: Vec<_> = stats.iter().map(|m| (m.service.as_str(), m.method.as_str())).collect();
        assert_eq!(names, [("math.Calc", "add"), ("math.Calc", "div"), ("math.Calc", "wait")]);
        let (add, div, wait) = (&stats[0], &stats[1], &stats[2]);
        assert_eq!((add.calls, add.errors, add.cancelled, add.in_flight), (11, 1, 0, 0), "{add:?}");
        assert_eq!((div.calls, div.errors, div.in_flight), (1, 0, 0), "{div:?}");
        // Stopped by the server at its deadline (an error) or by the client's cancel, whichever
        // came first.
        assert_eq!((wait.calls, wait.errors + wait.cancelled, wait.in_flight), (3, 2, 0), "{wait:?}");
        assert!(add.p50_us <= add.p90_us && add.p90_us <= add.p99_us, "{add:?}");
        // The held call waited for the test's next round trip at least; the cancelled one 50 ms.
        assert!(wait.p99_us >= 40_000, "{wait:?}");
    })
    .await;
}

async fn wait_stats_now(intro: &IntrospectionClient) -> rpc_runtime::introspection::MethodStatsSnapshot {
    intro.stats().await.unwrap().into_iter().find(|m| m.method == "wait").unwrap()
}

static ADD: MethodRef = MethodRef::dynamic("math.Calc", "add", rpc_runtime::describe::MethodKind::Unary, 0);

#[tokio::test]
async fn health_reports_serving_then_not_serving_then_shutting_down() {
    within(60, "health", async {
        let dir = tempfile::tempdir().unwrap();
        let (svc, gate) = calc();
        let router = Router::from(svc);
        let health = router.health().clone();
        let (a, _b, mut conns) = serve_both(router, dir.path()).await;
        let _unix = conns.pop().unwrap();
        let client = Client::new(conns.pop().unwrap());
        let intro = IntrospectionClient::from_client(client.clone());
        let status = intro.health().await.unwrap();
        assert!(status.serving);
        assert_eq!(status.status, "serving");

        health.set_serving(false);
        let status = intro.health().await.unwrap();
        assert_eq!((status.serving, status.status.as_str()), (false, "not serving"));
        health.set_serving(true);
        assert!(intro.health().await.unwrap().serving);

        // A call in flight keeps the connection open through the shutdown's grace period.
        let calc = CalcClient::from_client(client.clone());
        let held = tokio::spawn(async move { calc.wait().await });
        let intro_stats = IntrospectionClient::from_client(client.clone());
        while intro_stats.stats().await.unwrap().iter().all(|m| m.in_flight == 0) {
            tokio::task::yield_now().await;
        }
        let shutdown = tokio::spawn(async move { a.shutdown(Duration::from_secs(30)).await });
        while health.is_serving() {
            tokio::task::yield_now().await;
        }
        // In-process, the router says why; over the wire, a new call is refused.
        let e = loop {
            match intro.health().await {
                Err(e) => break e,
                Ok(s) => assert_eq!(s.status, "shutting down"),
            }
        };
        assert!(matches!(e, RpcError::ShuttingDown), "{e:?}");
        gate.add_permits(1);
        assert_eq!(held.await.unwrap().unwrap(), 7);
        shutdown.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_router_without_introspection_does_not_describe_itself() {
    within(60, "opt-out", async {
        let dir = tempfile::tempdir().unwrap();
        let (svc, _gate) = calc();
        let (_a, _b, conns) = serve_both(Router::from(svc).without_introspection(), dir.path()).await;
        for conn in conns {
            let client = Client::new(conn);
            let intro = IntrospectionClient::from_client(client.clone());
            let e = intro.list().await.unwrap_err();
            assert!(matches!(&e, RpcError::UnknownService(name) if name == "rpc.Introspection"), "{e:?}");
            let hello = client.server_hello().expect("the HELLO came before the error");
            let names: Vec<_> = hello.services().iter().map(|s| s.name()).collect();
            assert_eq!(names, ["math.Calc"]);
            // The service itself still answers.
            assert_eq!(CalcClient::from_client(client).add(2, 2).await.unwrap(), 4);
        }
    })
    .await;
}

#[tokio::test]
async fn a_router_without_stats_reports_none() {
    within(60, "no stats", async {
        let dir = tempfile::tempdir().unwrap();
        let (svc, _gate) = calc();
        let router = Router::new().without_stats().add_service(svc);
        let (_a, _b, mut conns) = serve_both(router.clone(), dir.path()).await;
        let client = Client::new(conns.pop().unwrap());
        assert_eq!(CalcClient::from_client(client.clone()).add(2, 2).await.unwrap(), 4);
        assert!(IntrospectionClient::from_client(client).stats().await.unwrap().is_empty());
        assert!(router.stats().is_empty());
    })
    .await;
}
