//! `bluegreen rollback`: traffic back to the resting slot, which is still warm with the
//! previous model. No restart: a rewrite of the include and an NGINX reload.

use std::process::ExitCode;

use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::deploy::{DeployError, Deployer};
use crate::layout::Layout;
use crate::supervisor;

pub fn execute(config: &Config, args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if args.no_wait {
        config.deploy.lock_timeout_secs = 0;
    }
    let supervisor = supervisor::detect(&config, &Layout::new(&config.state_dir));
    let deployer = Deployer::new(&config, supervisor.as_ref());
    let record = deployer.rollback().map_err(|err| match err {
        DeployError::Failed { .. }
        | DeployError::Unrecorded { .. }
        | DeployError::Reconcile { .. } => anyhow::Error::new(err),
        err => anyhow::Error::new(err).context("rollback failed"),
    })?;
    super::out(&format!(
        "rolled back to {} on {} in {:.0} ms\n",
        record.to_version.as_deref().unwrap_or("?"),
        record.to_slot.map_or("?".into(), |s| s.to_string()),
        record.duration_ms
    ))?;
    Ok(ExitCode::SUCCESS)
}
