//! `bluegreen deploy [VERSION]`: the switch to a new model (see `crate::deploy`).

use std::process::ExitCode;

use crate::cli::DeployArgs;
use crate::config::Config;
use crate::deploy::{DeployError, Deployer, Done};
use crate::layout::Layout;
use crate::supervisor;

pub fn execute(config: &Config, args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if args.no_wait {
        config.deploy.lock_timeout_secs = 0;
    }
    let supervisor = supervisor::detect(&config, &Layout::new(&config.state_dir));
    let deployer = Deployer::new(&config, supervisor.as_ref(), &super::say);
    match deployer.deploy(args.version.as_deref()) {
        Ok(Done::Switched(record)) => {
            super::out(&format!(
                "deployed {} to {}: traffic moved from {} in {:.0} ms; `bluegreen rollback` moves it back\n",
                record.to_version.as_deref().unwrap_or("?"),
                record.to_slot.map_or("?".into(), |s| s.to_string()),
                record.from_slot.map_or("?".into(), |s| s.to_string()),
                record.duration_ms
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Done::AlreadyActive { slot, version }) => {
            super::out(&format!(
                "{version} already serves on the active slot {slot}; nothing to do\n"
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ DeployError::Refused { .. }) => {
            super::warn(&format!(
                "error: {err}; nothing changed (recorded in the history; see `bluegreen status`)"
            ));
            Ok(ExitCode::from(super::train::EXIT_REFUSED))
        }
        // These say what failed themselves.
        Err(
            err @ (DeployError::Failed { .. }
            | DeployError::Unrecorded { .. }
            | DeployError::Reconcile { .. }),
        ) => Err(err.into()),
        Err(err) => Err(anyhow::Error::new(err).context("deploy failed")),
    }
}
