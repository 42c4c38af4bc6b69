//! The `bluegreen` binary: parse, run, print the whole error chain, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bluegreen::cli::Cli::parse();
    match bluegreen::cmd::execute(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
