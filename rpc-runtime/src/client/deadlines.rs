//! The connection's deadline timer: one timer for all of a connection's calls, not one each.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::time::Instant;

use super::in_flight::InFlight;

/// Runs `fut` (the reader) while failing the calls of `in_flight` whose deadline passes, each
/// at its deadline (to the timer's millisecond), as a timer per call would.
pub(super) async fn keep<F: Future>(in_flight: &InFlight, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    // Reset before it is first awaited; the initial instant is never used.
    let mut timer = pin!(tokio::time::sleep_until(Instant::now() + Duration::from_secs(86_400)));
    let mut armed = false;
    loop {
        let next = tokio::select! {
            out = &mut fut => return out,
            next = std::future::poll_fn(|cx| in_flight.poll_rearm(cx)) => next,
            () = &mut timer, if armed => in_flight.expire(Instant::now()),
        };
        armed = next.is_some();
        if let Some(at) = next {
            timer.as_mut().reset(at);
        }
    }
}
