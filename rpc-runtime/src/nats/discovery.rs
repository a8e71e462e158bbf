//! Discovery: the live instances of a service, from the NATS service API.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::service::Info;
use bytes::Bytes;
use futures::StreamExt;

use super::connection::NatsConnection;
use super::subject;
use crate::RpcError;

/// One live instance of a service, as it answered `$SRV.INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The instance's id in the service API (unique per registration).
    pub id: String,
    /// The version it reports.
    pub version: String,
    /// Its methods' names.
    pub methods: Vec<String>,
    /// The registration's metadata (`rpc.service`, `rpc.prefix`).
    pub metadata: HashMap<String, String>,
}

/// Lists the instances of `service` that answer within `window`, sorted by id: asks
/// `$SRV.INFO.{name}` and gathers the answers (the service API has no end-of-list marker, so the
/// whole window is waited for).
///
/// # Errors
///
/// [`RpcError::Unavailable`] when the connection is down; [`RpcError::ConnectionClosed`] if the
/// broker refused the subscription. Answers that are not the service API's JSON are skipped.
pub async fn instances(
    connection: &NatsConnection,
    service: &str,
    window: Duration,
) -> Result<Vec<Instance>, RpcError> {
    if !connection.is_connected() {
        return Err(connection.unavailable());
    }
    let client = connection.client();
    let inbox = client.new_inbox();
    let closed = |e: &dyn std::fmt::Display| RpcError::closed(format!("asking the NATS service API: {e}"));
    let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| closed(&e))?;
    let subject = format!("$SRV.INFO.{}", subject::registry_name(service));
    client.publish_with_reply(subject, inbox, Bytes::new()).await.map_err(|e| closed(&e))?;
    let mut found = Vec::new();
    let sleep = tokio::time::sleep(window);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            answer = answers.next() => match answer {
                Some(answer) if answer.status.is_none() => {
                    match serde_json::from_slice::<Info>(&answer.payload) {
                        // The name is shared by `a.b` and `a_b`; the metadata tells them apart.
                        Ok(info) if info.metadata.get("rpc.service").is_none_or(|s| s == service) => {
                            found.push(Instance {
                                id: info.id,
                                version: info.version,
                                methods: info.endpoints.into_iter().map(|e| e.name).collect(),
                                metadata: info.metadata,
                            });
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(target: "rpc_runtime::nats", "skipped a malformed INFO answer: {e}"),
                    }
                }
                // "No responders": nobody is registered under the name.
                Some(_) | None => break,
            },
            () = &mut sleep => break,
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}
