//! `bluegreen predict`: predictions computed here from a model artifact, with no server. The
//! original's `test.py` compared a local model's prediction with the server's; this is that
//! local prediction, for any model (issue #9).
//!
//! Rows are read as `add-data` reads them, with the model's features as the columns: a header
//! is matched by name (any order and case), and the label and `[data] ignore` columns are
//! dropped, so a file of training rows can be predicted as it is. One prediction is printed a
//! line, in the rows' order; which model made them goes to stderr.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::PredictArgs;
use crate::config::Config;
use crate::data::{self, Rows};
use crate::model::Artifact;
use crate::state::State;
use tracing::warn;

pub fn execute(config: &Config, args: &PredictArgs) -> anyhow::Result<ExitCode> {
    let model = resolve(config, args.model.as_deref())?;
    let features: Vec<&str> = model.features.iter().map(String::as_str).collect();
    let mut droppable: Vec<&str> = config.data.ignore.iter().map(String::as_str).collect();
    droppable.push(&model.label);
    let mut rows = Rows::new(features.len());
    if let Some(path) = &args.file {
        let read = if path.as_os_str() == "-" {
            data::read_rows(std::io::stdin().lock(), "stdin", &features, &droppable)
        } else {
            let file = fs_err::File::open(path).context("cannot read rows")?;
            data::read_rows(file, &path.display().to_string(), &features, &droppable)
        };
        rows.extend(&read.with_context(|| {
            format!(
                "the rows must hold {}'s features: {}",
                model.version,
                features.join(",")
            )
        })?);
    }
    for (i, row) in args.row.iter().enumerate() {
        let origin = format!("--row #{}", i + 1);
        // A data row of the features in order, never a header (as `add-data --row`).
        let read = data::read_data_rows(row.as_bytes(), &origin, &features);
        rows.extend(&read.with_context(|| {
            format!(
                "a row holds {}'s features: {}",
                model.version,
                features.join(",")
            )
        })?);
    }
    if rows.is_empty() {
        anyhow::bail!("no rows to predict: the input held no rows");
    }
    let predictions = model.predict_rows(&rows.values)?;
    warn!(
        "{} prediction{} by {} ({}, label {})",
        predictions.len(),
        if predictions.len() == 1 { "" } else { "s" },
        model.version,
        model.kind,
        model.label
    );
    let mut out = String::with_capacity(predictions.len() * 20);
    for p in predictions {
        out.push_str(&p.to_string());
        out.push('\n');
    }
    super::out(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The artifact `name` names: a path (it has a `/` or ends in `.json`), else a version or a
/// unique prefix of one. Without a name: the model the active slot serves, else the newest.
fn resolve(config: &Config, name: Option<&str>) -> anyhow::Result<Artifact> {
    if let Some(path) = name.filter(|n| n.contains('/') || n.ends_with(".json")) {
        return Ok(Artifact::load(Path::new(path))?);
    }
    let state = State::read(config).context("cannot read the state folder")?;
    let version = match name {
        Some(asked) => state.resolve(asked)?.to_string(),
        None => match state
            .active_version()
            .or(state.newest().map(|m| m.version.as_str()))
        {
            Some(version) => version.to_string(),
            None => anyhow::bail!("there are no models yet; hint: run `bluegreen init`"),
        },
    };
    Ok(state.load(&version)?)
}
