//! Panics the tests provoke on purpose, kept out of the test output.
//!
//! A handler panic is caught by the server, but the process's panic hook runs first and prints
//! the message (and, with `RUST_BACKTRACE=1`, a backtrace), which in a test log looks like a
//! failure. Handlers that panic on purpose call [`deliberate`]: it installs, once per process, a
//! hook that stays silent for these panics and hands every other panic to the default hook.

use std::sync::Once;

/// The start of every deliberate panic's message.
pub const MARK: &str = "deliberate panic: ";

/// Panics with `MARK` + `message` (a `String` payload, as `panic!` makes), quietly.
pub fn deliberate(message: &str) -> ! {
    quiet();
    std::panic::panic_any(format!("{MARK}{message}"))
}

/// Installs the quiet hook (once per process).
pub fn quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !text.is_some_and(|t| t.starts_with(MARK)) {
                default(info);
            }
        }));
    });
}
