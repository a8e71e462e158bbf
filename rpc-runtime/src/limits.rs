//! Every limit a server enforces, and the threat it answers (documentation only).
//!
//! Set them with [`ServerConfig`](crate::ServerConfig)'s `with_*` setters or the by-value
//! setters on [`Server`](crate::Server); the defaults are pinned by the reliability suite (G4).
