//! Collects every error found in one macro invocation, so the user sees them all at once
//! (serde's `Ctxt`).

use std::fmt::Display;

use quote::ToTokens;

#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
    finished: bool,
}

impl Errors {
    /// An error spanning all of `tokens`.
    pub(crate) fn push_spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// An error on the second occurrence of something, with "first ... here" on the first.
    pub(crate) fn push_conflict(
        &mut self,
        second: impl ToTokens,
        message: impl Display,
        first: impl ToTokens,
        first_note: &str,
    ) {
        let mut e = syn::Error::new_spanned(second, message);
        e.combine(syn::Error::new_spanned(first, first_note));
        self.errors.push(e);
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// All errors combined into one, or `Ok` if there were none.
    pub(crate) fn finish(mut self) -> syn::Result<()> {
        self.finished = true;
        let mut iter = std::mem::take(&mut self.errors).into_iter();
        let Some(mut first) = iter.next() else { return Ok(()) };
        for e in iter {
            first.combine(e);
        }
        Err(first)
    }
}

impl Drop for Errors {
    /// Catches a code path that collected errors and forgot to report them.
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!("rpc-macros bug: errors were collected but never reported");
        }
    }
}
