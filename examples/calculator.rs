//! The main example: a calculator service, served and called over TCP.
//!
//! ```text
//! cargo run -p rpc-examples --example calculator
//! ```
//!
//! Runs the server in this process on an ephemeral port, connects a client to it over a real
//! TCP socket, makes a few calls (including many at once and an application error) and prints
//! the results.
//!
//! With `serve ADDR` it is only the server, on `tcp:HOST:PORT` (port 0 picks one), `unix:PATH`
//! or `fifo:PATH` (`--without-introspection` after it leaves out the built-in `rpc.Introspection`
//! service); it prints `listening on ADDR` (the address bound) and serves until Ctrl-C,
//! for the `rpc` command-line caller and the Python peer (`examples/python/calc_client.py`):
//!
//! ```text
//! cargo run -p rpc-examples --example calculator -- serve tcp:127.0.0.1:4000
//! cargo run -p rpc-examples --bin rpc -- call tcp:127.0.0.1:4000 Calculator.add '[1, 2]'
//! python3 examples/python/calc_client.py tcp:127.0.0.1:4000
//! ```

use std::time::Duration;

use futures::StreamExt;
use rpc_examples::addr::Addr;
use rpc_runtime::transport::tcp;
use rpc_runtime::{service, Router, Server, Streaming};
use serde::{Deserialize, Serialize};

/// Why a division failed.
#[derive(Debug, Serialize, Deserialize)]
pub enum MathError {
    /// The divisor was zero.
    DivisionByZero,
}

/// A calculator.
#[service]
pub trait Calculator {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides `a` by `b`; dividing by zero is an application error.
    async fn div(&self, a: i64, b: i64) -> Result<i64, MathError>;
    /// Sums a list.
    async fn sum(&self, values: Vec<i64>) -> i64;
    /// Writes a line to the server's log; the client does not wait.
    #[oneway]
    async fn log(&self, line: String);
    /// Waits `ms` milliseconds, then returns them (to try deadlines with).
    async fn sleep(&self, ms: u64) -> u64;
    /// Counts from 1 to `to`, one number every `every_ms` milliseconds (the first at once): a
    /// stream of results to follow.
    async fn count(&self, to: u64, every_ms: u64) -> Streaming<u64>;
    /// Sums a stream of numbers: a stream of arguments, one result.
    async fn sum_stream(&self, values: Streaming<i64>) -> Result<i64, String>;
    /// The running total of a stream of numbers, one result per number.
    async fn running_sum(&self, values: Streaming<i64>) -> Streaming<i64>;
}

struct Calc;

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn div(&self, a: i64, b: i64) -> Result<i64, MathError> {
        a.checked_div(b).ok_or(MathError::DivisionByZero)
    }

    async fn sum(&self, values: Vec<i64>) -> i64 {
        values.iter().sum()
    }

    async fn log(&self, line: String) {
        eprintln!("[server] {line}");
    }

    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    async fn count(&self, to: u64, every_ms: u64) -> Streaming<u64> {
        let every = Duration::from_millis(every_ms);
        Streaming::new(futures::stream::iter(1..=to).then(move |n| async move {
            if n > 1 {
                tokio::time::sleep(every).await;
            }
            n
        }))
    }

    async fn sum_stream(&self, mut values: Streaming<i64>) -> Result<i64, String> {
        let mut sum = 0i64;
        while let Some(value) = values.next().await {
            let value = value.map_err(|e| e.to_string())?;
            sum = sum.checked_add(value).ok_or("the sum overflows i64")?;
        }
        Ok(sum)
    }

    async fn running_sum(&self, values: Streaming<i64>) -> Streaming<i64> {
        Streaming::from_results(values.scan(0i64, |total, v| {
            std::future::ready(Some(v.map(|v| {
                *total += v;
                *total
            })))
        }))
    }
}

/// `serve ADDR`: the server alone, until Ctrl-C; `private` leaves out the built-in
/// introspection service.
async fn serve(addr: &str, private: bool) -> Result<(), Box<dyn std::error::Error>> {
    let addr = Addr::parse(addr)?;
    let mut router = Router::from(CalculatorServer::new(Calc));
    if private {
        router = router.without_introspection();
    }
    let (server, bound) = addr.serve(router).await?;
    println!("listening on {bound}");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = server.wait() => {}
    }
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    rpc_examples::logs::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [cmd, addr] if cmd == "serve" => return serve(addr, false).await,
        [cmd, addr, private] if cmd == "serve" && private == "--without-introspection" => {
            return serve(addr, true).await
        }
        _ => {
            return Err(
                "usage: calculator [serve tcp:HOST:PORT|unix:PATH|fifo:PATH [--without-introspection]]"
                    .into(),
            )
        }
    }
    let listener = tcp::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr();
    let server = Server::new(CalculatorServer::new(Calc)).serve(listener);
    println!("server listening on {addr}");

    let client = CalculatorClient::new(tcp::connect(addr).await?);
    client.log("a client connected".into()).await?;
    println!("add(1, 2)      = {}", client.add(1, 2).await?);
    println!("div(84, 2)     = {:?}", client.div(84, 2).await?);
    println!("div(1, 0)      = {:?}", client.div(1, 0).await?);

    // Many calls at once, multiplexed on the one connection.
    let calls = (0..100).map(|i| {
        let client = client.clone();
        async move { client.add(i, i).await }
    });
    let results = futures_join_all(calls).await?;
    println!("100 concurrent adds, sum of results = {}", results.iter().sum::<i64>());
    println!("sum(1..=10)    = {}", client.sum((1..=10).collect()).await?);

    server.shutdown(Duration::from_secs(5)).await;
    println!("server shut down");
    Ok(())
}

/// Awaits every future, concurrently, failing on the first error.
async fn futures_join_all<F, T, E>(futures: impl IntoIterator<Item = F>) -> Result<Vec<T>, E>
where
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task panicked")?);
    }
    Ok(out)
}
