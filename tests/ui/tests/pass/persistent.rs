//! `#[rpc(persistent)]` methods (unary, one-way, with a `Result`) get a typed queue client,
//! `MailerQueue`, over any `PersistentQueue`; methods without the mark get none.
#![deny(warnings)]

use std::time::Duration;

use rpc_runtime::queued::{CallState, PersistentQueue, QueuedCall};
use rpc_runtime::{service, RpcError};

#[service]
pub trait Mailer {
    /// Sends a mail; returns its number.
    #[rpc(persistent)]
    async fn send(&self, to: String, body: Vec<u8>) -> u64;
    /// Forgets an address.
    #[oneway]
    #[rpc(persistent)]
    async fn forget(&self, to: String);
    /// Checks an address.
    #[rpc(persistent, idempotent)]
    async fn check(&self, to: String) -> Result<bool, String>;
    /// Not persistent: no `submit_count`.
    async fn count(&self) -> u64;
}

async fn uses<Q: PersistentQueue>(queue: Q) -> Result<(), RpcError> {
    let mailer = MailerQueue::new(queue).with_timeout(Duration::from_secs(60));
    let sent: QueuedCall<u64> = mailer.submit_send("ann".into(), vec![1]).await?;
    let _: QueuedCall<()> = mailer.submit_forget_with_id("forget-ann", "ann".into()).await?;
    let checked: QueuedCall<Result<bool, String>> = mailer.resume_check(sent.id());
    if let CallState::Done(Ok(Ok(true))) = checked.wait(Duration::from_secs(1)).await? {}
    let _ = mailer.queue_client();
    Ok(())
}

pub fn main() {
    let _ = uses::<std::sync::Arc<dyn PersistentQueue>>;
}
