//! One module per subcommand, each with an `execute` that does the work and adds context to
//! the core's errors for the operator.
//!
//! Progress, warnings and errors are `tracing` events (`crate::log` writes them; issue 12).
//! A command's result is written with [`out`] (or [`report`] for the part of it that goes
//! to standard error), never `println!`, which panics (exit 101) when the reader of a pipe
//! has gone (`bluegreen nginx-site | head -1`; issue 8 §9). Log lines are best effort: a
//! deploy must not stop half-way because nobody reads its progress any more. [`out`]'s
//! error ends the command; `main` ends a command whose pipe closed quietly, as Unix tools do.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::Config;

mod add_data;
mod check;
mod deploy;
mod export;
mod generate;
mod import;
mod init;
mod nginx_site;
mod predict;
pub(crate) mod promote;
mod restart;
mod rollback;
pub(crate) mod serve;
mod status;
mod systemd_generator;
pub(crate) mod train;
mod up;

/// Runs the parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    // A command whose standard output is its result logs to standard error only.
    crate::log::init(match &cli.command {
        Command::Status(_) | Command::NginxSite | Command::Export(_) | Command::Predict(_) => {
            crate::log::Output::Stderr
        }
        _ => crate::log::Output::Split,
    });
    let path = cli.config.as_deref();
    let (config, fallback) = match cli.command {
        // `check` judges the configuration itself, bad or not.
        Command::Check => return check::execute(path),
        // Generated from the command line alone.
        Command::Generate(args) => return generate::execute(&args.what),
        // A slot keeps serving on the last good configuration when the file is bad, and
        // `status` says so (issue 8 §3).
        Command::Serve(_) | Command::Status(_) | Command::SystemdGenerator(_) => {
            Config::discover_or_last_good(path)
        }
        _ => Config::discover(path).map(|c| (c, None)),
    }
    .context("cannot load the configuration; hint: fix the file (`bluegreen check` lists every problem), or pass --config PATH")?;
    let fallback = fallback.as_ref();
    match cli.command {
        Command::Check | Command::Generate(_) => unreachable!("handled above"),
        Command::Up => up::execute(&config),
        Command::Init(args) => init::execute(&config, &args),
        Command::Serve(args) => serve::execute(&config, &args, fallback),
        Command::Train(args) => train::execute(&config, &args),
        Command::AddData(args) => add_data::execute(&config, &args),
        Command::Predict(args) => predict::execute(&config, &args),
        Command::Deploy(args) => deploy::execute(&config, &args),
        Command::Rollback(args) => rollback::execute(&config, &args),
        Command::Promote(args) => promote::promote(&config, &args),
        Command::Abort(args) => promote::abort(&config, &args),
        Command::Restart => restart::execute(&config),
        Command::Status(args) => status::execute(&config, &args, fallback),
        Command::NginxSite => nginx_site::execute(&config),
        Command::Export(args) => export::execute(&config, &args),
        Command::Import(args) => import::execute(&config, &args),
        Command::SystemdGenerator(args) => systemd_generator::execute(&config, &args.dir),
    }
}

/// An error, then what to do about it: `<the error and its causes>; hint: <hint>`, the cause
/// first, as the operator reads it, and the hint from that cause last.
///
/// `main` prints a chain outermost first, so a hint given as context would come before the
/// cause it answers. This type prints the whole chain of `cause` itself, and so has no
/// `source()`, or the chain would say it twice; the cause is kept, typed, in `cause`.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub cause: Box<dyn std::error::Error + Send + Sync>,
    /// What to do about it.
    pub hint: String,
}

impl Hinted {
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static, hint: String) -> Hinted {
        Hinted {
            cause: Box::new(cause),
            hint,
        }
    }
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; hint: {}",
            crate::history::chain(&*self.cause),
            self.hint
        )
    }
}

impl std::error::Error for Hinted {}

/// Prints part of a command's result on standard error (`check`'s problems, as `nginx -t`
/// prints them); best effort.
pub fn report(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Prints a command's result on standard output. A closed pipe is an error here, which
/// `main` turns into a quiet exit.
pub fn out(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}
