//! Captures the `tracing` events emitted on the current thread.
//!
//! With a current-thread runtime, the server's tasks log on the test's thread, so a
//! [`Captured`] installed at the start of a test sees why the server closed a connection.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{DefaultGuard, Interest};
use tracing::{Event, Level, Metadata, Subscriber};

/// The events captured so far, one line each: `LEVEL message key=value ...`.
#[derive(Debug, Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// A copy of every line.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether some line contains every one of `needles`.
    pub fn contains(&self, needles: &[&str]) -> bool {
        self.all().iter().any(|l| needles.iter().all(|n| l.contains(n)))
    }

    /// Panics unless some line contains every one of `needles`.
    pub fn assert_contains(&self, needles: &[&str]) {
        assert!(
            self.contains(needles),
            "no log line contains {needles:?}; the log was:\n{}",
            self.all().join("\n")
        );
    }
}

/// Installs a capturing subscriber for the current thread until dropped.
#[derive(Debug)]
pub struct Captured {
    /// The lines captured.
    pub lines: Lines,
    _guard: DefaultGuard,
}

/// Starts capturing the current thread's events.
pub fn capture() -> Captured {
    let lines = Lines::default();
    let guard = set_default(Capture { lines: lines.clone() });
    Captured { lines, _guard: guard }
}

/// `tracing::subscriber::set_default` for a test: `subscriber` is the current thread's until the
/// guard drops. Use this, not tracing's, in the suites.
///
/// Why: all suites share one process (`tests/all.rs`), and tracing caches each callsite's
/// interest process-wide. While a single dispatcher is registered, tracing computes a newly hit
/// callsite's interest from the *hitting thread's* default alone, so a span first reached by
/// another test's thread with no subscriber was cached as "never" and went missing from the
/// subscriber of the test that wanted it (seen as a missing `rpc.server` span). A global
/// [`Floor`], installed before the first scoped subscriber, makes every callsite's interest
/// "sometimes" (asked per span, of the current thread's subscriber) for good.
pub fn set_default<S>(subscriber: S) -> DefaultGuard
where
    S: Subscriber + Send + Sync + 'static,
{
    static FLOOR: std::sync::Once = std::sync::Once::new();
    FLOOR.call_once(|| {
        // Fails only if a global subscriber exists already, which then serves the same end.
        let _ = tracing::subscriber::set_global_default(Floor);
    });
    tracing::subscriber::set_default(subscriber)
}

/// The process-wide subscriber under the tests' scoped ones: interested in every callsite
/// "sometimes", enabling nothing itself, and no level (so with no scoped subscriber alive, the
/// runtime's cheap "tracing is off" check still holds).
#[derive(Debug)]
pub struct Floor;

impl Subscriber for Floor {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::OFF)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

struct Capture {
    lines: Lines,
}

/// Writes an event's fields as ` message key=value ...` into the string: one log line's text,
/// shared by the capture here and the attack harness's stderr logger.
#[derive(Debug, Default)]
pub struct Fields(pub String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let level = *event.metadata().level();
        let mut fields = Fields(String::from(match level {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        }));
        event.record(&mut fields);
        self.lines.0.lock().unwrap_or_else(|e| e.into_inner()).push(fields.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
