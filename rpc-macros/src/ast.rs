//! The service as the macro understands it, built from the user's trait. Every node keeps the
//! user's tokens so errors and generated items land on them.

use proc_macro2::Span;
use quote::format_ident;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Ident, ItemTrait, LitStr, Pat, ReturnType, TraitItem, TraitItemFn, Type, Visibility,
};

use crate::attr;
use crate::errors::Errors;

pub(crate) struct Service {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) methods: Vec<Method>,
    /// The user's trait with helper attributes removed (also the fallback output on error).
    pub(crate) original: ItemTrait,
}

pub(crate) struct Method {
    pub(crate) ident: Ident,
    /// The name on the wire: the identifier unraw'd, or `#[rpc(name = "...")]`.
    pub(crate) wire_name: LitStr,
    /// The message variant: the name in UpperCamelCase.
    pub(crate) variant: Ident,
    pub(crate) args: Vec<Arg>,
    /// The declared return type; `()` when none is written.
    pub(crate) output: Type,
    pub(crate) oneway: Option<Attribute>,
    /// `#[rpc(run_to_completion)]`: cancels and deadlines do not stop the handler.
    pub(crate) run_to_completion: bool,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) cfgs: Vec<Attribute>,
    /// Other attributes the user wrote, carried over to the trait method only.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) original: TraitItemFn,
}

pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

impl Service {
    pub(crate) fn from_trait(mut item: ItemTrait, errors: &mut Errors) -> Service {
        attr::reject_misplaced(&item.attrs, "the trait", errors);
        let mut methods = Vec::new();
        for trait_item in &item.items {
            match trait_item {
                TraitItem::Fn(f) => {
                    if let Some(m) = Method::from_fn(f, errors) {
                        methods.push(m);
                    }
                }
                other => errors.push_spanned(
                    first_token(other),
                    "only `async fn` items are allowed in a service trait; move this item to another trait or an impl block",
                ),
            }
        }
        strip_helpers(&mut item);
        Service { vis: item.vis.clone(), ident: item.ident.clone(), methods, original: item }
    }
}

/// The first token of a trait item, to point at without underlining the whole item.
fn first_token(item: &TraitItem) -> proc_macro2::TokenStream {
    use quote::ToTokens;
    match item {
        TraitItem::Const(c) => c.const_token.to_token_stream(),
        TraitItem::Type(t) => t.type_token.to_token_stream(),
        TraitItem::Macro(m) => m.mac.path.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// Removes `#[oneway]`/`#[rpc]` from the trait so the compiler never sees them.
pub(crate) fn strip_helpers(item: &mut ItemTrait) {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.attrs.retain(|a| !attr::is_helper(a));
            for input in &mut f.sig.inputs {
                if let FnArg::Typed(t) = input {
                    t.attrs.retain(|a| !attr::is_helper(a));
                }
            }
        }
    }
    item.attrs.retain(|a| !attr::is_helper(a));
}

impl Method {
    fn from_fn(f: &TraitItemFn, errors: &mut Errors) -> Option<Method> {
        let helpers = attr::method_attrs(&f.attrs, errors);
        let sig = &f.sig;
        let mut args = Vec::new();
        let mut receiver_ok = false;
        for (i, input) in sig.inputs.iter().enumerate() {
            match input {
                FnArg::Receiver(r) if i == 0 => receiver_ok = crate::check::receiver(r, errors),
                FnArg::Receiver(r) => errors.push_spanned(r, "`self` must be the first argument"),
                FnArg::Typed(pt) => {
                    attr::reject_misplaced(&pt.attrs, "an argument", errors);
                    let ident = match &*pt.pat {
                        Pat::Ident(p)
                            if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() =>
                        {
                            Some(p.ident.clone())
                        }
                        other => {
                            errors.push_spanned(
                                other,
                                "RPC arguments must be plain identifiers, e.g. `point: Point`; destructure inside the method body",
                            );
                            None
                        }
                    };
                    crate::check::owned_type(&pt.ty, errors);
                    if let Some(ident) = ident {
                        args.push(Arg { ident, ty: (*pt.ty).clone() });
                    }
                }
            }
        }
        if !receiver_ok && !sig.inputs.first().is_some_and(|i| matches!(i, FnArg::Receiver(_))) {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "RPC methods take `&self` first, e.g. `async fn get(&self, key: String) -> Value`",
            ));
        }
        crate::check::signature(f, errors);
        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => {
                crate::check::owned_type(ty, errors);
                (**ty).clone()
            }
        };
        if let Some(oneway) = &helpers.oneway {
            if !is_unit(&output) {
                errors.push_spanned(
                    oneway,
                    "a `#[oneway]` method cannot return a value: the client does not wait for a reply; remove the return type or `#[oneway]`",
                );
            }
        }
        let plain = sig.ident.unraw().to_string();
        let wire_name = helpers.name.unwrap_or_else(|| LitStr::new(&plain, sig.ident.span()));
        let variant = format_ident!("{}", upper_camel(&plain), span = sig.ident.span());
        let (docs, rest): (Vec<_>, Vec<_>) =
            f.attrs.iter().filter(|a| !attr::is_helper(a)).cloned().partition(|a| a.path().is_ident("doc"));
        let (cfgs, attrs): (Vec<_>, Vec<_>) = rest.into_iter().partition(|a| a.path().is_ident("cfg"));
        Some(Method {
            ident: sig.ident.clone(),
            wire_name,
            variant,
            args,
            output,
            oneway: helpers.oneway,
            run_to_completion: helpers.run_to_completion,
            docs,
            cfgs,
            attrs,
            original: f.clone(),
        })
    }

    /// The span of the method's name, for generated items that belong to it.
    pub(crate) fn span(&self) -> Span {
        self.ident.span()
    }

    pub(crate) fn output_span(&self) -> Span {
        match &self.original.sig.output {
            ReturnType::Default => self.ident.span(),
            ReturnType::Type(_, ty) => ty.span(),
        }
    }
}

use syn::ext::IdentExt;

pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// `foo_bar` → `FooBar`, `r#type` (already unraw'd) → `Type`.
pub(crate) fn upper_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'M');
    }
    out
}
