//! Every limit a server enforces, and the threat it answers (documentation only).
//!
//! Set them with [`ServerConfig`](crate::ServerConfig)'s `with_*` setters or the by-value
//! setters on [`Server`](crate::Server) (`Server::new(svc).max_in_flight(8)`). The defaults are
//! pinned by the reliability suite (`g4_defaults_are_pinned_and_finite`); the threats are the
//! cases of `RELIABILITY.md` (A–H), and `docs/reliability.md` names the test for each rule.
//!
//! The defaults and the rules that are not a plain setting (the control-frame bucket, cancel
//! credit, the violation count, a stream's item credit, the receive budget's wiring) live in one
//! internal module, `engine/limits.rs`; this page is their listing.
//!
//! | Limit | Default | Threat | When reached |
//! |---|---|---|---|
//! | `max_frame_len` | 4 MiB | a forged length prefix (A1) | goaway `FRAME_TOO_LARGE`, close |
//! | `max_receive_budget` | 256 MiB | many connections announcing maximal frames and trickling them (E4, H5) | a frame that does not fit sheds the connection holding its reservation longest once that has held it for [`SHED_AFTER`](crate::transport::framed::SHED_AFTER) (1 s; at once if it already has), with goaway `OVERLOADED`; the newcomer fails only if no room comes within `SHED_AFTER` after that |
//! | `max_in_flight` | 128 per connection | a request flood (E1) | the connection is not read until a handler ends (backpressure) |
//! | `outbound_queue` | 128 frames per connection | many small responses to a peer that does not read (E3) | handlers wait for room |
//! | `response_budget_per_connection` | 8 MiB | requests for large responses from a peer that never reads (H2) | the connection starts no call and is not read; a handler whose response does not fit waits, at most `write_timeout`. One frame larger than the budget still goes, alone |
//! | `max_response_budget` | 128 MiB server-wide | the same, from many connections (H2) | the same, for every connection past its 64 KiB reserve: a connection's first 64 KiB of queued responses are charged even when the server-wide budget is full, so small replies to a peer that reads never wait behind peers that stopped reading (memory: this budget + connections × 64 KiB) |
//! | `write_timeout` | 30 s | a peer that stops reading, or reads too slowly to keep up (E3, H3) | the connection is closed once its oldest queued frame has waited this long unwritten |
//! | `max_connections` | 1024 | connection floods (H6) | the connection idle longest (no call running) is evicted: goaway `IDLE`, close; if none is idle, the newcomer gets goaway `OVERLOADED` |
//! | `max_connections_per_peer` | 256 (an IP address; a Unix uid) | one peer holding every slot (H6) | the newcomer gets goaway `OVERLOADED` |
//! | `idle_timeout` | 5 min | slots held by silent or ping-only connections (B2, H6) | goaway `IDLE`, close. Pings do not count as activity on a connection with no call running |
//! | `handshake_timeout` | 10 s | connections that never send a preface and a HELLO | no preface: close; no HELLO: goaway `IDLE`, close |
//! | HELLO bounds | 256 services, 4096 methods, names of 1 to 256 bytes; a maximum frame of at least 1024, a stream window of at least 1, a format in common | a forged or absurd HELLO | goaway `PROTOCOL` naming the rule (a HELLO frame over `max_frame_len`: goaway `FRAME_TOO_LARGE`) |
//! | metadata | 64 entries, 16 KiB of keys and values per call ([`MAX_METADATA_ENTRIES`](crate::MAX_METADATA_ENTRIES), [`MAX_METADATA_BYTES`](crate::MAX_METADATA_BYTES)) | oversized per-call metadata | that call fails with `METADATA_TOO_LARGE`; the connection carries on |
//! | stream rules | items within the credit granted (the HELLO's `stream_window`, 16, plus `CREDIT`s), none after `END`, outstanding credit at most 2^32 - 1, stream frames only for open streams | a peer that floods a stream, or names streams it never opened | `ERROR` `STREAM_PROTOCOL` for the stream (which ends), counted as a protocol violation (below); the last one's goaway is `STREAM_PROTOCOL`; a stream buffers at most its window of items |
//! | `frame_timeout` | 30 s from a frame's first byte | slowloris (B3) | goaway `IDLE`, close |
//! | `max_control_frames_per_sec` | 1000 (a bucket of 1000, refilled 1000/s) | ping floods, with or without requests among them (E2, H8) | goaway `PROTOCOL` "too many control frames" |
//! | cancels | one per request received, plus 1024 | cancel floods (E2) | goaway `PROTOCOL` "too many cancels" |
//! | `max_protocol_violations` | 8 per connection | a peer repeating what the protocol forbids, e.g. reusing the id of a call in flight (D2, H7) | goaway `PROTOCOL` "too many protocol violations" |
//! | `max_deadline` | 24 h | forged deadlines (D3) | clamped |
//! | `oneway_deadline` | 60 s | one-way calls that nobody bounds (H4) | the handler is dropped at its deadline |
//! | `max_detached_calls` | 1024 server-wide | one-way and run-to-completion calls left by connections that closed (H4) | a departing connection's remaining calls are cancelled (logged) |
//! | log rate limit | 10 lines at once, then 1 a second, per connection | log lines a peer's input triggers: violations, refused calls, handler panics (H7) | lines are counted, not written; the count is reported with the next line and when the connection closes |
//! | accept failures | 64 in a row before backing off (5 ms to 1 s) | peers that reset before they are accepted (H1); descriptor exhaustion | a failure about one peer is skipped at once; running out of descriptors or memory backs off |
//!
//! What a connection costs at most, with the defaults: its read buffer (up to one frame, reserved
//! from the receive budget above 64 KiB), `max_in_flight` handlers and their state, up to
//! `response_budget_per_connection` of queued frames plus one response waiting for room per
//! waiting handler, and a few KiB of task state. A connection whose peer left frees its slot and
//! socket at once; its one-way and run-to-completion calls go on detached, within
//! `max_detached_calls`.
//!
//! A handler that panics runs the process's panic hook before the server catches the panic: by
//! default the hook prints the message to stderr (not rate-limited), and with `RUST_BACKTRACE=1`
//! it also captures and prints a backtrace, which costs milliseconds of CPU per panic. A peer that
//! can make a handler panic on purpose can make the process print. The server's own log line for
//! the panic is rate-limited. To bound what a panic costs, install a hook that is quiet for
//! handler panics (`std::panic::set_hook`), leave `RUST_BACKTRACE` unset in production, and treat
//! a handler panic as a bug to fix: return an error instead.
