//! Code generation: reads only the IR built in `ast.rs`.

mod blocking;
mod client;
mod descriptor;
mod fallback;
mod messages;
mod queue;
mod server;
mod service_trait;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};

use crate::args::ServiceArgs;
use crate::ast::{self, Service};
use crate::errors::Errors;

/// Input: the attribute's arguments and the item it is on.
/// Output: the trait rewritten for `Send` futures, the messages, the client and the server; or,
/// on any error, the user's trait (see `fallback`) plus every error, so no second error cascades
/// from missing generated items.
pub(crate) fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = ServiceArgs::parse(args, &mut errors);
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Trait(item)) => item,
        Ok(other) => return not_a_trait(&other, input, errors),
        // Not valid Rust: give the tokens back for rustc to report the syntax error itself,
        // once, rather than adding our own message for the same mistake.
        Err(_) => return with_errors(input, errors),
    };
    let service = Service::from_trait(item, &mut errors);
    descriptor::check_default_name(&args, &service, &mut errors);
    match errors.finish() {
        Ok(()) => generate(&args, &service),
        Err(e) => fallback::generate(service.original, e),
    }
}

fn generate(args: &ServiceArgs, service: &Service) -> TokenStream {
    let krate = &args.krate;
    let service_trait = service_trait::generate(krate, service);
    let (message_types, message_impls) = messages::generate(krate, service);
    let wire_service = descriptor::wire_name(args, service);
    let (client_type, client_impls) = client::generate(krate, service, &wire_service);
    let (server_type, server_impls) = server::generate(krate, service);
    let (blocking_type, blocking_impls) = blocking::generate(krate, service);
    let mut types = vec![client_type, blocking_type, server_type];
    let mut names = vec!["Client", "BlockingClient", "Server"];
    let queue_impls = if queue::wanted(service) {
        let (queue_type, queue_impls) = queue::generate(krate, service, &wire_service);
        types.push(queue_type);
        names.push("Queue");
        queue_impls
    } else {
        TokenStream::new()
    };
    let descriptor = descriptor::generate(krate, args, service);
    let stubs = stubs(args, service, &types, &names);
    let assertions = wire_assertions(krate, service);
    let renames = messages::renames(service);
    let p = private(krate);
    quote! {
        #service_trait
        #message_types
        #stubs
        #[doc(hidden)]
        const _: () = {
            #renames
            // Method resolution picks `WireOps` when a method's types cross the wire, `NotWire`
            // otherwise (then an assertion below fails): see `__private::Probe`.
            #[allow(unused_imports)]
            use #p::dispatch::{NotStreamWire as _, NotWire as _, StreamOps as _, WireOps as _};
            #message_impls
            #client_impls
            #blocking_impls
            #queue_impls
            #server_impls
            #descriptor
            #assertions
        };
    }
}

/// Input: `async fn put(&self, value: NotSerde) -> u8`
/// Output: `assert_wire::<NotSerde>(); assert_wire::<u8>();`, each spanned on the user's type,
/// so a type that cannot cross the wire is reported there, once, with our note.
///
/// A result `Result<T, E>` is asserted as `T` and `E`, each on its own token, so a non-serde
/// error type is reported on `E`; `assert_result` then checks that this `Result` is core's
/// (whose serde impls need no more than that).
fn wire_assertions(krate: &syn::Path, service: &Service) -> TokenStream {
    let p = private(krate);
    let assert = |ty: &syn::Type| {
        let span = user_span(syn::spanned::Spanned::span(ty));
        quote_spanned! {span=> #p::assert_wire::<#ty>(); }
    };
    let checks = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        // A stream is asserted as its items, spanned on the item type.
        let args = m.args.iter().enumerate().map(|(i, a)| match &m.up {
            Some((at, item)) if *at == i => assert(item),
            _ => assert(&a.ty),
        });
        if let Some(item) = &m.down {
            let output = assert(item);
            return quote! { #(#cfgs)* { #(#args)* #output } };
        }
        let output = match result_parts(&m.output) {
            Some((name, ok, err)) => {
                let (output, ok_assert, err_assert) = (&m.output, assert(ok), assert(err));
                let span = user_span(name.span());
                quote_spanned! {span=>
                    #ok_assert
                    #err_assert
                    #p::assert_result::<#output, #ok, #err>();
                }
            }
            None => assert(&m.output),
        };
        quote! { #(#cfgs)* { #(#args)* #output } }
    });
    quote! { #(#checks)* }
}

/// `Result<T, E>` (any path ending in `Result`, with two types): its name, `T` and `E`.
fn result_parts(ty: &syn::Type) -> Option<(&syn::Ident, &syn::Type, &syn::Type)> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last().filter(|s| p.qself.is_none() && s.ident == "Result")?;
    let syn::PathArguments::AngleBracketed(a) = &last.arguments else { return None };
    match a.args.iter().collect::<Vec<_>>()[..] {
        [syn::GenericArgument::Type(ok), syn::GenericArgument::Type(err)] => Some((&last.ident, ok, err)),
        _ => None,
    }
}

/// `#[service]` on something other than a trait: one error on the item's keyword, and the item
/// left as written.
fn not_a_trait(item: &syn::Item, input: TokenStream, mut errors: Errors) -> TokenStream {
    errors.push_spanned(
        item_keyword(item),
        "`#[service]` can only be applied to a trait, e.g. `#[service] trait Calculator { ... }`",
    );
    with_errors(input, errors)
}

fn with_errors(mut tokens: TokenStream, errors: Errors) -> TokenStream {
    if let Err(e) = errors.finish() {
        tokens.extend(e.to_compile_error());
    }
    tokens
}

fn item_keyword(item: &syn::Item) -> TokenStream {
    match item {
        syn::Item::Struct(s) => s.struct_token.to_token_stream(),
        syn::Item::Enum(e) => e.enum_token.to_token_stream(),
        syn::Item::Union(u) => u.union_token.to_token_stream(),
        syn::Item::Fn(f) => f.sig.fn_token.to_token_stream(),
        syn::Item::Impl(i) => i.impl_token.to_token_stream(),
        syn::Item::Mod(m) => m.mod_token.to_token_stream(),
        syn::Item::Type(t) => t.type_token.to_token_stream(),
        syn::Item::Const(c) => c.const_token.to_token_stream(),
        syn::Item::Static(s) => s.static_token.to_token_stream(),
        syn::Item::Use(u) => u.use_token.to_token_stream(),
        syn::Item::TraitAlias(t) => t.trait_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// A span at the user's token for generated code (so rustc's errors point there) that still
/// counts as macro-generated (so lints such as `unused_qualifications` leave it alone).
pub(super) fn user_span(span: Span) -> Span {
    Span::mixed_site().located_at(span)
}

/// `#krate::__private`, with `__private` spanned on the runtime path: generated code names the
/// runtime only through this, so a `crate = "..."` path that does not resolve, or that is not the
/// runtime, fails with one error on the path (rustc merges identical errors), not one per use.
pub(super) fn private(krate: &syn::Path) -> TokenStream {
    let span = krate.segments.last().map_or_else(Span::call_site, |s| s.ident.span());
    let private = syn::Ident::new("__private", span);
    quote!(#krate::#private)
}

/// Input: the client and server structs (and the queue client's, for a service with
/// `#[rpc(persistent)]` methods), and their names' suffixes.
/// Output: `mod __rpc_Calc { pub struct CalcClient {..} pub struct CalcServer<S> {..} }` and
/// `pub use __rpc_Calc::{CalcClient, CalcServer};`, with the trait's visibility.
///
/// The impls name the structs by their path in this module, so a user item also named
/// `CalcClient` is one error, rustc's "defined multiple times" on the `use` (spanned on the
/// trait's name), and not, besides, one error per generated use of a field that the user's item
/// lacks. (rustc then also suggests renaming the import with `as`, written after the trait's
/// name: no span of the `use` avoids that suggestion.) The structs name no user
/// type, so moving them into a module changes no name resolution but the runtime path's (see
/// `stub_krate`).
fn stubs(args: &ServiceArgs, service: &Service, types: &[TokenStream], suffixes: &[&str]) -> TokenStream {
    let module = stubs_module(service);
    let vis = &service.vis;
    let names = suffixes.iter().map(|suffix| suffixed(service, suffix));
    // A runtime path relative to the service's module (`crate = "rpc"` after `use rpc_runtime as
    // rpc;`) resolves in the stubs module through this import.
    let glob = match args.krate.segments.first() {
        Some(first)
            if args.krate.leading_colon.is_none()
                && first.ident != "crate"
                && first.ident != "self"
                && first.ident != "super" =>
        {
            quote!(
                #[allow(unused_imports)]
                use super::*;
            )
        }
        _ => TokenStream::new(),
    };
    quote! {
        #[allow(non_snake_case)]
        mod #module {
            #glob
            #(#types)*
        }
        // Unused (or, for a `pub` service in a private module, unreachable) when not all of
        // them are used: a service used only through its async client is not a warning.
        #[allow(unused_imports, unreachable_pub)]
        #vis use #module::{#(#names),*};
    }
}

/// `Calc` → `__rpc_Calc`, the module holding the client and server structs.
fn stubs_module(service: &Service) -> syn::Ident {
    quote::format_ident!("__rpc_{}", syn::ext::IdentExt::unraw(&service.ident))
}

/// `CalcClient` → `__rpc_Calc::CalcClient`, for the impls.
pub(super) fn stub_path(service: &Service, name: &syn::Ident) -> TokenStream {
    let module = stubs_module(service);
    // Macro-generated to lints: `unused_qualifications` would flag the path, `name` being in
    // scope through the `use`.
    let name = syn::Ident::new(&name.to_string(), user_span(name.span()));
    quote!(#module::#name)
}

/// The visibility, inside the stubs module, that the parent's `use` can re-export with the
/// trait's visibility: `pub` and `pub(crate)` stay, private becomes `pub(super)`, and a path
/// relative to the parent (`pub(super)`, `pub(in super::x)`) gains a `super`.
pub(super) fn stub_vis(vis: &syn::Visibility) -> TokenStream {
    match vis {
        syn::Visibility::Public(_) => quote!(pub),
        syn::Visibility::Inherited => quote!(pub(super)),
        syn::Visibility::Restricted(r) => {
            let path = &r.path;
            match path.segments.first() {
                Some(first) if path.leading_colon.is_none() && first.ident == "crate" => quote!(#vis),
                Some(first) if first.ident == "self" => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(::#rest)*))
                }
                _ => quote!(pub(in super::#path)),
            }
        }
    }
}

/// The runtime path as seen from the stubs module: `self::x` becomes `super::x`, `super::x`
/// becomes `super::super::x`; an absolute path stays, and a plain relative one resolves
/// through the module's `use super::*` (see `stubs`).
pub(super) fn stub_krate(krate: &syn::Path) -> syn::Path {
    let mut path = krate.clone();
    match krate.segments.first() {
        Some(first) if krate.leading_colon.is_none() && first.ident == "self" => {
            path.segments[0].ident = syn::Ident::new("super", first.ident.span());
        }
        Some(first) if krate.leading_colon.is_none() && first.ident == "super" => {
            path.segments.insert(0, syn::PathSegment::from(syn::Ident::new("super", first.ident.span())));
        }
        _ => {}
    }
    path
}

/// `Foo` → `FooClient` etc., spanned on the trait's name.
pub(super) fn suffixed(service: &Service, suffix: &str) -> syn::Ident {
    quote::format_ident!("{}{}", service.ident, suffix, span = service.ident.span())
}

/// The argument names and types of a method, for `quote!` repetitions.
pub(super) fn arg_lists(m: &ast::Method) -> (Vec<&syn::Ident>, Vec<&syn::Type>) {
    m.args.iter().map(|a| (&a.ident, &a.ty)).unzip()
}

/// The arguments sent in the call's body: all but a `Streaming` one.
pub(super) fn sent_args(m: &ast::Method) -> (Vec<&syn::Ident>, Vec<&syn::Type>) {
    let stream = m.up.as_ref().map(|(at, _)| *at);
    m.args.iter().enumerate().filter(|(i, _)| Some(*i) != stream).map(|(_, a)| (&a.ident, &a.ty)).unzip()
}

/// The `Streaming` argument's name, if the method has one.
pub(super) fn stream_arg(m: &ast::Method) -> Option<&syn::Ident> {
    m.up.as_ref().map(|(at, _)| &m.args[*at].ident)
}

/// `Probe::<(A, B), R>::new()`: the dispatch for a method's types (see `__private::Probe`); for
/// a streaming method, `StreamProbe::<(A,), Up, Down>::new()`, `Up` being the client's items
/// (`()` for none) and `Down` the server's items or the one result.
pub(super) fn probe(krate: &syn::Path, m: &ast::Method) -> TokenStream {
    if m.kind.is_stream() {
        let (_, tys) = sent_args(m);
        let up = m.up.as_ref().map_or_else(|| quote!(()), |(_, t)| quote!(#t));
        let down = m.down.as_ref().unwrap_or(&m.output);
        let p = private(krate);
        return quote! { (&#p::StreamProbe::<(#(#tys,)*), #up, #down>::new()) };
    }
    let (_, tys) = arg_lists(m);
    let output = &m.output;
    let p = private(krate);
    quote! { (&#p::Probe::<(#(#tys,)*), #output>::new()) }
}
