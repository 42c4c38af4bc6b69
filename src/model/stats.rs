//! Sufficient statistics of the linear family (`linear`, `ridge`), and fitting from them
//! (issue #10, part 2).
//!
//! A least-squares fit needs of its rows only the triangular factor `R` of the matrix
//! `A = [1 X y]` (a column of ones for the intercept, the features, the label): with
//! `A = QR`, `‖A θ‖ = ‖R θ‖` for every θ, so the fit, its residual and every RMSE follow from
//! `R`, a (features + 2)² triangle, however many rows there are. Rows are added by stacking
//! them under `R` and taking the QR of the stack again: `[R; B] = Q'R'`, so `R'` is the factor
//! of all the rows so far. This is numerically what a QR of all the rows at once is (no
//! normal equations, whose condition number is the square of the data's), and it is the
//! same computation for a training that reads every row and one that reads only the rows
//! appended since its predecessor: the two agree to rounding (`tests::appends_equal_one_pass`).
//! The QR is nalgebra's (Householder).
//!
//! An artifact of kind `linear` or `ridge` carries two factors: one of its training rows and
//! one of its holdout rows (row `i` is held out when `i % 5 == 4`, `model::is_holdout`). The
//! next training updates both with the appended rows and solves; the holdout RMSE is
//! `‖S θ̃‖ / √n` with `S` the holdout factor and `θ̃ = [intercept, coefficients, -1]`, so the
//! gate compares two linear models on the holdout without reading a row.
//!
//! `R` is made unique by a non-negative diagonal (a QR is unique up to the signs of `R`'s
//! rows). Its first row then holds `√n` and `√n × mean` of each column, and the rest is the
//! factor of the centered data, which is what ridge's standardisation needs.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::kinds::{Fitted, Kind, Params};

/// Rows gathered before they are folded into the factor with one QR: large enough that the
/// QR's cost per row is that of the rows, not of the triangle on top of them.
const BLOCK: usize = 256;

/// Why the linear family could not be fit from the statistics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SolveError {
    /// Fewer rows than the fit has unknowns.
    #[error("{rows} training rows are too few for {unknowns} unknowns (the intercept and a coefficient per feature)")]
    TooFewRows { rows: usize, unknowns: usize },
    /// A feature is constant, or a combination of the others, on the training rows.
    #[error("feature {column} is constant or a combination of the others on the training rows, so its coefficient is not determined")]
    Collinear { column: String },
}

/// The triangular factor `R` of `[1 X y]` over a set of rows (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// Rows folded in so far (not counting `pending`).
    rows: usize,
    /// `cols × cols`, upper triangular, non-negative diagonal; `cols` = features + 2.
    r: DMatrix<f64>,
    /// Rows not folded in yet, each `[1, x…, y]`, row-major.
    pending: Vec<f64>,
}

/// How a [`Factor`] is stored: its rows, and `R`'s upper triangle row by row (row `i` holds
/// columns `i..`).
#[derive(Serialize, Deserialize)]
struct StoredFactor {
    rows: usize,
    r: Vec<Vec<f64>>,
}

impl Serialize for Factor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut folded = self.clone();
        folded.fold();
        let cols = folded.cols();
        StoredFactor {
            rows: folded.rows,
            r: (0..cols)
                .map(|i| (i..cols).map(|j| folded.r[(i, j)]).collect())
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let stored = StoredFactor::deserialize(deserializer)?;
        let cols = stored.r.len();
        let mut r = DMatrix::zeros(cols, cols);
        for (i, row) in stored.r.iter().enumerate() {
            if row.len() != cols - i {
                return Err(D::Error::custom(format!(
                    "row {i} of a statistics factor has {} values; a triangle of {cols} columns has {} there",
                    row.len(),
                    cols - i
                )));
            }
            for (k, v) in row.iter().enumerate() {
                r[(i, i + k)] = *v;
            }
        }
        Ok(Factor {
            rows: stored.rows,
            r,
            pending: Vec::new(),
        })
    }
}

impl Factor {
    /// The factor of no rows, for `features` features.
    pub fn new(features: usize) -> Factor {
        let cols = features + 2;
        Factor {
            rows: 0,
            r: DMatrix::zeros(cols, cols),
            pending: Vec::with_capacity(BLOCK * cols),
        }
    }

    /// Columns of `[1 X y]`: features + 2.
    pub fn cols(&self) -> usize {
        self.r.ncols()
    }

    /// Rows it holds.
    pub fn rows(&self) -> usize {
        self.rows + self.pending.len() / self.cols()
    }

    /// Adds a row: its features, then its label.
    pub fn push(&mut self, row: &[f64]) {
        debug_assert_eq!(row.len() + 1, self.cols());
        self.pending.push(1.0);
        self.pending.extend_from_slice(row);
        if self.pending.len() == BLOCK * self.cols() {
            self.fold();
        }
    }

    /// Folds the pending rows into `R`: the QR of `[R; pending]`.
    fn fold(&mut self) {
        let cols = self.cols();
        let new = self.pending.len() / cols;
        if new == 0 {
            return;
        }
        let mut stack = DMatrix::zeros(cols + new, cols);
        stack.view_mut((0, 0), (cols, cols)).copy_from(&self.r);
        stack
            .view_mut((cols, 0), (new, cols))
            .copy_from(&DMatrix::from_row_slice(new, cols, &self.pending));
        let mut r = stack.qr().unpack_r();
        for i in 0..cols {
            if r[(i, i)] < 0.0 {
                r.row_mut(i).neg_mut();
            }
        }
        self.r = r;
        self.rows += new;
        self.pending.clear();
    }

    /// `R`, with every row folded in.
    fn folded(&self) -> DMatrix<f64> {
        let mut this = self.clone();
        this.fold();
        this.r
    }

    /// The squared residual norm `‖A θ̃‖²` of a linear model over these rows, with
    /// `θ̃ = [intercept, coefficients…, -1]`.
    pub fn sse(&self, intercept: f64, coefficients: &[f64]) -> f64 {
        let r = self.folded();
        let mut theta = DVector::zeros(self.cols());
        theta[0] = intercept;
        theta
            .rows_mut(1, coefficients.len())
            .copy_from_slice(coefficients);
        theta[self.cols() - 1] = -1.0;
        (r * theta).norm_squared()
    }

    /// `Σ (y − ȳ)²` over these rows: the label column of the centered factor.
    pub fn sst(&self) -> f64 {
        let r = self.folded();
        let last = self.cols() - 1;
        r.view((1, last), (last, 1)).norm_squared()
    }

    /// RMSE and R² of a linear model over these rows; NaN for no rows (as
    /// `model::evaluate`).
    pub fn evaluate(&self, intercept: f64, coefficients: &[f64]) -> (f64, f64) {
        let n = self.rows();
        if n == 0 {
            return (f64::NAN, f64::NAN);
        }
        let sse = self.sse(intercept, coefficients);
        (
            (sse / n as f64).sqrt(),
            super::r_squared(n, sse, self.sst()),
        )
    }

    /// Whether every entry is a finite number.
    fn is_finite(&self) -> bool {
        self.r.iter().chain(&self.pending).all(|v| v.is_finite())
    }
}

/// Both factors of a linear-family artifact and where its data ends (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    /// The factor of the training rows among the artifact's `rows`.
    pub train: Factor,
    /// The factor of its holdout rows.
    pub holdout: Factor,
    /// The SHA-256 state after the artifact's `data_bytes` bytes (digest's serialized
    /// state, in hex): the next training hashes only the appended bytes, and still records
    /// the SHA-256 of the whole data.
    pub sha256_state: String,
}

impl Statistics {
    /// Why these statistics cannot be the ones of a `kind` model with `params`,
    /// `intercept` and `coefficients` that learned from `rows` rows, whose holdout RMSE is
    /// `holdout_rmse`: shapes, counts, and the fit solved again from them. `names` are the
    /// features, for the message.
    pub fn check(
        &self,
        kind: Kind,
        params: &Params,
        fitted: &Fitted,
        rows: usize,
        holdout_rmse: f64,
        names: &[String],
    ) -> Result<(), String> {
        let Some((intercept, coefficients)) = fitted.linear() else {
            return Err(format!("a {kind} model carries statistics"));
        };
        let cols = names.len() + 2;
        if self.train.cols() != cols || self.holdout.cols() != cols {
            return Err(format!(
                "its statistics are of {} and {} columns; {} features make {cols}",
                self.train.cols(),
                self.holdout.cols(),
                names.len()
            ));
        }
        if !self.train.is_finite() || !self.holdout.is_finite() {
            return Err("its statistics hold a value that is not a finite number".to_string());
        }
        let held = super::holdout_count(rows);
        if self.holdout.rows() != held || self.train.rows() != rows - held.min(rows) {
            return Err(format!(
                "its statistics count {} training and {} holdout rows; {rows} rows have {} and {held}",
                self.train.rows(),
                self.holdout.rows(),
                rows - held.min(rows)
            ));
        }
        let again = solve(kind, params, &self.train, names).map_err(|e| {
            format!("its statistics do not match its coefficients: they give no fit ({e})")
        })?;
        let (i2, c2) = again.linear().expect("solve gives a linear model");
        let scale = coefficients
            .iter()
            .chain([&intercept])
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(scale * 1e-3);
        if !close(intercept, i2) {
            return Err(format!(
                "its statistics do not match its coefficients: the intercept is {intercept} in the model, {i2} from the statistics"
            ));
        }
        if let Some(k) = (0..names.len()).find(|&k| !close(coefficients[k], c2[k])) {
            return Err(format!(
                "its statistics do not match its coefficients: the coefficient of {} is {} in the model, {} from the statistics",
                names[k], coefficients[k], c2[k]
            ));
        }
        let (rmse, _) = self.holdout.evaluate(intercept, coefficients);
        let same = (rmse.is_nan() && holdout_rmse.is_nan()) || close_rel(rmse, holdout_rmse);
        if !same {
            return Err(format!(
                "its statistics do not match its metrics: the holdout RMSE is {holdout_rmse}, {rmse} from the statistics"
            ));
        }
        Ok(())
    }
}

fn close_rel(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Fits a `kind` model (`linear` or `ridge`) from the factor of its training rows. `names`
/// are the features, for errors.
///
/// - `linear`: least squares, `R₁₁ θ = r` by back substitution, where `R₁₁` is the factor's
///   `[1 X]` block and `r` its label column.
/// - `ridge`: as smartcore's `RidgeRegression` with its defaults (`normalize`): the features
///   are centered and scaled by their (population) standard deviation, and
///   `‖y_c − X_s w‖² + α‖w‖²` is minimised; then the coefficients are `w / σ` and the
///   intercept `ȳ − Σ coefficient × mean`. Here from the same factor: its centered block
///   gives `‖y_c − X_c b‖² = ‖r_xy − R_xx b‖² + r_yy²`, so `w` is the least-squares solution
///   of `[R_xx D⁻¹; √α I] w = [r_xy; 0]` (`D` = the standard deviations, the column norms of
///   `R_xx` over `√n`), again by QR.
pub fn solve(
    kind: Kind,
    params: &Params,
    train: &Factor,
    names: &[String],
) -> Result<Fitted, SolveError> {
    let r = train.folded();
    let p = train.cols() - 2;
    let n = train.rows();
    if n <= p {
        return Err(SolveError::TooFewRows {
            rows: n,
            unknowns: p + 1,
        });
    }
    let (intercept, coefficients) = match kind {
        Kind::Ridge => {
            let alpha = params.resolved(kind, p).alpha.expect("ridge takes alpha");
            let sqrt_n = r[(0, 0)];
            let rxx = r.view((1, 1), (p, p));
            let sigma: Vec<f64> = (0..p).map(|j| rxx.column(j).norm() / sqrt_n).collect();
            // The penalty copes with collinear features, not with a constant one, which
            // cannot be standardised (smartcore refuses it too).
            let constant = |j: usize| sigma[j] <= 1e-12 * (r[(0, 1 + j)] / sqrt_n).abs();
            if let Some(j) = (0..p).find(|&j| constant(j)) {
                return Err(SolveError::Collinear {
                    column: names[j].clone(),
                });
            }
            let mut stack = DMatrix::zeros(2 * p, p + 1);
            for j in 0..p {
                for i in 0..=j {
                    stack[(i, j)] = rxx[(i, j)] / sigma[j];
                }
                stack[(j, p)] = r[(1 + j, p + 1)];
                stack[(p + j, j)] = alpha.sqrt();
            }
            let rr = stack.qr().unpack_r();
            let w = rr
                .view((0, 0), (p, p))
                .solve_upper_triangular(&rr.view((0, p), (p, 1)))
                .ok_or_else(|| SolveError::Collinear {
                    column: names[0].clone(),
                })?;
            let coefficients: Vec<f64> = (0..p).map(|j| w[j] / sigma[j]).collect();
            let mean = |j: usize| r[(0, j)] / sqrt_n;
            let intercept =
                mean(p + 1) - (0..p).map(|j| coefficients[j] * mean(1 + j)).sum::<f64>();
            (intercept, coefficients)
        }
        _ => {
            let diagonal_max = (0..=p).fold(0.0f64, |m, i| m.max(r[(i, i)].abs()));
            let singular = |i: usize| r[(i, i)].abs() <= diagonal_max * 1e-13;
            if let Some(i) = (1..=p).find(|&i| singular(i)) {
                return Err(SolveError::Collinear {
                    column: names[i - 1].clone(),
                });
            }
            let theta = r
                .view((0, 0), (p + 1, p + 1))
                .solve_upper_triangular(&r.view((0, p + 1), (p + 1, 1)))
                .ok_or_else(|| SolveError::Collinear {
                    column: names[0].clone(),
                })?;
            (theta[0], theta.as_slice()[1..].to_vec())
        }
    };
    Ok(Fitted::Linear {
        intercept,
        coefficients,
    })
}

/// Gathers the statistics of rows as they stream by: routes each row to the training or
/// the holdout factor by its index, keeps the first row's features (the artifact's example),
/// and can keep the holdout factor as it was before a given row, the gate's rows when that
/// row is the first one the active model did not learn from.
pub struct Accumulator {
    train: Factor,
    holdout: Factor,
    features: usize,
    example: Option<Vec<f64>>,
    snapshot_at: Option<usize>,
    snapshot: Option<Factor>,
}

impl Accumulator {
    /// For rows of `features` features and a label, from the first row; the holdout factor
    /// is kept as it is before row `snapshot_at`, if given.
    pub fn new(features: usize, snapshot_at: Option<usize>) -> Accumulator {
        let (train, holdout) = (Factor::new(features), Factor::new(features));
        Accumulator {
            train,
            holdout,
            features,
            example: None,
            snapshot_at,
            snapshot: None,
        }
    }

    /// Going on from `stats` (of the first `rows` rows, whose first row's features are
    /// `example`). A snapshot before a row it does not see is not taken.
    pub fn resume(
        stats: &Statistics,
        rows: usize,
        example: Vec<f64>,
        snapshot_at: Option<usize>,
    ) -> Accumulator {
        Accumulator {
            train: stats.train.clone(),
            holdout: stats.holdout.clone(),
            features: example.len(),
            example: Some(example),
            snapshot_at: snapshot_at.filter(|&at| at >= rows),
            snapshot: None,
        }
    }

    /// Takes in row `index` of the file: its features, then its label.
    pub fn push(&mut self, index: usize, row: &[f64]) {
        if self.snapshot_at == Some(index) {
            self.holdout.fold();
            self.snapshot = Some(self.holdout.clone());
        }
        if self.example.is_none() {
            self.example = Some(row[..self.features].to_vec());
        }
        if super::is_holdout(index) {
            self.holdout.push(row);
        } else {
            self.train.push(row);
        }
    }

    /// The factors (folded), the example row, and the snapshot: the holdout factor before
    /// row `snapshot_at`, or the whole holdout's when there were no more rows than that.
    pub fn finish(mut self) -> (Factor, Factor, Option<Vec<f64>>, Option<Factor>) {
        self.train.fold();
        self.holdout.fold();
        let snapshot = match (self.snapshot, self.snapshot_at) {
            (Some(s), _) => Some(s),
            (None, Some(_)) => Some(self.holdout.clone()),
            (None, None) => None,
        };
        (self.train, self.holdout, self.example, snapshot)
    }
}

/// Whether `kind` is fit from statistics (and its artifact carries them).
pub fn fits_from_statistics(kind: Kind) -> bool {
    matches!(kind, Kind::Linear | Kind::Ridge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::boston;
    use crate::model::{evaluate, is_holdout, kinds};
    use smartcore::linalg::basic::arrays::Array;

    fn names() -> Vec<String> {
        crate::data::FEATURES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn factors_of(rows: impl Iterator<Item = (usize, Vec<f64>)>) -> (Factor, Factor) {
        let (mut train, mut holdout) = (Factor::new(13), Factor::new(13));
        for (i, row) in rows {
            if is_holdout(i) {
                holdout.push(&row)
            } else {
                train.push(&row)
            }
        }
        (train, holdout)
    }

    #[test]
    fn linear_from_the_factor_is_smartcores_least_squares() {
        use smartcore::linear::linear_regression::*;
        let data = boston();
        let (train, holdout) = factors_of(data.rows.iter().map(|r| r.to_vec()).enumerate());
        let fitted = solve(Kind::Linear, &Params::default(), &train, &names()).unwrap();
        let (x, y) = data.select(|i| !is_holdout(i), &(0..13).collect::<Vec<_>>());
        let x = kinds::Matrix::new(y.len(), 13, x, false).unwrap();
        let params =
            LinearRegressionParameters::default().with_solver(LinearRegressionSolverName::QR);
        let sc = LinearRegression::fit(&x, &y, params).unwrap();
        let (intercept, coefficients) = fitted.linear().unwrap();
        assert!((intercept - sc.intercept()).abs() < 1e-8 * intercept.abs());
        // The holdout RMSE from the factor is the RMSE of the predictions.
        let (hx, hy) = data.select(is_holdout, &(0..13).collect::<Vec<_>>());
        let predicted = fitted.predict_rows(&hx, 13).unwrap();
        let (rmse, r2) = evaluate(&predicted, &hy);
        let (rmse2, r22) = holdout.evaluate(intercept, coefficients);
        assert!(
            close_rel(rmse, rmse2) && (r2 - r22).abs() < 1e-9,
            "{rmse} {rmse2}"
        );
    }

    #[test]
    fn ridge_from_the_factor_is_smartcores_ridge() {
        use smartcore::linear::ridge_regression::*;
        let data = boston();
        let (train, _) = factors_of(data.rows.iter().map(|r| r.to_vec()).enumerate());
        for alpha in [0.0, 1.0, 30.0] {
            let params = Params {
                alpha: Some(alpha),
                ..Params::default()
            };
            let fitted = solve(Kind::Ridge, &params, &train, &names()).unwrap();
            let (x, y) = data.select(|i| !is_holdout(i), &(0..13).collect::<Vec<_>>());
            let x = kinds::Matrix::new(y.len(), 13, x, false).unwrap();
            let sc = RidgeRegression::fit(
                &x,
                &y,
                RidgeRegressionParameters::default().with_alpha(alpha),
            )
            .unwrap();
            let (intercept, coefficients) = fitted.linear().unwrap();
            assert!(
                (intercept - sc.intercept()).abs() < 1e-7 * intercept.abs(),
                "alpha {alpha}: {intercept} vs {}",
                sc.intercept()
            );
            for (k, c) in coefficients.iter().enumerate() {
                let theirs = *sc.coefficients().get((k, 0));
                assert!(
                    (c - theirs).abs() < 1e-7 * c.abs().max(1e-3),
                    "{k}: {c} {theirs}"
                );
            }
        }
    }

    #[test]
    fn too_few_rows_and_a_constant_column_are_named() {
        let data = boston();
        let (train, _) = factors_of(data.rows.iter().take(10).map(|r| r.to_vec()).enumerate());
        let err = solve(Kind::Linear, &Params::default(), &train, &names()).unwrap_err();
        assert_eq!(
            err,
            SolveError::TooFewRows {
                rows: 8,
                unknowns: 14
            }
        );
        // CHAS is 0 in the first 100 rows.
        let (train, _) = factors_of(data.rows.iter().take(100).map(|r| r.to_vec()).enumerate());
        let err = solve(Kind::Linear, &Params::default(), &train, &names()).unwrap_err();
        assert_eq!(
            err,
            SolveError::Collinear {
                column: "CHAS".into()
            }
        );
    }

    #[test]
    fn a_factor_round_trips_through_json() {
        let data = boston();
        let (train, _) = factors_of(data.rows.iter().map(|r| r.to_vec()).enumerate());
        let back: Factor = serde_json::from_str(&serde_json::to_string(&train).unwrap()).unwrap();
        assert_eq!(back.rows(), 405);
        assert_eq!(back.folded(), train.folded());
    }
}
