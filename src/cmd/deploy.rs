//! `bluegreen deploy [VERSION]`: the switch to a new model (see `crate::deploy`).

use std::process::ExitCode;

use crate::cli::DeployArgs;
use crate::config::{Config, Role};
use crate::deploy::{DeployError, Deployer, Done};
use crate::fleet::{self, Released};
use crate::layout::Layout;
use crate::supervisor;
use tracing::{error, info};

pub fn execute(config: &Config, args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if args.no_wait {
        config.deploy.lock_timeout_secs = 0;
    }
    let mut version = args.version.clone();
    // Without a version this is the trigger path's deploy; in a fleet, the role decides.
    if version.is_none() {
        match config.fleet.role {
            Role::Standalone => {}
            Role::Server => anyhow::bail!(
                "this host's fleet role is \"server\": it deploys only the version it is given; hint: `bluegreen import FILE`, then `bluegreen deploy VERSION` (or roll out from the trainer with rollout.yml)"
            ),
            Role::Trainer => match fleet::release(&config) {
                Ok(released) => {
                    if let Released::Already { version, at } = &released {
                        info!(
                            "{version} was released at {at} already; not running fleet.on_new_model again"
                        );
                    }
                    if !config.fleet.deploy_locally {
                        info!("fleet.deploy_locally is false: this host is deployed by the rollout, if at all");
                        return Ok(ExitCode::SUCCESS);
                    }
                    version = Some(released.version().to_string());
                }
                Err(err) => return Err(anyhow::Error::new(err).context("release failed")),
            },
        }
    }
    let supervisor = supervisor::detect(&config, &Layout::new(&config.state_dir));
    let deployer = Deployer::new(&config, supervisor.as_ref());
    match deployer.deploy(version.as_deref(), args.allow_schema_change) {
        Ok(Done::Switched(record)) => super::promote::switched("deployed", "to", &record),
        Ok(Done::Waiting(record)) => {
            super::out(&format!(
                "{} waits on {} (rollout.promote = \"manual\"); traffic stays on {}: preview it through NGINX with the header `X-Bluegreen-Preview: 1`, then `bluegreen promote` or `bluegreen abort`\n",
                record.to_version.as_deref().unwrap_or("?"),
                record.to_slot.map_or("?".into(), |s| s.to_string()),
                record.from_slot.map_or("?".into(), |s| s.to_string()),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Done::Aborted(record)) => Ok(super::promote::aborted(&record)),
        Ok(Done::Inconclusive(record)) => {
            Ok(super::promote::inconclusive(&record, &config.rollout))
        }
        Ok(Done::AlreadyActive { slot, version }) => {
            super::out(&format!(
                "{version} already serves on the active slot {slot}; nothing to do\n"
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ DeployError::Refused { .. }) => {
            error!("{err}; nothing changed (recorded in the history; see `bluegreen status`)");
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
