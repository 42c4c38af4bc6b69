//! One module per subcommand, each with an `execute` that does the work and adds context to
//! the core's errors for the operator.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::Config;

mod add_data;
mod deploy;
mod init;
mod nginx_site;
mod rollback;
mod serve;
mod status;
mod train;
mod up;

/// Runs the parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::discover(cli.config.as_deref())
        .context("cannot load the configuration; hint: fix the file, or pass --config PATH")?;
    match cli.command {
        Command::Up => up::execute(&config),
        Command::Init => init::execute(&config),
        Command::Serve(args) => serve::execute(&config, &args),
        Command::Train(args) => train::execute(&config, &args),
        Command::AddData(args) => add_data::execute(&config, &args),
        Command::Deploy(args) => deploy::execute(&config, &args),
        Command::Rollback(args) => rollback::execute(&config, &args),
        Command::Status(args) => status::execute(&config, &args),
        Command::NginxSite => nginx_site::execute(&config),
    }
}

/// Prints a progress line for the operator.
fn say(line: &str) {
    println!("{line}");
}
