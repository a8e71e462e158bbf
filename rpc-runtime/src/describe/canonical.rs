//! The canonical text of a traced shape: what the signature hash is computed over.
//!
//! The text names wire shapes, never Rust names: containers are inlined, a newtype struct is
//! its content, a tuple struct is a tuple, a byte buffer is `seq<u8>` (postcard and JSON both
//! write these alike). A container that contains itself is labelled `#N=` where it starts and
//! referred to as `@N` inside. The grammar is in `docs/signatures.md`.

use super::trace::{Body, Shape, Trace};

/// Renders `root` as canonical text.
pub(crate) fn render(root: &Shape, trace: &Trace) -> String {
    // First pass: which containers refer back to themselves (they need a label).
    let mut first = Renderer {
        trace,
        stack: Vec::new(),
        recursive: Vec::new(),
        labels: 0,
        emit: false,
        out: String::new(),
    };
    first.shape(root);
    let mut second = Renderer {
        trace,
        stack: Vec::new(),
        recursive: first.recursive,
        labels: 0,
        emit: true,
        out: String::new(),
    };
    second.shape(root);
    second.out
}

struct Renderer<'a> {
    trace: &'a Trace,
    /// Containers being rendered, with their label if they have one.
    stack: Vec<(usize, Option<usize>)>,
    recursive: Vec<usize>,
    labels: usize,
    /// False on the first pass, which only finds recursion.
    emit: bool,
    out: String,
}

impl Renderer<'_> {
    fn push(&mut self, s: &str) {
        if self.emit {
            self.out.push_str(s);
        }
    }

    fn shape(&mut self, shape: &Shape) {
        match shape {
            // Only inside a cut-short recursive reference, which is never rendered.
            Shape::Unknown => self.push("?"),
            Shape::Primitive("bytes") => self.push("seq<u8>"),
            Shape::Primitive(name) => self.push(name),
            Shape::Option(s) => self.wrapped("option<", s, ">"),
            Shape::Seq(s) => self.wrapped("seq<", s, ">"),
            Shape::Map(k, v) => {
                self.push("map<");
                self.shape(k);
                self.push(",");
                self.shape(v);
                self.push(">");
            }
            Shape::Tuple(items) => self.tuple(items),
            Shape::Named(id) => self.container(*id),
        }
    }

    fn wrapped(&mut self, open: &str, inner: &Shape, close: &str) {
        self.push(open);
        self.shape(inner);
        self.push(close);
    }

    /// `(a,b)`, or `[a;N]` when all `N >= 2` elements render alike (an array is a tuple on
    /// the wire, and so is a tuple of types that differ only in their names).
    fn tuple(&mut self, items: &[Shape]) {
        let start = self.out.len();
        self.push("(");
        let mut spans = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(",");
            }
            let from = self.out.len();
            self.shape(item);
            spans.push(from..self.out.len());
        }
        if items.len() == 1 {
            self.push(",");
        }
        self.push(")");
        let first = spans.first().map(|r| &self.out[r.clone()]);
        if self.emit && items.len() >= 2 && spans.iter().all(|r| Some(&self.out[r.clone()]) == first) {
            let element = self.out[spans[0].clone()].to_owned();
            self.out.truncate(start);
            self.out.push_str(&format!("[{element};{}]", items.len()));
        }
    }

    fn container(&mut self, id: usize) {
        if let Some(&(_, label)) = self.stack.iter().rev().find(|(open, _)| *open == id) {
            match label {
                Some(label) => self.push(&format!("@{label}")),
                None => {
                    if !self.recursive.contains(&id) {
                        self.recursive.push(id);
                    }
                }
            }
            return;
        }
        let label = if self.emit && self.recursive.contains(&id) {
            let label = self.labels;
            self.labels += 1;
            self.push(&format!("#{label}="));
            Some(label)
        } else {
            None
        };
        self.stack.push((id, label));
        match &self.trace.containers[id].body {
            Some(body) => self.body(body),
            None => self.push("?"),
        }
        self.stack.pop();
    }

    fn body(&mut self, body: &Body) {
        match body {
            Body::Unit => self.push("unit"),
            Body::Newtype(s) => self.shape(s),
            Body::Tuple(items) => self.tuple(items),
            Body::Struct(fields) => {
                self.push("{");
                for (i, (name, s)) in fields.iter().enumerate() {
                    if i > 0 {
                        self.push(",");
                    }
                    self.push(name);
                    self.push(":");
                    self.shape(s);
                }
                self.push("}");
            }
            Body::Enum(variants) => {
                self.push("enum{");
                for (i, (name, content)) in variants.iter().enumerate() {
                    if i > 0 {
                        self.push(",");
                    }
                    self.push(name);
                    match content {
                        Some(Body::Unit) => {}
                        Some(body) => {
                            self.push(":");
                            self.body(body);
                        }
                        None => self.push(":?"),
                    }
                }
                self.push("}");
            }
        }
    }
}
