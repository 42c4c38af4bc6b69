//! The model artifact: `models/<version>.json`, immutable once written, holding everything a
//! slot needs to serve and an operator needs to judge it (`models/README.md` documents it).
//!
//! Format 2 (issue #9): the schema (features, label), the kind and its parameters, the fitted
//! model, and the metadata: rows, bytes and SHA-256 of the data it learned from, fit figures,
//! the gate's verdict, and an example row (the first training row's features), which
//! `deploy` sends to a restarted slot to check that it predicts what the artifact predicts.
//! Format 1 (a linear model of the 13 Boston features) still loads and serves: it is read as
//! the format-2 artifact it would have been.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::kinds::{Fitted, Kind, Params};
use super::stats::Statistics;
use super::{parse_seq, Metrics, ModelError};
use crate::data::{self, Learned};
use crate::gate::GateReport;

/// The artifact format this build writes; it reads this one and 1.
pub const FORMAT: u32 = 2;

/// A trained model and its metadata, as stored in `models/<version>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// 2, or 1 for an artifact read from format 1.
    pub format: u32,
    /// `v<seq>-<UTC time>`, also the file's name.
    pub version: String,
    /// When it was trained, RFC 3339 UTC.
    pub trained_at: String,
    /// Data rows the model learned from: the first `rows` rows of the CSV. It was trained on
    /// those that are not held out (every fifth, `model::is_holdout`) and measured on those.
    pub rows: usize,
    /// The length of the data it learned from: the CSV's first `data_bytes` bytes. `None` for
    /// format 1, which did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bytes: Option<u64>,
    /// SHA-256 of exactly those bytes.
    pub data_sha256: String,
    /// The schema: the features, in the order of the API's rows, and the label.
    pub features: Vec<String>,
    /// See `features`.
    pub label: String,
    /// What was trained.
    pub kind: Kind,
    /// Every parameter of the kind, defaults filled in.
    pub params: Params,
    /// What trained it, for people.
    pub solver: String,
    /// The first training row's features: the row `deploy` probes a slot with.
    pub example: Vec<f64>,
    /// Shared by clones of the artifact: smartcore's models cannot be cloned, and a forest is
    /// megabytes.
    pub fitted: Arc<Fitted>,
    /// How well it fits.
    pub metrics: Metrics,
    /// For `linear` and `ridge`: the statistics of the rows it learned from, which the next
    /// training updates with the appended rows instead of reading them all (issue #10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Statistics>,
    /// The quality gate's verdict when the model was trained, if there was a model to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
}

/// Format 1: a linear model of the Boston features, from before issue #9.
#[derive(Deserialize)]
struct FormatOne {
    version: String,
    trained_at: String,
    rows: usize,
    data_sha256: String,
    features: Vec<String>,
    label: String,
    solver: String,
    intercept: f64,
    coefficients: Vec<f64>,
    metrics: Metrics,
    #[serde(default)]
    gate: Option<GateReport>,
}

/// The one field every format has.
#[derive(Deserialize)]
struct Format {
    format: u32,
}

impl Artifact {
    /// Predictions for a row-major block of rows of `features.len()` values each.
    pub fn predict_rows(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.fitted
            .predict_rows(rows, self.features.len())
            .map_err(|source| ModelError::Predict {
                kind: self.kind,
                source,
            })
    }

    /// The prediction for one row of features.
    pub fn predict_one(&self, x: &[f64]) -> Result<f64, ModelError> {
        Ok(self.predict_rows(x)?[0])
    }

    /// False when a linear model has a parameter that is not a finite number.
    pub fn is_finite(&self) -> bool {
        self.fitted.is_finite()
    }

    /// The sequence number of this artifact's version.
    pub fn seq(&self) -> u64 {
        parse_seq(&self.version).unwrap_or(0)
    }

    /// What the model learned from, to compare with the data now ([`data::scan`]).
    pub fn learned(&self) -> Learned<'_> {
        Learned {
            rows: self.rows,
            bytes: self.data_bytes,
            sha256: &self.data_sha256,
        }
    }

    /// The schema it was trained on.
    pub fn schema(&self) -> data::Schema {
        data::Schema {
            features: self.features.clone(),
            label: self.label.clone(),
        }
    }

    /// The artifact without the fitted model's insides, for `GET /model`: kind, parameters,
    /// schema and metadata, and for a linear model its intercept and coefficients (a forest's
    /// trees would be megabytes). A linear model's `stats` (the QR factors a training goes on
    /// from, about 5 KB for 13 features) are insides too; `rows` says what they summarise.
    pub fn describe(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("an artifact serializes");
        let object = value.as_object_mut().expect("an artifact is an object");
        object.remove("fitted");
        object.remove("stats");
        if let Some((intercept, coefficients)) = self.fitted.linear() {
            object.insert("intercept".into(), intercept.into());
            object.insert("coefficients".into(), coefficients.into());
        }
        value
    }

    /// The file's bytes: pretty JSON for a linear model, whose coefficients people read;
    /// compact JSON for the others, whose trees or rows would be mostly indentation.
    pub fn to_json(&self) -> Vec<u8> {
        if self.fitted.linear().is_some() {
            serde_json::to_vec_pretty(self)
        } else {
            serde_json::to_vec(self)
        }
        .expect("an artifact serializes")
    }

    /// Reads and checks an artifact file of format 1 or 2.
    pub fn load(path: &Path) -> Result<Artifact, ModelError> {
        let bytes = fs_err::read(path).map_err(ModelError::Read)?;
        let corrupt = |why: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            why,
        };
        let Format { format } =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let artifact = match format {
            1 => {
                let one: FormatOne =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if one.features != data::FEATURES {
                    return Err(corrupt(format!(
                        "a format-1 model has the features {}",
                        data::FEATURES.join(",")
                    )));
                }
                Artifact::from_format_one(one)
            }
            FORMAT => serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?,
            other => {
                return Err(corrupt(format!(
                    "format {other} is not 1 or {FORMAT}; this bluegreen cannot read it"
                )))
            }
        };
        artifact.check().map_err(corrupt)?;
        Ok(artifact)
    }

    /// What a format-1 artifact is in format 2: a linear model whose example is the
    /// original's row (Boston's first row, so the same as a format-2 artifact's).
    fn from_format_one(one: FormatOne) -> Artifact {
        Artifact {
            format: 1,
            version: one.version,
            trained_at: one.trained_at,
            rows: one.rows,
            data_bytes: None,
            data_sha256: one.data_sha256,
            features: one.features,
            label: one.label,
            kind: Kind::Linear,
            params: Params::default(),
            solver: one.solver,
            example: vec![
                0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
            ],
            fitted: Arc::new(Fitted::Linear {
                intercept: one.intercept,
                coefficients: one.coefficients,
            }),
            metrics: one.metrics,
            stats: None,
            gate: one.gate,
        }
    }

    /// The consistency a loaded artifact must have; what is wrong otherwise.
    fn check(&self) -> Result<(), String> {
        let n = self.features.len();
        if n == 0 {
            return Err("it has no features".to_string());
        }
        if parse_seq(&self.version).is_none() {
            return Err(format!(
                "version {:?} is not of the form v<number>-<time>",
                self.version
            ));
        }
        if self.example.len() != n {
            return Err(format!(
                "its example has {} values for {n} features",
                self.example.len()
            ));
        }
        let linear_kind = matches!(
            self.kind,
            Kind::Linear | Kind::Ridge | Kind::Lasso | Kind::ElasticNet
        );
        let matches = match &*self.fitted {
            Fitted::Linear { coefficients, .. } => {
                if coefficients.len() != n {
                    return Err(format!(
                        "expected {n} coefficients for {}",
                        self.features.join(",")
                    ));
                }
                linear_kind
            }
            Fitted::DecisionTree(_) => self.kind == Kind::DecisionTree,
            Fitted::RandomForest(_) => self.kind == Kind::RandomForest,
            Fitted::Knn(_) => self.kind == Kind::Knn,
        };
        if !matches {
            return Err(format!("its fitted model is not a {} model", self.kind));
        }
        if let Some(stats) = &self.stats {
            // A training goes on from these: statistics that are not the model's would
            // make every later model wrong, silently (issue #10).
            stats.check(
                self.kind,
                &self.params,
                &self.fitted,
                self.rows,
                self.metrics.holdout_rmse,
                &self.features,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{boston, trained, EXAMPLE};
    use std::fs;

    #[test]
    fn every_kind_round_trips_and_predicts_the_same_after_loading() {
        let data = boston();
        let dir = tempfile::tempdir().unwrap();
        for kind in Kind::ALL {
            let artifact = trained(&data, kind, "v0001-a");
            let path = dir.path().join(format!("{kind}.json"));
            fs::write(&path, artifact.to_json()).unwrap();
            let back = Artifact::load(&path).unwrap();
            assert_eq!(back.kind, kind);
            assert_eq!(back.features, artifact.features);
            let rows: Vec<f64> = data
                .rows
                .iter()
                .take(50)
                .flat_map(|r| r[..13].to_vec())
                .collect();
            assert_eq!(
                back.predict_rows(&rows).unwrap(),
                artifact.predict_rows(&rows).unwrap(),
                "{kind}"
            );
            let described = back.describe();
            assert!(described.get("fitted").is_none());
            assert_eq!(described["kind"], kind.as_str());
            assert_eq!(
                described.get("coefficients").is_some(),
                back.fitted.linear().is_some()
            );
        }
    }

    #[test]
    fn a_format_1_artifact_loads_as_a_linear_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v0001-20261129T161140Z.json");
        // As bluegreen 0.1 wrote them (`bluegreen init` of commit f4ad8e5).
        fs::write(
            &path,
            include_str!("../../tests/it/fixtures/format-1-v0001.json"),
        )
        .unwrap();
        let artifact = Artifact::load(&path).unwrap();
        assert_eq!((artifact.format, artifact.kind), (1, Kind::Linear));
        assert_eq!(artifact.data_bytes, None);
        // Format 1 trained on every row, holdout included: 30.00, not 30.23.
        let price = artifact.predict_one(&EXAMPLE).unwrap();
        assert!((price - 30.00).abs() < 0.01, "{price}");
        assert!(artifact.gate.unwrap().passed);
    }

    #[test]
    fn corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("v0009-bad.json");
        for (text, why) in [
            ("{\"format\": 2", "EOF"),
            ("{\"format\": 7}", "format 7 is not 1 or 2"),
            ("{\"format\": 2, \"version\": 3}", "invalid type"),
        ] {
            fs::write(&bad, text).unwrap();
            let err = Artifact::load(&bad).unwrap_err();
            assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(why), "{err}");
        }
        let mut short = trained(&boston(), Kind::Linear, "v0009-bad");
        if let Fitted::Linear { coefficients, .. } = Arc::get_mut(&mut short.fitted).unwrap() {
            coefficients.pop();
        }
        fs::write(&bad, short.to_json()).unwrap();
        let err = Artifact::load(&bad).unwrap_err().to_string();
        assert!(err.contains("expected 13 coefficients"), "{err}");
        let mut wrong = trained(&boston(), Kind::Linear, "v0009-bad");
        wrong.kind = Kind::RandomForest;
        fs::write(&bad, wrong.to_json()).unwrap();
        let err = Artifact::load(&bad).unwrap_err().to_string();
        assert!(err.contains("not a random_forest model"), "{err}");
    }
}
