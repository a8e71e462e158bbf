//! The request and response enums: one variant per method.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `enum __rpc_CalcRequest { Add { a: i64, b: i64 } }` and `enum __rpc_CalcResponse {
/// Add(i64) }`, re-exported as `CalcRequest` and `CalcResponse`; and (for the hidden `const _`
/// block, where `renames` makes the public names mean the hidden ones)
/// `CalcRequest::method_name` and `CalcRequest::decode`.
///
/// Why the hidden names: generated code names the enums only inside the `const _` block, where
/// `renames` binds the public names to them, so a user item also named `CalcRequest` is one
/// error, rustc's "defined multiple times" on the re-export (spanned on the trait's name), and
/// not, besides, errors from generated code matching on the user's item. The enums name the
/// user's types, so they stay in the trait's scope (unlike the client and server structs, see
/// `super::stubs`): a module could not see types declared beside a trait in a function body.
///
/// On the wire a request is its method's name plus the arguments as a tuple, never the
/// enum's variant index, so adding or reordering methods does not break older peers. The enums
/// themselves are the in-process form (`CalcServer::handle`) and derive nothing: a serde derive
/// would cost compile time for no use, and would report a non-serde type a second time.
pub(super) fn generate(krate: &syn::Path, service: &Service) -> (TokenStream, TokenStream) {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let request = super::suffixed(service, "Request");
    let response = super::suffixed(service, "Response");
    let p = super::private(krate);

    let request_variants = service.methods.iter().map(|m| {
        let (docs, cfgs, variant) = (&m.docs, &m.cfgs, &m.variant);
        let (args, tys) = super::arg_lists(m);
        quote! { #(#docs)* #(#cfgs)* #variant { #(#[allow(missing_docs)] #args: #tys),* } }
    });
    let response_variants = service.methods.iter().map(|m| {
        let (docs, cfgs, variant, output) = (&m.docs, &m.cfgs, &m.variant, &m.output);
        quote! { #(#docs)* #(#cfgs)* #variant(#output) }
    });
    let names = service.methods.iter().map(|m| {
        let (cfgs, variant, wire) = (&m.cfgs, &m.variant, &m.wire_name);
        quote! { #(#cfgs)* #request::#variant { .. } => #wire, }
    });
    let decoders = service.methods.iter().map(|m| {
        let (cfgs, variant, wire) = (&m.cfgs, &m.variant, &m.wire_name);
        let (sent, _) = super::sent_args(m);
        let probe = super::probe(krate, m);
        // A stream of arguments is not in the body: the server takes it from the call (see
        // `server.rs`); decoded alone, the request holds a stream that fails.
        let stream = super::stream_arg(m).map(|name| {
            quote! { #name: #p::Streaming::error(#p::RpcError::Protocol(#p::String::from("a stream of arguments arrives with its call, not in the request's body"))), }
        });
        quote! {
            #(#cfgs)*
            #wire => {
                let (#(#sent,)*) = #probe.decode(format, payload)?;
                ::core::result::Result::Ok(#request::#variant { #(#sent,)* #stream })
            }
        }
    });
    let request_doc =
        format!("A call to the [`{trait_name}`] service: one variant per method, holding its arguments.");
    let response_doc = format!(
        "A result of the [`{trait_name}`] service: one variant per method, holding what it returned."
    );
    let (hidden_request, hidden_response) = (hidden(&request), hidden(&response));
    let types = quote! {
        #[doc = #request_doc]
        #[doc(hidden)]
        // A field nothing in the program reads (a response the program only sends) is not the
        // user's to fix.
        #[allow(non_camel_case_types, dead_code)]
        #vis enum #hidden_request {
            #(#request_variants,)*
        }

        #[doc = #response_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis enum #hidden_response {
            #(#response_variants,)*
        }

        // Documented under the public names (`doc(inline)` shows a hidden item's page under
        // the re-export's name). Unused (or unreachable) when the program never names them.
        #[doc(inline)]
        #[allow(unused_imports, unreachable_pub)]
        #vis use #hidden_request as #request;
        #[doc(inline)]
        #[allow(unused_imports, unreachable_pub)]
        #vis use #hidden_response as #response;
    };
    let request_name = request.to_string();
    let response_name = response.to_string();
    let impls = quote! {
        // `Debug` without bounds on the user's types: the method, not the values.
        #[automatically_derived]
        impl ::core::fmt::Debug for #request {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#request_name).field("method", &self.method_name()).finish_non_exhaustive()
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Debug for #response {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#response_name).finish_non_exhaustive()
            }
        }

        #[automatically_derived]
        impl #request {
            /// The wire name of the method this request calls.
            #vis fn method_name(&self) -> &'static str {
                match *self {
                    #(#names)*
                }
            }

            /// Decodes a call to the method named `method` from its payload (the arguments as a
            /// tuple, in `format`: the connection's).
            ///
            /// # Errors
            ///
            /// `RpcError::UnknownMethod` if the service has no such method, `RpcError::Decode`
            /// if the arguments do not decode.
            #[inline]
            #vis fn decode(
                format: #p::Format,
                method: &str,
                payload: &[u8],
            ) -> ::core::result::Result<Self, #p::RpcError> {
                match method {
                    #(#decoders)*
                    _ => ::core::result::Result::Err(#p::unknown_method(method)),
                }
            }
        }
    };
    (types, impls)
}

/// `CalcRequest` → `__rpc_CalcRequest`, the enum's defined name.
fn hidden(public: &syn::Ident) -> syn::Ident {
    quote::format_ident!("__rpc_{}", public)
}

/// For the top of the `const _` block: `use __rpc_CalcRequest as CalcRequest;` and the same for
/// the response, so generated code there names the enums by their public names (which rustdoc
/// then shows, linked to the re-exports' pages) and never resolves to a user's item.
pub(super) fn renames(service: &Service) -> TokenStream {
    let request = super::suffixed(service, "Request");
    let response = super::suffixed(service, "Response");
    let (hidden_request, hidden_response) = (hidden(&request), hidden(&response));
    quote! {
        #[allow(unused_imports)]
        use #hidden_request as #request;
        #[allow(unused_imports)]
        use #hidden_response as #response;
    }
}
