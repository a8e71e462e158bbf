//! The connection state machine both loops use instead of ad-hoc flags.
//!
//! ```text
//!  Handshaking --HelloReceived--> Open --GoAway--> Draining
//!       |                                             ^
//!       +--GoAway--> Refused --HelloReceived----------+
//!  (any state) --Closed--> Closed
//! ```
//!
//! A client leaves `Handshaking` when the server's HELLO arrives; a goaway in its place (the
//! server refuses the connection) makes it `Refused`. A server leaves `Handshaking` when the
//! client's HELLO is read and valid, and drains when shutdown begins. `Refused` and `Draining`
//! take no new calls and let the ones in flight finish.

use std::fmt;

/// Where one connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Our preface and HELLO are sent; the peer's HELLO has not arrived yet.
    Handshaking,
    /// A goaway arrived in place of the peer's HELLO: no new calls; the HELLO may still come,
    /// and no other frame may.
    Refused,
    /// Both HELLOs exchanged: calls flow both ways.
    Open,
    /// A goaway was sent or received: no new calls, the ones in flight finish.
    Draining,
    /// The connection is done; nothing more is read or started.
    Closed,
}

/// What moves a connection from one [`State`] to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The peer's HELLO arrived and was valid.
    HelloReceived,
    /// A goaway was sent (we shut down) or received (the peer does).
    GoAway,
    /// The connection ended, for whatever reason.
    Closed,
}

impl State {
    /// The state after `event`. Moves never go back: a HELLO after a goaway leaves the
    /// connection draining, and nothing leaves `Closed`.
    #[must_use]
    pub(crate) fn on(self, event: Event) -> State {
        match (self, event) {
            (State::Closed, _) | (_, Event::Closed) => State::Closed,
            (State::Handshaking, Event::HelloReceived) => State::Open,
            (State::Refused, Event::HelloReceived) => State::Draining,
            (state, Event::HelloReceived) => state,
            (State::Handshaking | State::Refused, Event::GoAway) => State::Refused,
            (State::Open | State::Draining, Event::GoAway) => State::Draining,
        }
    }

    /// Whether the peer's HELLO has arrived.
    pub(crate) fn greeted(self) -> bool {
        matches!(self, State::Open | State::Draining)
    }

    /// Whether new calls are taken (only while open; a client sends calls while handshaking too).
    pub(crate) fn takes_calls(self) -> bool {
        matches!(self, State::Open)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Handshaking => "handshaking",
            State::Refused => "refused",
            State::Open => "open",
            State::Draining => "draining",
            State::Closed => "closed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, State};

    #[test]
    fn moves_forward_only() {
        assert_eq!(State::Handshaking.on(Event::HelloReceived), State::Open);
        assert_eq!(State::Handshaking.on(Event::GoAway), State::Refused);
        assert_eq!(State::Refused.on(Event::HelloReceived), State::Draining);
        assert_eq!(State::Open.on(Event::GoAway), State::Draining);
        assert_eq!(State::Draining.on(Event::HelloReceived), State::Draining);
        assert_eq!(State::Draining.on(Event::Closed), State::Closed);
        assert_eq!(State::Closed.on(Event::HelloReceived), State::Closed);
        assert_eq!(State::Closed.on(Event::GoAway), State::Closed);
        assert!(!State::Handshaking.greeted() && !State::Refused.greeted() && State::Draining.greeted());
        assert!(State::Open.takes_calls() && !State::Draining.takes_calls());
    }
}
