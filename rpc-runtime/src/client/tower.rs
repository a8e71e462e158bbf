//! The client as a tower service of untyped [`Call`]s: the call seam's client side.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rpc_transport::framed::Frame;
use tokio::time::Instant;

use super::{finish, Client, Shared};
use crate::call::{Call, Reply};
use crate::describe::MethodKind;
use crate::{protocol, RpcError};

/// A [`Client`] is a `tower::Service<Call>`, so tower's layers (timeouts, retries, concurrency
/// limits, load balancing) wrap it, and generated clients run over the result through
/// [`Layered`](crate::Layered).
///
/// `poll_ready` fails once the connection can take no new calls (a fixed client whose
/// connection closed, or whose server said it is going away), so a balancer drops it; otherwise
/// it is ready, and a call waits inside its future for room in the connection's queue.
/// A call with no deadline gets the client's default timeout; one-way calls reply with an
/// empty body once sent.
impl tower_service::Service<Call> for Client {
    type Response = Reply;
    type Error = RpcError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, RpcError>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        match &self.link {
            super::Link::Fixed(shared) => match shared.in_flight.closed_reason() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Ready(Ok(())),
            },
            super::Link::Reconnecting(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.send_call(call).await })
    }
}

impl Client {
    /// Sends an untyped call: the tower path.
    async fn send_call(&self, mut call: Call) -> Result<Reply, RpcError> {
        if !self.metadata().is_empty() {
            call.metadata.extend(self.metadata().iter());
        }
        call.metadata.check()?;
        let deadline = call.deadline.or_else(|| self.deadline());
        let format = call.format;
        let encode = |shared: &Shared, id, deadline| encode_call(shared, id, &call, deadline);
        if call.kind == MethodKind::Oneway {
            self.send_only(deadline, encode).await?;
            return Ok(Reply { format, body: bytes::Bytes::new() });
        }
        let (_, body) = self.round_trip(deadline, encode).await?;
        Ok(Reply { format, body })
    }
}

fn encode_call(shared: &Shared, id: u64, call: &Call, deadline: Option<Instant>) -> Result<Frame, RpcError> {
    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let target = protocol::Target {
        service: call.service.as_bytes(),
        method: call.method.as_bytes(),
        kind: call.kind,
        hash: call.signature,
    };
    let mut buf = protocol::call_header(id, target, call.format, remaining, &call.metadata);
    buf.extend_from_slice(&call.body);
    finish(buf, shared.max_frame_len)
}
