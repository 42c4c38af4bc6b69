//! The quality gate: may a candidate model replace the active one?
//!
//! A candidate is refused when a parameter of a linear model is not finite, when its
//! predictions are not finite, or when its RMSE is worse than the active model's by more than
//! the configured tolerance, both measured on the same rows. The two may be of any kinds:
//! changing the kind is an ordinary deploy that the gate judges (issue #9). The rows are the
//! holdout rows (every fifth) among the rows the *active* model learned from: rows that
//! existed before the candidate's new data, and that neither model was trained on, since
//! holdout rows never are (`model::train`). So the comparison is of two true holdout errors:
//! while the final models were also fit on the holdout, a model that memorises (a forest,
//! knn) scored near 0 on it and refused honest successors. New rows are left out on purpose:
//! if a batch of poisoned rows (a label of 1e9, say) were part of the comparison, both
//! models would look equally terrible on them and the poisoned candidate would pass.
//!
//! **Schema safety** (issue #9): a candidate whose features (names or order) or label differ
//! from the active model's changes what clients must send, or what the answer means. It is
//! refused unless the deploy says it is meant (`bluegreen deploy --allow-schema-change`); the
//! report records the change either way, and with it the history.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Schema};
use crate::model::kinds::Matrix;
use crate::model::stats::Factor;
use crate::model::{evaluate, is_holdout, Artifact};

/// The rows the gate compares on, the holdout rows among those the active model learned
/// from, as the gate gets them.
#[derive(Clone, Copy)]
pub enum Holdout<'a> {
    /// The data itself: any two models can be compared on it.
    Rows(&'a Dataset),
    /// The factor of those rows (`model::stats`): two linear models of the data's schema are
    /// compared on it without reading a row, since a linear model's squared residual over
    /// rows is `‖S θ̃‖²` (issue #10, part 2).
    Factor(&'a Factor),
}

/// The gate's decision, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Whether the candidate may replace the active model.
    pub passed: bool,
    /// Why, for people: the figures, or what is wrong.
    pub reason: String,
    /// The version the candidate was compared with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    /// The candidate's RMSE on the rows compared, if they were compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_rmse: Option<f64>,
    /// The active model's RMSE on the same rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_rmse: Option<f64>,
    /// `gate.tolerance` when it was judged.
    pub tolerance: f64,
    /// How many rows both were measured on.
    pub rows_compared: usize,
    /// The schema the candidate changes to, when it differs from the active model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<SchemaChange>,
}

/// A change of features or label between the active model and a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    /// The active model's schema.
    pub from: Schema,
    /// The candidate's.
    pub to: Schema,
}

impl std::fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "features {} → {}",
            self.from.features.join(","),
            self.to.features.join(",")
        )?;
        if self.from.label != self.to.label {
            write!(f, ", label {} → {}", self.from.label, self.to.label)?;
        }
        Ok(())
    }
}

/// Judges `candidate` against `active` on `holdout` (from the current training data). A
/// schema change passes only with `allow_schema_change`.
pub fn check(
    candidate: &Artifact,
    active: Option<&Artifact>,
    holdout: Holdout,
    tolerance: f64,
    allow_schema_change: bool,
) -> GateReport {
    let mut report = GateReport {
        passed: false,
        reason: String::new(),
        against: active.map(|a| a.version.clone()),
        candidate_rmse: None,
        active_rmse: None,
        tolerance,
        rows_compared: 0,
        schema_change: None,
    };
    if !candidate.is_finite() {
        report.reason = "a coefficient or the intercept is not a finite number".to_string();
        return report;
    }
    let Some(active) = active else {
        report.passed = true;
        report.reason = "no active model to compare with".to_string();
        return report;
    };
    if active.version == candidate.version {
        report.passed = true;
        report.reason = "the candidate is the active model".to_string();
        return report;
    }
    if candidate.schema() != active.schema() {
        let change = SchemaChange {
            from: active.schema(),
            to: candidate.schema(),
        };
        if !allow_schema_change {
            report.reason = format!(
                "its schema differs from {}'s ({change}), which changes what clients send; hint: if that is meant, deploy it with `bluegreen deploy --allow-schema-change`",
                active.version
            );
            report.schema_change = Some(change);
            return report;
        }
        report.schema_change = Some(change);
    }
    let (rows, compared) = match holdout {
        Holdout::Rows(data) => on_rows(candidate, active, data),
        Holdout::Factor(factor) => (factor.rows(), on_factor(candidate, active, factor)),
    };
    if rows == 0 {
        report.passed = true;
        report.reason = "no rows to compare on".to_string();
        return report;
    }
    let (candidate_rmse, active_rmse) = match compared {
        Ok(both) => both,
        Err(why) => {
            report.passed = report.schema_change.is_some();
            report.reason = if report.passed {
                format!("the schema change is allowed, and the two cannot be compared: {why}")
            } else {
                format!("the two models cannot be compared: {why}")
            };
            return report;
        }
    };
    report.rows_compared = rows;
    report.candidate_rmse = Some(candidate_rmse);
    report.active_rmse = Some(active_rmse);
    let limit = active_rmse * (1.0 + tolerance);
    if !candidate_rmse.is_finite() {
        report.reason = "the candidate's predictions are not finite".to_string();
    } else if candidate_rmse > limit {
        report.reason = format!(
            "RMSE {candidate_rmse:.4} on {rows} holdout rows is worse than {} ({active_rmse:.4}) by more than {:.0}% (limit {limit:.4})",
            active.version,
            tolerance * 100.0
        );
    } else {
        report.passed = true;
        report.reason = format!(
            "RMSE {candidate_rmse:.4} ({}) within {:.0}% of {} ({active_rmse:.4}, {}) on {rows} holdout rows",
            candidate.kind,
            tolerance * 100.0,
            active.version,
            active.kind,
        );
    }
    if rows == 1 {
        // The RMSE of one row is defined (its absolute error), though R² is not; the verdict
        // stands, and says how little it rests on.
        report.reason += " (a single holdout row, since every fifth row is held out: a weak comparison until there are more rows)";
    }
    report
}

/// Both RMSEs from the factor of the holdout rows; both models must be linear.
fn on_factor(
    candidate: &Artifact,
    active: &Artifact,
    factor: &Factor,
) -> Result<(f64, f64), String> {
    let rmse = |model: &Artifact| match model.fitted.linear() {
        Some((intercept, coefficients)) if coefficients.len() + 2 == factor.cols() => {
            Ok(factor.evaluate(intercept, coefficients).0)
        }
        _ => Err(format!(
            "{} is not a linear model of the holdout's {} features",
            model.version,
            factor.cols() - 2
        )),
    };
    Ok((rmse(candidate)?, rmse(active)?))
}

/// How many rows, and both RMSEs, predicted on the rows of `data`.
fn on_rows(
    candidate: &Artifact,
    active: &Artifact,
    data: &Dataset,
) -> (usize, Result<(f64, f64), String>) {
    let known = active.rows.min(data.rows.len());
    let mut keep: Box<dyn Fn(usize) -> bool> = Box::new(move |i| i < known && is_holdout(i));
    let mut rows = (0..known).filter(|&i| is_holdout(i)).count();
    if rows == 0 {
        keep = Box::new(move |i| i < known);
        rows = known;
    }
    let rmse = |model: &Artifact| -> Result<f64, String> {
        let columns = data
            .columns_of(&model.features, &model.label)
            .ok_or_else(|| {
                format!(
                    "the data ({}) lacks {}'s columns ({})",
                    data.schema.header(),
                    model.version,
                    model.schema().header()
                )
            })?;
        let (x, y) = data.select(&keep, &columns);
        let x = Matrix::new(y.len(), columns.len(), x, false).map_err(|e| e.to_string())?;
        let predicted = model.fitted.predict(&x).map_err(|e| e.to_string())?;
        Ok(evaluate(&predicted, &y).0)
    };
    let both = rmse(candidate).and_then(|c| Ok((c, rmse(active)?)));
    (rows, both)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Rows;
    use crate::model::tests::{boston, trained};
    use crate::model::{Fitted, Kind};

    fn with_rows(data: &Dataset, extra: &[[f64; 14]]) -> Dataset {
        let mut data = data.clone();
        for row in extra {
            data.rows.values.extend_from_slice(row);
        }
        data
    }

    const SAMPLES: [[f64; 14]; 2] = [
        [
            0.13004, 12.5, 8.87, 0.0, 0.592, 6.836, 72.9, 6.543, 5.0, 331.0, 15.2, 299.71, 13.1,
            12.9,
        ],
        [
            0.95204, 0.0, 8.14, 0.0, 0.882, 5.935, 87.2, 4.9013, 4.0, 301.0, 21.0, 452.87, 15.83,
            21.2,
        ],
    ];

    #[test]
    fn honest_new_rows_pass_and_poisoned_rows_are_refused() {
        let base = boston();
        let active = trained(&base, Kind::Linear, "v0001-a");
        assert!(check(&active, None, Holdout::Rows(&base), 0.1, false).passed);

        let data = with_rows(&base, &SAMPLES);
        let honest = trained(&data, Kind::Linear, "v0002-a");
        let report = check(&honest, Some(&active), Holdout::Rows(&data), 0.1, false);
        assert!(report.passed, "{report:?}");
        assert_eq!(report.rows_compared, 101);

        let mut poisoned = SAMPLES;
        for row in &mut poisoned {
            row[13] = 1e9;
        }
        let data = with_rows(&base, &poisoned);
        let bad = trained(&data, Kind::Linear, "v0003-a");
        let report = check(&bad, Some(&active), Holdout::Rows(&data), 0.1, false);
        assert!(!report.passed, "{report:?}");
        assert!(
            report.reason.contains("worse than v0001-a"),
            "{}",
            report.reason
        );
    }

    #[test]
    fn any_kind_is_judged_against_any_kind_on_the_same_rows() {
        let data = boston();
        let linear = trained(&data, Kind::Linear, "v0001-a");
        let forest = trained(&data, Kind::RandomForest, "v0002-a");
        let report = check(&forest, Some(&linear), Holdout::Rows(&data), 0.1, false);
        assert!(report.passed, "{report:?}");
        assert!(report.candidate_rmse < report.active_rmse, "{report:?}");
        let knn = trained(&data, Kind::Knn, "v0003-a");
        let report = check(&knn, Some(&forest), Holdout::Rows(&data), 0.1, false);
        assert!(
            !report.passed,
            "knn is far worse than a forest on Boston: {report:?}"
        );
        assert_eq!(report.rows_compared, 101);
    }

    #[test]
    fn a_schema_change_is_refused_unless_allowed_and_recorded_either_way() {
        let data = boston();
        let active = trained(&data, Kind::Linear, "v0001-a");
        // The same data with the first two features swapped: other order, same names.
        let mut swapped = data.clone();
        swapped.schema.features.swap(0, 1);
        let mut values = Vec::new();
        for row in data.rows.iter() {
            let mut row = row.to_vec();
            row.swap(0, 1);
            values.extend(row);
        }
        swapped.rows = Rows { width: 14, values };
        let candidate = trained(&swapped, Kind::Linear, "v0002-a");
        let report = check(
            &candidate,
            Some(&active),
            Holdout::Rows(&swapped),
            0.1,
            false,
        );
        assert!(!report.passed);
        assert!(
            report.reason.contains("--allow-schema-change"),
            "{}",
            report.reason
        );
        let change = report.schema_change.unwrap();
        assert!(
            change.to_string().starts_with("features CRIM,ZN,"),
            "{change}"
        );
        // Allowed: both are compared, each with its own columns, on the same rows.
        let report = check(
            &candidate,
            Some(&active),
            Holdout::Rows(&swapped),
            0.1,
            true,
        );
        assert!(report.passed, "{report:?}");
        assert!(report.schema_change.is_some());
        let (c, a) = (report.candidate_rmse.unwrap(), report.active_rmse.unwrap());
        assert!(
            (c - a).abs() < 1e-6,
            "the same model in another order: {c} vs {a}"
        );
    }

    #[test]
    fn non_finite_parameters_are_refused_even_without_an_active_model() {
        let data = boston();
        let mut candidate = trained(&data, Kind::Linear, "v0002-a");
        if let Fitted::Linear { coefficients, .. } =
            std::sync::Arc::get_mut(&mut candidate.fitted).unwrap()
        {
            coefficients[3] = f64::NAN;
        }
        let report = check(&candidate, None, Holdout::Rows(&data), 0.1, false);
        assert!(!report.passed);
        assert!(report.reason.contains("not a finite"));
    }
}
