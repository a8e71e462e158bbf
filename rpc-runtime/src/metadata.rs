//! Per-call metadata: a short list of string pairs carried beside a call's arguments.

use std::fmt;

use crate::RpcError;

/// The most entries one call's metadata may hold.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// The most bytes (keys and values together) one call's metadata may hold.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// String pairs that travel with a call or a reply, beside its arguments: trace context
/// (`traceparent`), credentials, a caller's name. Not part of the method's signature, so any
/// call may carry any metadata.
///
/// Bounded on both sides: at most [`MAX_METADATA_ENTRIES`] entries and [`MAX_METADATA_BYTES`]
/// bytes. A client refuses to send more ([`RpcError::MetadataTooLarge`], the call never
/// starts); a server answers a call that carries more with the same error without running it.
/// Keys are compared exactly (by convention lowercase, like HTTP/2 header names); a key may
/// appear more than once, and [`get`](Metadata::get) returns the first.
///
/// ```
/// use rpc_runtime::Metadata;
///
/// let mut md = Metadata::new();
/// md.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!(md.get("traceparent").unwrap().starts_with("00-"));
/// assert_eq!(md.len(), 1);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    /// No entries.
    pub const fn new() -> Metadata {
        Metadata { entries: Vec::new() }
    }

    /// Adds an entry (after any with the same key).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries.push((key.into(), value.into()));
        self
    }

    /// The value of the first entry with `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Removes every entry with `key`; returns whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != key);
        self.entries.len() != before
    }

    /// The entries, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys and values together, in bytes: what [`MAX_METADATA_BYTES`] bounds.
    pub fn byte_len(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Checks the bounds; the error says which was passed.
    pub fn check(&self) -> Result<(), RpcError> {
        check_bounds(self.entries.len(), self.byte_len())
    }

    pub(crate) fn push_raw(&mut self, key: String, value: String) {
        self.entries.push((key, value));
    }
}

pub(crate) fn check_bounds(entries: usize, bytes: usize) -> Result<(), RpcError> {
    if entries > MAX_METADATA_ENTRIES {
        return Err(RpcError::MetadataTooLarge(
            format!("{entries} entries, more than the {MAX_METADATA_ENTRIES} allowed").into(),
        ));
    }
    if bytes > MAX_METADATA_BYTES {
        return Err(RpcError::MetadataTooLarge(
            format!("{bytes} bytes of keys and values, more than the {MAX_METADATA_BYTES} allowed").into(),
        ));
    }
    Ok(())
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Metadata { entries: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.entries.extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}
