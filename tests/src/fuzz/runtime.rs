//! One paused-time runtime per fuzzing thread, reused from one input to the next.
//!
//! Building a Tokio runtime (its timer wheel, its I/O driver's epoll descriptor and wakers) cost
//! a large share of each execution of the connection targets. An input starts on the runtime the
//! last one left only if that one left no task behind; otherwise the runtime is rebuilt, so no
//! input can see another's tasks.

use std::cell::RefCell;
use std::future::Future;

use tokio::runtime::{Builder, Runtime};

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Runs `future` to completion on this thread's fuzzing runtime (current-thread, paused time).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    let rt = RUNTIME.with(|slot| slot.borrow_mut().take()).unwrap_or_else(build);
    let out = rt.block_on(future);
    if rt.metrics().num_alive_tasks() == 0 {
        RUNTIME.with(|slot| *slot.borrow_mut() = Some(rt));
    }
    out
}

fn build() -> Runtime {
    Builder::new_current_thread().enable_all().start_paused(true).build().expect("a fuzzing runtime")
}
