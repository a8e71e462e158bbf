//! The user's trait, with each `async fn` declared as returning a `Send` future.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};

use crate::ast::Service;

/// Input: `trait Calc { async fn add(&self, a: i64) -> i64; }`
/// Output: `trait Calc { fn add(&self, a: i64) -> impl Future<Output = i64> + Send; }`, which an
/// impl still satisfies with a plain `async fn`, and which lets the server run the futures on a
/// multi-threaded runtime.
///
/// The `Future` named is `__private::Future`, which every `core::future::Future` implements:
/// an impl method written without `async` then fails with its message ("add `async`") rather
/// than rustc's "`i64` is not a future".
pub(super) fn generate(krate: &syn::Path, service: &Service) -> TokenStream {
    let original = &service.original;
    let attrs = &original.attrs;
    let vis = &original.vis;
    let trait_token = &original.trait_token;
    let ident = &original.ident;
    let colon = &original.colon_token;
    let supertraits = &original.supertraits;
    let p = super::private(krate);
    let methods = service.methods.iter().map(|m| {
        let (docs, cfgs, other) = (&m.docs, &m.cfgs, &m.attrs);
        let name = &m.ident;
        let (args, tys) = super::arg_lists(m);
        let output = &m.output;
        let fn_token = &m.original.sig.fn_token;
        let span = super::user_span(m.output_span());
        let p = respan_default(krate, &p, span);
        let future = quote_spanned! {span=>
            impl #p::Future<Output = #output> + ::core::marker::Send
        };
        quote! {
            #(#docs)* #(#cfgs)* #(#other)*
            #fn_token #name(&self, #(#args: #tys),*) -> #future;
        }
    });
    quote! {
        #(#attrs)*
        #vis #trait_token #ident #colon #supertraits {
            #(#methods)*
        }
    }
}

/// The default runtime path (`::rpc_runtime`, spanned on the attribute) respanned on the
/// method's return type, where rustc's "required by this bound" note for an impl method that
/// is not `async` then points. A path given with `crate = ...` keeps its span, so that if it does
/// not resolve, that is one error on it.
fn respan_default(krate: &syn::Path, private: &TokenStream, span: Span) -> TokenStream {
    if krate.to_token_stream().to_string() != ":: rpc_runtime" {
        return private.clone();
    }
    private
        .clone()
        .into_iter()
        .map(|mut tt: TokenTree| {
            tt.set_span(span);
            tt
        })
        .collect()
}
