//! What a peer says about itself in its HELLO: its limits, its formats and its services.

use crate::codec::Format;
use crate::describe::{MethodKind, ServiceDescriptor};

/// A peer's HELLO, the first frame each side sends: the protocol version, the limits it
/// enforces, the formats it speaks and, from a server, the services it hosts with each method's
/// kind and signature hash (see `PROTOCOL.md`).
///
/// A client has its server's from [`Client::server_hello`](crate::Client::server_hello): a
/// command-line caller or a dashboard lists a server's services from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub(crate) version: u64,
    pub(crate) max_frame_len: u64,
    pub(crate) max_concurrent_calls: u64,
    pub(crate) stream_window: u64,
    pub(crate) formats: u64,
    pub(crate) services: Vec<AdvertisedService>,
}

impl Hello {
    /// The protocol version the peer speaks.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The longest frame the peer accepts.
    pub fn max_frame_len(&self) -> u64 {
        self.max_frame_len
    }

    /// How many calls the peer serves at once on this connection (more wait in its queue).
    pub fn max_concurrent_calls(&self) -> u64 {
        self.max_concurrent_calls
    }

    /// How many stream items the peer lets a stream send before it grants more credit.
    pub fn stream_window(&self) -> u64 {
        self.stream_window
    }

    /// Whether the peer can encode and decode `format`.
    pub fn speaks(&self, format: Format) -> bool {
        self.formats & format_bit(format) != 0
    }

    /// The services the peer hosts (none, from a client).
    pub fn services(&self) -> &[AdvertisedService] {
        &self.services
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&AdvertisedService> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// One service in a HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedService {
    pub(crate) name: String,
    pub(crate) methods: Vec<AdvertisedMethod>,
}

impl AdvertisedService {
    /// The advertisement of a local service.
    pub fn from_descriptor(descriptor: &ServiceDescriptor) -> AdvertisedService {
        AdvertisedService {
            name: descriptor.name().to_owned(),
            methods: descriptor
                .methods()
                .iter()
                .map(|m| AdvertisedMethod {
                    name: m.name().to_owned(),
                    kind: m.kind(),
                    signature_hash: m.signature_hash(),
                })
                .collect(),
        }
    }

    /// The service's wire name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its methods, in declaration order.
    pub fn methods(&self) -> &[AdvertisedMethod] {
        &self.methods
    }

    /// The method named `name`.
    pub fn method(&self, name: &str) -> Option<&AdvertisedMethod> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// One method in a HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedMethod {
    pub(crate) name: String,
    pub(crate) kind: MethodKind,
    pub(crate) signature_hash: u64,
}

impl AdvertisedMethod {
    /// The method's wire name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it exchanges messages.
    pub fn kind(&self) -> MethodKind {
        self.kind
    }

    /// Its signature hash (see [`MethodDescriptor::signature_hash`](crate::describe::MethodDescriptor::signature_hash)).
    pub fn signature_hash(&self) -> u64 {
        self.signature_hash
    }
}

/// A format's bit in a HELLO's format set.
pub(crate) const fn format_bit(format: Format) -> u64 {
    match format {
        Format::Postcard => 1,
        Format::Json => 2,
    }
}

/// The set of formats this build speaks.
pub(crate) fn local_formats() -> u64 {
    Format::available().iter().fold(0, |set, f| set | format_bit(*f))
}

/// The stream window a peer advertises unless configured otherwise: items a stream may send
/// before the receiver grants more credit.
pub(crate) const DEFAULT_STREAM_WINDOW: u64 = 16;
