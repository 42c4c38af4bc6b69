//! Rollouts (issue 11): what happens between "the candidate passed the quality gate and is
//! ready on the resting slot" and "all traffic is on it", and after. `[rollout]` in the config
//! ([`Settings`]) says which phases run; with its defaults none does, and a deploy moves all
//! traffic at once as it always did.
//!
//! In order, each phase optional:
//! 1. **waiting** (`promote = "manual"`): the deploy stops with the candidate ready and
//!    probed on the resting slot. Its intent stays behind in phase `waiting`
//!    (`crate::history::Intent`): a state that survives any restart, which `status` shows.
//!    Meanwhile a request with `X-Bluegreen-Preview: 1` from this host or `nginx.preview_from`
//!    reaches the resting slot through NGINX ([`preview`]). `bluegreen promote` runs the
//!    phases below; `bluegreen abort` drops the candidate: its slot goes back to the model it
//!    served before, so that `bluegreen rollback` still means "the previous model".
//! 2. **shadow** (`shadow_seconds`): NGINX mirrors live requests to the candidate (`mirror`,
//!    turned on by the file the site includes, `crate::switch::set_shadow`, and a reload).
//!    Clients get the active slot's answers only. The candidate predicts each mirrored row
//!    with its own model and with the active one and counts the difference, its errors and
//!    its latency (`crate::server::shadow`).
//! 3. **canary steps** (each `steps` share below 100, `step_seconds` each): the include lists
//!    both slots with upstream weights (`crate::switch::render_split`), and NGINX reloads. In
//!    switch mode "socket" this is refused by the config check: a split needs a reload at
//!    every step, which that mode exists to avoid (shadow and watch work in both modes).
//! 4. **switch**: all traffic to the candidate, as a deploy always did (`crate::deploy`).
//! 5. **watch** (`watch_seconds`): the new slot's error rate and p99 against the previous
//!    slot's from the deploy's (or promote's) start to the switch, when it answered enough
//!    requests then ([`metrics::MIN_REQUESTS`]), else over its whole life (`run::Baseline`).
//!
//! Between readings of the slots' `/metrics` ([`metrics`]) each phase is judged against
//! `max_error_rate`, `max_latency_ratio` and, for the shadow, `max_divergence`; it stops early
//! at a breach once the candidate has answered enough requests. A breach stops the rollout:
//! all traffic back on the previous slot (the mirror off), the candidate's slot back on its
//! previous model, the record `aborted` with every phase's figures ([`report`]).
//!
//! A phase in which fewer than [`metrics::MIN_REQUESTS`] requests reached the candidate, none
//! of them over a limit, has no evidence either way: it is *inconclusive*, and the rollout
//! stops as for a breach (record `inconclusive`, exit status 5), since without evidence
//! traffic must not move on (issue 11; Argo Rollouts does not promote on an inconclusive
//! analysis either). The trigger does not start the same rollout again; `bluegreen deploy`
//! does, once traffic flows. A candidate promoted by hand is not dropped then but waits again
//! on its slot, as after a promote that failed: nothing was found wrong with it, and the
//! operator decides again.
//!
//! **Crash consistency.** Before each phase the intent is written with the phase's name, so
//! that a process killed at any instant is finished by the next deploy, rollback, promote,
//! abort or status (`crate::deploy::Deployer::reconcile`): killed in the shadow or a canary
//! step, all traffic goes back to the previous slot (a promoted candidate then waits again;
//! an automatic one is dropped, to be deployed anew by the next trigger); killed in the switch
//! or the watch, the switch is completed; killed while dropping a candidate, the drop is
//! finished. The include stays the one fact about routing: the active slot, and during a
//! canary step the share of the other.
//!
//! Live accuracy ([`live`]) belongs to the same issue: how the active model does on the rows
//! `add-data` appends.

pub mod fault;
pub mod live;
pub mod metrics;
pub mod preview;
pub mod report;
mod run;
mod settings;

pub(crate) use run::Baseline;
pub use run::Signal;
pub use settings::{Promote, Settings};
