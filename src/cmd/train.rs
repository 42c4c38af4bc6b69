//! `bluegreen train [--if-due]`: fit a model on the data and store it as an artifact, with
//! the quality gate's verdict against the active model.
//!
//! On the automatic path (`train --if-due`, run by the trainer of systemd and of `up`) the
//! exit status is the whole message to the trigger (issue 8 §7, PLAN.md "Trigger path"):
//! 10 asks for a deploy, 3 says the gate refused the model (recorded in the history, and a
//! failure for systemd, so `systemctl status bluegreen-train.service` shows it), 0 says
//! there is nothing to do.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::TrainArgs;
use crate::config::{Config, Role};
use crate::data::{self, Schema};
use crate::gate;
use crate::history::{self, Action, Outcome, Record};
use crate::layout::Layout;
use crate::lock;
use crate::model::{self, Artifact, Store};
use crate::state::State;

/// Exit status of `train --if-due` when a deploy is wanted: it trained a model that passed
/// the gate, or the newest model that passed the gate is not active (an interrupted or
/// failed deploy). 0 means "nothing to do" there.
pub const EXIT_TRAINED_IF_DUE: u8 = 10;
/// Exit status when the quality gate refused the new model.
pub const EXIT_REFUSED: u8 = 3;

/// The context of a data error: the error itself names the file, line and column, and says
/// what to do where there is more to say than "fix it".
const UNREADABLE: &str = "cannot read the training data";

/// What a training run did.
pub enum Trained {
    NotDue,
    /// Not due, but this model passed the gate and waits for a deploy.
    Pending,
    Passed(Artifact),
    Refused(Artifact),
}

pub fn execute(config: &Config, args: &TrainArgs) -> anyhow::Result<ExitCode> {
    // A fleet server's data triggers (the systemd path units, `up`'s watcher) run
    // `train --if-due`, so this is where they stop: nothing is ever due here (issue 13).
    if config.fleet.role == Role::Server {
        if args.if_due {
            super::say("training not due: this host's fleet role is \"server\"; it never trains (the trainer does)");
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!(
            "this host's fleet role is \"server\": it never trains; hint: add data and train on the fleet's trainer, which rolls its models out; or bring a model here with `bluegreen import FILE` and `bluegreen deploy VERSION`"
        );
    }
    Ok(match train(config, args.if_due, &super::say)? {
        Trained::NotDue => ExitCode::SUCCESS,
        Trained::Passed(_) | Trained::Pending if args.if_due => ExitCode::from(EXIT_TRAINED_IF_DUE),
        Trained::Passed(_) | Trained::Pending => ExitCode::SUCCESS,
        Trained::Refused(_) => ExitCode::from(EXIT_REFUSED),
    })
}

/// Trains (when due, with `if_due`), gates against the active model and writes the artifact.
///
/// A training that fails once it holds the train lock is recorded in the history (action
/// `train`, outcome `failed`, the whole cause), where `status` shows it and the slots count
/// it in `bluegreen_training_failures_total`: on the automatic path nobody reads the
/// trainer's output, and without the record a failure left `status` saying only "training
/// is due" (issue 8 §7).
pub fn train(config: &Config, if_due: bool, say: &dyn Fn(&str)) -> anyhow::Result<Trained> {
    let layout = Layout::new(&config.state_dir);
    let csv = layout.data_csv(&config.data);
    if !csv.exists() {
        anyhow::bail!(
            "there is no training data at {}; hint: run `bluegreen init` (or `bluegreen up`) first",
            csv.display()
        );
    }
    // Two trainers must not pick the same version number; the lock also keeps a burst of
    // triggers from training the same rows twice, since the second sees the first's model.
    let _lock = lock::acquire(
        &layout.train_lock(),
        "training",
        config.lock_timeout(),
        |holder| {
            say(&format!(
                "waiting for another training (pid {holder}) to finish"
            ))
        },
    )?;
    let mut record = Record::begin(Action::Train, (None, None), (None, None));
    let mut step = "read";
    let trained = train_locked(config, if_due, say, &mut record, &mut step);
    if let Err(e) = &trained {
        record.fail(step, e.as_ref());
        if let Err(e) = history::append(&layout.history(), &record) {
            super::warn(&format!(
                "warning: the failure is not in the history: {}",
                history::chain(&e)
            ));
        }
    }
    trained
}

/// The training itself, under the train lock: fills in `record` as it learns the slots and
/// versions, and leaves in `step` the step it is in, for the record of a failure.
fn train_locked(
    config: &Config,
    if_due: bool,
    say: &dyn Fn(&str),
    record: &mut Record,
    step: &mut &'static str,
) -> anyhow::Result<Trained> {
    let layout = Layout::new(&config.state_dir);
    let csv = layout.data_csv(&config.data);
    let schema = Schema::of(&config.data);
    let store = Store::new(&layout.models_dir());
    let state = State::read(config).context("cannot read the state folder")?;
    record.from_slot = state.active();
    record.from_version = state.active_version().map(str::to_string);
    for skipped in state.skipped() {
        say(&format!(
            "skipping a model that cannot be read: {}; hint: remove the file, or restore it from a backup",
            history::chain(skipped)
        ));
    }
    let newest = state.newest();
    if let (true, Some(newest)) = (if_due, newest) {
        // Due when rows were appended, or the data changed otherwise (issue 8 §7). A scan
        // hashes the file without parsing it: a trigger that finds nothing to do costs
        // about a `sha256sum` of the data.
        let scan = data::scan(&csv, &schema, Some(newest.learned())).context(UNREADABLE)?;
        if !scan.due(config.batch_size) {
            say(&format!(
                "training not due: {} ({})",
                scan.since_text(Some(&newest.version)),
                scan.verdict(config.batch_size)
            ));
            if let Some(pending) = state.pending() {
                say(&format!(
                    "{} passed the quality gate but is not active (its deploy did not finish): asking for a deploy",
                    pending.version
                ));
                return Ok(Trained::Pending);
            }
            say("no deploy is wanted");
            return Ok(Trained::NotDue);
        }
    }
    say(&format!("reading {}…", csv.display()));
    let dataset = data::read_dataset(&csv, &schema).context(UNREADABLE)?;
    record.step("read");
    *step = "train";
    let kind = config.model.kind;
    say(&format!(
        "training a {kind} model on {} rows ({})…",
        dataset.rows.len(),
        match newest {
            Some(m) => format!(
                "{} since {}",
                dataset.rows.len().saturating_sub(m.rows),
                m.version
            ),
            None => "first model".to_string(),
        }
    ));
    std::fs::create_dir_all(layout.models_dir())
        .with_context(|| format!("cannot create {}", layout.models_dir().display()))?;
    let version = store.next_version(time::OffsetDateTime::now_utc())?;
    record.to_version = Some(version.clone());
    let mut artifact = model::train(
        &dataset,
        kind,
        &config.model.params,
        version,
        model::now_rfc3339(),
    )
    .map_err(|e| match e.hint(&schema.features, &config.model.params) {
        Some(hint) => anyhow::Error::new(super::Hinted::new(e, hint)),
        None => anyhow::Error::new(e),
    })?;
    record.step("train");
    *step = "gate";
    let active = state.active_model()?;
    let report = gate::check(
        &artifact,
        active.as_ref(),
        &dataset,
        config.gate.tolerance,
        false,
    );
    artifact.gate = Some(report.clone());
    *step = "write";
    store.write(&artifact)?;
    let m = &artifact.metrics;
    say(&format!(
        "trained {} in {:.0} ms: holdout RMSE {:.3}, holdout R² {:.3}, train R² {:.3} ({} rows)",
        artifact.version,
        m.train_seconds * 1e3,
        m.holdout_rmse,
        m.holdout_r2,
        m.train_r2,
        artifact.rows
    ));
    if report.passed {
        say(&format!("quality gate: passed: {}", report.reason));
        return Ok(Trained::Passed(artifact));
    }
    // A schema refusal carries its own hint (deploy it on purpose).
    let hint = match report.schema_change {
        Some(_) => String::new(),
        None => format!(
            "; hint: check the rows added since {}",
            active.map_or("the last model".to_string(), |a| a.version)
        ),
    };
    say(&format!(
        "quality gate: REFUSED: {}; the model is kept in {} but will not be deployed{hint}",
        report.reason,
        store.path_of(&artifact.version).display(),
    ));
    // The automatic path must not stall silently (issue 8 §7): the refusal is in the
    // history, which `status` shows and the slots count in their metrics.
    record.step("gate");
    record.gate = Some(report.clone());
    record.finish(Outcome::Refused, Some(report.reason));
    if let Err(e) = history::append(&layout.history(), record) {
        super::warn(&format!(
            "warning: the refusal is not in the history: {}",
            history::chain(&e)
        ));
    }
    Ok(Trained::Refused(artifact))
}
