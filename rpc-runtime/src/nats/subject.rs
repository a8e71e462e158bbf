//! Subject names: where a call to a method, or a broadcast to every instance, is published.

use std::io;

use crate::RpcError;

/// The subject prefix unless a [`NatsChannel`](super::NatsChannel) or
/// [`NatsServer`](super::NatsServer) is given another: calls go to `rpc.{service}.{method}`.
pub const DEFAULT_PREFIX: &str = "rpc";

/// The token after the prefix that marks a broadcast subject. `$` cannot start a service name
/// (letters, digits, `_`, `-` and dots only), so `{prefix}.$all.…` never names a balanced call.
const BROADCAST: &str = "$all";

/// Whether `token` is one NATS subject token: not empty, no dot, no whitespace or control
/// character, not a wildcard.
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && !token.contains(|c: char| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control())
}

/// Checks a prefix: one or more dot-separated tokens.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), RpcError> {
    if prefix.split('.').all(is_token) {
        Ok(())
    } else {
        Err(invalid(format!(
            "the subject prefix `{prefix}` is not a NATS subject (dot-separated tokens, no wildcards)"
        )))
    }
}

/// Checks that a call can be addressed: a non-empty service of valid tokens and a method that is
/// one token (a method name with a dot would be read as part of the service).
pub(crate) fn check_names(service: &str, method: &str) -> Result<(), RpcError> {
    if service.is_empty() || !service.split('.').all(is_token) {
        return Err(RpcError::Encode(format!(
            "the service name `{service}` cannot be a NATS subject: name the service with `#[service(name = \"...\")]`"
        )));
    }
    if !is_token(method) {
        return Err(RpcError::Encode(format!(
            "the method name `{method}` of `{service}` is not one NATS subject token (no dots, spaces or wildcards); rename it with `#[rpc(name = \"...\")]`"
        )));
    }
    Ok(())
}

/// `{prefix}.{service}.{method}`: a balanced call, answered by one instance.
pub(crate) fn call(prefix: &str, service: &str, method: &str) -> String {
    format!("{prefix}.{service}.{method}")
}

/// `{prefix}.$all.{service}.{method}`: a broadcast, delivered to every instance.
pub(crate) fn broadcast(prefix: &str, service: &str, method: &str) -> String {
    format!("{prefix}.{BROADCAST}.{service}.{method}")
}

/// `{prefix}.$queued.{service}.{method}`: a persistent call, stored by JetStream.
pub(crate) fn queued(prefix: &str, service: &str, method: &str) -> String {
    format!("{prefix}.$queued.{service}.{method}")
}

/// The subjects of the call stream: `{prefix}.$queued.>`.
pub(crate) fn queued_all(prefix: &str) -> String {
    format!("{prefix}.$queued.>")
}

/// What a queue worker consumes for `service`: `{prefix}.$queued.{service}.*`.
pub(crate) fn queued_service(prefix: &str, service: &str) -> String {
    format!("{prefix}.$queued.{service}.*")
}

/// What an instance subscribes to for the broadcasts of `service`: `{prefix}.$all.{service}.*`.
pub(crate) fn broadcast_all(prefix: &str, service: &str) -> String {
    format!("{prefix}.{BROADCAST}.{service}.*")
}

/// The service's name in the NATS service API, which allows only `[A-Za-z0-9_-]`: the dots of a
/// namespaced name become `_` (`billing.Invoices` is `billing_Invoices`; the true name is in the
/// registration's metadata, `rpc.service`).
pub(crate) fn registry_name(service: &str) -> String {
    service.replace('.', "_")
}

fn invalid(message: String) -> RpcError {
    RpcError::Io(std::sync::Arc::new(io::Error::new(io::ErrorKind::InvalidInput, message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_of_nested_services_never_collide() {
        // `a` + `b` and `a.b` + `m` differ in token count; broadcasts have their own token.
        assert_eq!(call("rpc", "a", "b"), "rpc.a.b");
        assert_eq!(call("rpc", "a.b", "m"), "rpc.a.b.m");
        assert_eq!(broadcast("rpc", "a", "b"), "rpc.$all.a.b");
        assert!(check_names("a.b", "m").is_ok());
        assert!(check_names("a", "b.m").is_err(), "a dotted method would read as a service");
        assert!(check_names("", "m").is_err());
        assert!(check_names("a", "m n").is_err());
        assert!(check_names("a", "*").is_err());
        assert!(check_prefix("rpc.prod").is_ok());
        assert!(check_prefix("rpc.>").is_err());
        assert_eq!(registry_name("billing.Invoices"), "billing_Invoices");
    }
}
