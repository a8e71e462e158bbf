//! The registration message a client writes on a listener's FIFO: encoding, a parser that
//! resynchronises past garbage, its CRC-32 and the nonce.
//!
//! The layout is specified in `FIFO.md` at the repository root.

use std::ffi::OsStr;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::PIPE_BUF;

/// The first bytes of a registration message.
const MAGIC: [u8; 4] = *b"RPCF";
/// The registration format this module writes and reads.
const VERSION: u8 = 1;
/// Magic, version, flags and directory length: enough to know a message's full length.
const PREFIX_LEN: usize = 8;
/// Bytes of the nonce a client repeats on its pair to confirm the registration.
pub(super) const NONCE_LEN: usize = 16;
/// Bytes before the directory path: prefix, pid and nonce.
const HEADER_LEN: usize = PREFIX_LEN + 4 + NONCE_LEN;
/// Bytes of the trailing CRC-32.
const CRC_LEN: usize = 4;
/// The longest directory path that keeps a registration within `PIPE_BUF`.
const MAX_DIR_LEN: usize = PIPE_BUF - HEADER_LEN - CRC_LEN;

/// A registration read from the well-known FIFO; the pid is the client's claim, for logs only.
#[derive(Debug)]
pub(super) struct Registration {
    pub(super) pid: u32,
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) dir: PathBuf,
}

/// Encodes a registration (layout in `FIFO.md`); fails if it would not fit in `PIPE_BUF`.
pub(super) fn encode_registration(pid: u32, nonce: &[u8; NONCE_LEN], dir: &Path) -> io::Result<Vec<u8>> {
    let dir = dir.as_os_str().as_bytes();
    if dir.len() > MAX_DIR_LEN || dir.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "private directory path must be at most {MAX_DIR_LEN} bytes without NUL to fit one atomic registration: {}",
                OsStr::from_bytes(dir).to_string_lossy()
            ),
        ));
    }
    let mut msg = Vec::with_capacity(HEADER_LEN + dir.len() + CRC_LEN);
    msg.extend_from_slice(&MAGIC);
    msg.push(VERSION);
    msg.push(0); // flags
    msg.extend_from_slice(&(dir.len() as u16).to_be_bytes());
    msg.extend_from_slice(&pid.to_be_bytes());
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(dir);
    msg.extend_from_slice(&crc32(&msg).to_be_bytes());
    Ok(msg)
}

/// What the bytes at some offset of the listener's buffer can be.
enum Candidate {
    /// A whole message of this many bytes, checksum verified.
    Complete(usize),
    /// The start of a message whose remaining bytes have not arrived.
    Incomplete,
    /// Not the start of a message.
    Invalid,
}

fn candidate(bytes: &[u8]) -> Candidate {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Candidate::Invalid;
    }
    if bytes.len() < PREFIX_LEN {
        return Candidate::Incomplete;
    }
    let dir_len = u16::from_be_bytes([bytes[6], bytes[7]]) as usize;
    if bytes[4] != VERSION || bytes[5] != 0 || dir_len == 0 || dir_len > MAX_DIR_LEN {
        return Candidate::Invalid;
    }
    let len = HEADER_LEN + dir_len + CRC_LEN;
    if bytes.len() < len {
        return Candidate::Incomplete;
    }
    let crc = u32::from_be_bytes([bytes[len - 4], bytes[len - 3], bytes[len - 2], bytes[len - 1]]);
    if crc32(&bytes[..len - CRC_LEN]) != crc {
        return Candidate::Invalid;
    }
    Candidate::Complete(len)
}

/// Takes the next well-formed message out of `buf`, dropping any garbage before it; `None` until
/// one is complete, leaving only bytes that may still start one (at most about `2 × PIPE_BUF`).
///
/// Every client writes its message whole, so a complete message found after an incomplete
/// candidate proves that candidate was garbage; resynchronising on the magic at every offset
/// means garbage, even garbage that looks like a header, never swallows a real registration.
pub(super) fn take_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut keep_from = None;
    for start in 0..buf.len() {
        match candidate(&buf[start..]) {
            Candidate::Complete(len) => {
                if start > 0 {
                    tracing::debug!(bytes = start, "skipped garbage on a listener fifo");
                }
                let msg = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return Some(msg);
            }
            Candidate::Incomplete => {
                keep_from.get_or_insert(start);
            }
            Candidate::Invalid => {}
        }
    }
    let keep_from = keep_from.unwrap_or(buf.len());
    if keep_from > 0 {
        tracing::debug!(bytes = keep_from, "skipped garbage on a listener fifo");
    }
    buf.drain(..keep_from);
    None
}

/// Decodes a message that [`take_message`] found well formed.
pub(super) fn decode_registration(msg: &[u8]) -> io::Result<Registration> {
    let dir_len = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let pid = u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&msg[PREFIX_LEN + 4..HEADER_LEN]);
    let dir = &msg[HEADER_LEN..HEADER_LEN + dir_len];
    let dir = PathBuf::from(OsStr::from_bytes(dir));
    let problem = if dir.as_os_str().as_bytes().contains(&0) {
        Some("contains a NUL byte")
    } else if !dir.is_absolute() {
        Some("is not an absolute path")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("registered directory {:?} {problem}", dir.display()),
        ));
    }
    Ok(Registration { pid, nonce, dir })
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8))
}

/// Random enough to tell registrations apart (not a secret: the pair is private anyway).
pub(super) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&random_u64().to_ne_bytes());
    nonce[8..].copy_from_slice(&random_u64().to_ne_bytes());
    nonce
}

pub(super) fn random_u64() -> u64 {
    // std's RandomState is seeded from the OS and differs on every call.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    fn registration(dir: &str) -> Vec<u8> {
        encode_registration(42, &[7; NONCE_LEN], Path::new(dir)).unwrap()
    }

    #[test]
    fn registration_round_trips() {
        let mut buf = registration("/tmp/x");
        assert_eq!(buf.len(), HEADER_LEN + 6 + CRC_LEN);
        let reg = decode_registration(&take_message(&mut buf).unwrap()).unwrap();
        assert_eq!((reg.pid, reg.nonce, reg.dir), (42, [7; NONCE_LEN], PathBuf::from("/tmp/x")));
        assert!(buf.is_empty());
    }

    #[test]
    fn longest_registration_fits_pipe_buf_and_longer_is_refused() {
        let longest = format!("/{}", "a".repeat(MAX_DIR_LEN - 1));
        assert_eq!(registration(&longest).len(), PIPE_BUF);
        let too_long = format!("/{}", "a".repeat(MAX_DIR_LEN));
        let err = encode_registration(1, &[0; NONCE_LEN], Path::new(&too_long)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn garbage_before_between_and_inside_messages_is_skipped() {
        let mut bad_crc = registration("/tmp/bad");
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut bad_version = registration("/tmp/v");
        bad_version[4] = 2;
        // A header that claims a long message, cut short by a real one.
        let mut liar = registration(&format!("/{}", "b".repeat(3000)));
        liar.truncate(40);
        let mut stream = b"RPgarbageRPCF\0\0".to_vec();
        for part in [&bad_crc, &liar, &registration("/tmp/one"), &bad_version, &registration("/tmp/two")] {
            stream.extend_from_slice(part);
        }
        stream.extend_from_slice(b"RPC");
        let mut found = Vec::new();
        // Feed it in uneven pieces, as reads may cut it.
        let mut buf = Vec::new();
        for piece in stream.chunks(7) {
            buf.extend_from_slice(piece);
            while let Some(msg) = take_message(&mut buf) {
                found.push(decode_registration(&msg).unwrap().dir);
            }
            assert!(buf.len() <= 2 * PIPE_BUF);
        }
        assert_eq!(found, [PathBuf::from("/tmp/one"), PathBuf::from("/tmp/two")]);
        assert_eq!(buf, b"RPC", "a possible magic prefix is kept");
    }

    #[test]
    fn relative_paths_are_refused() {
        let mut msg = registration("rel/dir");
        assert_eq!(
            decode_registration(&take_message(&mut msg).unwrap()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
