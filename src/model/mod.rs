//! Model artifacts: training a linear regression, the artifact file, and the model store.
//!
//! An artifact (`models/<version>.json`) is immutable once written and holds everything a
//! slot needs to serve and an operator needs to judge it: the intercept and coefficients of
//! the fitted model, and metadata (rows and SHA-256 of the data, solver, fit figures, time).
//! Version ids are `v<seq>-<UTC time>`: the sequence number makes them sort in training order
//! and never collide, even for two trainings in the same second; the time is for people.
//!
//! The slot predicts with the stored coefficients directly (a dot product), not through
//! smartcore: it is the same arithmetic, needs no matrix per request, and a unit test checks
//! that both agree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{
    LinearRegression, LinearRegressionParameters, LinearRegressionSolverName,
};

use crate::data::{Row, FEATURES, LABEL};
use crate::fsutil;
use crate::gate::GateReport;

/// The artifact format this build reads and writes.
pub const FORMAT: u32 = 1;
/// Every `HOLDOUT_EVERY`-th row (the 5th, 10th, …) is held out to measure the fit.
pub const HOLDOUT_EVERY: usize = 5;

pub type Features = [f64; FEATURES.len()];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("model {path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("cannot write model {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("training on {rows} rows failed: {why}")]
    Fit { rows: usize, why: String },
}

/// Figures that describe how well a model fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// R² of the final model on all the rows it was fit on.
    pub train_r2: f64,
    /// RMSE and R² on the held-out rows, of a model fit on the other rows.
    pub holdout_rmse: f64,
    pub holdout_r2: f64,
    pub holdout_rows: usize,
    pub train_seconds: f64,
}

/// A trained model and its metadata, as stored in `models/<version>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub format: u32,
    pub version: String,
    pub trained_at: String,
    /// Data rows the model was fit on: the first `rows` rows of the CSV.
    pub rows: usize,
    pub data_sha256: String,
    pub features: Vec<String>,
    pub label: String,
    pub solver: String,
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    pub metrics: Metrics,
    /// The quality gate's verdict when the model was trained, if there was a model to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
}

impl Artifact {
    /// The prediction for one row of features.
    pub fn predict(&self, x: &Features) -> f64 {
        linear(self.intercept, &self.coefficients, x)
    }

    /// True when every parameter is a finite number.
    pub fn is_finite(&self) -> bool {
        self.intercept.is_finite() && self.coefficients.iter().all(|c| c.is_finite())
    }

    /// The sequence number of this artifact's version.
    pub fn seq(&self) -> u64 {
        parse_seq(&self.version).unwrap_or(0)
    }

    /// Reads and checks an artifact file.
    pub fn load(path: &Path) -> Result<Artifact, ModelError> {
        let bytes = fs::read(path).map_err(|source| ModelError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |why: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            why,
        };
        let artifact: Artifact =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if artifact.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not {FORMAT}; this bluegreen cannot read it",
                artifact.format
            )));
        }
        if artifact.coefficients.len() != FEATURES.len() || artifact.features != FEATURES {
            return Err(corrupt(format!(
                "expected {} coefficients for {}",
                FEATURES.len(),
                FEATURES.join(",")
            )));
        }
        if parse_seq(&artifact.version).is_none() {
            return Err(corrupt(format!(
                "version {:?} is not of the form v<number>-<time>",
                artifact.version
            )));
        }
        Ok(artifact)
    }
}

/// The sequence number of a version id such as `v0007-20261126T210305Z`.
pub fn parse_seq(version: &str) -> Option<u64> {
    let rest = version.strip_prefix('v')?;
    let (digits, _) = rest.split_once('-')?;
    digits.parse().ok()
}

/// Root mean squared error and R² of `model` on `rows`.
pub fn evaluate(predict: impl Fn(&Features) -> f64, rows: &[&Row]) -> (f64, f64) {
    if rows.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = rows.len() as f64;
    let mean = rows.iter().map(|r| r[FEATURES.len()]).sum::<f64>() / n;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for row in rows {
        let (x, y) = split(row);
        let err = predict(x) - y;
        ss_res += err * err;
        ss_tot += (y - mean) * (y - mean);
    }
    ((ss_res / n).sqrt(), 1.0 - ss_res / ss_tot)
}

fn split(row: &Row) -> (&Features, f64) {
    let (x, y) = row.split_at(FEATURES.len());
    (x.try_into().expect("a row has 13 features"), y[0])
}

/// The fitted parameters: intercept and coefficients.
struct Fit {
    intercept: f64,
    coefficients: Vec<f64>,
}

impl Fit {
    fn predict(&self, x: &Features) -> f64 {
        linear(self.intercept, &self.coefficients, x)
    }
}

/// intercept + Σ coefficient × feature.
fn linear(intercept: f64, coefficients: &[f64], x: &Features) -> f64 {
    intercept + coefficients.iter().zip(x).map(|(c, v)| c * v).sum::<f64>()
}

fn fit(rows: &[&Row]) -> Result<Fit, ModelError> {
    let fail = |why: String| ModelError::Fit {
        rows: rows.len(),
        why,
    };
    let mut x = Vec::with_capacity(rows.len() * FEATURES.len());
    let mut y = Vec::with_capacity(rows.len());
    for row in rows {
        let (features, label) = split(row);
        x.extend_from_slice(features);
        y.push(label);
    }
    let x =
        DenseMatrix::new(rows.len(), FEATURES.len(), x, false).map_err(|e| fail(e.to_string()))?;
    let params = LinearRegressionParameters::default().with_solver(LinearRegressionSolverName::QR);
    let model = LinearRegression::fit(&x, &y, params).map_err(|e| fail(e.to_string()))?;
    let coefficients = (0..FEATURES.len())
        .map(|i| *model.coefficients().get((i, 0)))
        .collect();
    Ok(Fit {
        intercept: *model.intercept(),
        coefficients,
    })
}

/// Trains a model on `rows`: fits on all but every fifth row to measure the holdout error,
/// then refits on all rows for the artifact. `version` and `trained_at` come from the store.
pub fn train(
    rows: &[Row],
    data_sha256: &str,
    version: String,
    trained_at: String,
) -> Result<Artifact, ModelError> {
    let started = Instant::now();
    let all: Vec<&Row> = rows.iter().collect();
    let mut holdout = Vec::with_capacity(rows.len() / HOLDOUT_EVERY + 1);
    let mut rest = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if is_holdout(i) {
            holdout.push(row);
        } else {
            rest.push(row);
        }
    }
    let partial = fit(&rest)?;
    let (holdout_rmse, holdout_r2) = evaluate(|x| partial.predict(x), &holdout);
    let full = fit(&all)?;
    let (_, train_r2) = evaluate(|x| full.predict(x), &all);
    Ok(Artifact {
        format: FORMAT,
        version,
        trained_at,
        rows: rows.len(),
        data_sha256: data_sha256.to_string(),
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        label: LABEL.to_string(),
        solver: "smartcore LinearRegression (QR)".to_string(),
        intercept: full.intercept,
        coefficients: full.coefficients,
        metrics: Metrics {
            train_r2,
            holdout_rmse,
            holdout_r2,
            holdout_rows: holdout.len(),
            train_seconds: started.elapsed().as_secs_f64(),
        },
        gate: None,
    })
}

/// Whether the row at `index` (0-based) belongs to the holdout.
pub fn is_holdout(index: usize) -> bool {
    index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
}

/// The artifacts in a models folder.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path_of(&self, version: &str) -> PathBuf {
        self.dir.join(format!("{version}.json"))
    }

    /// Version ids present, oldest first.
    pub fn versions(&self) -> Result<Vec<String>, ModelError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ModelError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut versions: Vec<(u64, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let version = name.strip_suffix(".json")?.to_string();
                Some((parse_seq(&version)?, version))
            })
            .collect();
        versions.sort();
        Ok(versions.into_iter().map(|(_, v)| v).collect())
    }

    pub fn newest(&self) -> Result<Option<Artifact>, ModelError> {
        match self.versions()?.last() {
            Some(v) => Artifact::load(&self.path_of(v)).map(Some),
            None => Ok(None),
        }
    }

    pub fn load(&self, version: &str) -> Result<Artifact, ModelError> {
        Artifact::load(&self.path_of(version))
    }

    /// The next version id: one past the highest sequence number, stamped with `now`.
    pub fn next_version(&self, now: time::OffsetDateTime) -> Result<String, ModelError> {
        let seq = self
            .versions()?
            .last()
            .and_then(|v| parse_seq(v))
            .unwrap_or(0)
            + 1;
        let stamp = now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .expect("a UTC time formats");
        Ok(format!("v{seq:04}-{stamp}"))
    }

    /// Writes a new artifact whole (temp file, fsync, rename). Callers hold the train lock,
    /// which is what keeps two writers from picking the same version.
    pub fn write(&self, artifact: &Artifact) -> Result<PathBuf, ModelError> {
        let path = self.path_of(&artifact.version);
        let write_err = |source| ModelError::Write {
            path: path.clone(),
            source,
        };
        if path.exists() {
            return Err(write_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "artifacts are immutable and this version exists",
            )));
        }
        let json = serde_json::to_vec_pretty(artifact).expect("an artifact serializes");
        fsutil::write_atomic(&path, &json).map_err(write_err)?;
        Ok(path)
    }

    /// Removes the oldest artifacts beyond `keep`, never one in `protect`. Returns the removed.
    pub fn prune(&self, keep: usize, protect: &[String]) -> Result<Vec<String>, ModelError> {
        let versions = self.versions()?;
        let excess = versions.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for version in versions.into_iter().take(excess) {
            if protect.contains(&version) {
                continue;
            }
            let path = self.path_of(&version);
            fs::remove_file(&path).map_err(|source| ModelError::Write { path, source })?;
            removed.push(version);
        }
        Ok(removed)
    }
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
mod tests {
    use super::*;
    use crate::data;

    pub(crate) fn boston() -> Vec<Row> {
        data::parse_rows(&data::boston_csv(), "boston").unwrap()
    }

    const EXAMPLE: Features = [
        0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
    ];

    #[test]
    fn boston_fit_predicts_the_original_example_and_matches_smartcore() {
        let rows = boston();
        let artifact = train(&rows, "sha", "v0001-x".into(), now_rfc3339()).unwrap();
        let price = artifact.predict(&EXAMPLE);
        assert!((price - 30.00).abs() < 0.01, "predicted {price}");
        assert!(artifact.metrics.train_r2 > 0.7 && artifact.metrics.train_r2 < 0.8);
        assert!(artifact.metrics.holdout_rmse > 3.0 && artifact.metrics.holdout_rmse < 7.0);
        assert_eq!(artifact.metrics.holdout_rows, 101);

        let x = DenseMatrix::new(1, 13, EXAMPLE.to_vec(), false).unwrap();
        let y: Vec<f64> = rows.iter().map(|r| r[13]).collect();
        let xs: Vec<f64> = rows.iter().flat_map(|r| r[..13].to_vec()).collect();
        let xm = DenseMatrix::new(rows.len(), 13, xs, false).unwrap();
        let params =
            LinearRegressionParameters::default().with_solver(LinearRegressionSolverName::QR);
        let sc = LinearRegression::fit(&xm, &y, params).unwrap();
        let theirs: Vec<f64> = sc.predict(&x).unwrap();
        assert!((theirs[0] - price).abs() < 1e-9, "{} vs {price}", theirs[0]);
    }

    #[test]
    fn too_few_rows_is_a_clear_error() {
        let rows = &boston()[..5];
        let err = train(rows, "sha", "v0001-x".into(), now_rfc3339()).unwrap_err();
        assert!(
            err.to_string().starts_with("training on 4 rows failed"),
            "{err}"
        );
    }

    #[test]
    fn artifact_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.newest().unwrap().is_none());
        let now = time::macros::datetime!(2026-11-26 21:03:05 UTC);
        let version = store.next_version(now).unwrap();
        assert_eq!(version, "v0001-20261126T210305Z");
        let artifact = train(&boston(), "sha", version.clone(), now_rfc3339()).unwrap();
        store.write(&artifact).unwrap();
        assert!(store.write(&artifact).is_err(), "artifacts are immutable");
        assert_eq!(store.newest().unwrap().unwrap(), artifact);
        assert_eq!(store.next_version(now).unwrap(), "v0002-20261126T210305Z");

        let bad = dir.path().join("v0009-bad.json");
        fs::write(&bad, b"{\"format\": 1").unwrap();
        assert!(matches!(
            Artifact::load(&bad),
            Err(ModelError::Corrupt { .. })
        ));
        let mut short = artifact.clone();
        short.coefficients.pop();
        fs::write(&bad, serde_json::to_vec(&short).unwrap()).unwrap();
        let err = Artifact::load(&bad).unwrap_err().to_string();
        assert!(err.contains("expected 13 coefficients"), "{err}");
    }

    #[test]
    fn versions_sort_by_number_and_prune_spares_the_protected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let artifact = train(&boston(), "sha", "v0001-a".into(), now_rfc3339()).unwrap();
        for v in ["v0002-a", "v0010-a", "v0001-a", "v0003-a"] {
            let mut a = artifact.clone();
            a.version = v.to_string();
            store.write(&a).unwrap();
        }
        assert_eq!(
            store.versions().unwrap(),
            ["v0001-a", "v0002-a", "v0003-a", "v0010-a"]
        );
        let removed = store.prune(2, &["v0001-a".to_string()]).unwrap();
        assert_eq!(removed, ["v0002-a"]);
        assert_eq!(store.versions().unwrap(), ["v0001-a", "v0003-a", "v0010-a"]);
    }
}
