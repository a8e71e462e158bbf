//! What differs between the two ends of a connection (h2's `Peer` trait, as an enum: the
//! differences are a handful of facts, and a match costs nothing on the hot path).

use crate::protocol::Message;

/// Which end of a connection this engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sends calls and cancels; receives replies, errors and goaways.
    Client,
    /// Receives calls and cancels; sends replies, errors and goaways.
    Server,
}

impl Role {
    /// The other end, as errors and log lines name it.
    pub(crate) fn peer_name(self) -> &'static str {
        match self {
            Role::Client => "server",
            Role::Server => "client",
        }
    }

    /// Whether the handshake reads the peer's HELLO before anything else. A server does; a
    /// client sends its calls without waiting and takes the server's HELLO in its loop.
    pub(crate) fn waits_for_hello(self) -> bool {
        matches!(self, Role::Server)
    }

    /// Whether this end may receive `message` after the handshake. Stream frames, pings and
    /// pongs go both ways; the rest one way only, and a HELLO only once.
    pub(crate) fn may_receive(self, message: &Message) -> bool {
        match message {
            Message::Ping { .. }
            | Message::Pong
            | Message::Item { .. }
            | Message::End { .. }
            | Message::Credit { .. } => true,
            Message::Call { .. } | Message::Cancel { .. } => self == Role::Server,
            Message::Reply { .. } | Message::Error { .. } | Message::GoAway { .. } => self == Role::Client,
            Message::Hello(_) => false,
        }
    }

    /// Why `message`, which [`may_receive`](Self::may_receive) refuses, breaks the protocol.
    pub(crate) fn forbidden(self, message: &Message) -> &'static str {
        debug_assert!(!self.may_receive(message));
        match (self, message) {
            (Role::Client, _) => "the server sent a call, cancel or second HELLO frame",
            (Role::Server, Message::Hello(_)) => "a client sent a second HELLO",
            (Role::Server, _) => "a client sent a reply, error or goaway frame",
        }
    }

    /// Whether `message` may come before the peer's HELLO: nothing may, except (to a client) the
    /// goaway a server sends in place of its HELLO when it refuses the connection.
    pub(crate) fn may_precede_hello(self, message: &Message) -> bool {
        match message {
            Message::Hello(_) => true,
            Message::GoAway { .. } => self == Role::Client,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Role;
    use crate::protocol::Message;

    #[test]
    fn each_role_receives_what_the_other_sends() {
        let call_side = Message::Cancel { id: 1 };
        let reply_side = Message::GoAway { code: 0, message: String::new() };
        assert!(Role::Server.may_receive(&call_side) && !Role::Client.may_receive(&call_side));
        assert!(Role::Client.may_receive(&reply_side) && !Role::Server.may_receive(&reply_side));
        assert!(Role::Client.may_receive(&Message::Pong) && Role::Server.may_receive(&Message::Pong));
        assert!(Role::Client.may_precede_hello(&reply_side));
        assert!(!Role::Server.may_precede_hello(&call_side));
        assert_eq!(Role::Server.forbidden(&reply_side), "a client sent a reply, error or goaway frame");
    }
}
