//! The history (`state_dir/deploys.jsonl`) and everything that writes or reads a record.
//!
//! One JSON object per line, appended under an exclusive `flock` in a single write, so
//! concurrent writers never interleave and a reader never sees half a record. Every switch of
//! traffic (deploy, rollback, or a switch completed after its deploy was killed), every gate
//! refusal (by `train` or `deploy`), every failed or interrupted deploy is a record here: it
//! is the one history (PLAN.md, "History").
//!
//! A record is built while its action runs: [`Record::begin`] stamps the start and the slots
//! and versions, [`Record::step`] times each step, and [`Record::finish`] or [`Record::fail`]
//! closes it. While a deploy or rollback switches, the record in progress is also kept in the
//! *intent* file (`state_dir/run/deploy-intent.json`, written whole), together with how far
//! the switch got ([`Phase`]). A deploy killed at any instant leaves that file behind; the
//! next deploy, rollback or status finds it and finishes the record (issue 8 §6, see
//! `crate::deploy`).

use std::collections::HashSet;
use std::error::Error;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::gate::GateReport;
use crate::model;
use crate::rollout::live::LiveAccuracy;
use crate::rollout::report::{PhaseReport, PhaseSoFar};
use crate::slot::Slot;

/// Why the history or the intent could not be read or written; the source is the OS error.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "cannot append to the history {path}; hint: free space there, or let this user write it"
    )]
    Append {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    // The `fs-err` source names the file and the operation.
    #[error("cannot read the history")]
    Read(#[source] io::Error),
    #[error("cannot {action} the deploy intent")]
    Intent {
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the deploy intent {path} is not one bluegreen wrote; hint: move it away, then check `bluegreen status` against what NGINX serves")]
    BadIntent {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `bluegreen deploy`: a model to the resting slot, then traffic to it.
    Deploy,
    /// `bluegreen rollback`: traffic back to the resting slot.
    Rollback,
    /// `bluegreen train`: recorded when the gate refused the new model, or the training
    /// failed (so that the automatic path never fails silently, issue 8 §7).
    Train,
    /// A trainer handing a model to its fleet: `fleet.on_new_model` (issue 13).
    Release,
    /// `bluegreen promote`: the rest of the rollout of a candidate that waited (issue 11).
    Promote,
    /// `bluegreen abort`: a waiting candidate dropped (issue 11).
    Abort,
    /// `bluegreen add-data`: the active model's RMSE on the rows just appended (issue 11).
    AddData,
}

impl Action {
    /// The name in the history file and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Rollback => "rollback",
            Action::Train => "train",
            Action::Release => "release",
            Action::Promote => "promote",
            Action::Abort => "abort",
            Action::AddData => "add-data",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Traffic now goes to the new slot.
    Deployed,
    /// Traffic went back to the resting slot.
    RolledBack,
    /// The quality gate refused the candidate; nothing changed.
    Refused,
    /// A step failed; traffic stayed on (or was put back on) the previous slot.
    Failed,
    /// The deploy or rollback was killed after it had begun to switch NGINX; the next
    /// deploy, rollback or status completed the switch. Traffic now goes to `to_slot`.
    Recovered,
    /// The deploy or rollback was killed before traffic moved; the next deploy, rollback or
    /// status made sure it stays on `from_slot`.
    Interrupted,
    /// Only in the intent file, while the action runs; never appended.
    InProgress,
    /// A trainer handed the model to its fleet: `fleet.on_new_model` succeeded (issue 13).
    Released,
    /// The candidate is ready and probed on the resting slot, and waits for `bluegreen
    /// promote` or `bluegreen abort` (`rollout.promote = "manual"`, issue 11).
    Waiting,
    /// The rollout stopped the candidate (a phase's analysis, or `bluegreen abort`): traffic
    /// is on `from_slot`, and `to_slot` is back on the model it served before (issue 11).
    Aborted,
    /// A rollout phase could not judge the candidate: too few requests reached it
    /// (`crate::rollout::metrics::MIN_REQUESTS`). Traffic is on `from_slot`, as after a
    /// breach; an automatic deploy's candidate is dropped as `Aborted`'s is, a promoted one
    /// waits again for `bluegreen promote` or `bluegreen abort` (issue 11).
    Inconclusive,
    /// A measurement that moved nothing: the live RMSE of `add-data` (issue 11).
    Measured,
}

impl Outcome {
    /// The name in the history file and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Recovered => "recovered",
            Outcome::Interrupted => "interrupted",
            Outcome::InProgress => "in-progress",
            Outcome::Released => "released",
            Outcome::Waiting => "waiting",
            Outcome::Aborted => "aborted",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Measured => "measured",
        }
    }

    /// True when traffic moved from `from_slot` to `to_slot`.
    pub fn switched(self) -> bool {
        matches!(
            self,
            Outcome::Deployed | Outcome::RolledBack | Outcome::Recovered
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One timed step of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub ms: f64,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the action began (UTC, RFC 3339 with milliseconds).
    pub time: String,
    pub action: Action,
    pub outcome: Outcome,
    pub from_slot: Option<Slot>,
    pub to_slot: Option<Slot>,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
    pub steps: Vec<Step>,
    pub duration_ms: f64,
    /// Why it failed, was refused, interrupted or recovered: the whole error chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every analysed phase of a rollout, with its figures (issue 11).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<PhaseReport>,
    /// `add-data`'s live accuracy of the active model (issue 11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveAccuracy>,
    /// Times the steps of the action in this process; a record read back has none.
    #[serde(skip)]
    clock: Option<Clock>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Clock {
    started: Instant,
    step_started: Instant,
}

impl Record {
    /// Starts the record of an action that moves traffic (or would) from one slot and model
    /// to another; its clock starts now.
    pub fn begin(
        action: Action,
        from: (Option<Slot>, Option<String>),
        to: (Option<Slot>, Option<String>),
    ) -> Record {
        let now = Instant::now();
        Record {
            time: model::now_rfc3339(),
            action,
            outcome: Outcome::InProgress,
            from_slot: from.0,
            to_slot: to.0,
            from_version: from.1,
            to_version: to.1,
            gate: None,
            steps: Vec::new(),
            duration_ms: 0.0,
            reason: None,
            rollout: Vec::new(),
            live: None,
            clock: Some(Clock {
                started: now,
                step_started: now,
            }),
        }
    }

    /// Records that step `name` ended now; it took the time since the previous step ended.
    /// A record read back from an intent file starts a new clock at its first step.
    /// Returns the step's milliseconds, for the log.
    pub fn step(&mut self, name: &str) -> f64 {
        let now = Instant::now();
        let clock = self.clock.get_or_insert(Clock {
            started: now,
            step_started: now,
        });
        let took = ms(now - clock.step_started);
        self.steps.push(Step {
            name: name.to_string(),
            ms: took,
        });
        clock.step_started = now;
        took
    }

    /// Closes the record with `outcome` and, for a refusal, an interruption or a
    /// recovery, why.
    pub fn finish(&mut self, outcome: Outcome, reason: Option<String>) {
        self.outcome = outcome;
        self.reason = reason;
        self.duration_ms = match self.clock {
            Some(clock) => ms(clock.started.elapsed()),
            None => self.steps.iter().map(|s| s.ms).sum(),
        };
    }

    /// Closes a record read back (its clock is gone) that a reconcile finishes now: its
    /// duration runs from [`Record::time`] until now, when the action really ended (a
    /// promote killed mid-phase, whose candidate waits again from now on).
    pub fn finish_now(&mut self, outcome: Outcome, reason: Option<String>) {
        self.finish(outcome, reason);
        if let Some(start) = self.began() {
            let ms = (time::OffsetDateTime::now_utc() - start).whole_microseconds() as f64 / 1e3;
            self.duration_ms = self.duration_ms.max(ms);
        }
    }

    /// When the action ended: [`Record::time`] plus [`Record::duration_ms`], in the same form
    /// (RFC 3339, UTC, milliseconds); `time` itself if it cannot be read as RFC 3339.
    pub fn ended(&self) -> String {
        self.began()
            .map(|start| start + time::Duration::milliseconds(self.duration_ms.round() as i64))
            .map_or_else(|| self.time.clone(), crate::model::rfc3339)
    }

    /// [`Record::time`] read back, if it is RFC 3339.
    fn began(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339).ok()
    }

    /// Closes the record as failed at `step`, with the whole chain of `error` as the reason,
    /// so the history keeps the real cause (issue 8 §8).
    pub fn fail(&mut self, step: &str, error: &dyn Error) {
        self.finish(Outcome::Failed, Some(format!("{step}: {}", chain(error))));
    }

    /// True when `other` is this same action (the same start, action and target).
    fn same_action(&self, other: &Record) -> bool {
        self.time == other.time && self.action == other.action && self.to_slot == other.to_slot
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// An error and its sources, joined by ": " as `{:#}` prints an `anyhow` chain.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Appends one record, as one line. A line a killed writer left unfinished (no line end) is
/// ended first, so that the record does not join it: Linux lets a fatal signal cut a write
/// to a file short (`generic_perform_write` stops on `fatal_signal_pending`), so a
/// `kill -9` during an append can leave part of a line, which readers skip.
pub fn append(path: &Path, record: &Record) -> Result<(), HistoryError> {
    let fail = |source| HistoryError::Append {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(fail)?;
    let mut file =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| fail(io::Error::from(e)))?;
    let mut line = Vec::new();
    if file.metadata().map_err(fail)?.len() > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1)).map_err(fail)?;
        file.read_exact(&mut last).map_err(fail)?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    line.extend(serde_json::to_vec(record).expect("a record serializes"));
    line.push(b'\n');
    file.write_all(&line).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Every record, oldest first. Lines that do not parse are skipped, so a file edited by
/// hand cannot stop `status` from working.
pub fn read_all(path: &Path) -> Result<Vec<Record>, HistoryError> {
    let file = match fs_err::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(HistoryError::Read(source)),
    };
    Ok(BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// The recent records, oldest first: at least the last `n`, and every record that began at
/// or after `since` (an RFC 3339 time as [`Record::time`] holds it). Only those lines are
/// parsed, so the cost follows what is asked for, not the length of the history.
pub fn recent(path: &Path, n: usize, since: Option<&str>) -> Result<Vec<Record>, HistoryError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(HistoryError::Read(source)),
    };
    let mut records = Vec::new();
    for line in text.lines().rev() {
        let Ok(record) = serde_json::from_str::<Record>(line) else {
            continue;
        };
        let old = since.is_none_or(|t| record.time.as_str() < t);
        if records.len() >= n && old {
            break;
        }
        records.push(record);
    }
    records.reverse();
    Ok(records)
}

/// The newest record that `wanted` accepts, read from the end of the history a block at a
/// time (so its cost follows how far back that record is, not the history's length: the
/// dashboard asks for it every few seconds).
pub fn newest(
    path: &Path,
    wanted: impl Fn(&Record) -> bool,
) -> Result<Option<Record>, HistoryError> {
    const BLOCK: u64 = 64 * 1024;
    let fail = HistoryError::Read;
    let mut file = match fs_err::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let mut end = file.metadata().map_err(fail)?.len();
    // The start of a line whose beginning lies before the block read last.
    let mut carry: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        file.seek(SeekFrom::Start(start)).map_err(fail)?;
        let mut block = Vec::with_capacity((end - start) as usize + carry.len());
        (&mut file)
            .take(end - start)
            .read_to_end(&mut block)
            .map_err(fail)?;
        block.extend_from_slice(&carry);
        // Unless the block starts the file, its first line may begin in the block before.
        let whole = match start {
            0 => 0,
            _ => match block.iter().position(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => block.len(),
            },
        };
        for line in block[whole..].rsplit(|b| *b == b'\n') {
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                if wanted(&record) {
                    return Ok(Some(record));
                }
            }
        }
        block.truncate(whole);
        carry = block;
        end = start;
    }
    Ok(None)
}

/// The last `n` records, oldest first.
pub fn last(path: &Path, n: usize) -> Result<Vec<Record>, HistoryError> {
    recent(path, n, None)
}

/// The last `n` records as the file holds them, oldest first, each as plain JSON: fields a
/// later bluegreen adds (rollout steps, live accuracy; issue 11) are kept, and a record whose
/// action this build does not know is kept too, so a reader such as the dashboard can show
/// whatever the history holds. Only the last `max_bytes` of the file are read, so the cost
/// does not grow with the history; `truncated` says whether older records were left out.
pub fn tail(path: &Path, n: usize, max_bytes: u64) -> Result<Tail, HistoryError> {
    let fail = HistoryError::Read;
    let mut file = match fs_err::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::default()),
        Err(e) => return Err(fail(e)),
    };
    let len = file.metadata().map_err(fail)?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start)).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(len - start)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    // The first line may be the end of one cut in two; the last may be half written.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let first = match start {
        0 => 0,
        _ => bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(complete, |i| i + 1),
    };
    let mut records: Vec<serde_json::Value> = bytes[first.min(complete)..complete]
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    let truncated = start > 0 || records.len() > n;
    records.drain(..records.len().saturating_sub(n));
    Ok(Tail { records, truncated })
}

/// What [`tail`] read.
#[derive(Debug, Default, Serialize)]
pub struct Tail {
    /// The records, oldest first.
    pub records: Vec<serde_json::Value>,
    /// True when the history holds older records than these.
    pub truncated: bool,
}

/// Versions that an operator or the gate has settled, so that the automatic path must not
/// deploy them again by itself: versions traffic was moved away from (a rollback, or a
/// deploy of another model), versions a deploy was refused for, and candidates a rollout
/// stopped, for a breach or for want of traffic to judge them (issue 11: the trigger would
/// otherwise start the same rollout again at every wake-up while traffic is short).
pub fn settled(records: &[Record]) -> HashSet<String> {
    records
        .iter()
        .filter_map(|r| match r.outcome {
            o if o.switched() => r.from_version.clone(),
            Outcome::Refused if r.action == Action::Deploy => r.to_version.clone(),
            Outcome::Aborted | Outcome::Inconclusive => r.to_version.clone(),
            _ => None,
        })
        .collect()
}

/// How far a deploy or rollback got with the switch, as its intent file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The resting slot is being pointed at the new model and restarted; NGINX is untouched.
    Restart,
    /// The target slot was probed; the include may have been rewritten, NGINX may have been
    /// told to reload, and may have reloaded.
    Switch,
    /// Not a switch in progress but a state: the candidate is ready on the resting slot and
    /// waits for `bluegreen promote` or `bluegreen abort` (issue 11). No process runs it; the
    /// intent's record is finished, and in the history once reconciled.
    Waiting,
    /// NGINX mirrors live requests to the candidate, or is being told to (issue 11).
    Shadow,
    /// The include splits traffic between the slots by weight, or is being written to
    /// (issue 11).
    Canary,
    /// All traffic is on the target, which is being watched (issue 11).
    Watch,
    /// The candidate is being dropped: traffic back on the previous slot, and the target
    /// slot back on its previous model (issue 11).
    Abort,
}

/// A switch in progress, written whole before each phase begins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub phase: Phase,
    /// The process that runs the switch (for messages only; the deploy lock says whether
    /// it still runs).
    pub pid: u32,
    /// The record so far, with the steps that ended.
    pub record: Record,
    /// The model the target slot's link named before the deploy touched it.
    pub target_link_before: Option<String>,
    /// The rollout is promoted by hand (`rollout.promote = "manual"`): a promote that is
    /// interrupted before traffic moved goes back to waiting (issue 11).
    #[serde(default)]
    pub manual: bool,
    /// The rollout phase that runs now and its figures so far, rewritten at every reading
    /// of the slots; `None` between phases (issue 11). Never part of the record: the
    /// history keeps only judged phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub so_far: Option<PhaseSoFar>,
}

impl Intent {
    /// Writes the intent whole (temp file, fsync, rename, fsync the folder).
    pub fn write(&self, path: &Path) -> Result<(), HistoryError> {
        let json = serde_json::to_vec_pretty(self).expect("an intent serializes");
        fsutil::write_atomic(path, &json).map_err(|source| HistoryError::Intent {
            action: "write",
            source,
        })
    }

    /// The intent left at `path`, if any.
    pub fn read(path: &Path) -> Result<Option<Intent>, HistoryError> {
        let bytes = match fs_err::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HistoryError::Intent {
                    action: "read",
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| HistoryError::BadIntent {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Removes the intent once its record is in the history, durably.
    pub fn clear(path: &Path) -> Result<(), HistoryError> {
        let fail = |source| HistoryError::Intent {
            action: "remove",
            source,
        };
        match fs_err::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fail(e)),
        }
        fsutil::sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(fail)
    }

    /// True when `records` already hold this intent's record: the action was killed after
    /// it appended the record and before it removed the intent.
    pub fn is_recorded(&self, records: &[Record]) -> bool {
        records.iter().any(|r| r.same_action(&self.record))
    }
}

/// Gate refusals recorded in the history, by the command that asked for the model, and
/// failed trainings: the counters `bluegreen_gate_refusals_total` and
/// `bluegreen_training_failures_total` on every slot's `/metrics` (issue 8 §7); and the
/// newest live accuracy, for `bluegreen_live_rmse*` (issue 11). A slot keeps them current
/// with [`RefusalTail`], off the request path.
#[derive(Debug, Default)]
pub struct RefusalCount {
    train: AtomicU64,
    deploy: AtomicU64,
    /// The last live accuracy in the history (issue 11), for `bluegreen_live_rmse*`.
    live: std::sync::Mutex<Option<LiveAccuracy>>,
    failed_trainings: AtomicU64,
}

impl RefusalCount {
    /// `(action, refusals)` for `train` and `deploy`.
    pub fn by_action(&self) -> [(&'static str, u64); 2] {
        [
            ("train", self.train.load(Ordering::Relaxed)),
            ("deploy", self.deploy.load(Ordering::Relaxed)),
        ]
    }

    /// The last live accuracy the history holds (issue 11).
    pub fn live(&self) -> Option<LiveAccuracy> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Trainings that failed (`train` records with the outcome `failed`).
    pub fn failed_trainings(&self) -> u64 {
        self.failed_trainings.load(Ordering::Relaxed)
    }
}

/// Reads the history as it grows and counts its refusals and failed trainings, and keeps its
/// newest live accuracy, into a [`RefusalCount`]: each [`RefusalTail::refresh`] reads only
/// the bytes appended since the last one.
pub struct RefusalTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    train: u64,
    deploy: u64,
    live: Option<LiveAccuracy>,
    failed_trainings: u64,
}

impl RefusalTail {
    /// Counts the history at `path`, from its start at the first refresh.
    pub fn new(path: &Path) -> RefusalTail {
        RefusalTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            train: 0,
            deploy: 0,
            live: None,
            failed_trainings: 0,
        }
    }

    /// Counts the records appended since the last call and publishes the totals. A file that
    /// shrank (replaced by hand) is counted again from its start.
    pub fn refresh(&mut self, into: &RefusalCount) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let fail = HistoryError::Read;
        let mut file = match fs_err::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(fail(e)),
        };
        let len = file.metadata().map_err(fail)?.len();
        if len < self.offset {
            *self = RefusalTail::new(&path);
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(fail)?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).map_err(fail)?;
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let complete = self
            .partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in self.partial[..complete].split(|b| *b == b'\n') {
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                match (record.outcome, record.action) {
                    (Outcome::Refused, Action::Train) => self.train += 1,
                    (Outcome::Refused, _) => self.deploy += 1,
                    (Outcome::Failed, Action::Train) => self.failed_trainings += 1,
                    _ => {}
                }
                if record.live.is_some() {
                    self.live = record.live;
                }
            }
        }
        self.partial.drain(..complete);
        into.train.store(self.train, Ordering::Relaxed);
        into.deploy.store(self.deploy, Ordering::Relaxed);
        if self.live.is_some() {
            *into.live.lock().unwrap_or_else(|e| e.into_inner()) = self.live.clone();
        }
        into.failed_trainings
            .store(self.failed_trainings, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, outcome: Outcome, action: Action) -> Record {
        let mut r = Record::begin(
            action,
            (Some(Slot::Blue), Some(format!("v{i}"))),
            (Some(Slot::Green), Some(format!("v{}", i + 1))),
        );
        r.step("gate");
        r.finish(outcome, None);
        r
    }

    /// A record appended after a line a killed writer left unfinished is read back whole:
    /// before, it joined that line and both were lost (`faults::deploy_kill` saw a switch
    /// the history did not hold).
    #[test]
    fn a_record_appended_after_a_torn_line_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploys.jsonl");
        let first = record(1, Outcome::Deployed, Action::Deploy);
        append(&path, &first).unwrap();
        let whole = serde_json::to_string(&first).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&whole.as_bytes()[..whole.len() / 2])
            .unwrap();
        let second = record(2, Outcome::Recovered, Action::Rollback);
        append(&path, &second).unwrap();
        let read = read_all(&path).unwrap();
        assert_eq!(read.len(), 2, "{}", std::fs::read_to_string(&path).unwrap());
        assert_eq!(read[1].action, Action::Rollback);
        assert_eq!(read[1].outcome, Outcome::Recovered);
    }

    #[test]
    fn appends_and_reads_back_the_last_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        assert!(last(&path, 5).unwrap().is_empty());
        for i in 0..4 {
            append(&path, &record(i, Outcome::Deployed, Action::Deploy)).unwrap();
        }
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let got = last(&path, 2).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].from_version.as_deref(), Some("v2"));
        assert_eq!(got[1].to_version.as_deref(), Some("v4"));
        assert_eq!(got[1].steps[0].name, "gate");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"outcome\":\"deployed\""), "{text}");
        assert!(text.contains("\"action\":\"deploy\""), "{text}");
    }

    #[test]
    fn newest_finds_the_newest_accepted_record_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        assert!(newest(&path, |_| true).unwrap().is_none());
        // Records of about 200 bytes: 2,000 of them span several 64 KiB blocks, so lines are
        // cut at block edges.
        for i in 0..2000 {
            append(&path, &record(i, Outcome::Deployed, Action::Deploy)).unwrap();
        }
        let version = |r: Option<Record>| r.and_then(|r| r.from_version);
        assert!(std::fs::metadata(&path).unwrap().len() > 3 * 64 * 1024);
        assert_eq!(
            version(newest(&path, |_| true).unwrap()).as_deref(),
            Some("v1999")
        );
        for i in [0, 1, 7, 321, 1000, 1998] {
            let wanted = format!("v{i}");
            let found = newest(&path, |r| {
                r.from_version.as_deref() == Some(wanted.as_str())
            });
            assert_eq!(version(found.unwrap()), Some(wanted));
        }
        assert!(newest(&path, |r| r.action == Action::Abort)
            .unwrap()
            .is_none());
    }

    #[test]
    fn recent_reads_back_to_a_time_and_at_least_n_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        for (i, time) in ["t1", "t2", "t3", "t4"].iter().enumerate() {
            let mut r = record(i, Outcome::Deployed, Action::Deploy);
            r.time = time.to_string();
            append(&path, &r).unwrap();
        }
        let times = |records: Vec<Record>| records.into_iter().map(|r| r.time).collect::<Vec<_>>();
        assert_eq!(
            times(recent(&path, 1, Some("t2")).unwrap()),
            ["t2", "t3", "t4"]
        );
        assert_eq!(
            times(recent(&path, 3, Some("t4")).unwrap()),
            ["t2", "t3", "t4"]
        );
        assert_eq!(times(recent(&path, 2, None).unwrap()), ["t3", "t4"]);
    }

    #[test]
    fn a_failure_keeps_the_whole_chain_of_its_cause() {
        let mut r = record(1, Outcome::InProgress, Action::Deploy);
        let cause = HistoryError::Append {
            path: PathBuf::from("/x/deploys.jsonl"),
            source: io::Error::from_raw_os_error(28),
        };
        r.fail("include", &cause);
        assert_eq!(r.outcome, Outcome::Failed);
        let reason = r.reason.unwrap();
        assert!(
            reason.starts_with("include: cannot append to the history /x/deploys.jsonl; hint: "),
            "{reason}"
        );
        assert!(reason.contains("os error 28"), "{reason}");
    }

    #[test]
    fn the_tail_keeps_unknown_records_and_reads_a_bounded_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        assert!(tail(&path, 10, 1 << 20).unwrap().records.is_empty());
        for i in 0..5 {
            append(&path, &record(i, Outcome::Deployed, Action::Deploy)).unwrap();
        }
        let future = r#"{"time":"t9","action":"rollout-step","outcome":"advanced","percent":50}"#;
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(format!("{future}\nnot json\n{{\"half").as_bytes())
            .unwrap();
        let all = tail(&path, 10, 1 << 20).unwrap();
        assert_eq!(all.records.len(), 6);
        assert!(!all.truncated);
        assert_eq!(all.records[5]["action"], "rollout-step");
        assert_eq!(all.records[5]["percent"], 50);
        let last2 = tail(&path, 2, 1 << 20).unwrap();
        assert!(last2.truncated);
        assert_eq!(last2.records[0]["to_version"], "v5");
        // A window that starts inside a record drops that record, not a half of it.
        let size = std::fs::metadata(&path).unwrap().len();
        let window = tail(&path, 10, size - 10).unwrap();
        assert!(window.truncated);
        assert_eq!(window.records.len(), 5, "{:?}", window.records);
        assert_eq!(window.records[0]["from_version"], "v1");
    }

    #[test]
    fn rolled_back_and_refused_versions_are_settled_failed_ones_are_not() {
        let records = vec![
            record(1, Outcome::RolledBack, Action::Rollback),
            record(5, Outcome::Refused, Action::Deploy),
            record(7, Outcome::Failed, Action::Deploy),
            record(9, Outcome::Refused, Action::Train),
        ];
        let settled = settled(&records);
        assert!(settled.contains("v1"), "{settled:?}");
        assert!(settled.contains("v6"), "{settled:?}");
        assert!(!settled.contains("v8"), "{settled:?}");
        assert!(!settled.contains("v10"), "{settled:?}");
    }

    #[test]
    fn an_intent_round_trips_and_knows_when_it_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("intent.json");
        assert_eq!(Intent::read(&path).unwrap(), None);
        let intent = Intent {
            phase: Phase::Switch,
            pid: 42,
            record: record(1, Outcome::InProgress, Action::Deploy),
            target_link_before: Some("v0".into()),
            manual: false,
            so_far: None,
        };
        intent.write(&path).unwrap();
        let back = Intent::read(&path).unwrap().unwrap();
        assert_eq!(back.phase, Phase::Switch);
        assert_eq!(back.record.time, intent.record.time);
        // Another deploy: it began at another time (records are told apart by their start,
        // which the deploy lock keeps distinct; two made in one test may share a millisecond).
        let mut other = record(3, Outcome::Deployed, Action::Deploy);
        other.time = "2000-01-01T00:00:00.000Z".into();
        assert!(!back.is_recorded(&[other]));
        let mut done = back.record.clone();
        done.finish(Outcome::Deployed, None);
        assert!(back.is_recorded(&[done]));
        Intent::clear(&path).unwrap();
        Intent::clear(&path).unwrap();
        assert_eq!(Intent::read(&path).unwrap(), None);
    }

    #[test]
    fn refusals_are_counted_as_the_history_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let count = RefusalCount::default();
        let mut tail = RefusalTail::new(&path);
        tail.refresh(&count).unwrap();
        assert_eq!(count.by_action(), [("train", 0), ("deploy", 0)]);
        append(&path, &record(1, Outcome::Refused, Action::Train)).unwrap();
        append(&path, &record(2, Outcome::Deployed, Action::Deploy)).unwrap();
        append(&path, &record(2, Outcome::Failed, Action::Train)).unwrap();
        append(&path, &record(2, Outcome::Failed, Action::Deploy)).unwrap();
        // Half a line, as a reader may see between two writes of another writer.
        let line = serde_json::to_string(&record(3, Outcome::Refused, Action::Deploy)).unwrap();
        let (head, rest) = line.split_at(20);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(head.as_bytes())
            .unwrap();
        tail.refresh(&count).unwrap();
        assert_eq!(count.by_action(), [("train", 1), ("deploy", 0)]);
        assert_eq!(count.failed_trainings(), 1);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(format!("{rest}\n").as_bytes())
            .unwrap();
        tail.refresh(&count).unwrap();
        assert_eq!(count.by_action(), [("train", 1), ("deploy", 1)]);
        std::fs::write(&path, "").unwrap();
        tail.refresh(&count).unwrap();
        assert_eq!(count.by_action(), [("train", 0), ("deploy", 0)]);
        assert_eq!(count.failed_trainings(), 0);
    }
}
