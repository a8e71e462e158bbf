//! `rpc`: call a running server from the command line, like grpcurl: list its services,
//! describe a method's types, call it with JSON arguments, check its health and statistics.
//!
//! ```text
//! cargo run -p rpc-examples --bin rpc -- list tcp:127.0.0.1:4000
//! cargo run -p rpc-examples --bin rpc -- describe unix:/tmp/calc.sock Calculator.div
//! cargo run -p rpc-examples --bin rpc -- call tcp:127.0.0.1:4000 Calculator.add '[1, 2]' --deadline 2s
//! ```
//!
//! It needs no schema: calls go in JSON with signature hash 0 (the server skips the check), and
//! what a method takes comes from the server's built-in `rpc.Introspection` service (or, if the
//! server opted out of it, the method names and kinds in its HELLO). Exit codes are in `USAGE`.

mod args;
mod run;
mod show;
mod stream;

use std::process::ExitCode;

/// How the program ends: the exit code scripts test, and the message for stderr.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

/// Exit codes.
pub(crate) mod exit {
    /// The server answered with an error, or is not serving.
    pub(crate) const SERVER_ERROR: u8 = 1;
    /// Bad usage, bad JSON, wrong argument types, an unknown service or method.
    pub(crate) const USAGE: u8 = 2;
    /// The connection could not be made, or was lost.
    pub(crate) const CONNECTION: u8 = 3;
    /// The deadline passed.
    pub(crate) const DEADLINE: u8 = 4;
    /// Ctrl-C (SIGINT): 128 + 2, as a shell reports a process the signal killed.
    pub(crate) const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rpc: {e}\n\n{}", args::USAGE);
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rpc: cannot start a runtime: {e}");
            return ExitCode::from(exit::SERVER_ERROR);
        }
    };
    match runtime.block_on(run::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("rpc: {message}");
            ExitCode::from(code)
        }
    }
}
