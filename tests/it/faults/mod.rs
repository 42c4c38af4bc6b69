//! Faults, one file per kind: what is done to the system, and that it keeps serving and
//! telling the truth afterwards.

pub mod bad_candidate;
mod bad_config;
mod deploy_kill;
mod deploy_write;
mod files;
mod nginx_crash;
mod nginx_errors;
mod nginx_retry;
mod promote_kill;
mod slot_crash;
mod slot_hang;
mod slot_shutdown;
mod slow_clients;
