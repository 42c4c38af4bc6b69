//! The data file's ledger: what the sanctioned writer (`add-data`) did to the data file, so
//! that a training or `status` can tell what changed without reading the file (issue #10,
//! part 2).
//!
//! **How a change is detected.** `add-data` is the only sanctioned writer, and it appends
//! under an exclusive lock. After each append (and `train` after each full pass) the ledger,
//! `state_dir/run/data-ledger.json`, is written whole with the data file's state: its device
//! and inode, size, modification and status-change times in nanoseconds, rows and lines, the
//! SHA-256 state after its last byte, and a list of checkpoints: the lengths the file had at
//! the ledgered points, each with its rows and the SHA-256 of the file up to there. A reader
//! that finds the file's state (`fstat`) equal to the ledger's knows that nothing but
//! ledgered appends happened since each checkpoint was taken:
//! - an edit, a removal or a reorder writes the file, which changes its modification and
//!   status-change times even when the size stays the same; the status-change time (ctime)
//!   cannot be set back by any program (`touch` sets the other two and so changes it), and
//!   Linux gives a change made after a `stat` a new ctime (multigrain timestamps, Linux
//!   6.13; earlier kernels tick every few milliseconds, so only a same-size edit within one
//!   tick of an append's own write could keep all three);
//! - a file replaced by another (an editor's save by rename, `init`) has another inode;
//! - the appended bytes themselves are hashed again when a training reads them, and the
//!   SHA-256 must come out as the ledger says, so even such an edit inside them is seen.
//!
//! So a model whose `(data_bytes, data_sha256)` is one of the checkpoints learned from a
//! prefix of the file as it is now, and the rows after it are the appended ones. Anything
//! else — no ledger, another state, a model from before the checkpoints — is found out the
//! old way, by one pass over the file with the full hash (`data::scan`), after which the
//! ledger starts again from what that pass saw.
//!
//! The ledger is a cache of facts anyone can check against the file: losing it, or finding
//! it unreadable, costs one full pass, never a wrong answer.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use fs_err::File;
use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256};

use crate::data::{Learned, Since};
use crate::fsutil;

/// Checkpoints kept: the oldest model that can still learn incrementally is this many
/// appends back (with the default batch of 2, about 128 trainings).
const CHECKPOINTS: usize = 256;

/// What `fstat` says of the data file: what any write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Device and inode: another file after a rename over it.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
    /// Length in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Last status change (any write, `touch`, `chmod`), nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl FileState {
    /// The state of an open file; an error names it (`fs-err`).
    pub fn of(file: &File) -> io::Result<FileState> {
        Ok(FileState::from(&file.metadata()?))
    }
}

impl From<&Metadata> for FileState {
    fn from(m: &Metadata) -> FileState {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileState {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A length the file had, with what it held up to there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Bytes from the start, header included; always the end of a line.
    pub bytes: u64,
    /// Data rows in them.
    pub rows: usize,
    /// Lines in them (the header, rows and any blank line), for the line numbers of errors.
    pub lines: u64,
    /// SHA-256 of those bytes, in hex.
    pub sha256: String,
}

/// The ledger (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// The data file's state after the last write the ledger knows of.
    pub file: FileState,
    /// The SHA-256 state after the file's last byte ([`state_hex`]), so an append hashes
    /// only its own bytes.
    pub sha256_state: String,
    /// Oldest first; the last is the file's end.
    pub checkpoints: Vec<Checkpoint>,
}

/// The SHA-256 state `sha` as text (digest's serialized state, hex).
pub fn state_hex(sha: &Sha256) -> String {
    hex::encode(sha.serialize())
}

/// The SHA-256 state that [`state_hex`] wrote, if `text` is one.
pub fn resume(text: &str) -> Option<Sha256> {
    let bytes = hex::decode(text).ok()?;
    let state = SerializedState::<Sha256>::try_from(&bytes[..]).ok()?;
    Sha256::deserialize(&state).ok()
}

/// The hex digest of a state, without consuming it.
pub fn digest_hex(sha: &Sha256) -> String {
    hex::encode(sha.clone().finalize())
}

impl Ledger {
    /// A ledger that starts at `end`, with `earlier` checkpoints before it that a full pass
    /// verified (the newest model's data, when it is still the file's beginning).
    pub fn start(
        file: FileState,
        sha: &Sha256,
        earlier: Vec<Checkpoint>,
        end: Checkpoint,
    ) -> Ledger {
        let mut checkpoints = earlier;
        checkpoints.retain(|c| c.bytes < end.bytes);
        checkpoints.push(end);
        Ledger {
            file,
            sha256_state: state_hex(sha),
            checkpoints,
        }
    }

    /// The ledger at `path`; `None` when there is none or it cannot be read, which only
    /// costs a full pass (see the module doc).
    pub fn read(path: &Path) -> Option<Ledger> {
        let bytes = std::fs::read(path).ok()?;
        let ledger: Ledger = serde_json::from_slice(&bytes).ok()?;
        (!ledger.checkpoints.is_empty() && resume(&ledger.sha256_state).is_some()).then_some(ledger)
    }

    /// Writes it whole (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        fsutil::write_atomic(
            path,
            &serde_json::to_vec(self).expect("a ledger serializes"),
        )
    }

    /// The file's end as the ledger knows it.
    pub fn end(&self) -> &Checkpoint {
        self.checkpoints.last().expect("a ledger has a checkpoint")
    }

    /// Whether the file is in the state the ledger recorded last.
    pub fn matches(&self, now: &FileState) -> bool {
        self.file == *now
    }

    /// The checkpoint that `learned` learned from, if it is one.
    pub fn find(&self, learned: &Learned) -> Option<&Checkpoint> {
        let bytes = learned.bytes?;
        self.checkpoints
            .iter()
            .find(|c| c.bytes == bytes && c.sha256 == learned.sha256)
    }

    /// What happened since `learned`, when the ledger knows (the file must be in the
    /// ledger's state): appended rows, or changed when the ledger saw other bytes at its
    /// length; `None` when it cannot tell (a model from before the checkpoints, format 1).
    pub fn since(&self, learned: Option<&Learned>) -> Option<Since> {
        let Some(learned) = learned else {
            return Some(Since::NoModel);
        };
        if let Some(c) = self.find(learned) {
            return Some(Since::Appended(self.end().rows - c.rows));
        }
        let bytes = learned.bytes?;
        let other = self
            .checkpoints
            .iter()
            .any(|c| c.bytes == bytes && c.sha256 != learned.sha256);
        (bytes > self.end().bytes || other).then_some(Since::Changed)
    }

    /// The ledger after `appended` (`rows` rows, `lines` lines) went after the file's end and
    /// left the file in state `now`.
    pub fn appended(&self, appended: &[u8], rows: usize, lines: u64, now: FileState) -> Ledger {
        let mut sha = resume(&self.sha256_state).expect("read() checked the state");
        sha.update(appended);
        let end = self.end();
        let next = Checkpoint {
            bytes: end.bytes + appended.len() as u64,
            rows: end.rows + rows,
            lines: end.lines + lines,
            sha256: digest_hex(&sha),
        };
        let mut checkpoints = self.checkpoints.clone();
        checkpoints.push(next);
        let excess = checkpoints.len().saturating_sub(CHECKPOINTS);
        checkpoints.drain(..excess);
        Ledger {
            file: now,
            sha256_state: state_hex(&sha),
            checkpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_hash_is_the_hash_of_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for split in [0, 1, 63, 64, 65, 4097, 9999] {
            let mut first = Sha256::new();
            first.update(&data[..split]);
            let mut again = resume(&state_hex(&first)).unwrap();
            again.update(&data[split..]);
            assert_eq!(
                digest_hex(&again),
                hex::encode(Sha256::digest(&data)),
                "{split}"
            );
        }
        assert!(resume("00").is_none());
        assert!(resume("not hex").is_none());
    }

    #[test]
    fn since_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"h\n1\n").unwrap();
        let state = FileState::of(&File::open(&path).unwrap()).unwrap();
        let mut sha = Sha256::new();
        sha.update(b"h\n1\n");
        let start = Checkpoint {
            bytes: 4,
            rows: 1,
            lines: 2,
            sha256: digest_hex(&sha),
        };
        let ledger = Ledger::start(state, &sha, vec![], start.clone());
        let learned = Learned {
            rows: 1,
            bytes: Some(4),
            sha256: &start.sha256,
        };
        assert_eq!(ledger.since(Some(&learned)), Some(Since::Appended(0)));
        assert_eq!(ledger.since(None), Some(Since::NoModel));
        let next = ledger.appended(b"2\n3\n", 2, 2, state);
        assert_eq!(next.since(Some(&learned)), Some(Since::Appended(2)));
        assert_eq!(
            next.end().sha256,
            hex::encode(Sha256::digest(b"h\n1\n2\n3\n"))
        );
        let other = Learned {
            rows: 1,
            bytes: Some(4),
            sha256: "x",
        };
        assert_eq!(next.since(Some(&other)), Some(Since::Changed));
        let longer = Learned {
            rows: 9,
            bytes: Some(99),
            sha256: "x",
        };
        assert_eq!(next.since(Some(&longer)), Some(Since::Changed));
        let between = Learned {
            rows: 2,
            bytes: Some(6),
            sha256: "x",
        };
        assert_eq!(next.since(Some(&between)), None);
        next.write(&dir.path().join("run/l.json")).unwrap();
        assert_eq!(Ledger::read(&dir.path().join("run/l.json")), Some(next));
    }
}
