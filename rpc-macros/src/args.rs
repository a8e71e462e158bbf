//! The arguments of `#[service(...)]`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Path, Token};

use crate::errors::Errors;

/// `crate`: where the runtime lives, for users who renamed it in Cargo.toml; a path, quoted
/// (`crate = "::my_rpc"`, as serde's) or not (`crate = ::my_rpc`).
const CRATE: &str = "crate";
/// `name`: the service's name on the wire (the trait's name by default).
const NAME: &str = "name";
/// What the grammar errors say the arguments are.
const EXPECTED: &str = "expected `crate = \"path\"` or `name = \"service.name\"`";

pub(crate) struct ServiceArgs {
    pub(crate) krate: Path,
    /// `name = "..."`, already validated.
    pub(crate) name: Option<syn::LitStr>,
}

impl Default for ServiceArgs {
    fn default() -> Self {
        ServiceArgs { krate: syn::parse_quote!(::rpc_runtime), name: None }
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
                let message = format!("{e}; {EXPECTED}");
                errors.push(syn::Error::new(e.span(), message));
                return args;
            }
        };
        let mut seen_crate: Option<syn::Ident> = None;
        let mut seen_name: Option<syn::Ident> = None;
        for arg in parsed {
            if arg.key == NAME {
                if let Some(first) = &seen_name {
                    errors.push_conflict(
                        &arg.key,
                        "`name` is given twice; keep one",
                        first,
                        "first given here",
                    );
                    continue;
                }
                seen_name = Some(arg.key.clone());
                args.name = parse_name(&arg, errors);
                continue;
            }
            if arg.key != CRATE {
                errors
                    .push_spanned(&arg.key, format!("unknown `service` argument `{}`; {EXPECTED}", arg.key));
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

/// `name = "..."`: a string that [`service_name_error`] accepts.
fn parse_name(arg: &Arg, errors: &mut Errors) -> Option<syn::LitStr> {
    match &arg.value {
        Some(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })) => {
            match service_name_error(&s.value()) {
                None => Some(s.clone()),
                Some(why) => {
                    errors.push_spanned(s, format!("invalid service name: {why}"));
                    None
                }
            }
        }
        Some(other) => {
            errors.push_spanned(other, "`name` takes a string, e.g. `name = \"billing.Invoices\"`");
            None
        }
        None => {
            errors.push_spanned(&arg.key, "`name` needs a value, e.g. `name = \"billing.Invoices\"`");
            None
        }
    }
}

/// Why `name` is not a valid service name, if it is not.
///
/// A name is one or more dot-separated segments of ASCII letters, digits, `_` and `-`, at most
/// 128 bytes: each segment is then a valid NATS subject token (no whitespace, no `*` or `>`
/// wildcards, no `.` inside a token), dots namespace services as NATS subjects do
/// (`billing.Invoices`), and the name needs no escaping in a frame, a URL or a log line.
pub(crate) fn service_name_error(name: &str) -> Option<String> {
    const MAX: usize = 128;
    if name.is_empty() {
        return Some("it is empty; use letters, digits, `_` and `-`, e.g. `name = \"Calculator\"`".into());
    }
    if name.len() > MAX {
        return Some(format!("it is {} bytes long; the most is {MAX}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Some(format!(
            "{c:?} is not allowed; use ASCII letters, digits, `_` and `-`, with `.` between segments"
        ));
    }
    if name.split('.').any(str::is_empty) {
        return Some("a `.` must separate two non-empty segments, e.g. `name = \"billing.Invoices\"`".into());
    }
    None
}
