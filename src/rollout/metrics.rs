//! What a rollout reads from the slots: their `/metrics`, before and after a window, and the
//! figures the difference gives (issue 11).
//!
//! A slot's counters only grow, so a window's figures are the difference of two readings:
//! requests and 5xx answers by status, and the latency histogram, whose p99 is read by linear
//! interpolation inside the bucket it falls in (buckets about ×1.5 apart, `crate::server`).
//! The shadow figures (`bluegreen_shadow_*`, `crate::server::shadow`) are read the same way.
//!
//! Two rules keep the latency comparison about the model and not about noise:
//! - a p99 below [`LATENCY_FLOOR_MS`] counts as that floor. On a busy host, two sub-millisecond
//!   figures differ by whatever the scheduler did; a model that takes milliseconds more shows;
//! - a side with fewer than [`MIN_REQUESTS`] requests in the window is not judged on latency
//!   (its p99 is then its slowest answer or so).
//!
//! The same minimum decides whether a phase can judge the candidate at all: with fewer
//! requests on the candidate and no breach among them, the phase is inconclusive and the
//! rollout stops (`crate::rollout::run`).

use std::io;
use std::time::Duration;

use crate::http;
use crate::switch::Endpoint;

/// The p99 floor, in milliseconds (see the module doc).
pub const LATENCY_FLOOR_MS: f64 = 1.0;
/// The fewest requests a phase needs on the candidate to judge it, and on either side to
/// compare latencies (issue 11).
///
/// Why 100: a p99 is the answer ranked 0.99·n of n, so below 100 answers it is the slowest
/// one, whatever happened to that single request, and a latency verdict would rest on it.
/// At 100 the p99 is the first figure that says something about the candidate's answers
/// rather than about one of them. It is a floor, not a proof: 0 errors in 100 answers bound
/// the candidate's true error rate below 3% only (the "rule of three", at 95% confidence),
/// so a phase that must tell 0.1% from 0.2% needs thousands of requests, which a longer
/// phase or more traffic gives. A phase with fewer requests and no breach among them is
/// inconclusive: the rollout stops as for a breach, as Argo Rollouts does not promote on an
/// analysis without data.
pub const MIN_REQUESTS: u64 = 100;

/// A latency histogram: cumulative counts by upper bound in seconds (the last is +Inf).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram(Vec<(f64, u64)>);

impl Histogram {
    fn minus(&self, earlier: &Histogram) -> Histogram {
        Histogram(
            self.0
                .iter()
                .map(|(le, n)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0, |(_, m)| *m);
                    (*le, n.saturating_sub(before))
                })
                .collect(),
        )
    }

    /// How many observations it holds.
    pub fn count(&self) -> u64 {
        self.0.last().map_or(0, |(_, n)| *n)
    }

    /// The `q` quantile in milliseconds, interpolated linearly inside its bucket; `None` when
    /// empty. One past the last finite bound counts as that bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut lower = (0.0, 0u64);
        for (le, n) in &self.0 {
            if *n as f64 >= rank {
                if le.is_infinite() {
                    return Some(lower.0 * 1e3);
                }
                let inside = (*n - lower.1) as f64;
                let share = if inside > 0.0 {
                    (rank - lower.1 as f64) / inside
                } else {
                    1.0
                };
                return Some((lower.0 + (le - lower.0) * share.clamp(0.0, 1.0)) * 1e3);
            }
            lower = (*le, *n);
        }
        Some(lower.0 * 1e3)
    }
}

/// One reading of a slot's `/metrics`: its live traffic, and its shadow figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Answers to live (not mirrored) requests.
    pub requests: u64,
    /// Of those, 5xx.
    pub errors: u64,
    pub latency: Histogram,
    pub shadow: ShadowReading,
    /// When the slot's counters began (`process_start_time_seconds`, seconds since the Unix
    /// epoch); two readings with different starts span a restart, so their difference is no
    /// window.
    pub started: Option<f64>,
}

/// The `bluegreen_shadow_*` figures of a reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowReading {
    pub requests: u64,
    pub errors: u64,
    pub rows: u64,
    pub divergence_sum: f64,
    /// The largest since the slot started: not a counter, so not a window's.
    pub divergence_max: f64,
    pub latency: Histogram,
}

/// Why a slot's metrics could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {endpoint}/metrics")]
pub struct ReadError {
    endpoint: Endpoint,
    #[source]
    source: io::Error,
}

impl Reading {
    /// Reads the slot at `endpoint`.
    pub fn of(endpoint: &Endpoint) -> Result<Reading, ReadError> {
        let fail = |source| ReadError {
            endpoint: endpoint.clone(),
            source,
        };
        let answer = http::request_to(endpoint, "GET", "/metrics", None, Duration::from_secs(2))
            .map_err(fail)?;
        if answer.status != 200 {
            return Err(fail(io::Error::other(format!(
                "it answered {}",
                answer.status
            ))));
        }
        Ok(Reading::parse(&String::from_utf8_lossy(&answer.body)))
    }

    /// Reads the Prometheus text a slot writes (`crate::server`); unknown lines are skipped.
    pub fn parse(text: &str) -> Reading {
        let mut reading = Reading::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (metric, labels) = match name.split_once('{') {
                Some((m, l)) => (m, l.trim_end_matches('}')),
                None => (name, ""),
            };
            let label = |key: &str| {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k == key).then(|| v.trim_matches('"').to_string())
                })
            };
            let le = || {
                label("le").and_then(|le| match le.as_str() {
                    "+Inf" => Some(f64::INFINITY),
                    other => other.parse().ok(),
                })
            };
            let count = value as u64;
            let s = &mut reading.shadow;
            match metric {
                "bluegreen_requests_total" => {
                    reading.requests += count;
                    if label("status").is_some_and(|s| s.starts_with('5')) {
                        reading.errors += count;
                    }
                }
                "bluegreen_request_duration_seconds_bucket" => {
                    if let Some(le) = le() {
                        reading.latency.0.push((le, count));
                    }
                }
                "process_start_time_seconds" => reading.started = Some(value),
                "bluegreen_shadow_requests_total" => s.requests = count,
                "bluegreen_shadow_errors_total" => s.errors = count,
                "bluegreen_shadow_rows_total" => s.rows = count,
                "bluegreen_shadow_divergence_sum" => s.divergence_sum = value,
                "bluegreen_shadow_divergence_max" => s.divergence_max = value,
                "bluegreen_shadow_duration_seconds_bucket" => {
                    if let Some(le) = le() {
                        s.latency.0.push((le, count));
                    }
                }
                _ => {}
            }
        }
        reading
    }

    /// The window from `earlier` to this reading.
    pub fn since(&self, earlier: &Reading) -> Reading {
        Reading {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            latency: self.latency.minus(&earlier.latency),
            shadow: ShadowReading {
                requests: self.shadow.requests.saturating_sub(earlier.shadow.requests),
                errors: self.shadow.errors.saturating_sub(earlier.shadow.errors),
                rows: self.shadow.rows.saturating_sub(earlier.shadow.rows),
                divergence_sum: (self.shadow.divergence_sum - earlier.shadow.divergence_sum)
                    .max(0.0),
                divergence_max: self.shadow.divergence_max,
                latency: self.shadow.latency.minus(&earlier.shadow.latency),
            },
            started: self.started,
        }
    }
}

/// The latency ratio of a candidate to its reference, with the floor and the minimum of
/// requests of the module doc; `None` when either side has too few requests.
pub fn latency_ratio(candidate: &Histogram, reference: &Histogram) -> Option<f64> {
    if candidate.count() < MIN_REQUESTS || reference.count() < MIN_REQUESTS {
        return None;
    }
    let c = candidate.quantile_ms(0.99)?.max(LATENCY_FLOOR_MS);
    let r = reference.quantile_ms(0.99)?.max(LATENCY_FLOOR_MS);
    Some(c / r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        bluegreen_requests_total{status=\"200\"} 990\n\
        bluegreen_requests_total{status=\"422\"} 5\n\
        bluegreen_requests_total{status=\"500\"} 5\n\
        bluegreen_request_duration_seconds_bucket{le=\"0.001\"} 900\n\
        bluegreen_request_duration_seconds_bucket{le=\"0.002\"} 980\n\
        bluegreen_request_duration_seconds_bucket{le=\"0.004\"} 1000\n\
        bluegreen_request_duration_seconds_bucket{le=\"+Inf\"} 1000\n\
        bluegreen_shadow_requests_total 40\n\
        bluegreen_shadow_errors_total 1\n\
        bluegreen_shadow_rows_total 80\n\
        bluegreen_shadow_divergence_sum 8\n\
        bluegreen_shadow_divergence_max 0.5\n";

    #[test]
    fn a_reading_holds_requests_errors_latency_and_shadow_figures() {
        let r = Reading::parse(TEXT);
        assert_eq!((r.requests, r.errors), (1000, 5));
        assert_eq!(r.latency.count(), 1000);
        // The 990th of 1000 falls halfway into the 2–4 ms bucket.
        assert!((r.latency.quantile_ms(0.99).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(r.shadow.rows, 80);
        assert_eq!(r.shadow.divergence_sum, 8.0);
        let window = r.since(&Reading::parse(
            "bluegreen_requests_total{status=\"200\"} 500\n\
             bluegreen_request_duration_seconds_bucket{le=\"0.001\"} 500\n\
             bluegreen_request_duration_seconds_bucket{le=\"+Inf\"} 500\n",
        ));
        assert_eq!((window.requests, window.errors), (500, 5));
        assert_eq!(window.latency.count(), 500);
        assert_eq!(Histogram::default().quantile_ms(0.99), None);
    }

    #[test]
    fn latency_is_judged_above_a_floor_and_on_enough_requests() {
        let fast = Reading::parse(TEXT).latency;
        let slow = Histogram(vec![(0.01, 0), (0.05, 1000), (f64::INFINITY, 1000)]);
        let ratio = latency_ratio(&slow, &fast).unwrap();
        assert!(ratio > 10.0, "{ratio}");
        // Both under the floor: equal.
        let tiny = Histogram(vec![(0.0001, 500), (0.0002, 1000), (f64::INFINITY, 1000)]);
        let tinier = Histogram(vec![(0.00005, 1000), (f64::INFINITY, 1000)]);
        assert_eq!(latency_ratio(&tiny, &tinier), Some(1.0));
        let few = Histogram(vec![(0.05, 10), (f64::INFINITY, 10)]);
        assert_eq!(latency_ratio(&few, &fast), None);
    }
}
