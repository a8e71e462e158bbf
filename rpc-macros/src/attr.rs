//! The helper attributes a service method may carry: `#[oneway]` and `#[rpc(...)]`.

use syn::{Attribute, LitStr};

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

/// What the helper attributes of one method say.
#[derive(Default)]
pub(crate) struct MethodAttrs {
    pub(crate) oneway: Option<Attribute>,
    pub(crate) name: Option<LitStr>,
    pub(crate) run_to_completion: bool,
}

pub(crate) fn is_helper(attr: &Attribute) -> bool {
    attr.path().is_ident(ONEWAY) || attr.path().is_ident(RPC)
}

/// Reads the helper attributes of a method.
pub(crate) fn method_attrs(attrs: &[Attribute], errors: &mut Errors) -> MethodAttrs {
    let mut out = MethodAttrs::default();
    for attr in attrs {
        if attr.path().is_ident(ONEWAY) {
            if let Err(e) = attr.meta.require_path_only() {
                errors.push(syn::Error::new(e.span(), "`#[oneway]` takes no arguments"));
            } else if let Some(first) = &out.oneway {
                let mut e = syn::Error::new_spanned(attr, "`#[oneway]` is given twice; keep one");
                e.combine(syn::Error::new_spanned(first, "first given here"));
                errors.push(e);
            } else {
                out.oneway = Some(attr.clone());
            }
        } else if attr.path().is_ident(RPC) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(NAME) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if out.name.is_some() {
                        return Err(meta.error("`name` is given twice; keep one"));
                    }
                    if lit.value().is_empty() {
                        return Err(syn::Error::new_spanned(&lit, "the wire name must not be empty"));
                    }
                    out.name = Some(lit);
                    Ok(())
                } else if meta.path.is_ident(RUN_TO_COMPLETION) {
                    if out.run_to_completion {
                        return Err(meta.error("`run_to_completion` is given twice; keep one"));
                    }
                    out.run_to_completion = true;
                    Ok(())
                } else {
                    Err(meta.error(
                        "unknown `rpc` option; expected `name = \"wire_name\"` or `run_to_completion`",
                    ))
                }
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
    }
    out
}

/// Reports helper attributes where they do not belong (on the trait, on an argument).
pub(crate) fn reject_misplaced(attrs: &[Attribute], place: &str, errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| is_helper(a)) {
        errors.push_spanned(
            attr,
            format!("not expected on {place}; `#[oneway]` and `#[rpc(...)]` belong on a method of the trait"),
        );
    }
}
