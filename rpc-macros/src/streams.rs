//! Streams in a method's signature: which argument and which result are `Streaming<T>`, the
//! method kind that follows, and the rules on where `Streaming` may appear.
//!
//! `Streaming<T>` is recognised by name (any path whose last segment is `Streaming` with one
//! type argument), as serde recognises `Option`: the macro sees tokens, not types.

use syn::{GenericArgument, PathArguments, Type};

use crate::errors::Errors;

/// How a method exchanges messages (the runtime's `MethodKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    Oneway,
    ServerStream,
    ClientStream,
    Bidi,
}

impl Kind {
    /// The `MethodKind` variant's name.
    pub(crate) fn ident(self) -> syn::Ident {
        let name = match self {
            Kind::Unary => "Unary",
            Kind::Oneway => "Oneway",
            Kind::ServerStream => "ServerStream",
            Kind::ClientStream => "ClientStream",
            Kind::Bidi => "Bidi",
        };
        syn::Ident::new(name, proc_macro2::Span::call_site())
    }

    pub(crate) fn is_stream(self) -> bool {
        matches!(self, Kind::ServerStream | Kind::ClientStream | Kind::Bidi)
    }
}

/// A method's streams, as read from its signature.
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    /// The position of the `Streaming<U>` argument among the arguments, and `U`.
    pub(crate) up: Option<(usize, Type)>,
    /// `T` of a `Streaming<T>` result.
    pub(crate) down: Option<Type>,
}

/// `Streaming<T>` (by its last path segment): `T`.
pub(crate) fn item(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ungroup(ty) else { return None };
    let last = p.path.segments.last().filter(|s| p.qself.is_none() && s.ident == "Streaming")?;
    let PathArguments::AngleBracketed(a) = &last.arguments else { return None };
    match a.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(t)] => Some(t),
        _ => None,
    }
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => ungroup(&g.elem),
        Type::Paren(p) => ungroup(&p.elem),
        other => other,
    }
}

/// Reads the streams of a method with arguments `args` and result `output`, checking the rules.
pub(crate) fn read<'a>(
    args: impl Iterator<Item = &'a Type>,
    output: &Type,
    oneway: Option<&syn::Attribute>,
    errors: &mut Errors,
) -> Shape {
    let mut up: Option<(usize, Type, &Type)> = None;
    for (i, ty) in args.enumerate() {
        match item(ty) {
            Some(inner) => {
                nested(inner, errors);
                match &up {
                    // async fn f(&self, a: Streaming<u8>, b: Streaming<u8>)
                    Some((_, _, first)) => errors.push_conflict(
                        ty,
                        "a method takes at most one `Streaming` argument; send one stream of a struct or enum that carries both",
                        first,
                        "first `Streaming` argument here",
                    ),
                    None => up = Some((i, inner.clone(), ty)),
                }
            }
            None => nested(ty, errors),
        }
    }
    let down = match item(output) {
        Some(inner) => {
            nested(inner, errors);
            Some(inner.clone())
        }
        None => {
            nested(output, errors);
            None
        }
    };
    if oneway.is_some() {
        // #[oneway] async fn f(&self) -> Streaming<u8>
        let at =
            up.as_ref().map(|(_, _, ty)| (*ty).clone()).or_else(|| down.is_some().then(|| output.clone()));
        if let Some(ty) = at {
            errors.push_spanned(
                ty,
                "a `#[oneway]` method cannot stream: nothing comes back and no stream is kept open; remove `#[oneway]` or the `Streaming`",
            );
        }
    }
    let kind = match (oneway.is_some(), up.is_some(), down.is_some()) {
        (true, _, _) => Kind::Oneway,
        (false, false, false) => Kind::Unary,
        (false, false, true) => Kind::ServerStream,
        (false, true, false) => Kind::ClientStream,
        (false, true, true) => Kind::Bidi,
    };
    Shape { kind, up: up.map(|(i, ty, _)| (i, ty)), down }
}

/// `Streaming` anywhere inside `ty` (a stream's items, or a type such as
/// `Option<Streaming<T>>`): one error on each, at its name.
fn nested(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Paren(p) => nested(&p.elem, errors),
        Type::Group(g) => nested(&g.elem, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| nested(e, errors)),
        Type::Array(a) => nested(&a.elem, errors),
        Type::Slice(s) => nested(&s.elem, errors),
        Type::Reference(r) => nested(&r.elem, errors),
        Type::Path(p) => {
            for seg in &p.path.segments {
                if seg.ident == "Streaming" && item(ty).is_some() {
                    errors.push_spanned(
                        &seg.ident,
                        "`Streaming` can only be the whole type of one argument or of the result, not inside another type or stream; write `Streaming<T>` with a plain `T` (use `Streaming<Result<T, E>>` for errors mid-stream)",
                    );
                    return;
                }
                if let PathArguments::AngleBracketed(a) = &seg.arguments {
                    for arg in &a.args {
                        if let GenericArgument::Type(t) = arg {
                            nested(t, errors);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
