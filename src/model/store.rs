//! The artifacts in a models folder: their versions, loading, writing and pruning. Which of
//! them is the newest, and passing over a corrupt one, is `crate::state`'s to say.

use std::io;
use std::path::{Path, PathBuf};

use super::{parse_seq, Artifact, ModelError};
use crate::fsutil;

/// The artifacts in a models folder.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (`state_dir/models`).
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    /// The file of `version`.
    pub fn path_of(&self, version: &str) -> PathBuf {
        self.dir.join(format!("{version}.json"))
    }

    /// Version ids present, oldest first.
    pub fn versions(&self) -> Result<Vec<String>, ModelError> {
        let entries = match fs_err::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ModelError::Read(source)),
        };
        let mut versions: Vec<(u64, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let version = name.strip_suffix(".json")?.to_string();
                Some((parse_seq(&version)?, version))
            })
            .collect();
        versions.sort();
        Ok(versions.into_iter().map(|(_, v)| v).collect())
    }

    /// Reads the artifact of `version`.
    pub fn load(&self, version: &str) -> Result<Artifact, ModelError> {
        Artifact::load(&self.path_of(version))
    }

    /// The next version id: one past the highest sequence number, stamped with `now`. A
    /// corrupt artifact still holds its number, so versions are never reused.
    pub fn next_version(&self, now: time::OffsetDateTime) -> Result<String, ModelError> {
        let seq = self
            .versions()?
            .last()
            .and_then(|v| parse_seq(v))
            .unwrap_or(0)
            + 1;
        let stamp = now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .expect("a UTC time formats");
        Ok(format!("v{seq:04}-{stamp}"))
    }

    /// Writes a new artifact whole (temp file, fsync, rename). Callers hold the train lock,
    /// which is what keeps two writers from picking the same version.
    pub fn write(&self, artifact: &Artifact) -> Result<PathBuf, ModelError> {
        let path = self.path_of(&artifact.version);
        let write_err = |source| ModelError::Write {
            version: artifact.version.clone(),
            source,
        };
        if path.exists() {
            return Err(write_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "artifacts are immutable and this version exists",
            )));
        }
        fsutil::write_atomic(&path, &artifact.to_json()).map_err(write_err)?;
        Ok(path)
    }

    /// Removes the oldest artifacts beyond `keep`, never one in `protect`. Returns the removed.
    pub fn prune(&self, keep: usize, protect: &[String]) -> Result<Vec<String>, ModelError> {
        let versions = self.versions()?;
        let excess = versions.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for version in versions.into_iter().take(excess) {
            if protect.contains(&version) {
                continue;
            }
            let path = self.path_of(&version);
            fs_err::remove_file(&path).map_err(|source| ModelError::Write {
                version: version.clone(),
                source,
            })?;
            removed.push(version);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{boston, trained};
    use crate::model::Kind;

    #[test]
    fn write_newest_next_version_and_immutability() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let now = time::macros::datetime!(2026-11-26 21:03:05 UTC);
        let version = store.next_version(now).unwrap();
        assert_eq!(version, "v0001-20261126T210305Z");
        let artifact = trained(&boston(), Kind::Linear, &version);
        store.write(&artifact).unwrap();
        assert!(store.write(&artifact).is_err(), "artifacts are immutable");
        assert_eq!(store.load(&version).unwrap().version, version);
        assert_eq!(store.next_version(now).unwrap(), "v0002-20261126T210305Z");
    }

    #[test]
    fn versions_sort_by_number_and_prune_spares_the_protected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut artifact = trained(&boston(), Kind::Linear, "v0001-a");
        for v in ["v0002-a", "v0010-a", "v0001-a", "v0003-a"] {
            artifact.version = v.to_string();
            store.write(&artifact).unwrap();
        }
        assert_eq!(
            store.versions().unwrap(),
            ["v0001-a", "v0002-a", "v0003-a", "v0010-a"]
        );
        let removed = store.prune(2, &["v0001-a".to_string()]).unwrap();
        assert_eq!(removed, ["v0002-a"]);
        assert_eq!(store.versions().unwrap(), ["v0001-a", "v0003-a", "v0010-a"]);
    }
}
