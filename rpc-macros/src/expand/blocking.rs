//! The blocking client stub: the async client's methods, each blocking until its result is back.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `struct CalcBlockingClient { client: CalcClient, runtime: BlockingRuntime }`, and (for
/// the hidden `const _` block) its `Clone` and `Debug` impls and an inherent impl with `connect`,
/// `connect_with`, `with_timeout`, `with_metadata`, `as_async` and
/// `fn add(&self, a: i64, b: i64) -> Result<i64, RpcError>`; a server-streaming
/// `async fn watch(&self, k: String) -> Streaming<u64>` becomes
/// `fn watch(&self, k: String) -> Result<BlockingStream<u64>, RpcError>`.
pub(super) fn generate(krate: &syn::Path, service: &Service) -> (TokenStream, TokenStream) {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let blocking = super::suffixed(service, "BlockingClient");
    let client = super::suffixed(service, "Client");
    let blocking_path = super::stub_path(service, &blocking);
    let client_path = super::stub_path(service, &client);
    let (inner_vis, inner_p) = (super::stub_vis(vis), super::private(&super::stub_krate(krate)));
    let p = super::private(krate);
    // Methods with a stream of arguments stay on the async client (`as_async()`): feeding one
    // from a blocking caller would need a thread of its own. A stream of results is an iterator
    // that blocks per item.
    let methods = service.methods.iter().filter(|m| m.up.is_none()).map(|m| {
        let (docs, cfgs, name, output) = (&m.docs, &m.cfgs, &m.ident, &m.output);
        let (args, tys) = super::arg_lists(m);
        let deprecated = m.attrs.iter().filter(|a| a.path().is_ident("deprecated"));
        let span = super::user_span(m.span());
        let (ret, wrap) = match &m.down {
            Some(item) => (
                quote_spanned! {super::user_span(m.output_span())=>
                    ::core::result::Result<#p::BlockingStream<#item>, #p::RpcError>
                },
                quote_spanned! {span=>
                    .map(|stream| #p::BlockingStream::new(stream, ::core::clone::Clone::clone(&self.runtime)))
                },
            ),
            None => (
                quote_spanned! {super::user_span(m.output_span())=>
                    ::core::result::Result<#output, #p::RpcError>
                },
                TokenStream::new(),
            ),
        };
        quote_spanned! {span=>
            #(#docs)*
            #(#cfgs)*
            #(#deprecated)*
            #[allow(clippy::too_many_arguments)]
            #vis fn #name(&self, #(#args: #tys),*) -> #ret {
                #[allow(deprecated)]
                let call = self.client.#name(#(#args),*);
                ::core::result::Result::and_then(self.runtime.run(call), |result| result)#wrap
            }
        }
    });
    let doc = format!(
        "A blocking client of the [`{trait_name}`](super::{trait_name}) service, for code without an async \
         runtime: the methods of [`{client}`] without `async`.\n\n\
         A server-streaming method returns a `rpc_runtime::blocking::BlockingStream`, an iterator that blocks \
         for each item; methods with a `Streaming` argument are on the async client only (`as_async()`). \
         Its connection runs on a background thread (`rpc_runtime::BlockingRuntime`), shared by its clones; \
         called from inside an async runtime, a method returns `RpcError::BlockingInRuntime`."
    );
    let ty = quote! {
        #[doc = #doc]
        #inner_vis struct #blocking {
            pub(super) client: #client,
            pub(super) runtime: #inner_p::BlockingRuntime,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl ::core::clone::Clone for #blocking_path {
            fn clone(&self) -> Self {
                Self {
                    client: ::core::clone::Clone::clone(&self.client),
                    runtime: ::core::clone::Clone::clone(&self.runtime),
                }
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Debug for #blocking_path {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.client, f)
            }
        }

        #[automatically_derived]
        // The methods are the user's: a `len` method is theirs to pair with `is_empty`.
        #[allow(clippy::len_without_is_empty)]
        impl #blocking_path {
            /// Starts a background runtime, connects with `connect` on it (for example
            /// `move || rpc_runtime::transport::tcp::connect(addr)`) and starts a client with
            /// default settings there.
            #vis fn connect<F, Fut>(connect: F) -> ::core::result::Result<Self, #p::RpcError>
            where
                F: ::core::ops::FnOnce() -> Fut,
                Fut: ::core::future::Future<Output = #p::IoResult<#p::Connection>>,
            {
                Self::connect_with(::core::default::Default::default(), connect)
            }

            /// [`connect`](Self::connect), with the client built by `builder`.
            #vis fn connect_with<F, Fut>(builder: #p::ClientBuilder, connect: F) -> ::core::result::Result<Self, #p::RpcError>
            where
                F: ::core::ops::FnOnce() -> Fut,
                Fut: ::core::future::Future<Output = #p::IoResult<#p::Connection>>,
            {
                let runtime = #p::BlockingRuntime::start()?;
                let client = runtime.connect_with(builder, connect)?;
                ::core::result::Result::Ok(Self { client: #client_path::from_client(client), runtime })
            }

            /// A handle on the same connection whose calls use `timeout` as their deadline
            /// (`None`: no deadline).
            #vis fn with_timeout(&self, timeout: impl ::core::convert::Into<::core::option::Option<#p::Duration>>) -> Self {
                Self { client: self.client.with_timeout(timeout), runtime: ::core::clone::Clone::clone(&self.runtime) }
            }

            /// A handle on the same connection whose calls carry `metadata`.
            #vis fn with_metadata(&self, metadata: #p::Metadata) -> ::core::result::Result<Self, #p::RpcError> {
                ::core::result::Result::Ok(Self {
                    client: self.client.with_metadata(metadata)?,
                    runtime: ::core::clone::Clone::clone(&self.runtime),
                })
            }

            /// The async client underneath (its calls run on the background runtime's connection
            /// when awaited from any runtime).
            #vis fn as_async(&self) -> &#client_path {
                &self.client
            }

            #(#methods)*
        }
    };
    (ty, impls)
}
