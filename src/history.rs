//! The append-only history of deploys and rollbacks (`state_dir/deploys.jsonl`).
//!
//! One JSON object per line, appended under an exclusive `flock` in a single write, so
//! concurrent writers never interleave and a reader never sees half a record.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::gate::GateReport;
use crate::slot::Slot;

/// How a deploy or rollback ended.
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
}

/// One timed step of a deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub time: String,
    /// "deploy" or "rollback".
    pub action: String,
    pub outcome: Outcome,
    pub from_slot: Option<Slot>,
    pub to_slot: Option<Slot>,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
    pub steps: Vec<Step>,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Appends one record.
pub fn append(path: &Path, record: &Record) -> io::Result<()> {
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    let mut file =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
    let mut line = serde_json::to_vec(record).expect("a record serializes");
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_all()
}

/// The last `n` records, oldest first. Lines that do not parse are skipped, so a file
/// edited by hand cannot stop `status` from working.
pub fn last(path: &Path, n: usize) -> io::Result<Vec<Record>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut records: Vec<Record> = BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let skip = records.len().saturating_sub(n);
    Ok(records.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_reads_back_the_last_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        assert!(last(&path, 5).unwrap().is_empty());
        for i in 0..4 {
            let record = Record {
                time: format!("t{i}"),
                action: "deploy".into(),
                outcome: Outcome::Deployed,
                from_slot: Some(Slot::Blue),
                to_slot: Some(Slot::Green),
                from_version: None,
                to_version: Some(format!("v{i}")),
                gate: None,
                steps: vec![Step {
                    name: "gate".into(),
                    ms: 1.5,
                }],
                duration_ms: 2.0,
                reason: None,
            };
            append(&path, &record).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let got = last(&path, 2).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].time, "t2");
        assert_eq!(got[1].to_version.as_deref(), Some("v3"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"outcome\":\"deployed\""), "{text}");
    }
}
