//! Models: training one of any kind on the data, the artifact file, and the model store.
//!
//! - [`kinds`]: the kinds and their parameters, fitting with smartcore, predicting;
//! - [`artifact`]: the immutable file a training writes and a slot serves (format 2; format 1
//!   still loads);
//! - [`store`]: the artifacts in `models/`, their versions, and pruning;
//! - here: [`train`], which measures a fit on held-out rows and then fits on all rows.
//!
//! Version ids are `v<seq>-<UTC time>`: the sequence number makes them sort in training order
//! and never collide, even for two trainings in the same second; the time is for people.

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;

pub mod artifact;
pub mod kinds;
pub mod store;

pub use artifact::{Artifact, FORMAT};
pub use kinds::{Fitted, Kind, Params};
pub use store::Store;

/// Every `HOLDOUT_EVERY`-th row (the 5th, 10th, …) is held out to measure the fit.
pub const HOLDOUT_EVERY: usize = 5;

/// What went wrong with a model: reading, writing or finding its file, or fitting or
/// predicting with it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read model {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not an artifact this build can read, or is inconsistent.
    #[error("model {path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    /// The file could not be written (or removed, when pruning).
    #[error("cannot write model {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// smartcore could not fit the model (too few rows, collinear features…).
    #[error("training a {kind} model on {rows} rows failed")]
    Fit {
        kind: Kind,
        rows: usize,
        #[source]
        source: smartcore::error::Failed,
    },
    /// smartcore could not predict with the model.
    #[error("a {kind} model cannot predict")]
    Predict {
        kind: Kind,
        #[source]
        source: smartcore::error::Failed,
    },
}

impl ModelError {
    /// What to do about a training that failed, worked out from its cause: smartcore's
    /// message, the rows the fit had, and the parameters (`params` as configured; defaults
    /// are filled in here). `None` for errors that are not a failed fit or prediction.
    ///
    /// A fixed hint said "the data needs more rows than features (at least 15 rows for 13
    /// features)" for every failure of every schema, a lasso that did not converge included.
    pub fn hint(&self, features: &[String], params: &Params) -> Option<String> {
        let (kind, rows, failed) = match self {
            ModelError::Fit { kind, rows, source } => (*kind, Some(*rows), source),
            ModelError::Predict { kind, source } => (*kind, None, source),
            _ => return None,
        };
        let p = params.resolved(kind, features.len());
        let n = features.len();
        let message = failed.to_string();
        // The fewest rows each kind fits on: the linear kinds solve for an intercept and a
        // coefficient per feature; lasso and elastic net check n ≥ p themselves, ridge n > p.
        let fewest = match kind {
            Kind::Linear | Kind::Ridge => n + 1,
            Kind::Lasso | Kind::ElasticNet => n,
            Kind::Knn => p.k.unwrap_or(1),
            Kind::DecisionTree | Kind::RandomForest => 1,
        };
        let hint = if let Some(rows) = rows.filter(|&rows| rows < fewest) {
            format!(
                "a {kind} model of {n} features needs at least {fewest} rows to fit on, and it had {rows} (every fifth row of the data is held out to measure it); add rows with `bluegreen add-data`"
            )
        } else if kind == Kind::Knn && message.contains("k is > than the dataset size") {
            format!(
                "model.k = {} is more neighbours than the rows the model was fit on; lower k, or add rows with `bluegreen add-data`",
                p.k.unwrap_or_default()
            )
        } else if let Some(column) = message
            .split("Cannot rescale constant column ")
            .nth(1)
            .and_then(|rest| rest.trim().parse::<usize>().ok())
        {
            format!(
                "the feature {} has the same value in every row the model was fit on, and a {kind} model scales each feature by its spread; add rows in which it varies, or leave it out of [data] features",
                features.get(column).map_or("?", String::as_str)
            )
        } else if message.contains("Exceeded maximum number of iteration") {
            format!(
                "the {kind} optimizer did not converge: within model.max_iter = {} iterations its error did not fall below model.tol = {:e}; raise max_iter or tol (their defaults are 1000 and 1e-4), or look for a column whose values span many orders of magnitude",
                p.max_iter.unwrap_or_default(),
                p.tol.unwrap_or_default()
            )
        } else if message.contains("not positive definite") || message.contains("rank deficient") {
            format!(
                "the features are collinear: one is constant, or a combination of others, so a {kind} model has no unique fit; leave one out of [data] features{}",
                if kind == Kind::Ridge { ", or raise model.alpha" } else { ", or use kind = \"ridge\"" }
            )
        } else {
            "check the [model] parameters, and the data for a column that is constant or repeats another".to_string()
        };
        Some(hint)
    }
}

/// Figures that describe how well a model fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// R² of the final model on the holdout rows, which it was fit on: an even sample of
    /// its training rows.
    pub train_r2: f64,
    /// RMSE and R² on the held-out rows, of a model fit on the other rows.
    pub holdout_rmse: f64,
    /// See `holdout_rmse`.
    pub holdout_r2: f64,
    /// How many rows were held out: every fifth.
    pub holdout_rows: usize,
    /// Wall time of the whole training: both fits and their evaluation.
    pub train_seconds: f64,
}

/// Whether the row at `index` (0-based) belongs to the holdout.
pub fn is_holdout(index: usize) -> bool {
    index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
}

/// Root mean squared error and R² of `predicted` against `actual`; NaN for no rows.
pub fn evaluate(predicted: &[f64], actual: &[f64]) -> (f64, f64) {
    if actual.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = actual.len() as f64;
    let mean = actual.iter().sum::<f64>() / n;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for (p, y) in predicted.iter().zip(actual) {
        ss_res += (p - y) * (p - y);
        ss_tot += (y - mean) * (y - mean);
    }
    ((ss_res / n).sqrt(), 1.0 - ss_res / ss_tot)
}

/// A model of `kind` fit on the `keep` rows of `data`.
fn fit_on(
    data: &Dataset,
    kind: Kind,
    params: &Params,
    keep: impl Fn(usize) -> bool,
) -> Result<Fitted, ModelError> {
    let (x, y) = data.select(keep, &all_features(data));
    let rows = y.len();
    let fail = |source| ModelError::Fit { kind, rows, source };
    let x = kinds::Matrix::new(rows, data.schema.features.len(), x, false).map_err(fail)?;
    kinds::fit(kind, params, &x, &y).map_err(fail)
}

fn all_features(data: &Dataset) -> Vec<usize> {
    (0..data.schema.features.len()).collect()
}

/// RMSE and R² of `fitted` on the holdout rows of `data`.
fn on_holdout(data: &Dataset, kind: Kind, fitted: &Fitted) -> Result<(f64, f64), ModelError> {
    let (x, y) = data.select(is_holdout, &all_features(data));
    let fail = |source| ModelError::Predict { kind, source };
    let x = kinds::Matrix::new(y.len(), data.schema.features.len(), x, false).map_err(fail)?;
    Ok(evaluate(&fitted.predict(&x).map_err(fail)?, &y))
}

/// Trains a `kind` model on `data`: fits on all but every fifth row to measure the holdout
/// error, then refits on all rows for the artifact. `version` and `trained_at` come from the
/// store. Deterministic: the same data and parameters give the same model.
///
/// The final model's fit ("train R²") is measured on the same every-fifth rows, which it
/// was fit on: an even sample of its training rows. Predicting all of them instead cost a
/// knn model five times as long as its holdout (bench/run, training per kind).
pub fn train(
    data: &Dataset,
    kind: Kind,
    params: &Params,
    version: String,
    trained_at: String,
) -> Result<Artifact, ModelError> {
    let started = Instant::now();
    let params = params.resolved(kind, data.schema.features.len());
    // One at a time, so the partial fit and its matrices are gone before the full one.
    let (holdout_rmse, holdout_r2) = {
        let partial = fit_on(data, kind, &params, |i| !is_holdout(i))?;
        on_holdout(data, kind, &partial)?
    };
    let fitted = fit_on(data, kind, &params, |_| true)?;
    let (_, train_r2) = on_holdout(data, kind, &fitted)?;
    let example = data.rows.row(0)[..data.schema.features.len()].to_vec();
    Ok(Artifact {
        format: FORMAT,
        version,
        trained_at,
        rows: data.rows.len(),
        data_bytes: Some(data.bytes),
        data_sha256: data.sha256.clone(),
        features: data.schema.features.clone(),
        label: data.schema.label.clone(),
        kind,
        params,
        solver: kind.solver().to_string(),
        example,
        fitted: std::sync::Arc::new(fitted),
        metrics: Metrics {
            train_r2,
            holdout_rmse,
            holdout_r2,
            holdout_rows: (0..data.rows.len()).filter(|&i| is_holdout(i)).count(),
            train_seconds: started.elapsed().as_secs_f64(),
        },
        gate: None,
    })
}

/// The sequence number of a version id such as `v0007-20261126T210305Z`.
pub fn parse_seq(version: &str) -> Option<u64> {
    let rest = version.strip_prefix('v')?;
    let (digits, _) = rest.split_once('-')?;
    digits.parse().ok()
}

/// The current UTC time as RFC 3339 with milliseconds, for records.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .expect("a UTC time formats")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::{self, Schema};

    /// The 506 Boston rows as a dataset.
    pub(crate) fn boston() -> Dataset {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boston.csv");
        std::fs::write(&path, data::boston_csv()).unwrap();
        data::read_dataset(&path, &Schema::boston()).unwrap()
    }

    /// Trains `kind` with its default parameters.
    pub(crate) fn trained(data: &Dataset, kind: Kind, version: &str) -> Artifact {
        train(
            data,
            kind,
            &Params::default(),
            version.to_string(),
            now_rfc3339(),
        )
        .unwrap()
    }

    pub(crate) const EXAMPLE: [f64; 13] = [
        0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
    ];

    #[test]
    fn boston_linear_predicts_the_original_example_as_smartcore_does() {
        use smartcore::linear::linear_regression::*;
        let data = boston();
        let artifact = trained(&data, Kind::Linear, "v0001-x");
        let price = artifact.predict_one(&EXAMPLE).unwrap();
        assert!((price - 30.00).abs() < 0.01, "predicted {price}");
        assert_eq!(artifact.example, EXAMPLE);
        let m = &artifact.metrics;
        assert!(m.train_r2 > 0.7 && m.train_r2 < 0.8, "{m:?}");
        assert!((m.holdout_rmse - 4.85).abs() < 0.01, "{m:?}");
        assert_eq!(m.holdout_rows, 101);

        let (x, y) = data.select(|_| true, &(0..13).collect::<Vec<_>>());
        let x = kinds::Matrix::new(506, 13, x, false).unwrap();
        let params =
            LinearRegressionParameters::default().with_solver(LinearRegressionSolverName::QR);
        let sc = LinearRegression::fit(&x, &y, params).unwrap();
        let one = kinds::Matrix::new(1, 13, EXAMPLE.to_vec(), false).unwrap();
        let theirs: Vec<f64> = sc.predict(&one).unwrap();
        assert!((theirs[0] - price).abs() < 1e-9, "{} vs {price}", theirs[0]);
    }

    /// `kind` trains on Boston to a holdout RMSE in `low..=high` (the label's standard
    /// deviation is 9.2; OLS gets 4.85), predicts the original's row in a plausible range,
    /// and a second training gives the very same model (seeded).
    fn trains_on_boston(kind: Kind, low: f64, high: f64) {
        let data = boston();
        let a = trained(&data, kind, "v0001-a");
        let rmse = a.metrics.holdout_rmse;
        assert!(low <= rmse && rmse <= high, "{kind}: holdout RMSE {rmse}");
        assert_eq!(a.kind, kind);
        assert_eq!(a.params, Params::default().resolved(kind, 13));
        let b = trained(&data, kind, "v0001-a");
        let json = |a: &Artifact| serde_json::to_value(&a.fitted).unwrap();
        assert_eq!(json(&a), json(&b), "{kind} is not deterministic");
        let price = a.predict_one(&EXAMPLE).unwrap();
        assert!(price > 20.0 && price < 40.0, "{kind}: {price}");
    }

    #[test]
    fn linear_on_boston() {
        trains_on_boston(Kind::Linear, 4.84, 4.86);
    }

    #[test]
    fn ridge_on_boston() {
        trains_on_boston(Kind::Ridge, 4.5, 5.5);
    }

    #[test]
    fn lasso_on_boston() {
        trains_on_boston(Kind::Lasso, 4.5, 5.5);
    }

    #[test]
    fn elastic_net_on_boston() {
        trains_on_boston(Kind::ElasticNet, 4.5, 5.5);
    }

    #[test]
    fn decision_tree_on_boston() {
        trains_on_boston(Kind::DecisionTree, 2.5, 5.0);
    }

    #[test]
    fn random_forest_on_boston() {
        trains_on_boston(Kind::RandomForest, 2.0, 4.0);
    }

    #[test]
    fn knn_on_boston() {
        trains_on_boston(Kind::Knn, 4.5, 7.5);
    }

    #[test]
    fn too_few_rows_is_a_clear_error() {
        let mut data = boston();
        data.rows.values.truncate(5 * 14);
        let err = train(
            &data,
            Kind::Linear,
            &Params::default(),
            "v0001-x".into(),
            now_rfc3339(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("training a linear model on 4 rows failed"),
            "{err}"
        );
    }

    #[test]
    fn parameters_change_the_model() {
        let data = boston();
        let shallow = Params {
            max_depth: Some(2),
            ..Params::default()
        };
        let a = train(
            &data,
            Kind::DecisionTree,
            &shallow,
            "v1-a".into(),
            now_rfc3339(),
        )
        .unwrap();
        let deep = trained(&data, Kind::DecisionTree, "v1-a");
        assert_eq!(a.params.max_depth, Some(2));
        assert!(
            a.metrics.train_r2 < deep.metrics.train_r2,
            "depth 2 fits less"
        );
    }
}
