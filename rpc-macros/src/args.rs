//! The arguments of `#[service(...)]`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Path, Token};

use crate::errors::Errors;

/// `crate`: where the runtime lives, for users who renamed it in Cargo.toml; a path, quoted
/// (`crate = "::my_rpc"`, as serde's) or not (`crate = ::my_rpc`).
const CRATE: &str = "crate";

pub(crate) struct ServiceArgs {
    pub(crate) krate: Path,
}

impl Default for ServiceArgs {
    fn default() -> Self {
        ServiceArgs { krate: syn::parse_quote!(::rpc_runtime) }
    }
}

/// One `key = value` pair, kept as written for spans.
struct Arg {
    key: syn::Ident,
    value: Option<syn::Expr>,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.call(syn::ext::IdentExt::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Arg { key, value })
    }
}

impl ServiceArgs {
    pub(crate) fn parse(tokens: proc_macro2::TokenStream, errors: &mut Errors) -> ServiceArgs {
        let mut args = ServiceArgs::default();
        let parsed = match syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens)
        {
            Ok(p) => p,
            Err(e) => {
                let message = format!("{e}; the only `service` argument is `crate = \"path\"`");
                errors.push(syn::Error::new(e.span(), message));
                return args;
            }
        };
        let mut seen_crate: Option<syn::Ident> = None;
        for arg in parsed {
            if arg.key != CRATE {
                errors.push_spanned(
                    &arg.key,
                    format!(
                        "unknown `service` argument `{}`; the only argument is `crate = \"path\"`",
                        arg.key
                    ),
                );
                continue;
            }
            if let Some(first) = &seen_crate {
                errors.push_conflict(&arg.key, "`crate` is given twice; keep one", first, "first given here");
                continue;
            }
            seen_crate = Some(arg.key.clone());
            match &arg.value {
                Some(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })) => match s.parse::<Path>() {
                    Ok(path) => args.krate = path,
                    Err(_) => errors.push_spanned(s, "`crate` must be a path, e.g. `crate = \"::my_rpc\"`"),
                },
                // Also unquoted: rustc's suggestions for a misspelt path drop the quotes.
                Some(syn::Expr::Path(p)) if p.qself.is_none() && p.attrs.is_empty() => {
                    args.krate = p.path.clone()
                }
                Some(other) => errors.push_spanned(
                    other,
                    "`crate` takes a path, e.g. `crate = ::my_rpc` or `crate = \"::my_rpc\"`",
                ),
                None => errors.push_spanned(&arg.key, "`crate` needs a value, e.g. `crate = \"::my_rpc\"`"),
            }
        }
        args
    }
}
