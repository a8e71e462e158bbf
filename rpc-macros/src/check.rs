//! The rules a service trait must follow: one function per rule, each with an example of what it
//! rejects. Each reports one error per misuse, on the smallest wrong token, and says what to
//! write instead.

use std::collections::HashMap;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Generics, ItemTrait, Pat, PathArguments, ReturnType,
    Signature, TraitBoundModifier, TraitItem, TraitItemFn, Type, TypeParamBound,
};

use crate::ast::{Method, Service};
use crate::errors::Errors;

/// Methods the generated client has besides the trait's; a trait method with one of these names
/// would collide with it.
pub(crate) const RESERVED_CLIENT_METHODS: &[&str] = &[
    "new",
    "from_client",
    "from_service",
    "with_channel",
    "channel",
    "with_timeout",
    "with_metadata",
    "as_client",
    "descriptor",
    // The blocking client's (see below).
    "connect",
    "connect_with",
    "as_async",
];

/// The reserved names that only the blocking client has.
const BLOCKING_CLIENT_METHODS: &[&str] = &["connect", "connect_with", "as_async"];

/// The most arguments a method may take: they travel as one tuple, and serde implements its
/// traits for tuples of up to 16 elements.
pub(crate) const MAX_ARGS: usize = 16;

/// `trait Svc<T>`, `trait Svc<'a>`, `trait Svc where Self: Sized`
pub(crate) fn trait_generics(item: &ItemTrait, errors: &mut Errors) {
    if only_lifetimes(&item.generics) {
        let used = item.items.iter().any(|i| match i {
            TraitItem::Fn(f) => uses_lifetimes(&f.sig, &item.generics),
            _ => false,
        });
        // A borrowed argument is reported on its type, with an owned type to use instead.
        if !used {
            errors.push_spanned(
                &item.generics,
                format!("service traits cannot have lifetime parameters: {NOTHING_BORROWED}"),
            );
        }
    } else if !item.generics.params.is_empty() {
        errors.push_spanned(
            &item.generics,
            "service traits cannot be generic: both ends must agree on every type; use concrete types in the methods",
        );
    }
    if let Some(w) = &item.generics.where_clause {
        errors.push_spanned(w, "service traits cannot have a `where` clause; remove it");
    }
}

/// `unsafe trait Svc`, `auto trait Svc`
pub(crate) fn trait_qualifiers(item: &ItemTrait, errors: &mut Errors) {
    if let Some(u) = &item.unsafety {
        errors.push_spanned(u, "service traits cannot be `unsafe`; remove `unsafe`");
    }
    if let Some(a) = &item.auto_token {
        errors.push_spanned(a, "service traits cannot be `auto` traits; remove `auto`");
    }
}

/// `type Item;`, `const N: u8;`, `my_macro!();` inside the trait
pub(crate) fn non_method(item: &TraitItem, errors: &mut Errors) {
    let (token, what) = match item {
        TraitItem::Fn(_) => return,
        TraitItem::Const(c) => (c.const_token.to_token_stream(), "an associated const"),
        TraitItem::Type(t) => (t.type_token.to_token_stream(), "an associated type"),
        TraitItem::Macro(m) => (m.mac.path.to_token_stream(), "a macro call"),
        other => (other.to_token_stream(), "this item"),
    };
    errors.push_spanned(
        token,
        format!("only `async fn` items are allowed in a service trait, not {what}; move it to another trait"),
    );
}

/// Why lifetime parameters have no use in a service.
const NOTHING_BORROWED: &str = "arguments and results are decoded from the wire into owned values, so there is nothing to borrow; remove the lifetimes and use owned types";

fn only_lifetimes(generics: &Generics) -> bool {
    !generics.params.is_empty() && generics.params.iter().all(|p| matches!(p, GenericParam::Lifetime(_)))
}

/// Whether an argument or the result of `sig` names one of the lifetimes declared in `generics`.
fn uses_lifetimes(sig: &Signature, generics: &Generics) -> bool {
    let declared: Vec<_> = generics.lifetimes().map(|l| l.lifetime.ident.to_string()).collect();
    let mut tokens = sig.inputs.to_token_stream();
    sig.output.to_tokens(&mut tokens);
    names_lifetime(tokens, &declared)
}

fn names_lifetime(tokens: TokenStream, declared: &[String]) -> bool {
    let mut after_quote = false;
    tokens.into_iter().any(|tt| {
        let hit = match &tt {
            TokenTree::Ident(i) => after_quote && declared.iter().any(|d| i == d),
            TokenTree::Group(g) => names_lifetime(g.stream(), declared),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        };
        after_quote = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '\'');
        hit
    })
}

/// `#[service] #[service] trait Svc`: the second would run on what the first generates.
pub(crate) fn applied_twice(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| crate::attr::is_service(a)) {
        errors.push_spanned(attr, "`#[service]` is applied twice to this trait; remove this one");
    }
}

/// `fn helper(key: &str) -> &str { ... }`, `fn describe(&self) -> String { ... }`
///
/// A function with a body that is not `async`: a helper, not an RPC method, so one error
/// rather than one per rule it breaks. Returns whether it is one (then no other rule applies).
pub(crate) fn helper_fn(f: &TraitItemFn, errors: &mut Errors) -> bool {
    let helper = f.default.is_some() && f.sig.asyncness.is_none() && desugared_output(&f.sig).is_none();
    if helper {
        errors.push_spanned(
            f.sig.fn_token,
            format!(
                "a service trait holds only RPC methods (`async fn` declarations without a body); move `{}` to another trait or make it a free function",
                f.sig.ident.unraw()
            ),
        );
    }
    helper
}

/// `fn get(&self) -> impl Future<Output = u8> + Send`, what `async fn get(&self) -> u8` becomes
/// in the generated trait, is accepted as that: returns `u8`. `None` for any other form,
/// including other bounds (`+ Unpin`, `+ 'static`) that `async fn` would not keep.
pub(crate) fn desugared_output(sig: &Signature) -> Option<Type> {
    if sig.asyncness.is_some() || sig.constness.is_some() || sig.unsafety.is_some() || sig.abi.is_some() {
        return None;
    }
    let ReturnType::Type(_, ty) = &sig.output else { return None };
    let Type::ImplTrait(t) = &**ty else { return None };
    let mut output = None;
    for bound in &t.bounds {
        let TypeParamBound::Trait(b) = bound else { return None };
        if !matches!(b.modifier, TraitBoundModifier::None) || b.lifetimes.is_some() {
            return None;
        }
        let last = b.path.segments.last()?;
        if last.ident == "Send" && last.arguments.is_none() {
            continue;
        }
        if last.ident != "Future" || output.is_some() {
            return None;
        }
        output = Some(future_output(&last.arguments)?.clone());
    }
    output
}

/// `<Output = T>`: `T`.
fn future_output(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(a) = args else { return None };
    match a.args.first() {
        Some(GenericArgument::AssocType(b)) if a.args.len() == 1 && b.ident == "Output" => Some(&b.ty),
        _ => None,
    }
}

/// The `T` of a `Future<Output = T>` anywhere in `ty` (`impl Future<..> + Unpin`,
/// `Pin<Box<dyn Future<..>>>`); `Some(None)` for a `Future` without `Output`.
fn find_future(ty: &Type) -> Option<Option<&Type>> {
    let bounds = match ty {
        Type::ImplTrait(t) => &t.bounds,
        Type::TraitObject(t) => &t.bounds,
        Type::Paren(p) => return find_future(&p.elem),
        Type::Group(g) => return find_future(&g.elem),
        Type::Path(p) => {
            return p.path.segments.iter().find_map(|seg| {
                let PathArguments::AngleBracketed(a) = &seg.arguments else { return None };
                a.args.iter().find_map(|arg| match arg {
                    GenericArgument::Type(t) => find_future(t),
                    _ => None,
                })
            })
        }
        _ => return None,
    };
    bounds.iter().find_map(|b| match b {
        TypeParamBound::Trait(t) => {
            let last = t.path.segments.last()?;
            (last.ident == "Future").then(|| future_output(&last.arguments))
        }
        _ => None,
    })
}

/// Whether a method that is not `async` returns some kind of future: then its return type is
/// not the RPC result, and only the missing `async` is reported.
pub(crate) fn returns_future(sig: &Signature) -> bool {
    matches!(&sig.output, ReturnType::Type(_, ty) if sig.asyncness.is_none() && find_future(ty).is_some())
}

/// `Vec < u8 >` (tokens as printed) → `Vec<u8>`, for messages.
fn type_string(ty: &Type) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// `fn ping(&self)`, `const fn ping(&self)`, `unsafe fn ping(&self)`, `extern "C" fn ping(&self)`,
/// `fn next(&self) -> impl Future<Output = u64> + Unpin`
///
/// One error per method, on the first wrong qualifier, or on `fn` when `async` is missing.
pub(crate) fn async_fn(sig: &Signature, errors: &mut Errors) {
    let name = sig.ident.unraw();
    if let Some(c) = &sig.constness {
        errors.push_spanned(c, format!("RPC methods cannot be `const`; write `async fn {name}`"));
    } else if let Some(u) = &sig.unsafety {
        errors.push_spanned(u, format!("RPC methods cannot be `unsafe`; write `async fn {name}`"));
    } else if let Some(abi) = &sig.abi {
        errors.push_spanned(abi, format!("RPC methods cannot have an ABI; write `async fn {name}`"));
    } else if let (None, ReturnType::Type(_, ty)) = (&sig.asyncness, &sig.output) {
        if let Some(output) = find_future(ty) {
            let output = output.map_or_else(|| "T".to_owned(), type_string);
            errors.push_spanned(
                sig.fn_token,
                format!(
                    "RPC methods must be `async fn`; write `async fn {name}(...) -> {output}`, which the generated trait declares as `fn {name}(...) -> impl Future<Output = {output}> + Send` (that form is accepted too, with no other bound)"
                ),
            );
        } else {
            errors.push_spanned(
                sig.fn_token,
                format!("RPC methods must be `async fn`; write `async fn {name}`"),
            );
        }
    } else if sig.asyncness.is_none() {
        errors.push_spanned(sig.fn_token, format!("RPC methods must be `async fn`; write `async fn {name}`"));
    }
}

/// `async fn log(&self, format: String, ...)`
pub(crate) fn variadic(sig: &Signature, errors: &mut Errors) {
    if let Some(v) = &sig.variadic {
        errors.push_spanned(v.dots, "RPC methods cannot be variadic; take a `Vec` instead");
    }
}

/// `async fn get<T>(&self, key: T)`, `async fn get<'a>(&self)`,
/// `async fn get(&self) where Self: Sized`
pub(crate) fn method_generics(sig: &Signature, errors: &mut Errors) {
    if only_lifetimes(&sig.generics) {
        // A borrowed argument is reported on its type, with an owned type to use instead.
        if !uses_lifetimes(sig, &sig.generics) {
            errors.push_spanned(
                &sig.generics,
                format!("RPC methods cannot have lifetime parameters: {NOTHING_BORROWED}"),
            );
        }
    } else if !sig.generics.params.is_empty() {
        errors.push_spanned(
            &sig.generics,
            "RPC methods cannot be generic: the server must know every argument type to decode it; use concrete types",
        );
    }
    if let Some(w) = &sig.generics.where_clause {
        errors.push_spanned(w, "RPC methods cannot have a `where` clause; remove it");
    }
}

/// `async fn ping(&self) { ... }`
pub(crate) fn default_body(f: &TraitItemFn, errors: &mut Errors) {
    if let Some(body) = &f.default {
        errors.push(syn::Error::new(
            body.brace_token.span.open(),
            "RPC methods cannot have a default body: the server runs the implementor's; end the declaration with `;` and move the body to your impl",
        ));
    }
}

/// `async fn get(key: String)`, `async fn get(self)`, `async fn set(&mut self)`,
/// `async fn get(self: Box<Self>)`, `async fn get(key: String, &self)`
///
/// Returns whether the method has a usable `&self` first.
pub(crate) fn receiver(sig: &Signature, errors: &mut Errors) -> bool {
    for input in sig.inputs.iter().skip(1) {
        if let FnArg::Receiver(r) = input {
            errors.push_spanned(r, "`self` must be the first argument; write `&self` first");
        }
    }
    let Some(FnArg::Receiver(r)) = sig.inputs.first() else {
        errors.push(syn::Error::new(
            sig.paren_token.span.open(),
            "RPC methods take `&self` first; add it, e.g. `async fn get(&self, key: String)`",
        ));
        return false;
    };
    if r.colon_token.is_some() {
        errors.push_spanned(r, "RPC methods take `&self`; a typed receiver such as `self: Box<Self>` is not supported; write `&self`");
        return false;
    }
    match (&r.reference, &r.mutability) {
        (Some(_), None) => true,
        (Some(_), Some(m)) => {
            errors.push_spanned(
                m,
                "RPC methods take `&self`, not `&mut self`: calls run concurrently; keep state behind interior mutability (a `Mutex` or atomics) and write `&self`",
            );
            false
        }
        (None, _) => {
            errors.push_spanned(
                r,
                "RPC methods take `&self`, not `self`: the server calls the method many times on one value; write `&self`",
            );
            false
        }
    }
}

/// `(a, b): (u8, u8)`, `_: u8`, `mut x: u8`, `ref x: u8`
///
/// Returns the argument's name when it is a plain identifier.
pub(crate) fn arg_pattern(pat: &Pat, errors: &mut Errors) -> Option<syn::Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() => {
            return Some(p.ident.clone());
        }
        Pat::Ident(p) if p.mutability.is_some() || p.by_ref.is_some() => {
            let token = match (&p.by_ref, &p.mutability) {
                (Some(r), _) => r.to_token_stream(),
                (None, m) => m.to_token_stream(),
            };
            errors.push_spanned(
                token,
                format!(
                    "RPC arguments must be plain identifiers; write `{}` here and bind it as you like in your impl",
                    p.ident
                ),
            );
        }
        Pat::Wild(w) => errors.push_spanned(
            w,
            "RPC arguments must be named: the name is used in the generated client and messages; write e.g. `value: u8`",
        ),
        other => errors.push_spanned(
            other,
            "RPC arguments must be plain identifiers, e.g. `point: Point`; destructure inside your impl",
        ),
    }
    None
}

/// `async fn f(&self, a: u8, a: u8)`
pub(crate) fn duplicate_args(method: &Method, errors: &mut Errors) {
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    for arg in &method.args {
        let name = arg.ident.unraw().to_string();
        match seen.get(&name) {
            Some(first) => errors.push_conflict(
                &arg.ident,
                format!("the argument `{name}` is declared twice; rename one"),
                first,
                "first declared here",
            ),
            None => {
                seen.insert(name, &arg.ident);
            }
        }
    }
}

/// `async fn f(&self, a0: u8, ..., a16: u8)`: 17 arguments
pub(crate) fn arg_count(sig: &Signature, errors: &mut Errors) {
    let mut typed = sig.inputs.iter().filter(|i| matches!(i, FnArg::Typed(_)));
    if let Some(extra) = typed.nth(MAX_ARGS) {
        errors.push_spanned(
            extra,
            format!("RPC methods take at most {MAX_ARGS} arguments; group some of them in a struct"),
        );
    }
}

/// Whether a type is checked as an argument or a result, for messages.
#[derive(Clone, Copy)]
pub(crate) enum Role {
    Argument,
    Result,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Argument => "RPC arguments",
            Role::Result => "RPC results",
        }
    }
}

/// `key: &str`, `data: &[u8]`, `-> impl Display`, `x: Box<dyn Any>`, `x: Self`,
/// `x: Cow<'a, str>`
///
/// Arguments and results cross the wire: they must be concrete and owned. Whether they
/// implement serde's traits is left to rustc (see `assert_wire`).
pub(crate) fn wire_type(ty: &Type, role: Role, errors: &mut Errors) {
    let what = role.name();
    match ty {
        Type::Reference(r) => errors.push_spanned(
            r.and_token,
            format!(
                "{what} are sent over the wire and must be owned; use {} instead of a reference",
                owned_suggestion(&r.elem)
            ),
        ),
        Type::ImplTrait(t) => errors.push_spanned(
            t.impl_token,
            format!("{what} must have a concrete type, not `impl Trait`: the other end must know what to decode; name the type"),
        ),
        Type::TraitObject(t) => errors.push_spanned(
            t.dyn_token.map_or_else(|| t.to_token_stream(), |d| d.to_token_stream()),
            format!("{what} must have a concrete type, not `dyn Trait`: the other end must know what to decode; use an enum or a struct"),
        ),
        Type::Paren(p) => wire_type(&p.elem, role, errors),
        Type::Group(g) => wire_type(&g.elem, role, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| wire_type(e, role, errors)),
        Type::Array(a) => wire_type(&a.elem, role, errors),
        Type::Slice(s) => wire_type(&s.elem, role, errors),
        Type::Path(p) if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") => {
            errors.push_spanned(
                &p.path.segments[0].ident,
                format!("{what} cannot use `Self`: the other end does not know the implementing type; use a concrete type"),
            );
        }
        Type::Path(p) => p.path.segments.iter().for_each(|seg| generic_args(&seg.arguments, role, errors)),
        _ => {}
    }
}

fn generic_args(args: &PathArguments, role: Role, errors: &mut Errors) {
    let PathArguments::AngleBracketed(args) = args else { return };
    for arg in &args.args {
        match arg {
            GenericArgument::Type(t) => wire_type(t, role, errors),
            GenericArgument::Lifetime(l) if l.ident != "static" => errors.push_spanned(
                l,
                format!("{} are sent over the wire and must be owned; they cannot borrow with `{l}`; use an owned type or `'static`", role.name()),
            ),
            _ => {}
        }
    }
}

/// What to suggest instead of `&elem`.
fn owned_suggestion(elem: &Type) -> String {
    match elem {
        Type::Path(p) if p.path.is_ident("str") => "`String`".into(),
        Type::Path(p) if p.path.is_ident("Path") => "`PathBuf`".into(),
        Type::Path(p) if p.path.get_ident().is_some() => format!("`{}`", p.to_token_stream()),
        Type::Slice(s) => match &*s.elem {
            Type::Path(p) if p.path.get_ident().is_some() => format!("`Vec<{}>`", p.to_token_stream()),
            _ => "a `Vec`".into(),
        },
        _ => "an owned type".into(),
    }
}

/// `#[oneway] async fn get(&self) -> u32`
pub(crate) fn oneway_result(method: &Method, errors: &mut Errors) {
    // A stream result is reported by `streams::read`, on the `Streaming`.
    let stream = crate::streams::item(&method.output).is_some();
    if let (Some(oneway), false, false) = (&method.oneway, crate::ast::is_unit(&method.output), stream) {
        errors.push_spanned(
            oneway,
            "a `#[oneway]` method cannot return a value: the client does not wait for a reply; remove the return type or `#[oneway]`",
        );
    }
}

/// `#[rpc(persistent)] async fn watch(&self) -> Streaming<u64>`
pub(crate) fn persistent(method: &Method, errors: &mut Errors) {
    if let (Some(key), true) = (&method.persistent, method.kind.is_stream()) {
        errors.push_spanned(
            key,
            "a streaming method cannot be `persistent`: a queued call is stored and run later, with one stored result, and a stream cannot be stored; remove `persistent`, or make the method return its whole result",
        );
    }
}

/// `#[rpc(persistent)] async fn send(..)` next to `#[rpc(persistent)] async fn send_with_id(..)`:
/// both would make the generated queue's `submit_send_with_id`.
pub(crate) fn persistent_collisions(service: &Service, errors: &mut Errors) {
    let persistent: HashMap<String, &Method> = service
        .methods
        .iter()
        .filter(|m| m.persistent.is_some())
        .map(|m| (m.ident.unraw().to_string(), m))
        .collect();
    for m in service.methods.iter().filter(|m| m.persistent.is_some()) {
        let name = m.ident.unraw().to_string();
        let Some((base, first)) = name.strip_suffix("_with_id").and_then(|b| persistent.get_key_value(b))
        else {
            continue;
        };
        errors.push_conflict(
            &m.ident,
            format!(
                "`{name}` and `{base}` are both `#[rpc(persistent)]`, and both would make `{}Queue::submit_{name}` (the second is `{base}` with a call id); rename `{name}` (the wire name can stay with `#[rpc(name = \"{name}\")]`), or drop `persistent` from one",
                service.ident,
            ),
            &first.ident,
            "the other method",
        );
    }
}

/// `async fn get(&self)` twice
pub(crate) fn duplicate_methods(service: &Service, errors: &mut Errors) {
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    for m in &service.methods {
        let name = m.ident.unraw().to_string();
        match seen.get(&name) {
            Some(first) => errors.push_conflict(
                &m.ident,
                format!("the method `{name}` is defined twice; rename or remove one"),
                first,
                "first defined here",
            ),
            None => {
                seen.insert(name, &m.ident);
            }
        }
    }
}

/// `async fn foo_bar(&self)` next to `async fn foo__bar(&self)` (both become `FooBar`)
pub(crate) fn variant_collisions(service: &Service, errors: &mut Errors) {
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    for m in &service.methods {
        match seen.get(&m.variant.to_string()) {
            // Same name twice is reported by `duplicate_methods`.
            Some(first) if first.unraw() == m.ident.unraw() => {}
            Some(first) => errors.push_conflict(
                &m.ident,
                format!(
                    "`{}` and `{}` both become the message variant `{}`; rename one",
                    first.unraw(),
                    m.ident.unraw(),
                    m.variant
                ),
                first,
                "first defined here",
            ),
            None => {
                seen.insert(m.variant.to_string(), &m.ident);
            }
        }
    }
}

/// `#[rpc(name = "get")] async fn fetch(&self)` next to `async fn get(&self)`
pub(crate) fn wire_name_collisions(service: &Service, errors: &mut Errors) {
    let mut seen: HashMap<String, &Method> = HashMap::new();
    for m in &service.methods {
        let name = m.wire_name.value();
        match seen.get(&name) {
            // Two methods of the same name: reported by `duplicate_methods`.
            Some(first) if first.ident.unraw() == m.ident.unraw() => {}
            Some(first) => errors.push_conflict(
                &m.wire_name,
                format!(
                    "two methods use the wire name \"{name}\"; give one another `#[rpc(name = \"...\")]`"
                ),
                &first.wire_name,
                "first used here",
            ),
            None => {
                seen.insert(name, m);
            }
        }
    }
}

/// `async fn new(&self)`: the generated client already has `new`
pub(crate) fn reserved_names(service: &Service, errors: &mut Errors) {
    for m in &service.methods {
        let name = m.ident.unraw().to_string();
        if RESERVED_CLIENT_METHODS.contains(&name.as_str()) {
            errors.push_spanned(
                &m.ident,
                format!(
                    "a method named `{name}` would collide with the generated `{}{}::{name}`; rename it (the wire name can stay with `#[rpc(name = \"{name}\")]`)",
                    service.ident,
                    if BLOCKING_CLIENT_METHODS.contains(&name.as_str()) { "BlockingClient" } else { "Client" },
                ),
            );
        }
    }
}
