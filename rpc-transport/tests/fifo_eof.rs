//! Does a FIFO's end-of-stream reach the reactor at once? This binary holds one test and spawns
//! nothing else, so no other thread's `fork` can hold a copy of its descriptors.
//!
//! The reliability suite once failed about one run in 30 when both cores were busy: a call over
//! FIFOs got `DeadlineExceeded` instead of `ConnectionClosed` under a paused clock. The first half
//! shows the kernel is not to blame: once the last writer closes, the end-of-stream is there the
//! next time the runtime polls its reactor, before a paused clock can move. The second half shows
//! what delays it: another process holding a copy of the write end, as a child being spawned by
//! another test does between its `fork` and its `exec` (close-on-exec closes it only at `exec`).
//! Under a paused clock the runtime then looks idle and jumps to the next deadline, so tests that
//! wait on real I/O run in real time.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::{timeout, Instant};

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "{}", std::io::Error::last_os_error());
}

fn open_writer(path: &std::path::Path) -> fs::File {
    fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path).unwrap()
}

#[tokio::test(start_paused = true)]
async fn fifo_eof_reaches_the_reactor_at_once_unless_another_process_holds_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    mkfifo(&path);
    let mut reader = pipe::OpenOptions::new().open_receiver(&path).unwrap();
    let mut buf = [0u8; 16];
    // A paused clock jumps to the 30 s timeout as soon as the runtime has nothing to do: reading
    // the end-of-stream without the clock moving proves the reactor saw it on its first poll.
    let guard = Duration::from_secs(30);

    let mut writer = open_writer(&path);
    writer.write_all(b"x").unwrap();
    let t0 = Instant::now();
    assert_eq!(timeout(guard, reader.read(&mut buf)).await.expect("data").unwrap(), 1);
    drop(writer);
    let eof = timeout(guard, reader.read(&mut buf)).await.expect("the end-of-stream before the clock moved");
    assert_eq!(eof.unwrap(), 0);
    assert_eq!(t0.elapsed(), Duration::ZERO, "the reactor saw the end-of-stream at once");

    // A copy of the write end in another process: closing ours ends nothing.
    let writer = open_writer(&path);
    let mut holder =
        std::process::Command::new("sleep").arg("600").stdout(writer.try_clone().unwrap()).spawn().unwrap();
    drop(writer);
    tokio::task::yield_now().await;
    assert!(
        timeout(Duration::ZERO, reader.read(&mut buf)).await.is_err(),
        "no end-of-stream while another process holds the write end"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let eof = timeout(guard, reader.read(&mut buf)).await.expect("the end-of-stream once the holder is gone");
    assert_eq!(eof.unwrap(), 0);
}
