//! The service descriptor: the service's name and, per method, its kind, argument names and
//! the descriptions and signature hash the runtime computes from the types.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;

use crate::args::{self, ServiceArgs};
use crate::ast::Service;
use crate::errors::Errors;

/// `#[service] trait Café`: with no `name = "..."`, the trait's name is the wire name, so it
/// must be a valid one too.
pub(super) fn check_default_name(args: &ServiceArgs, service: &Service, errors: &mut Errors) {
    if args.name.is_some() {
        return;
    }
    if let Some(why) = args::service_name_error(&service.ident.unraw().to_string()) {
        errors.push_spanned(
            &service.ident,
            format!("the trait's name is the service's wire name, and it is invalid: {why}; give another with `#[service(name = \"...\")]`"),
        );
    }
}

/// The service's wire name: `#[service(name = "...")]`, or the trait's name.
pub(super) fn wire_name(args: &ServiceArgs, service: &Service) -> String {
    match &args.name {
        Some(name) => name.value(),
        None => service.ident.unraw().to_string(),
    }
}

/// Input: `#[service(name = "math.Calc")] trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }`
/// Output (for the hidden `const _` block): `CalcServer::<S>::descriptor()` and
/// `CalcClient::descriptor()`, both also as `Described` impls, returning one
/// `&'static ServiceDescriptor` built on first use:
/// `ServiceDescriptor::new("math.Calc", [probe.describe("add", MethodKind::Unary, &["a", "b"])])`.
pub(super) fn generate(krate: &syn::Path, args: &ServiceArgs, service: &Service) -> TokenStream {
    let vis = &service.vis;
    // The structs live in the stubs module; a user item of the same name must not capture these
    // impls (see `super::stubs`).
    let server = super::stub_path(service, &super::suffixed(service, "Server"));
    let client = super::stub_path(service, &super::suffixed(service, "Client"));
    let p = super::private(krate);
    let s = super::server::impl_param(krate, service);
    let name = wire_name(args, service);
    let methods = service.methods.iter().map(|m| {
        let (cfgs, wire) = (&m.cfgs, &m.wire_name);
        let probe = super::probe(krate, m);
        let kind = m.kind.ident();
        let arg_names = m.args.iter().map(|a| a.ident.unraw().to_string());
        let stream_arg = match &m.up {
            Some((at, _)) => quote!(::core::option::Option::Some(#at)),
            None => quote!(::core::option::Option::None),
        };
        let stream_arg = m.kind.is_stream().then_some(stream_arg);
        let stream_arg = stream_arg.iter();
        quote! {
            #(#cfgs)*
            __rpc_methods.push(#probe.describe(#wire, #p::MethodKind::#kind, &[#(#arg_names),*] #(, #stream_arg)*));
        }
    });
    let doc = format!(
        "The `{name}` service's descriptor: its methods, their kinds, argument and result types \
         and signature hashes. Built on first use, then shared."
    );
    quote! {
        fn __rpc_descriptor() -> &'static #p::ServiceDescriptor {
            // Runtime items named unlike anything in std, so a misspelt runtime path is reported
            // once, not once more with an "import `std::...`" hint per std-named item.
            static __RPC_DESCRIPTOR: #p::DescriptorCell = #p::DescriptorCell::new();
            __RPC_DESCRIPTOR.get_or_init(|| {
                let mut __rpc_methods = #p::method_list();
                #(#methods)*
                #p::ServiceDescriptor::new(#name, __rpc_methods)
            })
        }

        #[automatically_derived]
        impl<#s> #server<#s> {
            #[doc = #doc]
            #vis fn descriptor() -> &'static #p::ServiceDescriptor {
                __rpc_descriptor()
            }
        }

        #[automatically_derived]
        impl<#s> #p::Described for #server<#s> {
            fn descriptor() -> &'static #p::ServiceDescriptor {
                __rpc_descriptor()
            }
        }

        #[automatically_derived]
        impl #client {
            #[doc = #doc]
            #vis fn descriptor() -> &'static #p::ServiceDescriptor {
                __rpc_descriptor()
            }
        }

        #[automatically_derived]
        impl<C> #p::Described for #client<C> {
            fn descriptor() -> &'static #p::ServiceDescriptor {
                __rpc_descriptor()
            }
        }
    }
}
