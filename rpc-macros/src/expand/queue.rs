//! The queue client stub: typed persistent calls of the methods marked `#[rpc(persistent)]`.
//! It names only the runtime's queue traits (`PersistentQueue`, `QueueClient`, `QueuedCall`),
//! never a backend: the same stub stores calls in JetStream or in a SQLite file.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use crate::ast::Service;

/// Whether the service has a queue client: some method is `#[rpc(persistent)]`.
pub(super) fn wanted(service: &Service) -> bool {
    service.methods.iter().any(|m| m.persistent.is_some())
}

/// Input: `trait Mailer { #[rpc(persistent)] async fn send(&self, to: String) -> u64; }`
/// Output: `struct MailerQueue { queue: QueueClient }`, and (for the hidden `const _` block) its
/// `Clone` and `Debug` impls and an inherent impl with `new`, `from_arc`, `with_timeout`,
/// `queue_client`, and per persistent method
/// `async fn submit_send(&self, to: String) -> Result<QueuedCall<u64>, RpcError>`,
/// `submit_send_with_id(&self, id: &str, to: String)` and `resume_send(&self, id) -> QueuedCall<u64>`.
pub(super) fn generate(
    krate: &syn::Path,
    service: &Service,
    wire_service: &str,
) -> (TokenStream, TokenStream) {
    let vis = &service.vis;
    let trait_name = &service.ident;
    let queue = super::suffixed(service, "Queue");
    let queue_path = super::stub_path(service, &queue);
    let (inner_vis, inner_p) = (super::stub_vis(vis), super::private(&super::stub_krate(krate)));
    let p = super::private(krate);
    let methods = service.methods.iter().filter(|m| m.persistent.is_some()).map(|m| {
        let (cfgs, name, wire, output) = (&m.cfgs, &m.ident, &m.wire_name, &m.output);
        let plain = syn::ext::IdentExt::unraw(name);
        let submit = format_ident!("submit_{}", plain, span = name.span());
        let with_id = format_ident!("submit_{}_with_id", plain, span = name.span());
        let resume = format_ident!("resume_{}", plain, span = name.span());
        let (args, tys) = super::arg_lists(m);
        let probe = super::probe(krate, m);
        let kind = m.kind.ident();
        let idempotent = m.idempotent;
        let method_ref = quote! {
            static __RPC_METHOD: #p::MethodRef =
                #p::MethodRef::new(__rpc_descriptor, #wire_service, #wire, #p::MethodKind::#kind)
                    .idempotent(#idempotent);
        };
        let span = super::user_span(m.span());
        let ret = quote_spanned! {super::user_span(m.output_span())=>
            ::core::result::Result<#p::QueuedCall<#output>, #p::RpcError>
        };
        let submit_doc = format!(
            "Stores a call of `{plain}` in the queue; returns once it is stored, with its handle \
             (the call id, and the typed result to fetch or wait for). A worker runs it later, at \
             least once: see `rpc_runtime::queued`."
        );
        let with_id_doc = format!(
            "Stores a call of `{plain}` under `id` (letters, digits, `-`, `_`, `=`): submitting the \
             same id again does not run the call again, so a failed submission can be retried."
        );
        let resume_doc =
            format!("The call of `{plain}` stored under `id` (by this process or another), to fetch its result.");
        quote_spanned! {span=>
            #[doc = #submit_doc]
            #(#cfgs)*
            #[allow(clippy::too_many_arguments)]
            #vis async fn #submit(&self, #(#args: #tys),*) -> #ret {
                #method_ref
                #probe.submit(&self.queue, &__RPC_METHOD, (#(#args,)*), ::core::option::Option::None).await
            }

            #[doc = #with_id_doc]
            #(#cfgs)*
            #[allow(clippy::too_many_arguments)]
            #vis async fn #with_id(&self, id: &str, #(#args: #tys),*) -> #ret {
                #method_ref
                #probe.submit(&self.queue, &__RPC_METHOD, (#(#args,)*), ::core::option::Option::Some(id)).await
            }

            #[doc = #resume_doc]
            #(#cfgs)*
            #vis fn #resume(&self, id: impl ::core::convert::Into<#p::String>) -> #p::QueuedCall<#output> {
                #p::QueuedCall::resume(::core::clone::Clone::clone(self.queue.queue()), id)
            }
        }
    });
    let doc = format!(
        "Persistent calls of the [`{trait_name}`](super::{trait_name}) service's `#[rpc(persistent)]` methods: \
         each is stored in a queue (`rpc_runtime::queued::PersistentQueue`: JetStream's \
         `nats::CallQueue` or the embedded `FileQueue`) and run later by a worker, at least once; \
         a handler that may run twice must be idempotent (see `rpc_runtime::queued`)."
    );
    let ty = quote! {
        #[doc = #doc]
        #inner_vis struct #queue {
            pub(super) queue: #inner_p::QueueClient,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl ::core::clone::Clone for #queue_path {
            fn clone(&self) -> Self {
                Self { queue: ::core::clone::Clone::clone(&self.queue) }
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Debug for #queue_path {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.queue, f)
            }
        }

        #[automatically_derived]
        impl #queue_path {
            /// Persistent calls stored in `queue` (postcard, no deadline).
            #vis fn new(queue: impl #p::PersistentQueue) -> Self {
                Self { queue: #p::QueueClient::new(queue) }
            }

            /// Persistent calls stored in a shared queue.
            #vis fn from_arc(queue: #p::Arc<dyn #p::PersistentQueue>) -> Self {
                Self { queue: #p::QueueClient::from_arc(queue) }
            }

            /// The same queue, each call expiring `timeout` after it is submitted (an absolute
            /// time once stored; `None`: no deadline). A call no worker reached by then ends as
            /// `Done(Err(DeadlineExceeded))` without running.
            #vis fn with_timeout(&self, timeout: impl ::core::convert::Into<::core::option::Option<#p::Duration>>) -> Self {
                Self { queue: self.queue.with_timeout(timeout) }
            }

            /// The untyped queue client underneath.
            #vis fn queue_client(&self) -> &#p::QueueClient {
                &self.queue
            }

            #(#methods)*
        }
    };
    (ty, impls)
}
