//! `bluegreen promote` and `bluegreen abort`: an operator's decision about the candidate that
//! waits on the resting slot (`rollout.promote = "manual"`, issue 11; `crate::rollout`).

use std::process::ExitCode;

use crate::cli::PromoteArgs;
use crate::config::Config;
use crate::deploy::{DeployError, Deployer, Done};
use crate::history::{Action, Record};
use crate::layout::Layout;
use crate::rollout::metrics::MIN_REQUESTS;
use crate::rollout::report::PhaseKind;
use crate::rollout::Settings;
use crate::supervisor;
use tracing::error;

/// Exit status of a deploy or promote whose rollout analysis stopped the candidate: traffic
/// stayed on, or went back to, the previous slot.
pub const EXIT_ABORTED: u8 = 4;

/// Exit status of a deploy or promote whose rollout stopped because a phase had too few
/// requests to judge the candidate (issue 11): traffic stayed on, or went back to, the
/// previous slot, and after a promote the candidate waits again.
pub const EXIT_INCONCLUSIVE: u8 = 5;

/// `bluegreen promote`: the rest of the rollout (shadow, canary steps, switch, watch).
pub fn promote(config: &Config, args: &PromoteArgs) -> anyhow::Result<ExitCode> {
    let config = no_wait(config, args);
    let supervisor = supervisor::detect(&config, &Layout::new(&config.state_dir));
    let deployer = Deployer::new(&config, supervisor.as_ref());
    match deployer.promote() {
        Ok(Done::Switched(record)) => switched("promoted", "on", &record),
        Ok(Done::Aborted(record)) => Ok(aborted(&record)),
        Ok(Done::Inconclusive(record)) => Ok(inconclusive(&record, &config.rollout)),
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(err) => failed(err, "promote failed"),
    }
}

/// `bluegreen abort`: the waiting candidate dropped, its slot back on its previous model.
pub fn abort(config: &Config, args: &PromoteArgs) -> anyhow::Result<ExitCode> {
    let config = no_wait(config, args);
    let supervisor = supervisor::detect(&config, &Layout::new(&config.state_dir));
    let deployer = Deployer::new(&config, supervisor.as_ref());
    match deployer.abort() {
        Ok(record) => {
            super::out(&format!(
                "aborted {}: {}; traffic stays on {}\n",
                record.to_version.as_deref().unwrap_or("?"),
                record.reason.as_deref().unwrap_or("dropped"),
                record.from_slot.map_or("?".into(), |s| s.to_string()),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => failed(err, "abort failed"),
    }
}

/// Says that `record` moved all traffic (`verb` its version `prep` its slot), as `deploy`
/// and `promote` both do.
pub(super) fn switched(verb: &str, prep: &str, record: &Record) -> anyhow::Result<ExitCode> {
    super::out(&format!(
        "{verb} {} {prep} {}: all traffic moved from {} in {:.0} ms; `bluegreen rollback` moves it back\n",
        record.to_version.as_deref().unwrap_or("?"),
        record.to_slot.map_or("?".into(), |s| s.to_string()),
        record.from_slot.map_or("?".into(), |s| s.to_string()),
        record.duration_ms
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Says that a rollout stopped `record`'s candidate; the exit status says so too
/// ([`EXIT_ABORTED`]).
pub(super) fn aborted(record: &Record) -> ExitCode {
    let version = record.to_version.as_deref().unwrap_or("?");
    error!(
        "the rollout stopped {version}: {}; recorded in the history (see `bluegreen status`); hint: the candidate breached a limit of [rollout] (max_error_rate, max_latency_ratio, max_divergence): fix the model or its data and train again; if the limit is wrong for this model, change it, `bluegreen check`, then `bluegreen deploy {version}`",
        record.reason.as_deref().unwrap_or("aborted")
    );
    ExitCode::from(EXIT_ABORTED)
}

/// Says that a rollout phase could not judge `record`'s candidate, and what to do about it;
/// the exit status says so too ([`EXIT_INCONCLUSIVE`]). `settings` name the phases that can
/// be turned off, so that the hint names only keys that analyse something now.
pub(super) fn inconclusive(record: &Record, settings: &Settings) -> ExitCode {
    let version = record.to_version.as_deref().unwrap_or("?");
    let key = match record.rollout.last().map(|r| r.figures.phase) {
        // The shadow sees only its share of the traffic (issue 11).
        Some(PhaseKind::Shadow) => {
            "rollout.shadow_seconds, or raise rollout.shadow_percent (the share of live requests mirrored)"
        }
        Some(PhaseKind::Watch) => "rollout.watch_seconds",
        Some(PhaseKind::Canary) | None => "rollout.step_seconds",
    };
    let analysed: Vec<&str> = [
        (settings.shadow_seconds > 0, "rollout.shadow_seconds = 0"),
        (
            settings.canary_steps().next().is_some(),
            "rollout.steps = [100]",
        ),
        (settings.watch_seconds > 0, "rollout.watch_seconds = 0"),
    ]
    .into_iter()
    .filter_map(|(on, off)| on.then_some(off))
    .collect();
    let without = if analysed.is_empty() {
        String::new()
    } else {
        format!(
            ", or move traffic without analysis ({})",
            analysed.join(", ")
        )
    };
    // The record's reason already says that a promoted candidate waits again, and where.
    let again = if record.action == Action::Promote {
        "then `bluegreen promote` once traffic flows, or `bluegreen abort`".to_string()
    } else {
        format!("then `bluegreen deploy {version}`")
    };
    error!(
        "the rollout could not judge {version}: {}; recorded in the history (see `bluegreen status`); hint: send traffic through NGINX while the phase runs (a phase needs {MIN_REQUESTS} requests on the candidate), or lengthen {key}{without}; {again}",
        record.reason.as_deref().unwrap_or("inconclusive")
    );
    ExitCode::from(EXIT_INCONCLUSIVE)
}

fn no_wait(config: &Config, args: &PromoteArgs) -> Config {
    let mut config = config.clone();
    if args.no_wait {
        config.deploy.lock_timeout_secs = 0;
    }
    config
}

fn failed(err: DeployError, context: &'static str) -> anyhow::Result<ExitCode> {
    match err {
        // These say what failed themselves.
        err @ (DeployError::Failed { .. }
        | DeployError::Unrecorded { .. }
        | DeployError::Reconcile { .. }
        | DeployError::NothingWaits) => Err(err.into()),
        err => Err(anyhow::Error::new(err).context(context)),
    }
}
