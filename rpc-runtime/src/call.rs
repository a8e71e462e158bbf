//! The untyped call both sides speak: what a generated client sends through a
//! [`Channel`](crate::Channel), what middleware sees, and what a broker carries.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use tokio::time::Instant;

use crate::codec::Format;
use crate::describe::{MethodKind, ServiceDescriptor};
use crate::Metadata;

/// One call, its arguments already encoded: the request half of the call seam.
///
/// A tower [`Service<Call>`](tower_service::Service) (a [`Client`](crate::Client), or one
/// wrapped in layers) carries it; a [`Router`](crate::Router) answers it in-process.
#[derive(Debug, Clone)]
pub struct Call {
    /// The service's wire name (`#[service(name = "...")]`, the trait's name by default).
    pub service: Cow<'static, str>,
    /// The method's wire name.
    pub method: Cow<'static, str>,
    /// How the method exchanges messages.
    pub kind: MethodKind,
    /// The format `body` is encoded in; the reply comes back in the same one.
    pub format: Format,
    /// The caller's signature hash of the method, or 0 to skip the check (a caller that has
    /// no schema, such as a command-line tool that read the server's HELLO).
    pub signature: u64,
    /// When the caller stops waiting; `None` for no deadline.
    pub deadline: Option<Instant>,
    /// String pairs beside the arguments (trace context, credentials).
    pub metadata: Metadata,
    /// The arguments, encoded in `format` as a tuple (a JSON array).
    pub body: Bytes,
    /// Whether the method is marked `#[rpc(idempotent)]`: running it twice has the effect of
    /// running it once, so a retry policy may repeat a call that may have reached the server.
    /// Not sent on the wire.
    pub idempotent: bool,
}

impl Call {
    /// A call of `method`, with no deadline and no metadata; `body` is the arguments, encoded in
    /// `format` (a `Vec<u8>`, a `&'static [u8]` or a `Bytes`).
    pub fn new(method: &MethodRef, format: Format, body: impl Into<Bytes>) -> Call {
        Call {
            service: Cow::Borrowed(method.service()),
            method: Cow::Borrowed(method.method()),
            kind: method.kind(),
            format,
            signature: method.signature_hash(),
            deadline: None,
            metadata: Metadata::new(),
            body: body.into(),
            idempotent: method.is_idempotent(),
        }
    }
}

/// The reply to a [`Call`]: the encoded result (a one-way call's reply is empty).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The format `body` is encoded in.
    pub format: Format,
    /// The method's result, encoded.
    pub body: Bytes,
}

/// A method's identity on the wire: service, method, kind and signature hash. Generated clients
/// keep one per method in a `static`.
#[derive(Debug)]
pub struct MethodRef {
    service: &'static str,
    method: &'static str,
    kind: MethodKind,
    hash: Hash,
    idempotent: bool,
}

#[derive(Debug)]
enum Hash {
    /// Computed from the service's descriptor on first use (tracing the types takes a moment).
    Lazy(fn() -> &'static ServiceDescriptor, OnceLock<u64>),
    Fixed(u64),
}

impl MethodRef {
    /// The method `method` of the service `descriptor` describes; the signature hash is the
    /// descriptor's, computed on first use.
    pub const fn new(
        descriptor: fn() -> &'static ServiceDescriptor,
        service: &'static str,
        method: &'static str,
        kind: MethodKind,
    ) -> MethodRef {
        MethodRef { service, method, kind, hash: Hash::Lazy(descriptor, OnceLock::new()), idempotent: false }
    }

    /// Marks the method idempotent or not (`#[rpc(idempotent)]`; see [`Call::idempotent`]).
    pub const fn idempotent(mut self, yes: bool) -> MethodRef {
        self.idempotent = yes;
        self
    }

    /// Whether the method is marked idempotent.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// A method known only by name, with the given signature hash (0: the server skips the
    /// check).
    pub const fn dynamic(
        service: &'static str,
        method: &'static str,
        kind: MethodKind,
        hash: u64,
    ) -> MethodRef {
        MethodRef { service, method, kind, hash: Hash::Fixed(hash), idempotent: false }
    }

    /// The service's wire name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The method's wire name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// How the method exchanges messages.
    pub fn kind(&self) -> MethodKind {
        self.kind
    }

    /// The signature hash the call carries.
    pub fn signature_hash(&self) -> u64 {
        match &self.hash {
            Hash::Fixed(h) => *h,
            Hash::Lazy(descriptor, cell) => {
                *cell.get_or_init(|| descriptor().method(self.method).map_or(0, |m| m.signature_hash()))
            }
        }
    }
}
