//! The request and response enums: one variant per method.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output: `enum CalcRequest { Add { a: i64, b: i64 } }` with `method_name` and `decode`, and
/// `enum CalcResponse { Add(i64) }`, both serde types.
///
/// On the wire a request is its method's name plus the arguments as a postcard tuple, never the
/// enum's variant index, so adding or reordering methods does not break older peers.
pub(super) fn generate(krate: &syn::Path, service: &Service) -> TokenStream {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let request = super::suffixed(service, "Request");
    let response = super::suffixed(service, "Response");
    let serde_path = quote!(#krate::__private::serde).to_string().replace(' ', "");
    let p = quote!(#krate::__private);

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
        let (args, tys) = super::arg_lists(m);
        quote! {
            #(#cfgs)*
            #wire => {
                let (#(#args,)*): (#(#tys,)*) = #p::decode_args(payload)?;
                ::core::result::Result::Ok(#request::#variant { #(#args),* })
            }
        }
    });
    let request_doc =
        format!("A call to the [`{trait_name}`] service: one variant per method, holding its arguments.");
    let response_doc = format!(
        "A result of the [`{trait_name}`] service: one variant per method, holding what it returned."
    );
    quote! {
        #[doc = #request_doc]
        #[derive(#p::serde::Serialize, #p::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #vis enum #request {
            #(#request_variants,)*
        }

        #[doc = #response_doc]
        #[derive(#p::serde::Serialize, #p::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #vis enum #response {
            #(#response_variants,)*
        }

        #[automatically_derived]
        impl #request {
            /// The wire name of the method this request calls.
            pub fn method_name(&self) -> &'static str {
                match *self {
                    #(#names)*
                }
            }

            /// Decodes a call to the method named `method` from its payload (the arguments as a
            /// postcard tuple).
            pub fn decode(method: &str, payload: &[u8]) -> ::core::result::Result<Self, #p::RpcError> {
                match method {
                    #(#decoders)*
                    _ => ::core::result::Result::Err(#p::unknown_method(method)),
                }
            }
        }
    }
}
