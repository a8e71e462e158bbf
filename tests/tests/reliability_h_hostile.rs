//! Reliability cases H1–H8: hostile peers at scale, the resources an attacker can pin cheaply
//! with many connections or slow ones (RELIABILITY.md section H; the rules are in
//! docs/reliability.md).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use rpc_runtime::transport::{tcp, unix};
use rpc_runtime::Server;
use rpc_tests::alloc::CountingAlloc;
use rpc_tests::probe::{ProbeClient, ProbeImpl, ProbeServer};
use rpc_tests::within;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Connects to `addr`, sets `SO_LINGER {1, 0}` and closes: the kernel answers with a reset, and
/// the server-side socket is reset before (or while) the server accepts it.
fn reset_connect(addr: SocketAddr) {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt(2) on a descriptor we own, with a pointer to a live `linger` of the
    // size we pass.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(stream);
}

/// Resets `n` connections to `addr` from a blocking thread.
async fn reset_burst(addr: SocketAddr, n: usize) {
    tokio::task::spawn_blocking(move || (0..n).for_each(|_| reset_connect(addr))).await.expect("burst");
}

/// An honest client on a new connection makes a call: the server still accepts and serves.
async fn assert_tcp_serves(addr: SocketAddr, n: u64) {
    let conn = within(30, "an honest connect", tcp::connect(addr)).await.expect("honest connect");
    let client = ProbeClient::new(conn);
    assert_eq!(within(30, "an honest call", client.add(n, 1)).await.expect("honest call"), n + 1);
}

/// H1: connections reset before the server accepts them (`peer_addr()` then fails with
/// `ENOTCONN`) are skipped, one by one; the listener keeps accepting. 100 such connections wait
/// in the accept queue before the server starts, then a burst of 2,000 arrives while it serves,
/// with an honest client connecting and calling after every 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_tcp_connections_reset_before_accept_are_skipped() {
    let listener = tcp::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr();
    reset_burst(addr, 100).await;
    let handle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);
    assert_tcp_serves(addr, 0).await;
    for round in 1..=20 {
        reset_burst(addr, 100).await;
        assert_tcp_serves(addr, round).await;
    }
    assert!(!handle.is_shutting_down());
    within(30, "shutdown", handle.shutdown(std::time::Duration::from_secs(1))).await;
}

/// H1 over a Unix socket: peers that connect and close before the server accepts them are
/// skipped the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_unix_peers_gone_before_accept_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s");
    let listener = unix::bind(&path).await.expect("bind");
    let gone = |path: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                drop(std::os::unix::net::UnixStream::connect(&path).expect("connect"));
            }
        })
        .await
        .expect("burst")
    };
    gone(path.clone()).await;
    let handle = Server::new(ProbeServer::new(ProbeImpl::default())).serve(listener);
    for round in 0..10u64 {
        gone(path.clone()).await;
        let client = ProbeClient::new(within(30, "connect", unix::connect(&path)).await.expect("connect"));
        assert_eq!(within(30, "an honest call", client.add(round, 1)).await.expect("call"), round + 1);
    }
    within(30, "shutdown", handle.shutdown(std::time::Duration::from_secs(1))).await;
}
