//! Captures closed `tracing` spans with their fields: how the tracing tests see the spans of
//! two processes (the server prints its spans as [`Closed::line`]s; the test parses them).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// A span that has closed: its name and its fields' last values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The span's name (`rpc.client`, `rpc.server`).
    pub name: String,
    /// Its fields, as text.
    pub fields: HashMap<String, String>,
}

impl Closed {
    /// The value of field `name`, or "" if it was never recorded.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// One line: `SPAN name key=value ...` (values contain no spaces but for `error`, which is
    /// last).
    pub fn line(&self) -> String {
        let mut line = format!("SPAN {}", self.name);
        let mut keys: Vec<_> = self.fields.keys().filter(|k| *k != "error").collect();
        keys.sort();
        for key in keys {
            let _ = write!(line, " {key}={}", self.fields[key]);
        }
        if let Some(error) = self.fields.get("error") {
            let _ = write!(line, " error={error}");
        }
        line
    }

    /// Parses a [`line`](Self::line); `None` for any other line.
    pub fn parse(line: &str) -> Option<Closed> {
        let rest = line.strip_prefix("SPAN ")?;
        let (head, error) = match rest.split_once(" error=") {
            Some((head, error)) => (head, Some(error)),
            None => (rest, None),
        };
        let mut words = head.split_whitespace();
        let name = words.next()?.to_owned();
        let mut fields: HashMap<String, String> =
            words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        if let Some(error) = error {
            fields.insert("error".into(), error.to_owned());
        }
        Some(Closed { name, fields })
    }
}

/// What a [`SpanCapture`] does with each closed span.
type Sink = Box<dyn Fn(Closed) + Send + Sync>;

/// A subscriber that keeps every span's fields and hands each span to a sink when it closes.
pub struct SpanCapture {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (Closed, usize)>>,
    sink: Sink,
}

impl fmt::Debug for SpanCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanCapture").finish_non_exhaustive()
    }
}

impl SpanCapture {
    /// Hands each closed span to `sink`.
    pub fn new(sink: impl Fn(Closed) + Send + Sync + 'static) -> SpanCapture {
        SpanCapture { next: AtomicU64::new(1), open: Mutex::new(HashMap::new()), sink: Box::new(sink) }
    }

    /// Collects closed spans into the returned list.
    pub fn collect() -> (SpanCapture, Arc<Mutex<Vec<Closed>>>) {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        (SpanCapture::new(move |span| sink.lock().unwrap().push(span)), spans)
    }

    /// Prints each closed span as a line on standard output.
    pub fn print() -> SpanCapture {
        SpanCapture::new(|span| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", span.line());
            let _ = out.flush();
        })
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for SpanCapture {
    // `sometimes`: the subscriber is often a thread's default, and `always` would be cached on
    // the callsite for every thread, making spans on threads with no subscriber look enabled.
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut closed = Closed { name: attributes.metadata().name().to_owned(), fields: HashMap::new() };
        attributes.record(&mut Fields(&mut closed.fields));
        self.open.lock().unwrap().insert(id, (closed, 1));
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((closed, _)) = self.open.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut closed.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}

    fn clone_span(&self, span: &Id) -> Id {
        if let Some((_, refs)) = self.open.lock().unwrap().get_mut(&span.into_u64()) {
            *refs += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let closed = {
            let mut open = self.open.lock().unwrap();
            let id = span.into_u64();
            match open.get_mut(&id) {
                Some((_, refs)) if *refs > 1 => {
                    *refs -= 1;
                    None
                }
                Some(_) => open.remove(&id).map(|(closed, _)| closed),
                None => None,
            }
        };
        match closed {
            Some(closed) => {
                (self.sink)(closed);
                true
            }
            None => false,
        }
    }
}
