//! The kinds of model bluegreen trains, their parameters, and the fitted models (issue #9).
//!
//! This is the one place that knows which kind takes which parameter (the config asks
//! [`Kind::parameters`] to refuse one the chosen kind does not take), what each parameter's
//! default and valid range are, how smartcore fits each kind, and how a fitted model predicts.
//!
//! Every kind but `linear` and `ridge` is fit by smartcore 0.7; those two are fit from their
//! statistics (`model::stats`), so that a training can update its predecessor's with the
//! appended rows (issue #10), with smartcore's meaning of ridge's `alpha`. Defaults are
//! smartcore's, except the seeds, which are fixed (0) so that the same data and config
//! always give the same model. The linear
//! kinds (`linear`, `ridge`, `lasso`, `elastic_net`) are stored as an intercept and
//! coefficients and predict with a dot product: the same arithmetic smartcore does, without a
//! matrix per request. The others are stored as smartcore serializes them (its `serde`
//! feature) and predict through smartcore.

use std::fmt;

use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::error::Failed;
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::elastic_net::{ElasticNet, ElasticNetParameters};
use smartcore::linear::lasso::{Lasso, LassoParameters};
use smartcore::metrics::distance::euclidian::Euclidian;
use smartcore::neighbors::knn_regressor::{KNNRegressor, KNNRegressorParameters};
use smartcore::neighbors::KNNWeightFunction;
use smartcore::tree::decision_tree_regressor::{
    DecisionTreeRegressor, DecisionTreeRegressorParameters,
};

/// The feature matrix smartcore fits and predicts on: one row per example, row-major.
pub type Matrix = DenseMatrix<f64>;

/// A kind of regression model, as `[model] kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Ordinary least squares (QR), the original demo's model.
    #[default]
    Linear,
    /// Least squares with an L2 penalty.
    Ridge,
    /// Least squares with an L1 penalty.
    Lasso,
    /// Least squares with a mix of L1 and L2 penalties.
    ElasticNet,
    /// One regression tree (CART, mean squared error).
    DecisionTree,
    /// The mean of bootstrapped regression trees.
    RandomForest,
    /// The mean label of the k nearest rows (Euclidean distance, cover tree search).
    Knn,
}

impl Kind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Kind; 7] = [
        Kind::Linear,
        Kind::Ridge,
        Kind::Lasso,
        Kind::ElasticNet,
        Kind::DecisionTree,
        Kind::RandomForest,
        Kind::Knn,
    ];

    /// The name used in the config, artifacts and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Linear => "linear",
            Kind::Ridge => "ridge",
            Kind::Lasso => "lasso",
            Kind::ElasticNet => "elastic_net",
            Kind::DecisionTree => "decision_tree",
            Kind::RandomForest => "random_forest",
            Kind::Knn => "knn",
        }
    }

    /// The parameters this kind takes, as keys under `[model]`.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            Kind::Linear => &[],
            Kind::Ridge => &["alpha"],
            Kind::Lasso => &["alpha", "max_iter", "tol"],
            Kind::ElasticNet => &["alpha", "l1_ratio", "max_iter", "tol"],
            Kind::DecisionTree => &["max_depth", "min_samples_split", "min_samples_leaf", "seed"],
            Kind::RandomForest => &[
                "n_trees",
                "max_depth",
                "min_samples_split",
                "min_samples_leaf",
                "m",
                "seed",
            ],
            Kind::Knn => &["k", "weights"],
        }
    }

    /// What trains it, for people reading an artifact.
    pub fn solver(self) -> &'static str {
        match self {
            Kind::Linear => "least squares from the QR factor of [1 X y] (nalgebra), updated with appended rows",
            Kind::Ridge => "ridge, standardized as smartcore's, from the QR factor of [1 X y] (nalgebra), updated with appended rows",
            Kind::Lasso => "smartcore Lasso (interior point, normalized)",
            Kind::ElasticNet => "smartcore ElasticNet (normalized)",
            Kind::DecisionTree => "smartcore DecisionTreeRegressor",
            Kind::RandomForest => "smartcore RandomForestRegressor",
            Kind::Knn => "smartcore KNNRegressor (Euclidean, cover tree)",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `knn` weighs the k nearest rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// All k count the same.
    Uniform,
    /// Each counts by the inverse of its distance.
    Distance,
}

/// The parameters of a kind, flat as they are written under `[model]` and stored in an
/// artifact. A field is set only for the kinds that take it ([`Kind::parameters`]); in an
/// artifact every parameter of its kind is set (its default when the config left it out),
/// except `max_depth`, which is absent when the depth is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Regularization strength (ridge, lasso, elastic_net); >= 0. Default 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// The L1 share of elastic_net's penalty, 0 (ridge-like) to 1 (lasso). Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1_ratio: Option<f64>,
    /// Iterations of the lasso/elastic_net optimizer; >= 1. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iter: Option<usize>,
    /// The lasso/elastic_net optimizer's tolerance; > 0. Default 1e-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    /// Deepest level of a tree; >= 1. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u16>,
    /// Fewest rows a node must hold to be split; >= 2. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples_split: Option<usize>,
    /// Fewest rows a leaf may hold; >= 1. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples_leaf: Option<usize>,
    /// Trees in a random forest; >= 1. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_trees: Option<usize>,
    /// Features a forest's split may choose from, 1 to the number of features. Default:
    /// ⌊√features⌋.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    /// Seed of the tree and forest randomness. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Neighbours a knn prediction averages; >= 1 and at most the training rows. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// How knn weighs the neighbours. Default uniform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
}

/// A bad parameter: its config key (`model.alpha`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    /// `model.<name>`.
    pub key: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl Params {
    /// Every parameter's name, in field order.
    pub const NAMES: [&'static str; 12] = [
        "alpha",
        "l1_ratio",
        "max_iter",
        "tol",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "n_trees",
        "m",
        "seed",
        "k",
        "weights",
    ];

    /// The config keys of the parameters that are set (`model.alpha`), in field order.
    pub fn set(&self) -> Vec<&'static str> {
        let Params {
            alpha,
            l1_ratio,
            max_iter,
            tol,
            max_depth,
            min_samples_split,
            min_samples_leaf,
            n_trees,
            m,
            seed,
            k,
            weights,
        } = self;
        [
            ("model.alpha", alpha.is_some()),
            ("model.l1_ratio", l1_ratio.is_some()),
            ("model.max_iter", max_iter.is_some()),
            ("model.tol", tol.is_some()),
            ("model.max_depth", max_depth.is_some()),
            ("model.min_samples_split", min_samples_split.is_some()),
            ("model.min_samples_leaf", min_samples_leaf.is_some()),
            ("model.n_trees", n_trees.is_some()),
            ("model.m", m.is_some()),
            ("model.seed", seed.is_some()),
            ("model.k", k.is_some()),
            ("model.weights", weights.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Checks that `kind` takes every parameter that is set and that each value is in range,
    /// for a model of `features` features.
    pub fn check(&self, kind: Kind, features: usize) -> Result<(), BadParam> {
        let taken = |key: &str| {
            kind.parameters()
                .iter()
                .any(|p| key.strip_prefix("model.") == Some(p))
        };
        if let Some(key) = self.set().into_iter().find(|key| !taken(key)) {
            let takes = kind.parameters();
            return Err(BadParam {
                key,
                why: format!(
                    "is not a parameter of kind \"{kind}\", which takes {}",
                    if takes.is_empty() {
                        "none".to_string()
                    } else {
                        takes.join(", ")
                    }
                ),
            });
        }
        let bad = |key: &'static str, why: String| Err(BadParam { key, why });
        if let Some(a) = self.alpha.filter(|a| !a.is_finite() || *a < 0.0) {
            return bad("model.alpha", format!("{a} is not a finite number >= 0"));
        }
        if let Some(r) = self.l1_ratio.filter(|r| !(0.0..=1.0).contains(r)) {
            return bad("model.l1_ratio", format!("{r} is not between 0 and 1"));
        }
        if self.max_iter == Some(0) {
            return bad("model.max_iter", "must be at least 1".to_string());
        }
        if let Some(t) = self.tol.filter(|t| !t.is_finite() || *t <= 0.0) {
            return bad("model.tol", format!("{t} is not a finite number > 0"));
        }
        if self.max_depth == Some(0) {
            return bad(
                "model.max_depth",
                "must be at least 1 (leave it out for no limit)".into(),
            );
        }
        if let Some(s) = self.min_samples_split.filter(|s| *s < 2) {
            return bad(
                "model.min_samples_split",
                format!("{s} is less than 2: a split needs two rows"),
            );
        }
        if self.min_samples_leaf == Some(0) {
            return bad("model.min_samples_leaf", "must be at least 1".to_string());
        }
        if self.n_trees == Some(0) {
            return bad("model.n_trees", "must be at least 1".to_string());
        }
        if let Some(m) = self.m.filter(|m| *m == 0 || *m > features) {
            return bad(
                "model.m",
                format!("{m} is not between 1 and the number of features ({features})"),
            );
        }
        if self.k == Some(0) {
            return bad("model.k", "must be at least 1".to_string());
        }
        Ok(())
    }

    /// Every parameter `kind` takes, each set to its value here or its default: what the
    /// artifact records and what [`fit`] uses.
    pub fn resolved(&self, kind: Kind, features: usize) -> Params {
        let mut out = Params::default();
        for name in kind.parameters() {
            match *name {
                "alpha" => out.alpha = Some(self.alpha.unwrap_or(1.0)),
                "l1_ratio" => out.l1_ratio = Some(self.l1_ratio.unwrap_or(0.5)),
                "max_iter" => out.max_iter = Some(self.max_iter.unwrap_or(1000)),
                "tol" => out.tol = Some(self.tol.unwrap_or(1e-4)),
                "max_depth" => out.max_depth = self.max_depth,
                "min_samples_split" => {
                    out.min_samples_split = Some(self.min_samples_split.unwrap_or(2))
                }
                "min_samples_leaf" => {
                    out.min_samples_leaf = Some(self.min_samples_leaf.unwrap_or(1))
                }
                "n_trees" => out.n_trees = Some(self.n_trees.unwrap_or(10)),
                "m" => {
                    let default = ((features as f64).sqrt().floor() as usize).max(1);
                    out.m = Some(self.m.unwrap_or(default))
                }
                "seed" => out.seed = Some(self.seed.unwrap_or(0)),
                "k" => out.k = Some(self.k.unwrap_or(3)),
                "weights" => out.weights = Some(self.weights.unwrap_or(Weights::Uniform)),
                other => unreachable!("Kind::parameters names an unknown parameter {other}"),
            }
        }
        out
    }
}

/// The smartcore models bluegreen stores as smartcore serializes them.
type Tree = DecisionTreeRegressor<f64, f64, Matrix, Vec<f64>>;
type Forest = RandomForestRegressor<f64, f64, Matrix, Vec<f64>>;
type Neighbours = KNNRegressor<f64, f64, Matrix, Vec<f64>, Euclidian<f64>>;

/// A fitted model, as an artifact stores it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fitted {
    /// prediction = intercept + Σ coefficient × feature (the four linear kinds).
    Linear {
        /// The prediction for a row of zeros.
        intercept: f64,
        /// One per feature, in the schema's order.
        coefficients: Vec<f64>,
    },
    /// A `decision_tree`, as smartcore serializes it.
    DecisionTree(Box<Tree>),
    /// A `random_forest`, as smartcore serializes it.
    RandomForest(Box<Forest>),
    /// A `knn` model (its training rows in a cover tree), as smartcore serializes it.
    Knn(Box<Neighbours>),
}

/// A parameter of the kind being fit, which [`Params::resolved`] has set.
fn set<T>(value: Option<T>) -> T {
    value.expect("Params::resolved sets every parameter of the kind")
}

/// Fits `kind` with `params` (their defaults filled in for those not set) on `x` and `y`.
pub fn fit(kind: Kind, params: &Params, x: &Matrix, y: &Vec<f64>) -> Result<Fitted, Failed> {
    let p = params.resolved(kind, x.shape().1);
    let linear = |intercept: f64, coefficients: &Matrix| Fitted::Linear {
        intercept,
        coefficients: (0..x.shape().1)
            .map(|i| *coefficients.get((i, 0)))
            .collect(),
    };
    Ok(match kind {
        Kind::Linear | Kind::Ridge => {
            // From the statistics of the rows, as `model::train` fits them (`stats`).
            let (rows, width) = x.shape();
            let mut factor = super::stats::Factor::new(width);
            let mut row = Vec::with_capacity(width + 1);
            for (r, label) in y.iter().enumerate().take(rows) {
                row.clear();
                row.extend((0..width).map(|c| *x.get((r, c))));
                row.push(*label);
                factor.push(&row);
            }
            let names: Vec<String> = (1..=width).map(|c| format!("#{c}")).collect();
            super::stats::solve(kind, &p, &factor, &names)
                .map_err(|e| Failed::fit(&e.to_string()))?
        }
        Kind::Lasso => {
            let params = LassoParameters::default()
                .with_alpha(set(p.alpha))
                .with_max_iter(set(p.max_iter))
                .with_tol(set(p.tol));
            let m = Lasso::fit(x, y, params)?;
            linear(*m.intercept(), m.coefficients())
        }
        Kind::ElasticNet => {
            let params = ElasticNetParameters::default()
                .with_alpha(set(p.alpha))
                .with_l1_ratio(set(p.l1_ratio))
                .with_max_iter(set(p.max_iter))
                .with_tol(set(p.tol));
            let m = ElasticNet::fit(x, y, params)?;
            linear(*m.intercept(), m.coefficients())
        }
        Kind::DecisionTree => {
            let params = DecisionTreeRegressorParameters {
                max_depth: p.max_depth,
                min_samples_leaf: set(p.min_samples_leaf),
                min_samples_split: set(p.min_samples_split),
                seed: Some(set(p.seed)),
            };
            Fitted::DecisionTree(Box::new(DecisionTreeRegressor::fit(x, y, params)?))
        }
        Kind::RandomForest => {
            let mut params = RandomForestRegressorParameters::default()
                .with_n_trees(set(p.n_trees))
                .with_min_samples_leaf(set(p.min_samples_leaf))
                .with_min_samples_split(set(p.min_samples_split))
                .with_seed(set(p.seed));
            params.m = p.m;
            params.max_depth = p.max_depth;
            Fitted::RandomForest(Box::new(RandomForestRegressor::fit(x, y, params)?))
        }
        Kind::Knn => {
            let weight = match set(p.weights) {
                Weights::Uniform => KNNWeightFunction::Uniform,
                Weights::Distance => KNNWeightFunction::Distance,
            };
            let params = KNNRegressorParameters::default()
                .with_k(set(p.k))
                .with_weight(weight);
            Fitted::Knn(Box::new(KNNRegressor::fit(x, y, params)?))
        }
    })
}

impl Fitted {
    /// The intercept and coefficients of a linear model.
    pub fn linear(&self) -> Option<(f64, &[f64])> {
        match self {
            Fitted::Linear {
                intercept,
                coefficients,
            } => Some((*intercept, coefficients)),
            _ => None,
        }
    }

    /// True unless a linear model has a parameter that is not a finite number. (The other
    /// kinds' predictions are checked where they are judged, by the gate.)
    pub fn is_finite(&self) -> bool {
        self.linear().is_none_or(|(intercept, coefficients)| {
            intercept.is_finite() && coefficients.iter().all(|c| c.is_finite())
        })
    }

    /// One prediction per row of `x`.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>, Failed> {
        match self {
            Fitted::Linear {
                intercept,
                coefficients,
            } => {
                let (rows, cols) = x.shape();
                Ok((0..rows)
                    .map(|r| {
                        intercept
                            + (0..cols)
                                .map(|c| coefficients[c] * x.get((r, c)))
                                .sum::<f64>()
                    })
                    .collect())
            }
            Fitted::DecisionTree(m) => m.predict(x),
            Fitted::RandomForest(m) => m.predict(x),
            Fitted::Knn(m) => m.predict(x),
        }
    }

    /// One prediction per row of `rows`, a row-major block of rows of `width` features each
    /// (as a request brings them).
    pub fn predict_rows(&self, rows: &[f64], width: usize) -> Result<Vec<f64>, Failed> {
        match self {
            Fitted::Linear {
                intercept,
                coefficients,
            } => Ok(rows
                .chunks_exact(width)
                .map(|x| intercept + coefficients.iter().zip(x).map(|(c, v)| c * v).sum::<f64>())
                .collect()),
            _ => self.predict(&Matrix::new(
                rows.len() / width,
                width,
                rows.to_vec(),
                false,
            )?),
        }
    }
}
