//! The helper attributes a service method may carry: `#[oneway]` and `#[rpc(...)]`.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, LitStr, Token};

use crate::errors::Errors;

/// `#[oneway]`: the client does not wait for a reply.
pub(crate) const ONEWAY: &str = "oneway";
/// `#[rpc(...)]`: per-method options.
pub(crate) const RPC: &str = "rpc";
/// `#[rpc(name = "...")]`: the method's wire name.
const NAME: &str = "name";
/// `#[rpc(run_to_completion)]`: the handler is not stopped by a cancel, a deadline or the
/// connection closing.
const RUN_TO_COMPLETION: &str = "run_to_completion";
/// `#[rpc(idempotent)]`: running the call twice has the effect of running it once, so a retry
/// policy may repeat it even when it may have reached the server.
const IDEMPOTENT: &str = "idempotent";
/// `#[rpc(persistent)]`: the method can also be called through a persistent queue (the
/// generated `FooQueue`'s `submit_<method>`).
const PERSISTENT: &str = "persistent";

/// What the helper attributes of one method say.
#[derive(Default)]
pub(crate) struct MethodAttrs {
    pub(crate) oneway: Option<Attribute>,
    pub(crate) name: Option<LitStr>,
    /// The `name` key of `name = "..."`, for "first given here".
    name_key: Option<syn::Path>,
    /// The `run_to_completion` key, when given.
    pub(crate) run_to_completion: Option<syn::Path>,
    /// The `idempotent` key, when given.
    pub(crate) idempotent: Option<syn::Path>,
    /// The `persistent` key, when given.
    pub(crate) persistent: Option<syn::Path>,
}

pub(crate) fn is_helper(attr: &Attribute) -> bool {
    attr.path().is_ident(ONEWAY) || attr.path().is_ident(RPC)
}

/// `#[service]` or `#[rpc_runtime::service]` (any path ending in `service`), left on the trait
/// when the attribute is written twice.
pub(crate) fn is_service(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "service")
}

/// Reads the helper attributes of a method.
pub(crate) fn method_attrs(attrs: &[Attribute], errors: &mut Errors) -> MethodAttrs {
    let mut out = MethodAttrs::default();
    for attr in attrs {
        if attr.path().is_ident(ONEWAY) {
            oneway(attr, &mut out, errors);
        } else if attr.path().is_ident(RPC) {
            rpc(attr, &mut out, errors);
        }
    }
    out
}

/// `#[oneway(x)]`, or `#[oneway]` twice.
fn oneway(attr: &Attribute, out: &mut MethodAttrs, errors: &mut Errors) {
    if attr.meta.require_path_only().is_err() {
        errors.push_spanned(attr, "`#[oneway]` takes no arguments; write `#[oneway]`");
    } else if let Some(first) = &out.oneway {
        errors.push_conflict(attr, "`#[oneway]` is given twice; keep one", first, "first given here");
    } else {
        out.oneway = Some(attr.clone());
    }
}

/// `#[rpc]`, `#[rpc(nmae = "x")]`, or a bad option (see `name` and `run_to_completion`).
fn rpc(attr: &Attribute, out: &mut MethodAttrs, errors: &mut Errors) {
    if let syn::Meta::Path(path) = &attr.meta {
        errors.push_spanned(
            path,
            "`#[rpc]` needs an option: `#[rpc(name = \"wire_name\")]`, `#[rpc(run_to_completion)]`, `#[rpc(idempotent)]` or `#[rpc(persistent)]`",
        );
        return;
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(NAME) {
            name(&meta, out, errors)
        } else if meta.path.is_ident(RUN_TO_COMPLETION) {
            flag(&meta, RUN_TO_COMPLETION, &mut out.run_to_completion, errors)
        } else if meta.path.is_ident(IDEMPOTENT) {
            flag(&meta, IDEMPOTENT, &mut out.idempotent, errors)
        } else if meta.path.is_ident(PERSISTENT) {
            flag(&meta, PERSISTENT, &mut out.persistent, errors)
        } else {
            Err(meta.error(
                "unknown `rpc` option; expected `name = \"wire_name\"`, `run_to_completion`, `idempotent` or `persistent`",
            ))
        }
    });
    if let Err(e) = result {
        errors.push(e);
    }
}

/// `#[rpc(name = 5)]`, `#[rpc(name = "")]`, or `name` twice.
fn name(meta: &ParseNestedMeta<'_>, out: &mut MethodAttrs, errors: &mut Errors) -> syn::Result<()> {
    let lit: LitStr = meta.value()?.parse().map_err(|e| {
        syn::Error::new(e.span(), "`name` takes a string, e.g. `#[rpc(name = \"wire_name\")]`")
    })?;
    if let Some(first) = &out.name_key {
        errors.push_conflict(&meta.path, "`name` is given twice; keep one", first, "first given here");
    } else if lit.value().is_empty() {
        errors.push_spanned(&lit, "the wire name must not be empty; write `name = \"wire_name\"`");
    } else {
        out.name = Some(lit);
        out.name_key = Some(meta.path.clone());
    }
    Ok(())
}

/// A flag option (`run_to_completion`, `idempotent`, `persistent`) given a value (`= true`), or twice.
fn flag(
    meta: &ParseNestedMeta<'_>,
    key: &str,
    slot: &mut Option<syn::Path>,
    errors: &mut Errors,
) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        return Err(meta.error(format!("`{key}` takes no value; write `#[rpc({key})]`")));
    }
    if let Some(first) = slot {
        errors.push_conflict(
            &meta.path,
            format!("`{key}` is given twice; keep one"),
            first,
            "first given here",
        );
    } else {
        *slot = Some(meta.path.clone());
    }
    Ok(())
}

/// Reports helper attributes where they do not belong (on the trait, on an argument).
pub(crate) fn reject_misplaced(attrs: &[Attribute], place: &str, errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| is_helper(a)) {
        let name = if attr.path().is_ident(ONEWAY) { "#[oneway]" } else { "#[rpc(...)]" };
        errors.push_spanned(
            attr,
            format!("`{name}` is not expected on {place}; it belongs on a method of the service trait"),
        );
    }
}
