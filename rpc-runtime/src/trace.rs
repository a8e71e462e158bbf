//! A span per call on both sides, and W3C trace context carried across the wire in the call's
//! metadata, so the server's span is a child of the client's.
//!
//! Both spans are at `DEBUG` level, named `rpc.client` and `rpc.server`, with the fields
//! `rpc.service`, `rpc.method`, `trace_id`, `span_id`, `parent_span_id`, `outcome` (`ok`,
//! `error`, `stopped` when the call was dropped: cancelled, past its deadline or its connection
//! gone; `panicked` on the server), `error` (the error's text) and `duration_us`; the server's
//! also `peer` and `call_id`. When no subscriber wants them, a call pays one callsite check on
//! each side and nothing else.
//!
//! The client puts `traceparent: 00-{trace_id}-{span_id}-01` in the call's metadata; the server
//! takes the trace id from it, records the client's span id as `parent_span_id`, and puts its own
//! span's context in the handler's [`Context::metadata`](crate::Context::metadata), so calls the
//! handler makes continue the trace. A process that records no spans forwards the trace context
//! it was called with unchanged, so a trace crosses it.
//!
//! **OpenTelemetry** (cargo feature `opentelemetry`): with a `tracing-opentelemetry` layer
//! installed, `rpc.client` and `rpc.server` are exported as OpenTelemetry spans, the client sends
//! its exported span's ids, and the server's exported span is a child of the remote caller's, so
//! a trace joins across processes in any OpenTelemetry backend. Without the feature nothing of
//! OpenTelemetry is compiled in.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::{Handler, Metadata, RpcError};

/// The metadata key of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C trace context (`traceparent`): the trace a call belongs to and the span that made it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace's id (never 0).
    pub trace_id: u128,
    /// The id of the span that made the call (never 0).
    pub span_id: u64,
    /// Whether the caller records the trace (the `sampled` flag).
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace, with a random trace id and span id.
    pub fn new_root() -> TraceContext {
        TraceContext { trace_id: random_u128(), span_id: random_u64(), sampled: true }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext { span_id: random_u64(), ..*self }
    }

    /// Parses a `traceparent` value: `00-{32 hex}-{16 hex}-{2 hex}`. A later version's value is
    /// read by its first four fields, as the W3C specification asks; all-zero ids are invalid.
    pub fn parse(value: &str) -> Option<TraceContext> {
        let value = value.trim();
        let mut parts = value.split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len| {
            s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        Some(TraceContext { trace_id, span_id, sampled })
    }

    /// The context a call's metadata carries, if it carries a valid one.
    pub fn from_metadata(metadata: &Metadata) -> Option<TraceContext> {
        metadata.get(TRACEPARENT).and_then(TraceContext::parse)
    }

    /// The trace context of the call the current task is serving, if it has one.
    pub fn current() -> Option<TraceContext> {
        crate::context::Context::with_current(|c| TraceContext::from_metadata(c.metadata())).flatten()
    }

    /// Sets `traceparent` in `metadata` to this context, replacing any there.
    pub fn inject(&self, metadata: &mut Metadata) {
        metadata.remove(TRACEPARENT);
        metadata.insert(TRACEPARENT, self.to_string());
    }
}

/// The `traceparent` value.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

/// What the client side adds to a call: its span (disabled when nobody records it) and the
/// trace context to send.
pub(crate) struct ClientTrace {
    pub(crate) span: Span,
    pub(crate) context: TraceContext,
}

/// The client's span and trace context for a call of `service.method`, or `None` when there is
/// nothing to record or forward (the fast path: no span, no metadata).
#[inline]
pub(crate) fn client_call(service: &str, method: &str) -> Option<ClientTrace> {
    // Nothing anywhere wants DEBUG: skip the span (an atomic load decides), but still forward
    // a context this task inherited.
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return TraceContext::current().map(|context| ClientTrace { span: Span::none(), context });
    }
    client_call_recorded(service, method)
}

#[inline(never)]
fn client_call_recorded(service: &str, method: &str) -> Option<ClientTrace> {
    let span = tracing::debug_span!(
        "rpc.client",
        rpc.service = service,
        rpc.method = method,
        trace_id = Empty,
        span_id = Empty,
        parent_span_id = Empty,
        outcome = Empty,
        error = Empty,
        duration_us = Empty,
    );
    let inherited = TraceContext::current();
    if span.is_disabled() {
        // Forwarded unchanged: the trace crosses a process that records nothing.
        return inherited.map(|context| ClientTrace { span, context });
    }
    let context = continue_trace(&span, inherited, false);
    Some(ClientTrace { span, context })
}

/// The server's span for a call and its trace context, or `None` when nobody records it (the
/// handler's context then carries the caller's trace context unchanged).
fn server_call(
    service: &str,
    method: &str,
    peer: &dyn fmt::Display,
    call_id: u64,
    metadata: &Metadata,
) -> Option<(Span, TraceContext)> {
    let span = tracing::debug_span!(
        "rpc.server",
        rpc.service = service,
        rpc.method = method,
        peer = %peer,
        call_id,
        trace_id = Empty,
        span_id = Empty,
        parent_span_id = Empty,
        outcome = Empty,
        error = Empty,
        duration_us = Empty,
    );
    if span.is_disabled() {
        return None;
    }
    let context = continue_trace(&span, TraceContext::from_metadata(metadata), true);
    Some((span, context))
}

/// `handler` inside the server's span for its call, when one is recorded; `metadata` (what the
/// handler's context will carry) then gets the span's trace context, so the handler's own calls
/// continue the trace from it.
#[inline]
pub(crate) fn traced_handler(
    handler: Handler,
    peer: &dyn fmt::Display,
    call_id: u64,
    metadata: &mut Metadata,
) -> Handler {
    // Nothing anywhere wants DEBUG: the handler as it is, not even moved through a call.
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return handler;
    }
    traced_handler_recorded(handler, peer, call_id, metadata)
}

#[inline(never)]
fn traced_handler_recorded(
    handler: Handler,
    peer: &dyn fmt::Display,
    call_id: u64,
    metadata: &mut Metadata,
) -> Handler {
    match server_call(handler.service, handler.method, peer, call_id, metadata) {
        None => handler,
        Some((span, context)) => {
            context.inject(metadata);
            handler.map_future(|future| recorded(span, future))
        }
    }
}

/// The trace context `span` carries: a child of `parent` (recorded as its `parent_span_id`; for a
/// `remote` parent, also its OpenTelemetry parent), or a new trace. With an OpenTelemetry layer,
/// the ids it exports the span with win, since they are what the other side must continue.
fn continue_trace(span: &Span, parent: Option<TraceContext>, remote: bool) -> TraceContext {
    let context = match parent {
        Some(parent) => {
            span.record("parent_span_id", tracing::field::display(format_args!("{:016x}", parent.span_id)));
            #[cfg(feature = "opentelemetry")]
            if remote {
                otel::set_parent(span, &parent);
            }
            parent.child()
        }
        None => TraceContext::new_root(),
    };
    #[cfg(not(feature = "opentelemetry"))]
    let _ = remote;
    #[cfg(feature = "opentelemetry")]
    let context = otel::context_of(span).unwrap_or(context);
    record_ids(span, &context);
    context
}

fn record_ids(span: &Span, context: &TraceContext) {
    span.record("trace_id", tracing::field::display(format_args!("{:032x}", context.trace_id)));
    span.record("span_id", tracing::field::display(format_args!("{:016x}", context.span_id)));
}

/// Runs `fut` inside `span` and records its outcome and duration there, or `stopped` if it is
/// dropped before it finishes.
pub(crate) async fn recorded<T, F>(span: Span, fut: F) -> Result<T, RpcError>
where
    F: Future<Output = Result<T, RpcError>>,
{
    let mut outcome = Outcome { span: span.clone(), start: tokio::time::Instant::now(), done: false };
    let result = fut.instrument(span).await;
    outcome.finish(result.as_ref().err());
    result
}

/// Records a call's end on its span, also when the call is dropped or panics.
struct Outcome {
    span: Span,
    start: tokio::time::Instant,
    done: bool,
}

impl Outcome {
    fn finish(&mut self, error: Option<&RpcError>) {
        self.done = true;
        match error {
            None => self.span.record("outcome", "ok"),
            Some(e) => self.span.record("outcome", "error").record("error", tracing::field::display(e)),
        };
        self.record_duration();
    }

    fn record_duration(&self) {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.span.record("duration_us", micros);
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.done {
            let outcome = if std::thread::panicking() { "panicked" } else { "stopped" };
            self.span.record("outcome", outcome);
            self.record_duration();
        }
    }
}

/// With feature `opentelemetry`: the spans above are also OpenTelemetry spans when the program
/// installs a `tracing-opentelemetry` layer, and their OpenTelemetry ids are the ones that travel.
#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    /// The OpenTelemetry context of `span`, if an OpenTelemetry layer gave it one.
    pub(super) fn context_of(span: &Span) -> Option<TraceContext> {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| TraceContext {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            sampled: sc.is_sampled(),
        })
    }

    /// Makes the caller's span (in another process) the OpenTelemetry parent of `span`.
    pub(super) fn set_parent(span: &Span, parent: &TraceContext) {
        let flags = if parent.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.span_id.to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        // Fails only without an OpenTelemetry layer, when there is nothing to link.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

/// A per-thread seed from the standard library's randomly keyed hasher.
fn seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish() | 1
}

/// A nonzero random number (xorshift64*): ids need to be unique, not unpredictable.
fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d).max(1)
    })
}

fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_the_specification_rejects() {
        let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.span_id, 0x00f067aa0ba902b7);
        assert!(context.sampled);
        assert_eq!(context.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        // A later version with more fields is read by its first four.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra").is_some()
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_takes_a_new_span() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_ne!(TraceContext::new_root().trace_id, root.trace_id);
    }
}
