//! Code generation: reads only the IR built in `ast.rs`.

mod client;
mod descriptor;
mod fallback;
mod messages;
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
    let service_trait = service_trait::generate(service);
    let (message_types, message_impls) = messages::generate(krate, service);
    let (client_type, client_impls) = client::generate(krate, service);
    let (server_type, server_impls) = server::generate(krate, service);
    let descriptor = descriptor::generate(krate, args, service);
    let assertions = wire_assertions(krate, service);
    quote! {
        #service_trait
        #message_types
        #client_type
        #server_type
        #[doc(hidden)]
        const _: () = {
            // Method resolution picks `WireOps` when a method's types cross the wire, `NotWire`
            // otherwise (then an assertion below fails): see `__private::Probe`.
            #[allow(unused_imports)]
            use #krate::__private::dispatch::{NotWire as _, WireOps as _};
            #message_impls
            #client_impls
            #server_impls
            #descriptor
            #assertions
        };
    }
}

/// Input: `async fn put(&self, value: NotSerde) -> u8`
/// Output: `assert_wire::<NotSerde>(); assert_wire::<u8>();`, each spanned on the user's type,
/// so a type that cannot cross the wire is reported there, once, with our note.
fn wire_assertions(krate: &syn::Path, service: &Service) -> TokenStream {
    let checks = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let tys = m.args.iter().map(|a| &a.ty).chain(std::iter::once(&m.output));
        let asserts = tys.map(|ty| {
            let span = user_span(syn::spanned::Spanned::span(ty));
            quote_spanned! {span=> #krate::__private::assert_wire::<#ty>(); }
        });
        quote! { #(#cfgs)* { #(#asserts)* } }
    });
    quote! { #(#checks)* }
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

/// `Foo` → `FooClient` etc., spanned on the trait's name.
pub(super) fn suffixed(service: &Service, suffix: &str) -> syn::Ident {
    quote::format_ident!("{}{}", service.ident, suffix, span = service.ident.span())
}

/// The argument names and types of a method, for `quote!` repetitions.
pub(super) fn arg_lists(m: &ast::Method) -> (Vec<&syn::Ident>, Vec<&syn::Type>) {
    m.args.iter().map(|a| (&a.ident, &a.ty)).unzip()
}

/// `Probe::<(A, B), R>::new()`: the dispatch for a method's types (see `__private::Probe`).
pub(super) fn probe(krate: &syn::Path, m: &ast::Method) -> TokenStream {
    let (_, tys) = arg_lists(m);
    let output = &m.output;
    quote! { (&#krate::__private::Probe::<(#(#tys,)*), #output>::new()) }
}
