//! The map of calls awaiting a response, keyed by request id.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::RpcError;

pub(crate) type Reply = Result<Bytes, RpcError>;

/// Pending calls, plus whether the connection can still take new ones.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
    /// Woken when the connection closes or starts refusing calls.
    unusable: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set when the connection died: every new call fails with this at once.
    closed: Option<RpcError>,
    /// Set when the server said goaway: new calls fail with this, pending ones carry on.
    refusing: Option<RpcError>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated (each operation is a
        // single insert or remove), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call, unless the connection is closed or refusing new calls.
    pub(crate) fn register(&self, id: u64) -> Result<oneshot::Receiver<Reply>, RpcError> {
        let mut state = self.lock();
        if let Some(err) = state.closed.as_ref().or(state.refusing.as_ref()) {
            return Err(err.clone());
        }
        let (tx, rx) = oneshot::channel();
        state.pending.insert(id, tx);
        Ok(rx)
    }

    /// Delivers a reply; `false` if no call with that id is waiting (it gave up, or the id is
    /// bogus), in which case the reply is dropped.
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        let tx = self.lock().pending.remove(&id);
        match tx {
            Some(tx) => {
                let _ = tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Forgets a call that gave up; returns whether it was still pending.
    pub(crate) fn remove(&self, id: u64) -> bool {
        self.lock().pending.remove(&id).is_some()
    }

    /// Fails every pending call and every later one with `err`.
    pub(crate) fn close(&self, err: RpcError) {
        let (err, pending) = {
            let mut state = self.lock();
            // A server that refused the whole connection (connection limit) started none of its
            // calls: say so, whatever error the teardown itself produced.
            let err = match &state.refusing {
                Some(refused @ RpcError::Overloaded(_)) => refused.clone(),
                _ => err,
            };
            // The first cause wins: later errors are consequences of it.
            let err = state.closed.get_or_insert(err).clone();
            (err, std::mem::take(&mut state.pending))
        };
        for (_, tx) in pending {
            let _ = tx.send(Err(err.clone()));
        }
        self.unusable.notify_waiters();
    }

    /// Refuses later calls with `err`; pending ones still get their responses.
    pub(crate) fn refuse_new(&self, err: RpcError) {
        self.lock().refusing.get_or_insert(err);
        self.unusable.notify_waiters();
    }

    /// Waits until new calls can no longer use this connection, and says why.
    pub(crate) async fn unusable(&self) -> RpcError {
        loop {
            let notified = self.unusable.notified();
            if let Some(reason) = self.closed_reason() {
                return reason;
            }
            notified.await;
        }
    }

    /// Why the connection is unusable, if it is.
    pub(crate) fn closed_reason(&self) -> Option<RpcError> {
        let state = self.lock();
        state.closed.clone().or_else(|| state.refusing.clone())
    }

    /// How many calls await a response.
    pub(crate) fn len(&self) -> usize {
        self.lock().pending.len()
    }
}
