//! The command line: raw arguments as clap parses them. Each subcommand's `execute` in
//! `cmd/` turns these into work; nothing here does any.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::slot::Slot;

#[derive(Debug, Parser)]
#[command(
    name = "bluegreen",
    version,
    about = "Blue/green deployment of a machine-learning model behind NGINX, run by systemd",
    long_about = "Blue/green deployment of a machine-learning model behind NGINX, run by systemd.\n\n\
Two slots (blue and green) serve the model's HTTP API; NGINX sends traffic to the active one. \
New training data retrains the model, and the new model is deployed to the resting slot before \
traffic moves to it. Try it with `bluegreen up`; see `bluegreen status` at any time."
)]
pub struct Cli {
    /// Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]
    #[arg(long, global = true, env = "BLUEGREEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system in the foreground without systemd: both slots, NGINX, and the
    /// trainer that retrains and deploys when data arrives. Ctrl-C stops it all.
    Up,
    /// Create the state folder: data, the initial model, slot links, the NGINX include.
    /// Safe to run again; it only adds what is missing.
    Init(InitArgs),
    /// Serve one slot's model over HTTP (what `bluegreen@<slot>.service` runs).
    Serve(ServeArgs),
    /// Train a model on the data and store it as a new artifact.
    #[command(after_help = "Exit status:\n  \
        0   trained a new model (with --if-due: training was not due and no deploy is wanted)\n  \
        10  with --if-due: a deploy is wanted: it trained a model that passed the quality gate,\n      \
        or the newest model that passed is not active (its deploy was interrupted or failed)\n  \
        3   trained, but the quality gate refused the model (kept, recorded in the history,\n      \
        not deployed)\n  \
        1   error")]
    Train(TrainArgs),
    /// Append validated rows to the training data.
    AddData(AddDataArgs),
    /// Predict locally from a model artifact, without a server: one prediction a line.
    Predict(PredictArgs),
    /// Deploy a model to the resting slot and move traffic to it.
    #[command(after_help = "Exit status:\n  \
        0   deployed, or the model already serves on the active slot\n  \
        3   the quality gate refused the model; nothing changed\n  \
        4   the rollout's analysis stopped the model (see [rollout]); traffic is on the\n      \
        previous slot\n  \
        5   a rollout phase had too few requests on the model to judge it; traffic is on\n      \
        the previous slot (send traffic while it runs, then deploy again)\n  \
        1   error; traffic stays on the active slot")]
    Deploy(DeployArgs),
    /// Move traffic back to the resting slot, which still serves the previous model.
    Rollback(RollbackArgs),
    /// Run the rest of the rollout of the candidate that waits on the resting slot
    /// (rollout.promote = "manual"): shadow, canary steps, the switch, the watch.
    #[command(after_help = "Exit status:\n  \
        0   promoted: all traffic is on the candidate\n  \
        4   the rollout's analysis stopped the candidate: traffic is back on the previous\n      \
        slot\n  \
        5   a rollout phase had too few requests on the candidate to judge it: traffic is\n      \
        back on the previous slot, and the candidate waits again\n  \
        1   error, or no candidate waits")]
    Promote(PromoteArgs),
    /// Drop the candidate that waits on the resting slot; the slot goes back to the model it
    /// served before, so `bluegreen rollback` still means the previous model.
    Abort(PromoteArgs),
    /// Apply a configuration change: check it, then restart the slots one at a time, the
    /// resting one first, each until it sent READY=1 and answers a probe. Nothing is
    /// restarted when a check fails.
    Restart,
    /// Show the slots, their models and health, the data, and the last deploys.
    Status(StatusArgs),
    /// Print the NGINX site configuration for this config.
    NginxSite,
    /// Check the configuration, the state and NGINX's configuration, like `nginx -t`; when
    /// all pass, save the configuration as the last good one (slots fall back to it).
    #[command(after_help = "Exit status:\n  \
        0   everything passed (warnings may be printed)\n  \
        1   a problem was found; each is printed with its key or file and a hint")]
    Check,
    /// Write a model to standard output as an export file, for `bluegreen import` on another
    /// host: `bluegreen export VERSION > FILE`.
    Export(ExportArgs),
    /// Add a model exported on another host, keeping its version name. The file's format,
    /// checksum, artifact and schema (this host's [data] features and label) are checked
    /// first; nothing is written unless all are sound.
    #[command(after_help = "Exit status:\n  \
        0   imported, or this very version with identical content was already here\n  \
        1   error: a bad file, or this version is here with different content; nothing written")]
    Import(ImportArgs),
    /// Write the slots' socket units' addresses from the config: what systemd runs as
    /// bluegreen's generator at boot and at every `systemctl daemon-reload`.
    #[command(hide = true)]
    SystemdGenerator(GeneratorArgs),
    /// Write the man pages or the shell completions, generated from this command line: what
    /// the Debian package ships (packaging/man/, packaging/completions/).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// bluegreen.1, and bluegreen-COMMAND.1 for each command.
    Man {
        /// The folder to write them to.
        dir: PathBuf,
    },
    /// bluegreen.bash, _bluegreen (zsh) and bluegreen.fish.
    Completions {
        /// The folder to write them to.
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct GeneratorArgs {
    /// The generator's output folder (systemd.generator(7) calls it normal-dir).
    pub dir: PathBuf,
    /// systemd passes early-dir and late-dir too; nothing goes there.
    #[arg(hide = true)]
    pub rest: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The first training data, when there is none yet: a CSV of the columns [data] names
    /// (with a header in any order and case, or none). Without it, the Boston demo's rows
    /// are the first data when [data] is the default.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which slot to serve.
    #[arg(long, value_enum)]
    pub slot: Slot,
    /// Listen here instead of the slot's configured address (for tests; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Accept on this inherited listening socket (a file descriptor number), bound by the
    /// supervisor on the slot's address: how `bluegreen up` keeps the socket open across
    /// restarts. (Under systemd the socket comes from `bluegreen@.socket` instead.)
    #[arg(long, value_name = "FD", conflicts_with = "listen")]
    pub listen_fd: Option<i32>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Train only when the rows added since the newest model reach `batch_size`.
    #[arg(long)]
    pub if_due: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true))]
pub struct AddDataArgs {
    /// A CSV file of rows; `-` reads standard input. With a header, columns are matched by
    /// name (any order and case; [data] ignore columns dropped); without one, they are the
    /// [data] features, then the label.
    #[arg(group = "input", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// One row of comma-separated numbers: the [data] features, then the label (for the
    /// Boston default: CRIM,...,LSTAT,MEDV). May be repeated.
    #[arg(long, group = "input", value_name = "ROW", allow_hyphen_values = true)]
    pub row: Vec<String>,
    /// Append N of the original demo's example rows (it had two; they repeat). Only for the
    /// Boston default [data].
    #[arg(long, group = "input", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sample: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The model version to deploy, or a unique prefix of one (`v0007`) [default: the newest
    /// model that passed the quality gate]
    pub version: Option<String>,
    /// Fail at once if another deploy is running, instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Deploy a model whose features or label differ from the active model's: this changes
    /// what clients must send. The history records the change.
    #[arg(long)]
    pub allow_schema_change: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true))]
pub struct PredictArgs {
    /// The model: a version (a unique prefix such as v0003 will do) or an artifact's path
    /// [default: the model the active slot serves, else the newest]
    #[arg(long, value_name = "VERSION|PATH")]
    pub model: Option<String>,
    /// A CSV file of rows of features; `-` reads standard input. With a header, columns are
    /// matched by name (any order and case; the label and [data] ignore columns dropped).
    #[arg(group = "input", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// One row of the model's features, comma-separated. May be repeated.
    #[arg(long, group = "input", value_name = "ROW", allow_hyphen_values = true)]
    pub row: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Fail at once if a deploy is running, instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Fail at once if a deploy is running, instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model version to export, or a unique prefix of one (`v0007`); see `bluegreen
    /// status`.
    pub version: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file written by `bluegreen export`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON for scripts instead of the table.
    #[arg(long)]
    pub json: bool,
}
