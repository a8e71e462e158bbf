//! The hostile peers: attacker mode (`attack attacker SCENARIO tcp|unix ADDR SECS [PARAM]`).
//! Each scenario runs for at most SECS seconds, prints one `stats ...` line saying what it
//! did, and exits. They speak the wire protocol byte by byte (`rpc_tests::wire`), since no
//! well-behaved client would send what they send.

mod half_frames;
mod log_flood;
mod oneway;
mod ping_flood;
mod reset;
mod slots;
mod stalled_readers;

use std::time::{Duration, Instant};

use rpc_runtime::transport::BoxRead;
use rpc_tests::wire;
use tokio::io::AsyncReadExt;

use crate::endpoint::Endpoint;

/// Attacker mode: `args` = `SCENARIO tcp|unix ADDR SECS [PARAM]`.
pub(crate) async fn run(args: &[String]) {
    let [scenario, kind, addr, secs, rest @ ..] = args else {
        panic!("attacker mode takes SCENARIO tcp|unix ADDR SECS [PARAM], not {args:?}")
    };
    let endpoint = Endpoint::from_args(kind, addr);
    let until = Instant::now() + Duration::from_secs(secs.parse().expect("SECS"));
    let param: Option<u64> = rest.first().map(|p| p.parse().expect("a numeric PARAM"));
    let stats = match scenario.as_str() {
        "reset" => reset::run(&endpoint, until).await,
        "amplify" => stalled_readers::never_read(&endpoint, until, param.unwrap_or(1) as usize).await,
        "slow-read" => stalled_readers::slow_read(&endpoint, until).await,
        "oneway" => oneway::run(&endpoint, until).await,
        "half-frames" => half_frames::run(&endpoint, until).await,
        "slots" => slots::run(&endpoint, until).await,
        "log-flood" => log_flood::run(&endpoint, until).await,
        "ping-flood" => ping_flood::run(&endpoint, until).await,
        other => panic!("unknown attacker scenario {other:?}"),
    };
    println!("stats {stats}");
}

/// A whole request frame with no deadline.
fn request(id: u64, method: &str, oneway: bool, payload: &[u8]) -> Vec<u8> {
    wire::frame(&wire::request_raw(id, method.as_bytes(), None, oneway, payload))
}

/// Follows the frames the server sends (after its preface) without keeping their bodies.
#[derive(Debug, Default)]
struct Scanner {
    preface_seen: usize,
    header: [u8; 4],
    header_got: usize,
    body_left: usize,
    at_body_start: bool,
    /// Complete frames seen.
    frames: u64,
    /// Goaway frames seen.
    goaways: u64,
}

impl Scanner {
    /// Consumes `bytes`; returns how many frames they completed.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let before = self.frames;
        while !bytes.is_empty() {
            if self.preface_seen < wire::PREFACE.len() {
                let n = (wire::PREFACE.len() - self.preface_seen).min(bytes.len());
                self.preface_seen += n;
                bytes = &bytes[n..];
            } else if self.header_got < 4 {
                self.header[self.header_got] = bytes[0];
                self.header_got += 1;
                bytes = &bytes[1..];
                if self.header_got == 4 {
                    self.body_left = u32::from_be_bytes(self.header) as usize;
                    self.at_body_start = true;
                }
            } else {
                if self.at_body_start {
                    self.at_body_start = false;
                    self.goaways += u64::from(bytes[0] == 11);
                }
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
            }
            if self.header_got == 4 && self.body_left == 0 && !self.at_body_start {
                self.frames += 1;
                self.header_got = 0;
            }
        }
        self.frames - before
    }
}

/// How a drained connection ended.
#[derive(Debug, Default, Clone, Copy)]
struct Drained {
    /// Whether one of them was a goaway.
    goaway: bool,
    /// Whether the server closed the connection (EOF or reset) before the attack ended.
    closed: bool,
}

/// Reads and discards everything the server sends until it closes or `until`.
async fn drain(mut read: BoxRead, until: Instant) -> Drained {
    let mut scanner = Scanner::default();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout_at(until.into(), read.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => {
                scanner.feed(&buf[..n]);
            }
        }
    };
    Drained { goaway: scanner.goaways > 0, closed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_counts_frames_across_any_split() {
        let mut stream = wire::greeting();
        stream.extend(wire::frame(&wire::response(1, &[9; 300])));
        stream.extend(wire::frame(&wire::goaway(5, "full")));
        stream.extend(wire::frame(&wire::response(2, &[])));
        for chunk in [1, 3, 7, 64, stream.len()] {
            let mut s = Scanner::default();
            let total: u64 = stream.chunks(chunk).map(|c| s.feed(c)).sum();
            // The HELLO is a frame too.
            assert_eq!((total, s.goaways), (4, 1), "chunks of {chunk}");
        }
    }
}
