//! The server stub: decodes a call, runs the user's implementation, encodes the result.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `struct CalcServer<S>`, and (for the hidden `const _` block) `new`, `from_arc`,
/// `get_ref` and `handle(CalcRequest) -> CalcResponse` for any `S: Calc`, and the runtime's
/// `Service` trait.
///
/// The impls name the implementation `S`, or, when the trait names a type `S` (tarpc's generic
/// `S` breaks on them), the first of a few other readable names it does not use (see
/// `impl_param`): rustdoc shows the name. Methods are called as `<S as Calc>::add`, so a method
/// named like one of `Arc`'s (`clone`) still calls the user's. The `response` argument of `call`
/// is hygienic (`Span::mixed_site`), so an RPC argument named `response` does not shadow it.
pub(super) fn generate(krate: &syn::Path, service: &Service) -> (TokenStream, TokenStream) {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let server = super::suffixed(service, "Server");
    // Defined in the stubs module, like the client (see `super::stubs`).
    let server_path = super::stub_path(service, &server);
    let (inner_vis, inner_p) = (super::stub_vis(vis), super::private(&super::stub_krate(krate)));
    let request = super::suffixed(service, "Request");
    let response = super::suffixed(service, "Response");
    let p = super::private(krate);
    let s = impl_param(krate, service);
    let response_buf = syn::Ident::new("response", Span::mixed_site());
    let encode_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, name) = (&m.cfgs, &m.variant, &m.ident);
        let (args, _) = super::arg_lists(m);
        let probe = super::probe(krate, m);
        if m.kind.is_stream() {
            let (sent, _) = super::sent_args(m);
            // The stream of arguments comes from the call, not from the request's body.
            let incoming = super::stream_arg(m).map(|s| {
                quote! { let #s = #probe.incoming(&#response_buf); }
            });
            let pattern = super::stream_arg(m).map(|s| quote!(#s: _,));
            let run = quote! { <#s as #trait_name>::#name(&*__rpc_service, #(#args),*).await };
            let encode = if m.down.is_some() {
                quote! { #probe.encode_stream(#response_buf, #run) }
            } else {
                quote! { #probe.encode(#response_buf, #run) }
            };
            return quote! {
                #(#cfgs)*
                #request::#variant { #(#sent,)* #pattern } => {
                    #incoming
                    #encode
                }
            };
        }
        quote! {
            #(#cfgs)*
            #request::#variant { #(#args),* } => #probe.encode(
                #response_buf,
                <#s as #trait_name>::#name(&*__rpc_service, #(#args),*).await,
            ),
        }
    });
    let handle_arms = service.methods.iter().map(|m| {
        let (cfgs, variant, name) = (&m.cfgs, &m.variant, &m.ident);
        let (args, _) = super::arg_lists(m);
        quote! {
            #(#cfgs)*
            #request::#variant { #(#args),* } => #response::#variant(<#s as #trait_name>::#name(&*self.service, #(#args),*).await),
        }
    });
    let complete = run_to_completion(service, &request);
    let doc = format!(
        "Serves the [`{trait_name}`](super::{trait_name}) service with an implementation `S`; pass it to `rpc_runtime::Server::new`."
    );
    let ty = quote! {
        #[doc = #doc]
        #inner_vis struct #server<S> {
            pub(super) service: #inner_p::Shared<S>,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl<#s> ::core::clone::Clone for #server_path<#s> {
            fn clone(&self) -> Self {
                Self { service: ::core::clone::Clone::clone(&self.service) }
            }
        }

        #[automatically_derived]
        impl<#s> ::core::fmt::Debug for #server_path<#s> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#server))
            }
        }

        #[automatically_derived]
        // Calling a `#[deprecated]` method is this impl's job: the warning is for the callers of
        // the client (whose method carries the attribute).
        #[allow(deprecated)]
        impl<#s: #trait_name> #server_path<#s> {
            /// Wraps an implementation of the service.
            #vis fn new(service: #s) -> Self {
                Self { service: #p::Shared::new(service) }
            }

            /// Wraps an implementation that is already shared.
            #vis fn from_arc(service: #p::Arc<#s>) -> Self {
                Self { service }
            }

            /// The implementation.
            #vis fn get_ref(&self) -> &#s {
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
        #[allow(deprecated)]
        impl<#s> #p::Service for #server_path<#s>
        where
            #s: #trait_name + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn descriptor(&self) -> &'static #p::ServiceDescriptor {
                __rpc_descriptor()
            }

            fn call(
                &self,
                method: &str,
                payload: &[u8],
                #response_buf: #p::ResponseBuf,
            ) -> ::core::result::Result<#p::Handler, #p::RpcError> {
                let __rpc_request = #request::decode(#response_buf.format(), method, payload)?;
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

/// The implementation's type parameter in the server's impls: `S`, as in the struct's docs,
/// unless the trait or the runtime path names something `S` (the parameter would shadow it in the
/// method types the impls spell out); then the first readable name they do not use.
pub(super) fn impl_param(krate: &syn::Path, service: &Service) -> syn::Ident {
    let mut used = HashSet::new();
    idents(service.original.to_token_stream(), &mut used);
    idents(krate.to_token_stream(), &mut used);
    let name = ["S", "Svc", "Impl", "Implementation", "ServiceImpl"]
        .into_iter()
        .find(|n| !used.contains(*n))
        .map_or_else(|| format!("S{}", used.len()), str::to_owned);
    syn::Ident::new(&name, Span::call_site())
}

fn idents(tokens: TokenStream, out: &mut HashSet<String>) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => idents(g.stream(), out),
            TokenTree::Punct(_) | TokenTree::Literal(_) => {}
        }
    }
}
