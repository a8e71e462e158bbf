//! Rules the trait must follow, one function per rule, each with an example of what it rejects.

use std::collections::HashMap;

use syn::{Receiver, TraitItemFn, Type};

use crate::ast::Service;
use crate::errors::Errors;

/// Methods the generated client has besides the trait's; a trait method with one of these names
/// would collide with it.
pub(crate) const RESERVED_CLIENT_METHODS: &[&str] = &["new", "from_client", "with_timeout", "as_client"];

/// `&mut self`, `self`, `self: Box<Self>` → only `&self` is accepted. Returns whether it is `&self`.
pub(crate) fn receiver(r: &Receiver, errors: &mut Errors) -> bool {
    if r.colon_token.is_some() {
        errors
            .push_spanned(r, "RPC methods take `&self`; an explicit `self: Type` receiver is not supported");
        return false;
    }
    match (&r.reference, &r.mutability) {
        (Some(_), None) => true,
        (Some(_), Some(m)) => {
            errors.push_spanned(
                m,
                "RPC methods take `&self`, not `&mut self`: calls run concurrently; use interior mutability (a `Mutex` or atomics) for state",
            );
            false
        }
        (None, _) => {
            errors.push_spanned(
                r,
                "RPC methods take `&self`, not `self`: the server calls the method many times",
            );
            false
        }
    }
}

/// `fn f(&self)`, `unsafe fn`, `const fn`, `extern "C" fn`, generics, `where`, a default body.
pub(crate) fn signature(f: &TraitItemFn, errors: &mut Errors) {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        errors.push_spanned(
            sig.fn_token,
            format!("RPC methods must be `async fn`; write `async fn {}`", sig.ident),
        );
    }
    if let Some(c) = &sig.constness {
        errors.push_spanned(c, "RPC methods cannot be `const`; remove `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.push_spanned(u, "RPC methods cannot be `unsafe`; remove `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.push_spanned(abi, "RPC methods cannot have an ABI; remove the `extern`");
    }
    if let Some(v) = &sig.variadic {
        errors.push_spanned(v, "RPC methods cannot be variadic; pass a `Vec` instead");
    }
    if !sig.generics.params.is_empty() {
        errors.push_spanned(
            &sig.generics.params,
            "RPC methods cannot be generic: the server must know every argument type; use concrete types",
        );
    }
    if let Some(w) = &sig.generics.where_clause {
        errors.push_spanned(w, "RPC methods cannot have a `where` clause; use concrete types");
    }
    if let Some(body) = &f.default {
        errors.push_spanned(body, "RPC methods cannot have a default body; end the declaration with `;`");
    }
}

/// `&str`, `&[u8]`, `impl Trait`, `dyn Trait` → arguments and results must be owned.
pub(crate) fn owned_type(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Reference(r) => errors.push_spanned(
            r.and_token,
            format!(
                "RPC arguments and results are sent over the wire and must be owned; use {} instead of a reference",
                owned_suggestion(&r.elem)
            ),
        ),
        Type::ImplTrait(t) => errors.push_spanned(
            t.impl_token,
            "RPC arguments and results must be concrete owned types, not `impl Trait`",
        ),
        Type::TraitObject(t) => errors.push_spanned(t, "RPC arguments and results must be concrete owned types, not `dyn Trait`"),
        Type::Paren(p) => owned_type(&p.elem, errors),
        Type::Group(g) => owned_type(&g.elem, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| owned_type(e, errors)),
        Type::Array(a) => owned_type(&a.elem, errors),
        Type::Slice(s) => owned_type(&s.elem, errors),
        Type::Path(p) => {
            for seg in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(args) = &seg.arguments {
                    for arg in &args.args {
                        match arg {
                            syn::GenericArgument::Type(t) => owned_type(t, errors),
                            syn::GenericArgument::Lifetime(l) => errors.push_spanned(
                                l,
                                "RPC arguments and results must be owned; they cannot borrow with a lifetime",
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn owned_suggestion(elem: &Type) -> &'static str {
    match elem {
        Type::Path(p) if p.path.is_ident("str") => "`String`",
        Type::Slice(s) if matches!(&*s.elem, Type::Path(p) if p.path.is_ident("u8")) => "`Vec<u8>`",
        Type::Slice(_) => "a `Vec<T>`",
        _ => "an owned type",
    }
}

/// `fn foo_bar` next to `fn foo__bar` (both `FooBar`), two methods with one wire name, or a
/// method named like a generated client method (`fn new`).
pub(crate) fn names(service: &Service, errors: &mut Errors) {
    let mut variants: HashMap<String, &syn::Ident> = HashMap::new();
    let mut wire: HashMap<String, &syn::LitStr> = HashMap::new();
    for m in &service.methods {
        let plain = syn::ext::IdentExt::unraw(&m.ident).to_string();
        if RESERVED_CLIENT_METHODS.contains(&plain.as_str()) {
            errors.push_spanned(
                &m.ident,
                format!("a method named `{plain}` would collide with the generated client's `{plain}`; rename it (the wire name can stay with `#[rpc(name = \"{plain}\")]`)"),
            );
        }
        if let Some(first) = variants.get(&m.variant.to_string()) {
            let mut e = syn::Error::new_spanned(
                &m.ident,
                format!(
                    "`{}` and `{}` both become the message variant `{}`; rename one",
                    first, m.ident, m.variant
                ),
            );
            e.combine(syn::Error::new_spanned(first, "first defined here"));
            errors.push(e);
        } else {
            variants.insert(m.variant.to_string(), &m.ident);
        }
        if let Some(first) = wire.get(&m.wire_name.value()) {
            let mut e = syn::Error::new_spanned(
                &m.wire_name,
                format!(
                    "two methods use the wire name \"{}\"; give one another `#[rpc(name = ...)]`",
                    m.wire_name.value()
                ),
            );
            e.combine(syn::Error::new_spanned(first, "first defined here"));
            errors.push(e);
        } else {
            wire.insert(m.wire_name.value(), &m.wire_name);
        }
    }
}

/// `trait Svc<T>`, `unsafe trait`, `auto trait` → not supported.
pub(crate) fn trait_shape(item: &syn::ItemTrait, errors: &mut Errors) {
    if !item.generics.params.is_empty() {
        errors.push_spanned(
            &item.generics.params,
            "service traits cannot be generic; use concrete types in the methods",
        );
    }
    if let Some(w) = &item.generics.where_clause {
        errors.push_spanned(w, "service traits cannot have a `where` clause");
    }
    if let Some(u) = &item.unsafety {
        errors.push_spanned(u, "service traits cannot be `unsafe`");
    }
    if let Some(a) = &item.auto_token {
        errors.push_spanned(a, "service traits cannot be `auto` traits");
    }
}
