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
use fs_err::File;
use std::path::Path;
use std::time::Instant;

use crate::data::{self, Dataset, Resume, Schema};
use crate::gate::{self, Holdout};
use crate::history::{self, Action, Outcome, Record};
use crate::layout::Layout;
use crate::ledger::{self, Checkpoint, FileState, Ledger};
use crate::lock;
use crate::model::stats::{self, Accumulator, Factor};
use crate::model::{self, Artifact, Kind, Params, Store};
use crate::progress::{Progress, Unit};
use crate::state::State;
use tracing::{info, warn};

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
            info!("training not due: this host's fleet role is \"server\"; it never trains (the trainer does)");
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!(
            "this host's fleet role is \"server\": it never trains; hint: add data and train on the fleet's trainer, which rolls its models out; or bring a model here with `bluegreen import FILE` and `bluegreen deploy VERSION`"
        );
    }
    Ok(match train(config, args.if_due)? {
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
pub fn train(config: &Config, if_due: bool) -> anyhow::Result<Trained> {
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
        |holder| info!("waiting for another training (pid {holder}) to finish"),
    )?;
    let mut record = Record::begin(Action::Train, (None, None), (None, None));
    let mut step = "read";
    let trained = train_locked(config, if_due, &mut record, &mut step);
    if let Err(e) = &trained {
        record.fail(step, e.as_ref());
        if let Err(e) = history::append(&layout.history(), &record) {
            warn!("the failure is not in the history: {}", history::chain(&e));
        }
    }
    trained
}

/// The training itself, under the train lock: fills in `record` as it learns the slots and
/// versions, and leaves in `step` the step it is in, for the record of a failure.
fn train_locked(
    config: &Config,
    if_due: bool,
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
        warn!(
            "skipping a model that cannot be read: {}; hint: remove the file, or restore it from a backup",
            history::chain(skipped)
        );
    }
    let newest = state.newest();
    // The data stays locked (shared: `add-data` waits) from the survey to the artifact, so
    // what the ledger says and what is read agree.
    let file = data::open_shared(&csv).context(UNREADABLE)?;
    let ledger_path = layout.data_ledger();
    let now = FileState::of(&file).context(UNREADABLE)?;
    let mut ledger = Ledger::read(&ledger_path).filter(|l| l.matches(&now));
    if let (true, Some(newest)) = (if_due, newest) {
        // Due when rows were appended, or the data changed otherwise (issue 8 §7). The
        // ledger tells without reading the file; without it, a scan hashes the file without
        // parsing it, about a `sha256sum` of the data.
        let survey = data::survey(&file, &csv, &schema, Some(newest.learned()), ledger.take())
            .context(UNREADABLE)?;
        if survey.passed {
            keep_ledger(&survey.ledger, &ledger_path);
        }
        ledger = Some(survey.ledger);
        let scan = survey.scan;
        if !scan.due(config.batch_size) {
            info!(
                "training not due: {} ({})",
                scan.since_text(Some(&newest.version)),
                scan.verdict(config.batch_size)
            );
            if let Some(pending) = state.pending() {
                info!(
                    "{} passed the quality gate but is not active (its deploy did not finish): asking for a deploy",
                    pending.version
                );
                return Ok(Trained::Pending);
            }
            info!("no deploy is wanted");
            return Ok(Trained::NotDue);
        }
    }
    let kind = config.model.kind;
    fs_err::create_dir_all(layout.models_dir())?;
    // The record names the version only once it is written (below): a training that fails
    // never wrote it, and the next one takes the same number for another model.
    let version = store.next_version(time::OffsetDateTime::now_utc())?;
    let active = state.active_model()?;
    let hinted = |e: model::ModelError| match e.hint(&schema.features, &config.model.params) {
        Some(hint) => anyhow::Error::new(super::Hinted::new(e, hint)),
        None => anyhow::Error::new(e),
    };
    let (mut artifact, holdout) = if stats::fits_from_statistics(kind) {
        let fit = Linear {
            csv: &csv,
            file: &file,
            schema: &schema,
            kind,
            params: &config.model.params,
            newest,
            active: active.as_ref(),
            ledger: ledger.as_ref(),
            ledger_path: &ledger_path,
            now,
            hinted: &hinted,
        };
        // Reading and fitting are one pass here.
        *step = "train";
        fit.train(version)?
    } else {
        info!("reading {}…", csv.display());
        let dataset =
            data::read_dataset_shown(&csv, &schema, &shown(&csv, now.size, Unit::RowsAfterHeader))
                .context(UNREADABLE)?;
        record.step("read");
        *step = "train";
        info!(
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
        );
        let artifact = model::train(
            &dataset,
            kind,
            &config.model.params,
            version,
            model::now_rfc3339(),
        )
        .map_err(hinted)?;
        (artifact, GateRows::Data(dataset))
    };
    record.step("train");
    *step = "gate";
    let holdout = match &holdout {
        GateRows::Data(dataset) => Some(Holdout::Rows(dataset)),
        GateRows::Factor(factor) => Some(Holdout::Factor(factor)),
        GateRows::None => None,
    };
    let report = match holdout {
        Some(holdout) => gate::check(
            &artifact,
            active.as_ref(),
            holdout,
            config.gate.tolerance,
            false,
        ),
        None => {
            // Only when the active model is not a linear model of this schema, or its rows
            // are no longer vouched for: the gate then reads the rows.
            let progress = shown(&csv, now.size, Unit::RowsAfterHeader);
            let dataset = data::read_dataset_shown(&csv, &schema, &progress).context(UNREADABLE)?;
            drop(progress);
            gate::check(
                &artifact,
                active.as_ref(),
                Holdout::Rows(&dataset),
                config.gate.tolerance,
                false,
            )
        }
    };
    drop(file);
    artifact.gate = Some(report.clone());
    *step = "write";
    store.write(&artifact)?;
    record.to_version = Some(artifact.version.clone());
    let m = &artifact.metrics;
    info!(
        version = artifact.version,
        duration_ms = (m.train_seconds * 1e3).round() as u64,
        "trained {} in {:.0} ms: holdout RMSE {}, holdout R² {}, train R² {} ({} rows)",
        artifact.version,
        m.train_seconds * 1e3,
        match m.holdout_rmse.is_finite() {
            true => format!("{:.3}", m.holdout_rmse),
            false => "n/a (no holdout rows: every fifth row is held out)".to_string(),
        },
        model::r2_text(m.holdout_r2),
        model::r2_text(m.train_r2),
        artifact.rows
    );
    if report.passed {
        info!("quality gate: passed: {}", report.reason);
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
    info!(
        "quality gate: REFUSED: {}; the model is kept in {} but will not be deployed{hint}",
        report.reason,
        store.path_of(&artifact.version).display(),
    );
    // The automatic path must not stall silently (issue 8 §7): the refusal is in the
    // history, which `status` shows and the slots count in their metrics.
    record.step("gate");
    record.gate = Some(report.clone());
    record.finish(Outcome::Refused, Some(report.reason));
    if let Err(e) = history::append(&layout.history(), record) {
        warn!("the refusal is not in the history: {}", history::chain(&e));
    }
    Ok(Trained::Refused(artifact))
}

/// A bar for reading `bytes` of the data file at `csv` on a terminal (issue 12): a large
/// file takes seconds to read (10^7 rows, about a gigabyte).
fn shown(csv: &Path, bytes: u64, unit: Unit) -> Progress {
    let name = csv.file_name().unwrap_or(csv.as_os_str());
    Progress::reading(name.to_string_lossy().into_owned(), Some(bytes), unit)
}

/// Writes the ledger a full pass over the data made (the file is locked by the caller).
/// Failing to is only a warning: the next reader makes a pass of its own.
fn keep_ledger(ledger: &Ledger, path: &Path) {
    if let Err(e) = ledger.write(path) {
        warn!(
            "cannot write {}: {e}; the next training or status reads the whole data once more",
            path.display()
        );
    }
}

/// The rows the gate compares on, as training got them.
enum GateRows {
    /// The data, read whole (the other kinds).
    Data(Dataset),
    /// The factor of the active model's holdout rows (`linear`, `ridge`).
    Factor(Factor),
    /// Neither: the active model is not a linear model of this schema, or its rows are not
    /// vouched for; the gate reads the data.
    None,
}

/// A `linear` or `ridge` training (issue #10, part 2): from the newest model's statistics
/// and the rows appended since, when the ledger vouches that its data is still the file's
/// beginning; else in one pass over the file, which holds a row at a time. Either way the
/// memory is of the order of features², never of the rows.
struct Linear<'a> {
    csv: &'a Path,
    file: &'a File,
    schema: &'a Schema,
    kind: Kind,
    params: &'a Params,
    newest: Option<&'a Artifact>,
    active: Option<&'a Artifact>,
    /// The ledger, when it vouches for the file as it is now.
    ledger: Option<&'a Ledger>,
    ledger_path: &'a Path,
    /// The file's state when it was locked.
    now: FileState,
    /// A model error with the hint worked out from its cause.
    hinted: &'a dyn Fn(model::ModelError) -> anyhow::Error,
}

impl Linear<'_> {
    fn train(&self, version: String) -> anyhow::Result<(Artifact, GateRows)> {
        let started = Instant::now();
        // The gate compares on the holdout rows among those the active model learned from:
        // the holdout factor as it was before the first row the active model did not see.
        let gate_at = self
            .active
            .filter(|a| a.fitted.linear().is_some() && a.schema() == *self.schema)
            .map(|a| a.rows);
        let base = self
            .newest
            .filter(|n| n.schema() == *self.schema)
            .and_then(|n| {
                let stats = n.stats.as_ref()?;
                let checkpoint = self.ledger?.find(&n.learned())?.clone();
                let sha = ledger::resume(&stats.sha256_state)?;
                Some((n, stats, checkpoint, sha))
            });
        if let (Some((newest, stats, checkpoint, sha)), Some(ledger)) = (base, self.ledger) {
            let end = ledger.end();
            info!(
                "training a {} model on the {} rows appended since {} ({} rows in all), from its statistics…",
                self.kind,
                end.rows - checkpoint.rows,
                newest.version,
                end.rows
            );
            let mut rows = Accumulator::resume(stats, newest.rows, newest.example.clone(), gate_at);
            let from = Resume {
                bytes: checkpoint.bytes,
                rows: checkpoint.rows,
                lines: checkpoint.lines,
                sha,
            };
            let progress = shown(self.csv, self.now.size - checkpoint.bytes, Unit::Rows);
            let streamed = data::stream(
                self.file,
                self.csv,
                self.schema,
                Some(from),
                &progress,
                |i, row| rows.push(i, row),
            )
            .context(UNREADABLE)?;
            drop(progress);
            // The appended bytes must hash to what `add-data` recorded: this catches even an
            // edit inside them that kept the file's times (see `crate::ledger`).
            if ledger::digest_hex(&streamed.sha) == end.sha256 && streamed.rows == end.rows {
                let (train, holdout, example, snapshot) = rows.finish();
                let gate = match snapshot {
                    Some(factor) => GateRows::Factor(factor),
                    None => self.active_holdout(ledger, &holdout),
                };
                let artifact =
                    self.artifact(train, holdout, example, &streamed, started, version)?;
                return Ok((artifact, gate));
            }
            warn!("the appended rows are not the bytes `add-data` wrote (edited in place?): reading the whole file instead");
        }
        info!(
            "training a {} model in one pass over {}…",
            self.kind,
            self.csv.display()
        );
        let mut rows = Accumulator::new(self.schema.features.len(), gate_at);
        let progress = shown(self.csv, self.now.size, Unit::RowsAfterHeader);
        let streamed = data::stream(
            self.file,
            self.csv,
            self.schema,
            None,
            &progress,
            |i, row| rows.push(i, row),
        )
        .context(UNREADABLE)?;
        drop(progress);
        let (train, holdout, example, snapshot) = rows.finish();
        if self.ledger.is_none() && FileState::of(self.file).ok() == Some(self.now) {
            // What this pass read is the file as it is: the next append goes on from it.
            let end = Checkpoint {
                bytes: streamed.bytes,
                rows: streamed.rows,
                lines: streamed.lines,
                sha256: ledger::digest_hex(&streamed.sha),
            };
            keep_ledger(
                &Ledger::start(self.now, &streamed.sha, Vec::new(), end),
                self.ledger_path,
            );
        }
        let gate = match (snapshot, self.active) {
            (Some(factor), _) => GateRows::Factor(factor),
            // No model to compare with: the gate needs no rows.
            (None, None) => GateRows::Factor(holdout.clone()),
            (None, Some(_)) => GateRows::None,
        };
        let artifact = self.artifact(train, holdout, example, &streamed, started, version)?;
        Ok((artifact, gate))
    }

    /// The active model's own holdout factor, when it has one and the ledger vouches that
    /// its data is still the file's beginning; else the gate reads the rows.
    fn active_holdout(&self, ledger: &Ledger, holdout: &Factor) -> GateRows {
        let Some(active) = self.active else {
            return GateRows::Factor(holdout.clone());
        };
        match &active.stats {
            Some(stats)
                if active.schema() == *self.schema && ledger.find(&active.learned()).is_some() =>
            {
                GateRows::Factor(stats.holdout.clone())
            }
            _ => GateRows::None,
        }
    }

    fn artifact(
        &self,
        train: Factor,
        holdout: Factor,
        example: Option<Vec<f64>>,
        streamed: &data::Streamed,
        started: Instant,
        version: String,
    ) -> anyhow::Result<Artifact> {
        let learned = model::LearnedFrom {
            rows: streamed.rows,
            bytes: streamed.bytes,
            sha256: ledger::digest_hex(&streamed.sha),
            sha256_state: ledger::state_hex(&streamed.sha),
            example: example.unwrap_or_default(),
        };
        let fit = model::FromStatistics {
            train,
            holdout,
            learned,
            started,
        };
        model::train_from_statistics(
            self.schema,
            self.kind,
            self.params,
            fit,
            version,
            model::now_rfc3339(),
        )
        .map_err(self.hinted)
    }
}
