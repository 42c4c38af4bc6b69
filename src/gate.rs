//! The quality gate: may a candidate model replace the active one?
//!
//! A candidate is refused when any parameter is not finite, or when its RMSE is worse than the
//! active model's by more than the configured tolerance, both measured on the same rows. Those
//! rows are the holdout rows (every fifth) among the rows the *active* model was trained on:
//! rows that existed before the candidate's new data. New rows are left out on purpose: if a
//! batch of poisoned rows (a label of 1e9, say) were part of the comparison, both models would
//! look equally terrible on them and the poisoned candidate would pass.

use serde::{Deserialize, Serialize};

use crate::data::Row;
use crate::model::{evaluate, is_holdout, Artifact};

/// The gate's decision, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub passed: bool,
    pub reason: String,
    /// The version the candidate was compared with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_rmse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_rmse: Option<f64>,
    pub tolerance: f64,
    pub rows_compared: usize,
}

/// Judges `candidate` against `active` on `data` (the current training rows).
pub fn check(
    candidate: &Artifact,
    active: Option<&Artifact>,
    data: &[Row],
    tolerance: f64,
) -> GateReport {
    let mut report = GateReport {
        passed: false,
        reason: String::new(),
        against: active.map(|a| a.version.clone()),
        candidate_rmse: None,
        active_rmse: None,
        tolerance,
        rows_compared: 0,
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
    let known = &data[..active.rows.min(data.len())];
    let mut rows: Vec<&Row> = known
        .iter()
        .enumerate()
        .filter(|(i, _)| is_holdout(*i))
        .map(|(_, r)| r)
        .collect();
    if rows.is_empty() {
        rows = known.iter().collect();
    }
    report.rows_compared = rows.len();
    if rows.is_empty() {
        report.passed = true;
        report.reason = "no rows to compare on".to_string();
        return report;
    }
    let (candidate_rmse, _) = evaluate(|x| candidate.predict(x), &rows);
    let (active_rmse, _) = evaluate(|x| active.predict(x), &rows);
    report.candidate_rmse = Some(candidate_rmse);
    report.active_rmse = Some(active_rmse);
    let limit = active_rmse * (1.0 + tolerance);
    if !candidate_rmse.is_finite() {
        report.reason = "the candidate's predictions are not finite".to_string();
    } else if candidate_rmse > limit {
        report.reason = format!(
            "RMSE {candidate_rmse:.4} on {} holdout rows is worse than {} ({active_rmse:.4}) by more than {:.0}% (limit {limit:.4})",
            rows.len(),
            active.version,
            tolerance * 100.0
        );
    } else {
        report.passed = true;
        report.reason = format!(
            "RMSE {candidate_rmse:.4} within {:.0}% of {} ({active_rmse:.4}) on {} holdout rows",
            tolerance * 100.0,
            active.version,
            rows.len()
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{data, model};

    fn boston() -> Vec<Row> {
        data::parse_rows(&data::boston_csv(), "boston").unwrap()
    }

    fn trained(rows: &[Row], version: &str) -> Artifact {
        model::train(rows, "sha", version.to_string(), model::now_rfc3339()).unwrap()
    }

    #[test]
    fn honest_new_rows_pass_and_poisoned_rows_are_refused() {
        let mut rows = boston();
        let active = trained(&rows, "v0001-a");
        assert!(check(&active, None, &rows, 0.1).passed);

        rows.extend(data::parse_rows(&data::SAMPLE_ROWS.join("\n"), "t").unwrap());
        let honest = trained(&rows, "v0002-a");
        let report = check(&honest, Some(&active), &rows, 0.1);
        assert!(report.passed, "{report:?}");
        assert_eq!(report.rows_compared, 101);

        let mut poisoned = rows.clone();
        for row in poisoned.iter_mut().skip(506) {
            row[13] = 1e9;
        }
        let bad = trained(&poisoned, "v0003-a");
        let report = check(&bad, Some(&active), &poisoned, 0.1);
        assert!(!report.passed, "{report:?}");
        assert!(
            report.reason.contains("worse than v0001-a"),
            "{}",
            report.reason
        );
    }

    #[test]
    fn non_finite_parameters_are_refused_even_without_an_active_model() {
        let rows = boston();
        let mut candidate = trained(&rows, "v0002-a");
        candidate.coefficients[3] = f64::NAN;
        let report = check(&candidate, None, &rows, 0.1);
        assert!(!report.passed);
        assert!(report.reason.contains("not a finite"));
    }
}
