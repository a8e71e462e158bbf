//! What the macro emits when it reports errors: the user's trait as written, minus what rustc
//! would reject on its own, so each mistake is reported once (by us) and the user's
//! `impl Trait for X` still compiles against it. No stubs of the generated items
//! (thiserror `fallback.rs`, tokio-macros `token_stream_with_error`).

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{FnArg, ItemTrait, Pat, TraitItem};

use crate::attr;

/// Input: the user's trait and the errors found in it.
/// Output: the trait with the helper attributes (and a second `#[service]`) removed and with nothing rustc would report a
/// second time (`const fn`, `...`, `auto`, patterns in bodiless methods, a repeated method, a
/// misplaced `self`), followed by the errors.
pub(super) fn generate(mut item: ItemTrait, errors: syn::Error) -> TokenStream {
    // A second `#[service]` would run on this trait and generate what the first did not.
    item.attrs.retain(|a| !attr::is_helper(a) && !attr::is_service(a));
    item.auto_token = None;
    let mut names = HashSet::new();
    item.items.retain(|i| match i {
        TraitItem::Fn(f) => names.insert(f.sig.ident.unraw().to_string()),
        _ => true,
    });
    for trait_item in &mut item.items {
        strip_item_attrs(trait_item);
        if let TraitItem::Fn(f) = trait_item {
            f.sig.constness = None;
            f.sig.variadic = None;
            let bodiless = f.default.is_none();
            let inputs = std::mem::take(&mut f.sig.inputs);
            for (i, mut input) in inputs.into_pairs().map(|p| p.into_value()).enumerate() {
                match &mut input {
                    FnArg::Receiver(_) if i > 0 => continue,
                    FnArg::Receiver(_) => {}
                    FnArg::Typed(t) => {
                        t.attrs.retain(|a| !attr::is_helper(a));
                        if bodiless {
                            plain_pattern(&mut t.pat);
                        }
                    }
                }
                f.sig.inputs.push(input);
            }
        }
    }
    let errors = errors.to_compile_error();
    // `async fn` in a public trait would draw the `async_fn_in_trait` lint, which the macro
    // otherwise avoids by rewriting the methods: silence it here, where rewriting is skipped.
    quote! {
        #[allow(async_fn_in_trait)]
        #item
        #errors
    }
}

fn strip_item_attrs(item: &mut TraitItem) {
    let attrs = match item {
        TraitItem::Fn(f) => &mut f.attrs,
        TraitItem::Const(c) => &mut c.attrs,
        TraitItem::Type(t) => &mut t.attrs,
        TraitItem::Macro(m) => &mut m.attrs,
        _ => return,
    };
    attrs.retain(|a| !attr::is_helper(a));
}

/// `mut x` and `ref x` become `x`; any other pattern but a name becomes `_`, since rustc allows
/// no patterns in a method without a body.
fn plain_pattern(pat: &mut Pat) {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() => {
            p.by_ref = None;
            p.mutability = None;
        }
        Pat::Wild(_) => {}
        other => *other = Pat::Wild(syn::PatWild { attrs: Vec::new(), underscore_token: Default::default() }),
    }
}
