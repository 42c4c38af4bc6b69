//! bluegreen: blue/green deployment of a linear-regression model on a plain Linux host.
//!
//! The binary is thin (`main.rs`); each subcommand lives in `cmd/`; the domain modules below
//! own one thing each and return typed errors, to which the commands add context.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod dashboard;
pub mod data;
pub mod deploy;
pub mod fleet;
pub mod fsutil;
pub mod gate;
pub mod history;
pub mod http;
pub mod layout;
pub mod ledger;
pub mod lock;
pub mod log;
pub mod model;
pub mod nginx;
pub mod progress;
pub mod rollout;
pub mod server;
pub mod site;
pub mod slot;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod switch;
pub mod transfer;
pub mod up;
