//! A sender's credit on one stream: how many more `ITEM`s it may send. The receiver grants it
//! (the HELLO's `stream_window` at first, then `CREDIT` frames as its consumer takes items); the
//! sending task takes one unit per item and waits when there is none.

use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// The largest credit a sender may hold: a grant past it is a `STREAM_PROTOCOL` error.
pub(crate) const MAX_CREDIT: u64 = u32::MAX as u64;

/// Credit shared by the reader of `CREDIT` frames and the task that sends items.
#[derive(Debug, Default)]
pub(crate) struct SendCredit {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    available: u64,
    waker: Option<Waker>,
    /// The stream ended: the sender sends no more.
    closed: bool,
}

/// A grant that would take the credit past [`MAX_CREDIT`].
#[derive(Debug)]
pub(crate) struct Overflow;

impl SendCredit {
    pub(crate) fn new(initial: u64) -> Self {
        SendCredit { state: Mutex::new(State { available: initial.min(MAX_CREDIT), ..State::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `n` items of credit.
    pub(crate) fn grant(&self, n: u64) -> Result<(), Overflow> {
        let waker = {
            let mut state = self.lock();
            let total = state.available.checked_add(n).filter(|t| *t <= MAX_CREDIT).ok_or(Overflow)?;
            state.available = total;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Ends the stream: a waiting sender wakes and gets `false`.
    pub(crate) fn close(&self) {
        let waker = {
            let mut state = self.lock();
            state.closed = true;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes one unit of credit (`true`), or says the stream ended (`false`).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.lock();
        if state.closed {
            return Poll::Ready(false);
        }
        if state.available > 0 {
            state.available -= 1;
            return Poll::Ready(true);
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits for one unit of credit; `false` if the stream ended first.
    pub(crate) async fn take(&self) -> bool {
        std::future::poll_fn(|cx| self.poll_take(cx)).await
    }
}

/// The half of a window a receiver waits to see consumed before granting it again, at least 1.
pub(crate) fn grant_batch(window: u64) -> u64 {
    (window / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credit_is_taken_granted_and_bounded() {
        let credit = SendCredit::new(2);
        assert!(credit.take().await && credit.take().await);
        let waker = futures::task::noop_waker();
        assert!(credit.poll_take(&mut Context::from_waker(&waker)).is_pending(), "no credit left");
        credit.grant(1).expect("fits");
        assert!(credit.take().await);
        assert!(credit.grant(MAX_CREDIT).is_ok(), "up to the maximum");
        assert!(credit.grant(1).is_err(), "past it");
        credit.close();
        assert!(!credit.take().await, "a closed stream sends no more");
        assert_eq!(grant_batch(16), 8);
        assert_eq!(grant_batch(1), 1);
    }
}
