//! The `#[service]` attribute macro. Depend on `rpc-runtime`, which re-exports it with its
//! documentation; generated code names only `::rpc_runtime::__private` and `::core`.

mod args;
mod ast;
mod attr;
mod check;
mod errors;
mod expand;
mod streams;

use proc_macro::TokenStream;

/// Turns a trait into an RPC service. See `rpc_runtime::service` for the documentation.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service(args.into(), input.into()).into()
}
