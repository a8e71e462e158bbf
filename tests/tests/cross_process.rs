//! Cases that need separate processes: a server child killed mid-call, many client processes on
//! one FIFO listener, and a FIFO client that dies without closing.

use std::process::Stdio;
use std::time::Duration;

use rpc_runtime::transport::fifo;
use rpc_runtime::{RpcError, Server};
use rpc_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_call_fails_every_pending_call() {
    let mut f = start(Transport::PipeChild).await;
    let calls: Vec<_> = (0..20)
        .map(|tag| {
            let client = f.client.with_timeout(None);
            tokio::spawn(async move { client.hang(tag).await })
        })
        .collect();
    for _ in 0..20 {
        guard("calls start in the child", f.client.next_started()).await.unwrap();
    }
    let mut child = f.child.take().expect("a child");
    let pid = child.pid();
    child.start_kill().unwrap(); // SIGKILL
    for call in calls {
        let result = guard("pending call", call).await.unwrap();
        assert!(matches!(result, Err(RpcError::ConnectionClosed(_))), "{result:?}");
    }
    assert_eq!(f.client.as_client().in_flight(), 0);
    let later = guard("a call after the child died", f.client.add(1, 2)).await;
    assert!(matches!(later, Err(RpcError::ConnectionClosed(_))), "new calls fail fast: {later:?}");
    let status = guard("reap", child.wait()).await.unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the child was reaped, not left a zombie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_client_processes_share_one_fifo_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.fifo");
    let server = Server::new(KitchenServer::new(KitchenImpl::new())).serve(fifo::bind(&path).await.unwrap());
    let clients: Vec<_> = (1..=5u64)
        .map(|seed| {
            tokio::process::Command::new(kitchen_peer())
                .args(["fifo-client", path.to_str().unwrap(), &seed.to_string()])
                .kill_on_drop(true)
                .spawn()
                .expect("spawn a fifo client")
        })
        .collect();
    for mut client in clients {
        let status = guard("client process", client.wait()).await.unwrap();
        assert!(status.success(), "a client process saw a wrong or failed result: {status}");
    }
    guard("shutdown", server.shutdown(Duration::from_secs(5))).await;
    assert!(!path.exists(), "the well-known FIFO is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_client_that_vanishes_does_not_break_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vanish.fifo");
    let _server = Server::new(KitchenServer::new(KitchenImpl::new())).serve(fifo::bind(&path).await.unwrap());
    let mut doomed = tokio::process::Command::new(kitchen_peer())
        .args(["fifo-hang", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(doomed.stdout.take().unwrap());
    guard("the doomed client's call starts", out.read_line(&mut line)).await.unwrap();
    assert_eq!(line.trim(), "ready");
    doomed.start_kill().unwrap(); // no close, no goodbye
    guard("reap", doomed.wait()).await.unwrap();

    // Other clients, old and new, are served as before.
    let client = KitchenClient::new(fifo::connect(&path).await.unwrap());
    assert_eq!(client.add(20, 22).await.unwrap(), 42);
    // The server saw the dead client's FIFO hit end-of-stream and dropped its handler.
    assert_eq!(guard("the vanished client's handler is dropped", client.next_dropped()).await.unwrap(), 1);
    let mut another = tokio::process::Command::new(kitchen_peer())
        .args(["fifo-client", path.to_str().unwrap(), "9"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(guard("another client process", another.wait()).await.unwrap().success());
}
