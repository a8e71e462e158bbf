//! The typed client stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `struct CalcClient`, and (for the hidden `const _` block) its `Clone` and `Debug`
/// impls and an inherent impl with `new`, `from_client`, `with_timeout`, `as_client` and
/// `async fn add(&self, a: i64, b: i64) -> Result<i64, RpcError>` (for a `#[oneway]` method,
/// `fn log(&self, line: String) -> impl OnewayFuture<Output = Result<(), RpcError>> + '_`).
pub(super) fn generate(krate: &syn::Path, service: &Service) -> (TokenStream, TokenStream) {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let client = super::suffixed(service, "Client");
    // The struct is defined in the stubs module (see `super::stubs`); the impls name it by
    // that path, and build it with `Self`.
    let client_path = super::stub_path(service, &client);
    let (inner_vis, inner_p) = (super::stub_vis(vis), super::private(&super::stub_krate(krate)));
    let p = super::private(krate);
    let methods = service.methods.iter().map(|m| {
        let (docs, cfgs, name, wire, output) = (&m.docs, &m.cfgs, &m.ident, &m.wire_name, &m.output);
        let (args, tys) = super::arg_lists(m);
        let probe = super::probe(krate, m);
        // `#[deprecated]` warns the callers of the client, not the generated code (which allows
        // it where it calls the trait method).
        let deprecated = m.attrs.iter().filter(|a| a.path().is_ident("deprecated"));
        let ret = quote_spanned! {super::user_span(m.output_span())=>
            ::core::result::Result<#output, #p::RpcError>
        };
        let span = super::user_span(m.span());
        let signature = if m.oneway.is_some() {
            // Not `async fn`: the future's type names `OnewayFuture`, whose `must_use` message
            // says that the call is sent only when awaited.
            quote_spanned! {span=>
                fn #name(&self, #(#args: #tys),*) -> impl #p::OnewayFuture<Output = #ret> + '_ {
                    async move { #probe.notify(&self.client, #wire, &(#(#args,)*)).await }
                }
            }
        } else {
            quote_spanned! {span=>
                async fn #name(&self, #(#args: #tys),*) -> #ret {
                    #probe.call(&self.client, #wire, &(#(#args,)*)).await
                }
            }
        };
        quote_spanned! {span=>
            #(#docs)*
            #(#cfgs)*
            #(#deprecated)*
            // The argument list is the user's, already linted on the trait.
            #[allow(clippy::too_many_arguments)]
            #[inline]
            #vis #signature
        }
    });
    let doc = format!(
        "The client of the [`{trait_name}`](super::{trait_name}) service: one async method per trait method.\n\n\
         Clones share one connection; calls from many tasks are multiplexed on it."
    );
    let ty = quote! {
        #[doc = #doc]
        #inner_vis struct #client {
            pub(super) client: #inner_p::Client,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl ::core::clone::Clone for #client_path {
            fn clone(&self) -> Self {
                Self { client: ::core::clone::Clone::clone(&self.client) }
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Debug for #client_path {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.client, f)
            }
        }

        #[automatically_derived]
        impl #client_path {
            /// Starts a client on `conn` with default settings (see `rpc_runtime::Client`).
            ///
            /// # Panics
            ///
            /// Panics if called outside a Tokio runtime.
            #vis fn new(conn: #p::Connection) -> Self {
                Self { client: #p::Client::new(conn) }
            }

            /// Wraps a runtime client, built with custom settings.
            #vis fn from_client(client: #p::Client) -> Self {
                Self { client }
            }

            /// A handle on the same connection whose calls use `timeout` as their deadline
            /// (`None`: no deadline).
            #vis fn with_timeout(&self, timeout: impl ::core::convert::Into<::core::option::Option<#p::Duration>>) -> Self {
                Self { client: self.client.with_timeout(timeout) }
            }

            /// The runtime client underneath.
            #vis fn as_client(&self) -> &#p::Client {
                &self.client
            }

            #(#methods)*
        }
    };
    (ty, impls)
}
