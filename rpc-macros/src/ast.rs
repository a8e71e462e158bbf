//! The service as the macro understands it, built from the user's trait. Every node keeps the
//! user's tokens so errors and generated items land on them.
//!
//! Rules about one item are checked while it is read (through `check`); rules across items run
//! once the whole service is built.

use proc_macro2::Span;
use quote::format_ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, ItemTrait, LitStr, ReturnType, TraitItem, TraitItemFn, Type, Visibility};

use crate::attr;
use crate::check::{self, Role};
use crate::errors::Errors;
use crate::streams::Kind;

pub(crate) struct Service {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) methods: Vec<Method>,
    /// The user's trait as written (the fallback output on error).
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
    /// How it exchanges messages: unary, one-way, or one of the stream kinds.
    pub(crate) kind: Kind,
    /// The `Streaming<U>` argument: its position among the arguments, and `U`.
    pub(crate) up: Option<(usize, Type)>,
    /// `T` of a `Streaming<T>` result.
    pub(crate) down: Option<Type>,
    /// `#[rpc(run_to_completion)]`: cancels and deadlines do not stop the handler.
    pub(crate) run_to_completion: bool,
    /// `#[rpc(idempotent)]`: a retry policy may repeat the call.
    pub(crate) idempotent: bool,
    /// `#[rpc(persistent)]`: the generated queue client has `submit_<method>` (the key, for
    /// errors).
    pub(crate) persistent: Option<syn::Path>,
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
    /// Reads the trait, checking every rule; errors go to `errors`.
    pub(crate) fn from_trait(item: ItemTrait, errors: &mut Errors) -> Service {
        check::trait_generics(&item, errors);
        check::trait_qualifiers(&item, errors);
        attr::reject_misplaced(&item.attrs, "the trait", errors);
        check::applied_twice(&item.attrs, errors);
        let mut methods = Vec::new();
        for trait_item in &item.items {
            check::non_method(trait_item, errors);
            if let TraitItem::Fn(f) = trait_item {
                if !check::helper_fn(f, errors) {
                    methods.push(Method::from_fn(f, errors));
                }
            }
        }
        let service = Service { vis: item.vis.clone(), ident: item.ident.clone(), methods, original: item };
        check::duplicate_methods(&service, errors);
        check::variant_collisions(&service, errors);
        check::wire_name_collisions(&service, errors);
        check::reserved_names(&service, errors);
        check::persistent_collisions(&service, errors);
        service
    }
}

impl Method {
    fn from_fn(f: &TraitItemFn, errors: &mut Errors) -> Method {
        let sig = &f.sig;
        let helpers = attr::method_attrs(&f.attrs, errors);
        let desugared = check::desugared_output(sig);
        if desugared.is_none() {
            check::async_fn(sig, errors);
        }
        check::variadic(sig, errors);
        check::method_generics(sig, errors);
        check::receiver(sig, errors);
        check::default_body(f, errors);
        check::arg_count(sig, errors);
        let args: Vec<Arg> = sig.inputs.iter().filter_map(|input| Arg::from_input(input, errors)).collect();
        let output = match (desugared, &sig.output) {
            (Some(ty), _) => {
                check::wire_type(&ty, Role::Result, errors);
                ty
            }
            (None, ReturnType::Default) => syn::parse_quote!(()),
            // A future of another form: only the missing `async` is reported.
            (None, ReturnType::Type(_, ty)) if check::returns_future(sig) => (**ty).clone(),
            (None, ReturnType::Type(_, ty)) => {
                check::wire_type(ty, Role::Result, errors);
                (**ty).clone()
            }
        };
        let shape =
            crate::streams::read(args.iter().map(|a: &Arg| &a.ty), &output, helpers.oneway.as_ref(), errors);
        let plain = sig.ident.unraw().to_string();
        let wire_name = helpers.name.unwrap_or_else(|| LitStr::new(&plain, sig.ident.span()));
        let variant = format_ident!("{}", upper_camel(&plain), span = sig.ident.span());
        let (docs, rest): (Vec<_>, Vec<_>) =
            f.attrs.iter().filter(|a| !attr::is_helper(a)).cloned().partition(|a| a.path().is_ident("doc"));
        let (cfgs, attrs) = rest.into_iter().partition(|a| a.path().is_ident("cfg"));
        let method = Method {
            ident: sig.ident.clone(),
            wire_name,
            variant,
            args,
            output,
            oneway: helpers.oneway,
            kind: shape.kind,
            up: shape.up,
            down: shape.down,
            run_to_completion: helpers.run_to_completion.is_some(),
            idempotent: helpers.idempotent.is_some(),
            persistent: helpers.persistent,
            docs,
            cfgs,
            attrs,
            original: f.clone(),
        };
        check::duplicate_args(&method, errors);
        check::oneway_result(&method, errors);
        check::persistent(&method, errors);
        method
    }

    /// The span of the method's name, for generated items that belong to it.
    pub(crate) fn span(&self) -> Span {
        self.ident.span()
    }

    /// The span of the declared return type (the `T` of `impl Future<Output = T>`), or of the
    /// name when there is none.
    pub(crate) fn output_span(&self) -> Span {
        match &self.original.sig.output {
            ReturnType::Default => self.ident.span(),
            ReturnType::Type(..) if self.original.sig.asyncness.is_none() => self.output.span(),
            ReturnType::Type(_, ty) => ty.span(),
        }
    }
}

impl Arg {
    /// A typed argument with a plain name; `None` for the receiver or a rejected pattern.
    fn from_input(input: &FnArg, errors: &mut Errors) -> Option<Arg> {
        let FnArg::Typed(pt) = input else { return None };
        attr::reject_misplaced(&pt.attrs, "an argument", errors);
        check::wire_type(&pt.ty, Role::Argument, errors);
        let ident = check::arg_pattern(&pt.pat, errors)?;
        Some(Arg { ident, ty: (*pt.ty).clone() })
    }
}

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
