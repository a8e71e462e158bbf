//! Code generation: reads only the IR built in `ast.rs`.

mod client;
mod messages;
mod server;
mod service_trait;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use crate::args::ServiceArgs;
use crate::ast::{self, Service};
use crate::check;
use crate::errors::Errors;

/// Input: the attribute's arguments and the item it is on.
/// Output: the trait rewritten for `Send` futures, the messages, the client and the server; or,
/// on any error, the user's trait unchanged (helpers stripped) plus every error, so no second
/// error cascades from missing generated items.
pub(crate) fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = ServiceArgs::parse(args, &mut errors);
    let item: syn::ItemTrait = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => return not_a_trait(input, errors),
    };
    check::trait_shape(&item, &mut errors);
    let service = Service::from_trait(item, &mut errors);
    check::names(&service, &mut errors);
    match errors.finish() {
        Ok(()) => generate(&args, &service),
        Err(e) => {
            let mut out = service.original.to_token_stream();
            out.extend(e.to_compile_error());
            out
        }
    }
}

fn generate(args: &ServiceArgs, service: &Service) -> TokenStream {
    let krate = &args.krate;
    let service_trait = service_trait::generate(service);
    let messages = messages::generate(krate, service);
    let client = client::generate(krate, service);
    let server = server::generate(krate, service);
    let assertions = wire_assertions(krate, service);
    quote! {
        #service_trait
        #messages
        #client
        #server
        #assertions
    }
}

/// For every argument and result type, a check spanned on the user's type, so a type that cannot
/// cross the wire is reported there, with our note.
fn wire_assertions(krate: &syn::Path, service: &Service) -> TokenStream {
    let checks = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let tys = m.args.iter().map(|a| &a.ty).chain(std::iter::once(&m.output));
        let asserts = tys.map(|ty| {
            quote::quote_spanned! {syn::spanned::Spanned::span(ty)=>
                #krate::__private::assert_wire::<#ty>();
            }
        });
        quote! { #(#cfgs)* { #(#asserts)* } }
    });
    quote! {
        #[doc(hidden)]
        const _: () = { #(#checks)* };
    }
}

/// `#[service]` on something other than a trait: one error on the item's keyword, and the item
/// left as written.
fn not_a_trait(input: TokenStream, mut errors: Errors) -> TokenStream {
    let span_target = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(item) => item_keyword(&item),
        Err(_) => input.clone().into_iter().next().map(|t| t.into_token_stream()).unwrap_or_default(),
    };
    errors.push_spanned(span_target, "`#[service]` can only be applied to a trait");
    let mut out = input;
    if let Err(e) = errors.finish() {
        out.extend(e.to_compile_error());
    }
    out
}

fn item_keyword(item: &syn::Item) -> TokenStream {
    match item {
        syn::Item::Struct(s) => s.struct_token.to_token_stream(),
        syn::Item::Enum(e) => e.enum_token.to_token_stream(),
        syn::Item::Fn(f) => f.sig.fn_token.to_token_stream(),
        syn::Item::Impl(i) => i.impl_token.to_token_stream(),
        syn::Item::Mod(m) => m.mod_token.to_token_stream(),
        syn::Item::Union(u) => u.union_token.to_token_stream(),
        syn::Item::Type(t) => t.type_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// `Foo` → `FooClient` etc., spanned on the trait's name.
pub(super) fn suffixed(service: &Service, suffix: &str) -> syn::Ident {
    quote::format_ident!("{}{}", service.ident, suffix, span = service.ident.span())
}

/// The argument names and types of a method, for `quote!` repetitions.
pub(super) fn arg_lists(m: &ast::Method) -> (Vec<&syn::Ident>, Vec<&syn::Type>) {
    m.args.iter().map(|a| (&a.ident, &a.ty)).unzip()
}
