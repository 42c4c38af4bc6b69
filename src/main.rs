//! The `bluegreen` binary: parse, run, print the whole error chain, exit.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bluegreen::cli::Cli::parse();
    match bluegreen::cmd::execute(cli) {
        Ok(code) => code,
        // The reader of our output has gone (`bluegreen status | head -1`): nothing is left
        // to say to anyone, and as for a Unix tool killed by SIGPIPE, that is no failure.
        // Rust ignores SIGPIPE, so it arrives as this error instead (issue 8 §9).
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr().lock(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
