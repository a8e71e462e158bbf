//! The server stub: decodes a call, runs the user's implementation, encodes the result.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `struct CalcServer<S>`, and (for the hidden `const _` block) `new`, `from_arc`,
/// `get_ref` and `handle(CalcRequest) -> CalcResponse` for any `S: Calc`, and the runtime's
/// `Service` trait.
///
/// The impls name the implementation `__S`, not `S`: the user's trait or argument types may be
/// called `S` (tarpc's generic `S` breaks on them). Methods are called as `<__S as Calc>::add`,
/// so a method named like one of `Arc`'s (`clone`) still calls the user's.
pub(super) fn generate(krate: &syn::Path, service: &Service) -> (TokenStream, TokenStream) {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let server = super::suffixed(service, "Server");
    let request = super::suffixed(service, "Request");
    let response = super::suffixed(service, "Response");
    let p = quote!(#krate::__private);
    let encode_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, name) = (&m.cfgs, &m.variant, &m.ident);
        let (args, _) = super::arg_lists(m);
        let probe = super::probe(krate, m);
        quote! {
            #(#cfgs)*
            #request::#variant { #(#args),* } => #probe.encode(
                __rpc_response,
                &<__S as #trait_name>::#name(&*__rpc_service, #(#args),*).await,
            ),
        }
    });
    let handle_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, name) = (&m.cfgs, &m.variant, &m.ident);
        let (args, _) = super::arg_lists(m);
        quote! {
            #(#cfgs)*
            #request::#variant { #(#args),* } => #response::#variant(<__S as #trait_name>::#name(&*self.service, #(#args),*).await),
        }
    });
    let complete = run_to_completion(service, &request);
    let doc = format!(
        "Serves the [`{trait_name}`] service with an implementation `S`; pass it to `rpc_runtime::Server::new`."
    );
    let ty = quote! {
        #[doc = #doc]
        #vis struct #server<S> {
            service: #p::Arc<S>,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl<__S> ::core::clone::Clone for #server<__S> {
            fn clone(&self) -> Self {
                #server { service: ::core::clone::Clone::clone(&self.service) }
            }
        }

        #[automatically_derived]
        impl<__S> ::core::fmt::Debug for #server<__S> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#server))
            }
        }

        #[automatically_derived]
        impl<__S: #trait_name> #server<__S> {
            /// Wraps an implementation of the service.
            #vis fn new(service: __S) -> Self {
                #server { service: #p::Arc::new(service) }
            }

            /// Wraps an implementation that is already shared.
            #vis fn from_arc(service: #p::Arc<__S>) -> Self {
                #server { service }
            }

            /// The implementation.
            #vis fn get_ref(&self) -> &__S {
                &self.service
            }

            /// Runs one request against the implementation, in-process.
            #vis async fn handle(&self, request: #request) -> #response {
                match request {
                    #(#handle_arms)*
                }
            }
        }

        #[automatically_derived]
        impl<__S> #p::Service for #server<__S>
        where
            __S: #trait_name + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn call(
                &self,
                method: &str,
                payload: &[u8],
                __rpc_response: #p::ResponseBuf,
            ) -> ::core::result::Result<#p::Handler, #p::RpcError> {
                let __rpc_request = #request::decode(__rpc_response.format(), method, payload)?;
                let __rpc_name = __rpc_request.method_name();
                let __rpc_complete = #complete;
                let __rpc_service = ::core::clone::Clone::clone(&self.service);
                ::core::result::Result::Ok(#p::Handler::new(__rpc_name, async move {
                    match __rpc_request {
                        #(#encode_arms)*
                    }
                }).run_to_completion(__rpc_complete))
            }
        }
    };
    (ty, impls)
}

/// Input: the methods, some marked `#[rpc(run_to_completion)]`.
/// Output: an expression telling whether `__rpc_request` calls one of those: `false` when there
/// are none (no `match` on a request enum that may be empty), else a `match` with a `_` arm.
fn run_to_completion(service: &Service, request: &syn::Ident) -> TokenStream {
    let arms: Vec<_> = service
        .methods
        .iter()
        .filter(|m| m.run_to_completion)
        .map(|m| {
            let (cfgs, variant) = (&m.cfgs, &m.variant);
            quote! { #(#cfgs)* #request::#variant { .. } => true, }
        })
        .collect();
    if arms.is_empty() {
        return quote!(false);
    }
    quote! {
        match __rpc_request {
            #(#arms)*
            // Unreachable when every method runs to completion.
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}
