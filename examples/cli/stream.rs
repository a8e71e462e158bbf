//! Streaming calls: results printed one JSON line each as they arrive, and a stream of arguments
//! read as JSON lines from stdin.
//!
//! Items travel untyped: the client speaks JSON, so a `serde_json::Value` encodes and decodes
//! as any item type would, and the server checks it against the method's own item type.

use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rpc_runtime::describe::MethodKind;
use rpc_runtime::{Client, MethodRef, RpcError, Streaming};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::run::{fail, rpc_failure};
use crate::{exit, Failure};

/// The longest stdin line read as one item: the client's largest frame, so a line that could
/// not be sent anyway is refused before it is buffered whole.
const MAX_LINE: usize = rpc_runtime::transport::framed::DEFAULT_MAX_FRAME_LEN;

/// Calls a streaming method with `args` (the arguments other than the stream): prints each
/// result until the stream ends (a server stream or bidi), or the one reply (a client stream).
pub(crate) async fn call(client: &Client, method: &MethodRef, args: &Value) -> Result<(), Failure> {
    let bad_line = Arc::new(Mutex::new(None));
    let upload = || stdin_items(Arc::clone(&bad_line));
    let outcome = match method.kind() {
        MethodKind::ClientStream => {
            match client.call_with_stream::<_, _, Value>(method, args, upload()).await {
                Ok(reply) => print(&reply).map(drop),
                Err(e) => Err(e),
            }
        }
        kind => {
            let upload = (kind == MethodKind::Bidi).then(upload);
            match client.open_stream::<_, _, Value>(method, args, upload).await {
                Ok(results) => follow(results).await,
                Err(e) => Err(e),
            }
        }
    };
    // A bad stdin line fails the call; its own message says more than the call's error.
    if let Some(message) = bad_line.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(fail(exit::USAGE, message));
    }
    outcome.map_err(|e| match e {
        RpcError::Decode(why) => {
            fail(exit::USAGE, format!("the server could not decode the arguments or an item: {why}"))
        }
        e => rpc_failure(e),
    })
}

/// Prints each result as it arrives, until `END` (Ok), an error, or stdout closing (Ok: the
/// reader is gone, as with `| head -3`; dropping the stream cancels the call).
async fn follow(mut results: Streaming<Value>) -> Result<(), RpcError> {
    while let Some(item) = results.next().await {
        if !print(&item?)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one JSON line and flushes it, so a reader sees each item as it arrives; `false` when
/// stdout is closed.
fn print(value: &Value) -> Result<bool, RpcError> {
    let mut out = std::io::stdout().lock();
    Ok(writeln!(out, "{value}").and_then(|()| out.flush()).is_ok())
}

/// stdin's lines as a stream of JSON items: one item a line, blank lines skipped, EOF ends the
/// stream. A line that is not JSON (or too long, or unreadable) ends the stream with an error,
/// which fails the call; its message goes to `bad_line`.
///
/// A thread of its own reads stdin, blocking: a read pending on Tokio's stdin would keep the
/// runtime from shutting down when the call ends first. The channel holds one line, so the
/// thread reads ahead of the server's credit by one item at most.
fn stdin_items(bad_line: Arc<Mutex<Option<String>>>) -> Streaming<Value> {
    let (tx, rx) = mpsc::channel::<Result<Value, String>>(1);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut line = Vec::new();
        for number in 1.. {
            line.clear();
            let read = (&mut stdin).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line);
            let item = match read {
                Ok(0) => return,
                Ok(_) if line.len() > MAX_LINE => {
                    Err(format!("stdin line {number} is longer than {MAX_LINE} bytes"))
                }
                Ok(_) if line.trim_ascii().is_empty() => continue,
                Ok(_) => serde_json::from_slice(&line)
                    .map_err(|e| format!("stdin line {number} is not valid JSON: {e}")),
                Err(e) => Err(format!("cannot read stdin: {e}")),
            };
            let last = item.is_err();
            if tx.blocking_send(item).is_err() || last {
                return;
            }
        }
    });
    let items = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Streaming::from_results(items.map(move |item| {
        item.map_err(|message| {
            *bad_line.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
            RpcError::Encode(message)
        })
    }))
}
