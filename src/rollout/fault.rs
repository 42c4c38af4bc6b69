//! A fault hook for tests only (issue 11): a slot that serves a given model answers errors,
//! or slows down after a number of predictions, so that the tests can show a canary stopped
//! and a watch rolling back.
//!
//! It is read from `BLUEGREEN_TEST_FAULT` by **debug builds only**: in a release build (what
//! `cargo deb`, `cargo install` and `bench/run` make) the code that reads the variable is not
//! compiled in, so no environment can switch a fault on in production. `cargo test` builds
//! the binary it runs in the debug profile, so the integration tests can. Chosen over a cargo
//! feature because a feature that the tests need must be enabled by whoever runs them, and a
//! plain `cargo test` would then skip or fail those tests.
//!
//! Form: `<version prefix>:errors-after=<n>` (after `n` predictions, each answers 500), or
//! `<version prefix>:slow-after=<n>:<ms>` (after `n` predictions, each takes `ms` longer).
//! A deploy probes a prediction before any traffic moves, so `n` = 1 makes a candidate that
//! passes its probe and fails afterwards.
//! Only a slot whose model version starts with the prefix is affected. Several faults, for
//! different versions, are separated by commas; a slot takes the first one that names its
//! version.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable a debug build reads.
pub const ENV: &str = "BLUEGREEN_TEST_FAULT";

/// What a faulty slot does.
// A release build never makes one (`Fault::for_model` is `None` there): its variants are
// dead by design, not by mistake.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ErrorsAfter { after: u64 },
    SlowAfter { after: u64, delay: Duration },
}

/// A fault armed in this slot.
#[derive(Debug)]
pub struct Fault {
    kind: Kind,
    predictions: AtomicU64,
}

/// What a prediction must do under the fault.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    Error,
    Delay(Duration),
}

impl Fault {
    /// The fault for a slot serving `version`, if the environment arms one (debug builds
    /// only; see the module doc).
    pub fn for_model(version: &str) -> Option<Fault> {
        #[cfg(debug_assertions)]
        {
            let specs = std::env::var(ENV).ok()?;
            let kind = specs.split(',').find_map(|spec| parse(spec, version))?;
            Some(Fault {
                kind,
                predictions: AtomicU64::new(0),
            })
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = version;
            None
        }
    }

    /// Counts a prediction and says what it must do.
    pub fn effect(&self) -> Effect {
        let n = self.predictions.fetch_add(1, Ordering::Relaxed);
        match self.kind {
            Kind::ErrorsAfter { after } if n >= after => Effect::Error,
            Kind::SlowAfter { after, delay } if n >= after => Effect::Delay(delay),
            _ => Effect::None,
        }
    }

    /// The fault in words, for the slot's log.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::ErrorsAfter { after } => {
                format!("after {after} predictions, each answers 500")
            }
            Kind::SlowAfter { after, delay } => {
                format!("after {after} predictions, each takes {delay:?} longer")
            }
        }
    }
}

#[cfg(debug_assertions)]
fn parse(spec: &str, version: &str) -> Option<Kind> {
    let (prefix, kind) = spec.split_once(':')?;
    if prefix.is_empty() || !version.starts_with(prefix) {
        return None;
    }
    match kind.split_once('=') {
        Some(("errors-after", after)) => Some(Kind::ErrorsAfter {
            after: after.parse().ok()?,
        }),
        Some(("slow-after", rest)) => {
            let (after, ms) = rest.split_once(':')?;
            Some(Kind::SlowAfter {
                after: after.parse().ok()?,
                delay: Duration::from_millis(ms.parse().ok()?),
            })
        }
        _ => None,
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn a_fault_names_its_model_and_kind() {
        assert_eq!(
            parse("v0002:errors-after=1", "v0002-20261129T000000Z"),
            Some(Kind::ErrorsAfter { after: 1 })
        );
        assert_eq!(
            parse("v0002:errors-after=1", "v0003-20261129T000000Z"),
            None
        );
        assert_eq!(
            parse("v0003:slow-after=5:40", "v0003-x"),
            Some(Kind::SlowAfter {
                after: 5,
                delay: Duration::from_millis(40)
            })
        );
        for bad in [
            "errors",
            ":errors-after=1",
            "v1:errors",
            "v1:explode",
            "v1:slow-after=5",
            "v1:slow-after=x:1",
        ] {
            assert_eq!(parse(bad, "v1-x"), None, "{bad}");
        }
        let fault = Fault {
            kind: Kind::SlowAfter {
                after: 1,
                delay: Duration::from_millis(3),
            },
            predictions: AtomicU64::new(0),
        };
        assert_eq!(fault.effect(), Effect::None);
        assert_eq!(fault.effect(), Effect::Delay(Duration::from_millis(3)));
    }
}
