//! The typed client stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `struct CalcClient`, and (for the hidden `const _` block) its `Clone` and `Debug`
/// impls and an inherent impl with `new`, `from_client`, `with_timeout`, `as_client` and
/// `async fn add(&self, a: i64, b: i64) -> Result<i64, RpcError>` (for a `#[oneway]` method,
/// `fn log(&self, line: String) -> impl OnewayFuture<Output = Result<(), RpcError>> + '_`).
pub(super) fn generate(
    krate: &syn::Path,
    service: &Service,
    wire_service: &str,
) -> (TokenStream, TokenStream) {
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
        let kind = if m.oneway.is_some() { quote!(Oneway) } else { quote!(Unary) };
        // The method's identity on the wire; its signature hash is computed on first use.
        let idempotent = m.idempotent;
        let method_ref = quote! {
            static __RPC_METHOD: #p::MethodRef =
                #p::MethodRef::new(__rpc_descriptor, #wire_service, #wire, #p::MethodKind::#kind)
                    .idempotent(#idempotent);
        };
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
                    #method_ref
                    async move { #probe.notify(&self.client, &__RPC_METHOD, (#(#args,)*)).await }
                }
            }
        } else {
            quote_spanned! {span=>
                async fn #name(&self, #(#args: #tys),*) -> #ret {
                    #method_ref
                    #probe.call(&self.client, &__RPC_METHOD, (#(#args,)*)).await
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
         Clones share one connection; calls from many tasks are multiplexed on it. `C` is what carries \
         the calls: a `rpc_runtime::Client` by default, or tower layers around one (`from_service`)."
    );
    let ty = quote! {
        #[doc = #doc]
        #inner_vis struct #client<C = #inner_p::Client> {
            pub(super) client: C,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl<C: ::core::clone::Clone> ::core::clone::Clone for #client_path<C> {
            fn clone(&self) -> Self {
                Self { client: ::core::clone::Clone::clone(&self.client) }
            }
        }

        #[automatically_derived]
        impl<C: ::core::fmt::Debug> ::core::fmt::Debug for #client_path<C> {
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

            /// A handle on the same connection whose calls carry `metadata` (see
            /// `rpc_runtime::Client::with_metadata`).
            #vis fn with_metadata(&self, metadata: #p::Metadata) -> ::core::result::Result<Self, #p::RpcError> {
                ::core::result::Result::Ok(Self { client: self.client.with_metadata(metadata)? })
            }

            /// The runtime client underneath.
            #vis fn as_client(&self) -> &#p::Client {
                &self.client
            }
        }

        #[automatically_derived]
        impl<S> #client_path<#p::Layered<S>>
        where
            #p::Layered<S>: #p::Channel,
        {
            /// A client whose calls go through `service`, a tower `Service<rpc_runtime::Call>`: a
            /// `rpc_runtime::Client` wrapped in layers (timeouts, retries, limits, balancing),
            /// or a transport that carries calls itself.
            #vis fn from_service(service: S) -> Self {
                Self { client: #p::Layered::new(service) }
            }
        }

        #[automatically_derived]
        impl<C: #p::Channel> #client_path<C> {
            /// A client whose calls go through `channel`.
            #vis fn with_channel(channel: C) -> Self {
                Self { client: channel }
            }

            /// The channel underneath.
            #vis fn channel(&self) -> &C {
                &self.client
            }

            #(#methods)*
        }
    };
    (ty, impls)
}
