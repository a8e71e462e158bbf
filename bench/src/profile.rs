//! The `profile` subcommand: a fixed number of calls of one workload, for instruction counts.
//!
//! ```text
//! valgrind --tool=callgrind --trace-children=yes \
//!     target/release/rpc-bench profile ours window 20000 unix
//! ```
//!
//! The server runs in its child process as in the benchmark (callgrind follows it with
//! `--trace-children=yes`). Run twice with different counts and divide the difference in
//! instructions by the difference in calls to get instructions per call without the set-up.

use bytes::Bytes;

use crate::endpoint::{Impl, ServerProc, Transport};
use crate::floor;
use crate::suite::{check_small, drive, Caller, Conn, Until, LARGE, SMALL};

const USAGE: &str = "usage: rpc-bench profile floor|ours|tarpc seq|window|vec|buf CALLS [tcp|unix]";

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let (imp, workload, calls, transport) = match args {
        [imp, workload, calls] => (imp, workload, calls, "unix"),
        [imp, workload, calls, transport] => (imp, workload, calls, transport.as_str()),
        _ => return Err(USAGE.into()),
    };
    let imp = Impl::parse(imp)?;
    let transport = Transport::parse(transport)?;
    let calls: u64 = calls.parse().map_err(|_| USAGE.to_string())?;
    let workload = workload.clone();
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("rpc-bench-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let task_dir = dir.clone();
    let result = crate::suite::in_task(&rt, async move {
        let dir = task_dir;
        let server = ServerProc::spawn(imp, transport, &dir).await.map_err(|e| e.to_string())?;
        let mut conn = Conn::open(imp, &server).await.map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        run(&mut conn, &workload, calls).await?;
        eprintln!("{} {workload}: {calls} calls in {:?}", imp.name(), start.elapsed());
        drop(conn);
        server.stop().await;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(conn: &mut Conn, workload: &str, calls: u64) -> Result<(), String> {
    match conn {
        Conn::Floor(c) => tokio::task::block_in_place(|| {
            let request = match workload {
                "seq" => floor::frame(SMALL.len()),
                "vec" | "buf" => floor::frame(LARGE),
                "window" => {
                    c.pipeline(64, Until::Calls(calls)).map_err(|e| e.to_string())?;
                    return Ok(());
                }
                _ => return Err(USAGE.into()),
            };
            for _ in 0..calls {
                c.call(&request).map_err(|e| e.to_string())?;
            }
            Ok(())
        }),
        Conn::Ours(c) => run_caller(c, workload, calls).await,
        Conn::Tarpc(c) => run_caller(c, workload, calls).await,
    }
}

async fn run_caller<C: Caller>(c: &C, workload: &str, calls: u64) -> Result<(), String> {
    let mut vec = vec![7u8; LARGE];
    let mut buf = Bytes::from(vec![7u8; LARGE]);
    for _ in 0..calls {
        match workload {
            "seq" => check_small(c.echo16(SMALL).await),
            "vec" => vec = c.echo_vec(vec).await,
            "buf" => buf = c.echo_buf(buf).await,
            "window" => {
                drive(c.clone(), 64, Until::Calls(calls)).await;
                return Ok(());
            }
            _ => return Err(USAGE.into()),
        }
    }
    Ok(())
}
