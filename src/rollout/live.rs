//! Live accuracy (issue 11): how well the active model predicts the labelled rows that
//! `add-data` appends, measured before any retraining on them.
//!
//! The rows are the ones just appended, and nothing else: no pass over older data (training
//! reads appended rows only, too). Their RMSE against the active model is the **live RMSE**;
//! divided by the model's holdout RMSE (measured at training on rows it never learned from)
//! it is a drift signal: about 1 while the world looks like the training data, well above 1
//! when it no longer does. It is recorded in the history (action `add-data`, outcome
//! `measured`), and shown by `status`, `status --json` and every slot's `/metrics`.

use serde::{Deserialize, Serialize};

use crate::data::Rows;
use crate::model::{evaluate, Artifact, ModelError};

/// The live accuracy of one model on one batch of appended rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveAccuracy {
    /// The model measured: the active one when the rows arrived.
    pub model: String,
    /// How many rows it was measured on.
    pub rows: usize,
    /// Its RMSE on them, in label units.
    pub rmse: f64,
    /// Its RMSE on its holdout rows, from its training (label units).
    pub holdout_rmse: f64,
    /// `rmse / holdout_rmse`: the drift signal; `None` when the holdout RMSE is 0 or unknown.
    pub ratio: Option<f64>,
}

impl LiveAccuracy {
    /// One line for `status`.
    pub fn line(&self) -> String {
        let ratio = self
            .ratio
            .map(|r| format!("{r:.2}× its holdout RMSE {:.3}", self.holdout_rmse))
            .unwrap_or_else(|| "no holdout RMSE to compare with".to_string());
        format!(
            "live RMSE {:.3} of {} on the last {} row{} added: {ratio}",
            self.rmse,
            self.model,
            self.rows,
            if self.rows == 1 { "" } else { "s" }
        )
    }
}

/// `model`'s live accuracy on `rows` (features then label, as the data file holds them, in
/// `columns` order): the rows' features are picked by the model's own feature names, so a
/// model of another column order is measured right. `None` when the rows lack its columns.
pub fn measure(
    model: &Artifact,
    rows: &Rows,
    columns: &[&str],
) -> Result<Option<LiveAccuracy>, ModelError> {
    let index = |name: &String| columns.iter().position(|c| *c == name.as_str());
    let Some(features) = model.features.iter().map(index).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let Some(label) = index(&model.label) else {
        return Ok(None);
    };
    if rows.is_empty() {
        return Ok(None);
    }
    let mut x = Vec::with_capacity(rows.len() * features.len());
    let mut y = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        x.extend(features.iter().map(|i| row[*i]));
        y.push(row[label]);
    }
    let predicted = model.predict_rows(&x)?;
    let rmse = evaluate(&predicted, &y).0;
    let holdout = model.metrics.holdout_rmse;
    Ok(Some(LiveAccuracy {
        model: model.version.clone(),
        rows: y.len(),
        rmse,
        holdout_rmse: holdout,
        ratio: (holdout.is_finite() && holdout > 0.0 && rmse.is_finite()).then(|| rmse / holdout),
    }))
}
