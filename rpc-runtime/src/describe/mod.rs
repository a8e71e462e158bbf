//! What a service is made of: its name, its methods, their kinds, the shapes of their arguments
//! and results, and a signature hash per method that two peers compare to find schema skew.
//!
//! `#[service]` generates one [`ServiceDescriptor`] per service, built on first use and then
//! shared (`CalculatorServer::<S>::descriptor()`, `CalculatorClient::descriptor()`): the
//! router, the handshake, introspection and the broker binding all read it, and no call pays
//! for it.
//!
//! A type is described by running its `Deserialize` impl against a probe (no derive needed;
//! see `trace.rs`), then writing the shape it saw as canonical text: wire shapes, never Rust
//! names. A method's signature hash is FNV-1a 64 of its kind, argument shapes and result shape,
//! so any peer can recompute it from the text. `docs/signatures.md` has the grammar, what
//! changes a hash and what does not, and the limits.
//!
//! ```
//! use rpc_runtime::describe::{describe, signature_hash};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Point { x: i32, y: i32 }
//!
//! assert_eq!(describe::<Point>().canonical(), "{x:i32,y:i32}");
//! assert_eq!(describe::<Result<u8, String>>().canonical(), "enum{Ok:u8,Err:str}");
//! assert_eq!(signature_hash(""), 0xcbf2_9ce4_8422_2325);
//! ```

mod canonical;
mod trace;

use std::fmt;

use serde::de::DeserializeOwned;

/// How a method exchanges messages, as serde_derive's `Style` says how a variant is shaped.
///
/// Streaming kinds are reserved for the streaming work: no method has them yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MethodKind {
    /// One request, one response.
    Unary,
    /// One request, no response (`#[oneway]`).
    Oneway,
    /// One request, a stream of responses.
    ServerStream,
    /// A stream of requests, one response.
    ClientStream,
    /// A stream each way.
    Bidi,
}

impl MethodKind {
    /// The kind's name in signature texts and descriptions: `unary`, `oneway`,
    /// `server_stream`, `client_stream`, `bidi`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MethodKind::Unary => "unary",
            MethodKind::Oneway => "oneway",
            MethodKind::ServerStream => "server_stream",
            MethodKind::ClientStream => "client_stream",
            MethodKind::Bidi => "bidi",
        }
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The readable description of one type: its Rust name and its canonical wire shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeDescription {
    rust: &'static str,
    canonical: String,
    opaque: bool,
}

impl TypeDescription {
    /// The Rust type as `std::any::type_name` spells it (for people; not hashed unless opaque).
    pub fn rust_name(&self) -> &'static str {
        self.rust
    }

    /// The canonical shape, e.g. `{x:i32,y:i32}`; `opaque<RUST NAME>` when the type could not
    /// be traced.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Whether tracing failed, so the description (and the hash) names the Rust type instead
    /// of its shape: see [`describe`].
    pub fn is_opaque(&self) -> bool {
        self.opaque
    }

    /// A stream of items of this type: `stream<CANONICAL>`, as a streaming method's stream
    /// argument or result is described (and hashed).
    pub fn stream_of(self) -> TypeDescription {
        TypeDescription {
            rust: "rpc_runtime::Streaming",
            canonical: format!("stream<{}>", self.canonical),
            opaque: self.opaque,
        }
    }
}

impl fmt::Display for TypeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Describes `T` by tracing its `Deserialize` impl (the compact form, as postcard carries it).
///
/// Tracing fails for a type whose `Deserialize` asks the format what comes next
/// (`deserialize_any`: untagged and internally tagged enums, `#[serde(flatten)]`,
/// `serde_json::Value`), or rejects the probe's synthetic values (`1`, `""`, empty byte
/// strings, `false`), or panics on them. Such a type is described as `opaque<RUST NAME>`: peers
/// then agree only if they name the same Rust type, and a change inside it goes unnoticed.
pub fn describe<T: DeserializeOwned>() -> TypeDescription {
    let rust = std::any::type_name::<T>();
    // A `Deserialize` impl that panics on a synthetic value must not take the caller (a server
    // building its handshake) down with it: the type is then opaque. Nothing of the trace
    // outlives the panic, so unwind safety holds.
    let traced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(trace::trace::<T>));
    match traced {
        Ok(Ok((shape, trace))) => {
            TypeDescription { rust, canonical: canonical::render(&shape, &trace), opaque: false }
        }
        Ok(Err(_)) | Err(_) => TypeDescription { rust, canonical: format!("opaque<{rust}>"), opaque: true },
    }
}

/// The FNV-1a 64-bit hash of `text`'s UTF-8 bytes: offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`. Simple enough that a peer in any language can recompute it.
pub const fn signature_hash(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// One argument of a method: its name (for people and tools; not hashed) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDescriptor {
    name: &'static str,
    ty: TypeDescription,
}

impl ArgDescriptor {
    /// The argument's name as the trait declares it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The argument's type.
    pub fn ty(&self) -> &TypeDescription {
        &self.ty
    }
}

/// One method of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodDescriptor {
    name: &'static str,
    kind: MethodKind,
    args: Vec<ArgDescriptor>,
    result: TypeDescription,
    signature: String,
    hash: u64,
}

impl MethodDescriptor {
    /// Describes a method from its wire name, kind, argument names and types, and result type.
    ///
    /// `args` pairs each argument's name with its type's description, in declaration order.
    pub fn new(
        name: &'static str,
        kind: MethodKind,
        args: impl IntoIterator<Item = (&'static str, TypeDescription)>,
        result: TypeDescription,
    ) -> Self {
        let args: Vec<ArgDescriptor> =
            args.into_iter().map(|(name, ty)| ArgDescriptor { name, ty }).collect();
        let mut signature = String::from(kind.as_str());
        signature.push_str(" (");
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                signature.push(',');
            }
            signature.push_str(arg.ty.canonical());
        }
        signature.push_str(")->");
        signature.push_str(result.canonical());
        let hash = signature_hash(&signature);
        MethodDescriptor { name, kind, args, result, signature, hash }
    }

    /// The method's name on the wire.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How the method exchanges messages.
    pub fn kind(&self) -> MethodKind {
        self.kind
    }

    /// The arguments, in declaration order.
    pub fn args(&self) -> &[ArgDescriptor] {
        &self.args
    }

    /// The result type (`unit` for a method that returns nothing).
    pub fn result(&self) -> &TypeDescription {
        &self.result
    }

    /// The text the hash is computed over: `KIND (ARG,ARG,...)->RESULT`, e.g.
    /// `unary (i32,i32)->i32`. Argument names are not in it.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// [`signature_hash`] of [`signature`](Self::signature).
    pub fn signature_hash(&self) -> u64 {
        self.hash
    }
}

/// A service: its name and its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDescriptor {
    name: &'static str,
    methods: Vec<MethodDescriptor>,
}

impl ServiceDescriptor {
    /// A service named `name` (see `#[service(name = "...")]`) with `methods`.
    pub fn new(name: &'static str, methods: Vec<MethodDescriptor>) -> Self {
        ServiceDescriptor { name, methods }
    }

    /// The service's name on the wire.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The methods, in declaration order.
    pub fn methods(&self) -> &[MethodDescriptor] {
        &self.methods
    }

    /// The method with wire name `name`.
    pub fn method(&self, name: &str) -> Option<&MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// A type that has a service descriptor: the server and client types `#[service]` generates.
pub trait Described {
    /// The service's descriptor, built on first use and then shared.
    fn descriptor() -> &'static ServiceDescriptor;
}
