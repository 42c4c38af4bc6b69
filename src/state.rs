//! [`State`]: what a state folder says right now, read once per command.
//!
//! "Which slot is active, what does each slot's link name, which model is newest, which is
//! the newest that passed the gate, is a deploy pending" used to be worked out in five
//! places (train, deploy, status, init, up), each a little differently. This module is the
//! one place: a command reads a `State` once and asks it.
//!
//! The active slot is the one the NGINX include routes to: the slot it names, or, in switch
//! mode "socket", the one the link it names points at (`crate::switch`). The include is what
//! NGINX loads, and a deploy or rollback killed half-way, which may leave the two apart, is
//! reconciled before its successor reads a `State` (see `crate::deploy`), so they agree again.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::config::Config;
use crate::data::Schema;
use crate::history::{self, HistoryError, Intent, Phase, Record};
use crate::layout::Layout;
use crate::model::{parse_seq, Artifact, ModelError, Store};
use crate::slot::Slot;
use crate::switch::{self, Route, SwitchError};

/// Why the state folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot tell which slot is active")]
    Include(#[source] SwitchError),
    #[error("cannot read the {slot} slot's model link {path}")]
    Link {
        slot: Slot,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Models(#[from] ModelError),
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// A version asked for on the command line that names no stored model, or several.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("there are no models yet; hint: run `bluegreen train` (or `bluegreen init`)")]
    NoModels,
    #[error("there is no model {asked:?}; the stored models are {}; hint: name one of them, or a unique prefix such as `v0001`", list(.available))]
    Unknown {
        asked: String,
        available: Vec<String>,
    },
    #[error("{asked:?} names {} models: {}; hint: give more of the version", .matches.len(), list(.matches))]
    Ambiguous { asked: String, matches: Vec<String> },
}

fn list(versions: &[String]) -> String {
    versions.join(", ")
}

/// The state folder's facts, as read at one moment (see the module doc).
pub struct State {
    store: Store,
    route: Option<Route>,
    links: [Option<String>; 2],
    versions: Vec<String>,
    newest: Option<Artifact>,
    newest_passed: Option<Artifact>,
    skipped: Vec<ModelError>,
    history: Vec<Record>,
    /// The record of a candidate that waits for `bluegreen promote` (issue 11).
    waiting: Option<Record>,
}

fn index(slot: Slot) -> usize {
    match slot {
        Slot::Blue => 0,
        Slot::Green => 1,
    }
}

impl State {
    /// Reads the include, both links, the models (newest first, until one that passed the
    /// gate) and the history. A corrupt artifact is passed over and kept in
    /// [`State::skipped`], so one bad file cannot stop a command.
    pub fn read(config: &Config) -> Result<State, StateError> {
        let layout = Layout::new(&config.state_dir);
        let route = switch::route(config, &layout).map_err(StateError::Include)?;
        let mut links = [None, None];
        for slot in Slot::ALL {
            links[index(slot)] = layout
                .slot_version(slot)
                .map_err(|source| StateError::Link {
                    slot,
                    path: layout.slot_link(slot),
                    source,
                })?;
        }
        let store = Store::new(&layout.models_dir());
        let versions = store.versions()?;
        let (mut newest, mut newest_passed, mut skipped) = (None, None, Vec::new());
        // A plain deploy's gate refuses a model of another schema than the active one's (or,
        // before any deploy, than `[data]`'s), so such a model is never "the newest that
        // passed": an import from a host of other columns must not look pending.
        let active_version = route.and_then(|r| links[index(r.slot)].clone());
        let reference = match active_version.map(|v| store.load(&v)) {
            Some(Ok(active)) => active.schema(),
            _ => Schema::of(&config.data),
        };
        for version in versions.iter().rev() {
            let artifact = match store.load(version) {
                Ok(a) => a,
                Err(e @ ModelError::Corrupt { .. }) => {
                    skipped.push(e);
                    continue;
                }
                // Pruned by a deploy since the folder was listed.
                Err(ModelError::Read(source)) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            let passed =
                artifact.gate.as_ref().is_none_or(|g| g.passed) && artifact.schema() == reference;
            if newest.is_none() {
                newest = Some(artifact.clone());
            }
            if passed {
                newest_passed = Some(artifact);
                break;
            }
        }
        // Whether the newest model that passed is settled shows in records made since it was
        // trained; `status` shows the last five.
        let since = newest_passed
            .as_ref()
            .map(|a: &Artifact| a.trained_at.as_str());
        // The last five records of what was done, and all since: add-data's measurements
        // (issue 11) are left out.
        let mut history: Vec<Record> = history::recent(&layout.history(), 20, since)?
            .into_iter()
            .filter(|r| r.outcome != history::Outcome::Measured)
            .collect();
        let extra = history.len().saturating_sub(5);
        let older = history
            .iter()
            .take(extra)
            .take_while(|r| since.is_none_or(|t| r.time.as_str() < t))
            .count();
        history.drain(..older);
        // An intent that cannot be read is the reconcile's to report, not this reading's.
        let waiting = Intent::read(&layout.deploy_intent())
            .ok()
            .flatten()
            .filter(|i| i.phase == Phase::Waiting)
            .map(|i| i.record);
        Ok(State {
            waiting,
            store,
            route,
            links,
            versions,
            newest,
            newest_passed,
            skipped,
            history,
        })
    }

    /// The slot NGINX sends traffic to; `None` before `bluegreen init` wrote the include.
    pub fn active(&self) -> Option<Slot> {
        self.route.map(|r| r.slot)
    }

    /// The active slot, and the switch mode whose form the include has: it differs from the
    /// configured one until a mode change is applied (`bluegreen restart`).
    pub fn route(&self) -> Option<Route> {
        self.route
    }

    /// During a canary step (issue 11): the share of traffic (percent) the other slot gets.
    pub fn split(&self) -> Option<u8> {
        self.route.and_then(|r| r.split)
    }

    /// The candidate that waits for `bluegreen promote` or `bluegreen abort`, as its record
    /// says: slots, versions and when it was deployed (issue 11).
    pub fn waiting(&self) -> Option<&Record> {
        self.waiting.as_ref()
    }

    /// The version `slot`'s link names, if it has one.
    pub fn version(&self, slot: Slot) -> Option<&str> {
        self.links[index(slot)].as_deref()
    }

    /// The version the active slot's link names.
    pub fn active_version(&self) -> Option<&str> {
        self.active().and_then(|s| self.version(s))
    }

    /// The active slot's model, loaded (the gate compares candidates with it).
    pub fn active_model(&self) -> Result<Option<Artifact>, ModelError> {
        self.active_version()
            .map(|v| self.store.load(v))
            .transpose()
    }

    /// Every stored version, oldest first (corrupt ones included: they hold their number).
    pub fn versions(&self) -> &[String] {
        &self.versions
    }

    /// The newest model that can be read.
    pub fn newest(&self) -> Option<&Artifact> {
        self.newest.as_ref()
    }

    /// The newest model whose gate verdict, made when it was trained, was "passed", and whose
    /// schema is the active model's (or `[data]`'s before any deploy). This is what a plain
    /// `bluegreen deploy` deploys.
    pub fn newest_passed(&self) -> Option<&Artifact> {
        self.newest_passed.as_ref()
    }

    /// The model the automatic path should deploy, if any: the newest that passed the gate
    /// when it is newer than the active slot's model and no one has settled it. A version is
    /// settled once traffic was moved away from it (a rollback or a deploy of another model)
    /// or a deploy of it was refused: the automatic path must not undo an operator's choice.
    /// A deploy that was killed or failed settles nothing, so it is retried at the next
    /// trigger (issue 8 §7).
    pub fn pending(&self) -> Option<&Artifact> {
        let candidate = self.newest_passed.as_ref()?;
        let active = self.active_version();
        let newer = active.is_none_or(|v| parse_seq(v).is_none_or(|seq| candidate.seq() > seq));
        let settled: HashSet<String> = history::settled(&self.history);
        // A candidate that waits for an operator is not the trigger's to deploy (issue 11).
        (self.route.is_some()
            && self.waiting.is_none()
            && newer
            && !settled.contains(&candidate.version))
        .then_some(candidate)
    }

    /// Corrupt artifacts that [`State::read`] passed over.
    pub fn skipped(&self) -> &[ModelError] {
        &self.skipped
    }

    /// The recent history, oldest first: the last five records, and every one made since
    /// the newest model that passed the gate was trained.
    pub fn history(&self) -> &[Record] {
        &self.history
    }

    /// The stored version that `asked` names: the version itself, or a prefix of exactly
    /// one (`v0001` for `v0001-20261126T214415Z`).
    pub fn resolve(&self, asked: &str) -> Result<&str, ResolveError> {
        if let Some(v) = self.versions.iter().find(|v| *v == asked) {
            return Ok(v);
        }
        let matches: Vec<&String> = self
            .versions
            .iter()
            .filter(|v| v.starts_with(asked))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] if self.versions.is_empty() => Err(ResolveError::NoModels),
            [] => Err(ResolveError::Unknown {
                asked: asked.to_string(),
                available: self.versions.clone(),
            }),
            many => Err(ResolveError::Ambiguous {
                asked: asked.to_string(),
                matches: many.iter().map(|v| v.to_string()).collect(),
            }),
        }
    }

    /// Loads a stored model by its exact version.
    pub fn load(&self, version: &str) -> Result<Artifact, ModelError> {
        self.store.load(version)
    }
}
