//! I/O errors that say what was being done, and to which path or program.

use std::error::Error;
use std::fmt;
use std::io;

/// `e` with `what` (`"cannot connect to unix socket /run/app.sock"`) in front of its message,
/// keeping its kind; the original error is the new one's [`source`](Error::source).
pub(crate) fn annotate(e: io::Error, what: impl Into<String>) -> io::Error {
    annotate_as(e.kind(), e, what)
}

/// Like [`annotate`], with another kind (a raw `ENXIO` reported as `ConnectionRefused`).
pub(crate) fn annotate_as(kind: io::ErrorKind, e: io::Error, what: impl Into<String>) -> io::Error {
    io::Error::new(kind, Annotated { what: what.into(), source: e })
}

/// An I/O error and what was being done when it happened.
#[derive(Debug)]
struct Annotated {
    what: String,
    source: io::Error,
}

impl fmt::Display for Annotated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl Error for Annotated {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_kind_and_source() {
        let e = annotate(io::Error::from_raw_os_error(libc::ENOENT), "cannot spawn \"nope\"");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("cannot spawn \"nope\": "), "{e}");
        let source = e.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("source");
        assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
    }
}
