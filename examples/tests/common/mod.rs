//! The calculator example run as a server process (`calculator serve ADDR`), for the tests of
//! the `rpc` command-line caller and the Python peer.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A calculator server process; killed when dropped.
pub struct Calculator {
    child: Child,
    /// The address it printed (`tcp:127.0.0.1:PORT`, `unix:PATH`, `fifo:PATH`).
    pub addr: String,
}

impl Calculator {
    /// Starts `calculator serve ADDR [extra]` and waits for its `listening on ADDR` line.
    pub fn start(addr: &str, extra: &[&str]) -> Calculator {
        let exe = std::env::current_exe().expect("test binary path");
        let path = exe.parent().and_then(Path::parent).expect("target/<profile>").join("examples/calculator");
        assert!(
            path.exists(),
            "{} is missing: run `cargo build -p rpc-examples --examples` first",
            path.display()
        );
        let mut child = Command::new(path)
            .arg("serve")
            .arg(addr)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the calculator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let addr =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}"));
        Calculator { addr: addr.to_owned(), child }
    }
}

impl Drop for Calculator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for socket and FIFO files, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `/tmp/rpc-examples-<test>-<pid>`.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rpc-examples-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// `unix:DIR/file` or `fifo:DIR/file`.
    pub fn addr(&self, scheme: &str, file: &str) -> String {
        format!("{scheme}:{}", self.0.join(file).display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
