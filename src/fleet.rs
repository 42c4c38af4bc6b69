//! A fleet of hosts (issue 13): what a trainer does with a model that passed its gate.
//!
//! Every host of a fleet runs the same package; `[fleet] role` in its config says its part:
//! - `standalone` (the default): new data trains a model, which is deployed on this host;
//! - `server`: never trains (the data triggers run `train --if-due`, which does nothing here,
//!   and a plain `train` refuses) and deploys only the version it is given, after a
//!   `bluegreen import`;
//! - `trainer`: trains as a standalone host does; then, instead of only deploying locally, it
//!   *releases* the model: it runs `fleet.on_new_model` (for instance the rollout playbook,
//!   `deploy/ansible/rollout.yml`), and deploys locally afterwards only if
//!   `fleet.deploy_locally` is set and the command succeeded.
//!
//! A release is what `bluegreen deploy` without a version does on a trainer, so the trigger
//! path (the systemd units and `up`'s watcher both run `train --if-due`, then `deploy`) is the
//! same on every role. Every release is a record in the one history, `deploys.jsonl`, with
//! action `release` and outcome `released`, `failed` or `refused`.
//!
//! The command runs without the deploy lock: a rollout that includes this host runs
//! `bluegreen deploy VERSION` here, which takes that lock. Releases are serialised by a lock
//! of their own, `run/release.lock`.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::config::Config;
use crate::history::{self, Action, HistoryError, Outcome, Record};
use crate::layout::Layout;
use crate::lock::{self, LockError};
use crate::model::{Artifact, Store};
use crate::state::{State, StateError};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no model has passed the quality gate, so there is none to release; hint: `bluegreen status` shows the models and the gate's verdicts")]
    NoPassedModel,
    #[error("cannot run fleet.on_new_model ({program})")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fleet.on_new_model for {version} {how}; nothing was deployed on this host; hint: its output is above (under systemd: `journalctl -u bluegreen-deploy.service`); if it is the rollout playbook, put back the hosts it already updated with rollback.yml")]
    Failed { version: String, how: String },
    #[error("cannot wait for fleet.on_new_model")]
    Wait {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// What a release did.
#[derive(Debug)]
pub enum Released {
    /// The command ran and succeeded (or there is none); the record is in the history.
    Done { version: String },
    /// This version's last release succeeded already; nothing ran.
    Already { version: String, at: String },
}

impl Released {
    /// The version that was (or had already been) released.
    pub fn version(&self) -> &str {
        match self {
            Released::Done { version } | Released::Already { version, .. } => version,
        }
    }
}

/// Releases the newest model that passed the gate (what a plain `deploy` deploys): runs
/// `fleet.on_new_model` with its version, unless its last release succeeded already, and
/// records the outcome. A model the gate refused is never released. Called on a trainer.
pub fn release(config: &Config) -> Result<Released, FleetError> {
    let layout = Layout::new(&config.state_dir);
    let _lock = lock::acquire(
        &layout.run_dir().join("release.lock"),
        "release",
        config.lock_timeout(),
        |holder| info!("waiting for another release (pid {holder}) to finish"),
    )?;
    let store = Store::new(&layout.models_dir());
    let state = State::read(config)?;
    let artifact = state.newest_passed().ok_or(FleetError::NoPassedModel)?;
    let version = artifact.version.clone();
    let history_path = layout.history();
    let last = history::last(&history_path, 1000)?
        .into_iter()
        .rev()
        .find(|r| r.action == Action::Release && r.to_version.as_deref() == Some(version.as_str()));
    if let Some(done) = last.filter(|r| r.outcome == Outcome::Released) {
        return Ok(Released::Already {
            version,
            at: done.time,
        });
    }
    let mut record = Record::begin(Action::Release, (None, None), (None, Some(version.clone())));
    record.gate = artifact.gate.clone();
    let result = if config.fleet.on_new_model.is_empty() {
        Ok(())
    } else {
        run_command(config, &store, artifact)
    };
    record.step("on_new_model");
    match &result {
        Ok(()) => record.finish(Outcome::Released, None),
        Err(e) => record.fail("on_new_model", e),
    }
    history::append(&history_path, &record)?;
    result.map(|()| Released::Done { version })
}

/// Runs the command in a process group of its own, so that a timeout stops all of it
/// (ansible-playbook forks a worker per host).
fn run_command(config: &Config, store: &Store, artifact: &Artifact) -> Result<(), FleetError> {
    let version = &artifact.version;
    let argv: Vec<String> = config
        .fleet
        .on_new_model
        .iter()
        .map(|a| a.replace("{version}", version))
        .collect();
    info!("releasing {version}: running {}", argv.join(" "));
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("BLUEGREEN_VERSION", version)
        .env("BLUEGREEN_ARTIFACT", store.path_of(version))
        .process_group(0)
        .spawn()
        .map_err(|source| FleetError::Spawn {
            program: argv[0].clone(),
            source,
        })?;
    let timeout = Duration::from_secs(config.fleet.on_new_model_timeout_secs);
    let started = Instant::now();
    let failed = |how: String| FleetError::Failed {
        version: version.clone(),
        how,
    };
    let wait_err = |source| FleetError::Wait { source };
    loop {
        if let Some(status) = child.try_wait().map_err(wait_err)? {
            return if status.success() {
                info!(
                    "released {version}: fleet.on_new_model succeeded in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            } else {
                Err(failed(describe(status)))
            };
        }
        if started.elapsed() > timeout {
            let group = Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let grace = Instant::now();
            while child.try_wait().map_err(wait_err)?.is_none() {
                if grace.elapsed() > Duration::from_secs(10) {
                    let _ = killpg(group, Signal::SIGKILL);
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return Err(failed(format!(
                "did not finish within {} s (fleet.on_new_model_timeout_secs) and was stopped",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended: {status}"),
    }
}
