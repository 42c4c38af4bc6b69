//! `bluegreen train [--if-due]`: fit a model on the data and store it as an artifact, with
//! the quality gate's verdict against the active model.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::TrainArgs;
use crate::config::Config;
use crate::data;
use crate::gate;
use crate::layout::Layout;
use crate::lock;
use crate::model::{self, Artifact, Store};
use crate::nginx;

/// Exit status of `train --if-due` when it trained (0 means "not due" there).
pub const EXIT_TRAINED_IF_DUE: u8 = 10;
/// Exit status when the quality gate refused the new model.
pub const EXIT_REFUSED: u8 = 3;

/// What a training run did.
pub enum Trained {
    NotDue,
    Passed(Artifact),
    Refused(Artifact),
}

pub fn execute(config: &Config, args: &TrainArgs) -> anyhow::Result<ExitCode> {
    Ok(match train(config, args.if_due, &super::say)? {
        Trained::NotDue => ExitCode::SUCCESS,
        Trained::Passed(_) if args.if_due => ExitCode::from(EXIT_TRAINED_IF_DUE),
        Trained::Passed(_) => ExitCode::SUCCESS,
        Trained::Refused(_) => ExitCode::from(EXIT_REFUSED),
    })
}

/// Trains (when due, with `if_due`), gates against the active model and writes the artifact.
pub fn train(config: &Config, if_due: bool, say: &dyn Fn(&str)) -> anyhow::Result<Trained> {
    let layout = Layout::new(&config.state_dir);
    let store = Store::new(&layout.models_dir());
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
    let csv = layout.data_csv();
    say(&format!("reading {}…", csv.display()));
    let dataset = data::read_dataset(&csv).with_context(|| {
        format!(
            "cannot read the training data; hint: fix the line named above in {}",
            csv.display()
        )
    })?;
    let newest = store.newest().context("cannot read the newest model")?;
    let since = dataset
        .rows
        .len()
        .saturating_sub(newest.as_ref().map_or(0, |m| m.rows));
    if let Some(newest) = &newest {
        if if_due && since < config.batch_size {
            let needed = config.batch_size - since;
            say(&format!(
                "training not due: {since} new row(s) since {}, batch size {}; {needed} more needed",
                newest.version, config.batch_size
            ));
            return Ok(Trained::NotDue);
        }
    }
    say(&format!(
        "training on {} rows ({})…",
        dataset.rows.len(),
        match &newest {
            Some(m) => format!("{since} new since {}", m.version),
            None => "first model".to_string(),
        }
    ));
    let version = store.next_version(time::OffsetDateTime::now_utc())?;
    let mut artifact = model::train(
        &dataset.rows,
        &dataset.sha256,
        version,
        model::now_rfc3339(),
    )
    .context("hint: the data needs at least 15 rows whose features are not collinear")?;
    let active = active_model(config, &layout, &store)?;
    let report = gate::check(
        &artifact,
        active.as_ref(),
        &dataset.rows,
        config.gate.tolerance,
    );
    artifact.gate = Some(report.clone());
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
        Ok(Trained::Passed(artifact))
    } else {
        say(&format!(
            "quality gate: REFUSED: {}; the model is kept in {} but will not be deployed; hint: check the rows added since {}",
            report.reason,
            store.path_of(&artifact.version).display(),
            active.map_or("the last model".to_string(), |a| a.version)
        ));
        Ok(Trained::Refused(artifact))
    }
}

/// The model the active slot serves, if there is one.
fn active_model(
    config: &Config,
    layout: &Layout,
    store: &Store,
) -> anyhow::Result<Option<Artifact>> {
    let Some(slot) = nginx::read_active(config, &layout.upstream_include())? else {
        return Ok(None);
    };
    match layout.slot_version(slot)? {
        Some(version) => Ok(Some(store.load(&version)?)),
        None => Ok(None),
    }
}
