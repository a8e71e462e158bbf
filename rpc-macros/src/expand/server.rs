//! The server stub: decodes a call, runs the user's implementation, encodes the result.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `struct CalcServer<S>` implementing the runtime's `Service` for any `S: Calc`, plus
/// `handle(CalcRequest) -> CalcResponse` for dispatching in-process.
pub(super) fn generate(krate: &syn::Path, service: &Service) -> TokenStream {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let server = super::suffixed(service, "Server");
    let request = super::suffixed(service, "Request");
    let response = super::suffixed(service, "Response");
    let p = quote!(#krate::__private);
    let encode_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, name) = (&m.cfgs, &m.variant, &m.ident);
        let (args, _) = super::arg_lists(m);
        quote! {
            #(#cfgs)*
            #request::#variant { #(#args),* } => __rpc_response.encode(&__rpc_service.#name(#(#args),*).await),
        }
    });
    let handle_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, name) = (&m.cfgs, &m.variant, &m.ident);
        let (args, _) = super::arg_lists(m);
        quote! {
            #(#cfgs)*
            #request::#variant { #(#args),* } => #response::#variant(self.service.#name(#(#args),*).await),
        }
    });
    let completion_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, complete) = (&m.cfgs, &m.variant, m.run_to_completion);
        quote! { #(#cfgs)* #request::#variant { .. } => #complete, }
    });
    let doc = format!("Serves the [`{trait_name}`] service with an implementation `S`; pass it to `rpc_runtime::Server::new`.");
    quote! {
        #[doc = #doc]
        #vis struct #server<S> {
            service: #p::Arc<S>,
        }

        #[automatically_derived]
        impl<S> ::core::clone::Clone for #server<S> {
            fn clone(&self) -> Self {
                #server { service: #p::Arc::clone(&self.service) }
            }
        }

        #[automatically_derived]
        impl<S> ::core::fmt::Debug for #server<S> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#server))
            }
        }

        #[automatically_derived]
        impl<S: #trait_name> #server<S> {
            /// Wraps an implementation of the service.
            pub fn new(service: S) -> Self {
                #server { service: #p::Arc::new(service) }
            }

            /// Wraps an implementation that is already shared.
            pub fn from_arc(service: #p::Arc<S>) -> Self {
                #server { service }
            }

            /// The implementation.
            pub fn get_ref(&self) -> &S {
                &self.service
            }

            /// Runs one request against the implementation, in-process.
            pub async fn handle(&self, request: #request) -> #response {
                match request {
                    #(#handle_arms)*
                }
            }
        }

        #[automatically_derived]
        impl<S> #p::Service for #server<S>
        where
            S: #trait_name + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn call(
                &self,
                method: &str,
                payload: &[u8],
                __rpc_response: #p::ResponseBuf,
            ) -> ::core::result::Result<#p::Handler, #p::RpcError> {
                let __rpc_request = #request::decode(method, payload)?;
                let __rpc_name = __rpc_request.method_name();
                let __rpc_complete = match __rpc_request {
                    #(#completion_arms)*
                };
                let __rpc_service = #p::Arc::clone(&self.service);
                ::core::result::Result::Ok(#p::Handler::new(__rpc_name, async move {
                    match __rpc_request {
                        #(#encode_arms)*
                    }
                }).run_to_completion(__rpc_complete))
            }
        }
    }
}
