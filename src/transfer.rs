//! Moving a model artifact between hosts: the export file that `bluegreen export` writes and
//! `bluegreen import` reads (issue 13).
//!
//! An export is self-describing: one line of JSON that says what it is, then the artifact's
//! bytes exactly as they are stored in `models/<version>.json`:
//!
//! ```text
//! {"export":"bluegreen-artifact","format":1,"version":"v0002-…","bytes":1234,"sha256":"…","probe":{…}}
//! {
//!   "format": 1,
//!   "version": "v0002-…",
//!   …
//! }
//! ```
//!
//! The header's `bytes` and `sha256` are those of the payload, so a truncated or altered
//! file is refused before anything is written; the payload is then checked by the same code
//! that checks an artifact a slot loads ([`Artifact::load`]), and its version must be the
//! header's. Keeping the bytes (rather than re-serialising the artifact) keeps the version
//! name and the content identical on every host, which is what makes "this version is already
//! here" a byte comparison.
//!
//! The header also carries the artifact's own prediction for the probe row that `deploy`
//! uses (the artifact's example row, [`Artifact::example`]). A rollout compares each host's answer with it, and
//! `import` recomputes it on the receiving host, so two hosts that read the same artifact
//! differently (a version skew) are caught before a deploy.

use std::io::{self, Write};

use fs_err::os::unix::fs::OpenOptionsExt;
use fs_err::{self as fs, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::Schema;
use crate::fsutil;
use crate::model::{Artifact, ModelError, Store};

/// What the header's `export` field says: this file is a bluegreen artifact export.
pub const KIND: &str = "bluegreen-artifact";
/// The envelope format this build writes and reads.
pub const FORMAT: u32 = 1;
/// Exports larger than this are refused unread: artifacts are kilobytes to a few megabytes.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`KIND`].
    pub export: String,
    /// The envelope format, [`FORMAT`].
    pub format: u32,
    /// The artifact's version id, kept on every host.
    pub version: String,
    /// Length of the payload (the artifact file) in bytes.
    pub bytes: u64,
    /// SHA-256 of the payload, lowercase hex.
    pub sha256: String,
    /// The artifact's own prediction for the deploy probe row.
    pub probe: Probe,
}

/// A row and the price the artifact predicts for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub row: Vec<f64>,
    pub price: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    // The I/O variants carry no path: the `fs-err` source names the file and the operation.
    #[error("cannot read the export")]
    Read(#[source] io::Error),
    #[error("{path} is {size} bytes, more than an export may be ({MAX_BYTES}); hint: is it the right file?")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} is not a bluegreen export: {why}; hint: make one with `bluegreen export VERSION > FILE` on the host that has the model")]
    NotAnExport { path: PathBuf, why: String },
    #[error("{path} is export format {format}, which this bluegreen does not read (it reads format {FORMAT}); hint: export it again with this host's bluegreen version, or upgrade this host")]
    Format { path: PathBuf, format: u32 },
    #[error("{path} is truncated: its header announces {expected} bytes of artifact, and {found} follow; hint: copy the file again")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{path} has {extra} bytes after the artifact its header announces; hint: copy the file again, and do not append to it")]
    Trailing { path: PathBuf, extra: u64 },
    #[error("{path} was altered: the artifact's SHA-256 is {actual}, its header says {expected}; hint: copy the file again from the host that exported it")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path} holds an artifact this host cannot use; hint: export it again with this host's bluegreen version, or upgrade this host")]
    Schema {
        path: PathBuf,
        #[source]
        source: ModelError,
    },
    #[error("{path} says it holds {header}, but the artifact in it is {artifact}; hint: the file was edited; export it again")]
    VersionMismatch {
        path: PathBuf,
        header: String,
        artifact: String,
    },
    #[error("the artifact in {path} predicts {here} for the probe row on this host, and {there} where it was exported; hint: run the same bluegreen version on both hosts")]
    ProbeMismatch {
        path: PathBuf,
        here: f64,
        there: f64,
    },
    #[error("{version} is already here ({existing}) with different content (SHA-256 {ours}, the import's {theirs}); nothing was written; hint: model versions are immutable: find out which host trained the other one, and deploy the trainer's models only")]
    Conflict {
        version: String,
        existing: PathBuf,
        ours: String,
        theirs: String,
    },
    #[error("{path} holds a model of other columns than this host's [data]: it reads features {} and predicts {}, this host's config has features {} and label {}; nothing was written; hint: import it on a host whose [data] features (names and order) and label are the model's, or train one here", .theirs.features.join(","), .theirs.label, .ours.features.join(","), .ours.label)]
    OtherSchema {
        path: PathBuf,
        theirs: Schema,
        ours: Schema,
    },
    #[error("cannot write the imported model")]
    Write(#[source] io::Error),
}

/// A checked export: its header and the artifact's bytes.
#[derive(Debug)]
pub struct Export {
    pub header: Header,
    pub payload: Vec<u8>,
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// The artifact was written to this path.
    Written(PathBuf),
    /// The same version with the very same bytes was already there; nothing was written.
    AlreadyPresent(PathBuf),
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The probe row (the artifact's example row, which `deploy` probes with), and
/// `artifact`'s prediction for it.
fn probe_of(artifact: &Artifact) -> Result<Probe, ModelError> {
    Ok(Probe {
        row: artifact.example.clone(),
        price: artifact.predict_one(&artifact.example)?,
    })
}

/// Builds the export of `version` from `store`: header line, then the stored bytes.
pub fn export(store: &Store, version: &str) -> Result<Vec<u8>, ModelError> {
    let path = store.path_of(version);
    // Loading checks that the stored file is a sound artifact before it leaves this host.
    let artifact = store.load(version)?;
    let payload = fs::read(&path).map_err(ModelError::Read)?;
    let header = Header {
        export: KIND.to_string(),
        format: FORMAT,
        version: artifact.version.clone(),
        bytes: payload.len() as u64,
        sha256: sha256_hex(&payload),
        probe: probe_of(&artifact)?,
    };
    let mut out = serde_json::to_vec(&header).expect("a header serializes");
    out.push(b'\n');
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads `path` and checks its envelope: kind, format, length and checksum. The artifact
/// inside is checked by [`import`], against this host's reading of it.
pub fn read(path: &Path) -> Result<Export, TransferError> {
    let read_err = TransferError::Read;
    let size = fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_BYTES {
        return Err(TransferError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = fs::read(path).map_err(read_err)?;
    parse(path, bytes)
}

fn parse(path: &Path, mut bytes: Vec<u8>) -> Result<Export, TransferError> {
    let not = |why: String| TransferError::NotAnExport {
        path: path.to_path_buf(),
        why,
    };
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        return Err(not(if bytes.is_empty() {
            "it is empty".to_string()
        } else {
            "its first line does not end".to_string()
        }));
    };
    // Only the fields that say what the file is, first: a newer format may change the rest.
    #[derive(Deserialize)]
    struct Kind {
        export: Option<String>,
        format: Option<u32>,
    }
    let first = &bytes[..newline];
    let kind: Kind = serde_json::from_slice(first).map_err(|e| {
        not(if bytes.first() == Some(&b'{') && serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
            "it is one JSON document, perhaps an artifact file itself, and not an export with its header line".to_string()
        } else {
            format!("its first line is not the JSON header ({e})")
        })
    })?;
    if kind.export.as_deref() != Some(KIND) {
        return Err(not(format!(
            "its header's \"export\" is {:?}, not {KIND:?}",
            kind.export
        )));
    }
    match kind.format {
        Some(FORMAT) => {}
        Some(format) => {
            return Err(TransferError::Format {
                path: path.to_path_buf(),
                format,
            })
        }
        None => return Err(not("its header has no \"format\"".to_string())),
    }
    let header: Header = serde_json::from_slice(first)
        .map_err(|e| not(format!("its header is incomplete ({e})")))?;
    let payload = bytes.split_off(newline + 1);
    let found = payload.len() as u64;
    if found < header.bytes {
        return Err(TransferError::Truncated {
            path: path.to_path_buf(),
            expected: header.bytes,
            found,
        });
    }
    if found > header.bytes {
        return Err(TransferError::Trailing {
            path: path.to_path_buf(),
            extra: found - header.bytes,
        });
    }
    let actual = sha256_hex(&payload);
    if actual != header.sha256 {
        return Err(TransferError::Checksum {
            path: path.to_path_buf(),
            expected: header.sha256,
            actual,
        });
    }
    Ok(Export { header, payload })
}

/// Imports a checked export into `store`, keeping its version name. The caller holds the
/// train lock, so that no training picks this version number meanwhile. A model whose
/// features (names, order) or label are not `schema` (this host's `[data]`) is refused: its
/// rows are not this host's, so no gate could judge it and no client here could call it
/// (issue 13: import verifies format, checksum and schema).
///
/// The payload is written to a temporary name beside its destination and checked there by
/// [`Artifact::load`] (the very check a slot makes), then renamed into place: a bad artifact
/// never appears under a version name, and readers never see half a file.
pub fn import(
    store: &Store,
    export: &Export,
    origin: &Path,
    schema: &Schema,
) -> Result<Imported, TransferError> {
    let version = &export.header.version;
    let dest = store.path_of(version);
    match fs::read(&dest) {
        Ok(existing) if existing == export.payload => return Ok(Imported::AlreadyPresent(dest)),
        Ok(existing) => {
            return Err(TransferError::Conflict {
                version: version.clone(),
                ours: sha256_hex(&existing),
                theirs: export.header.sha256.clone(),
                existing: dest,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(TransferError::Read(source)),
    }
    // A name `Store::versions` never lists (it does not end in `.json`).
    let tmp = dest.with_file_name(format!(".{version}.json.import.{}", std::process::id()));
    let result = write_checked(&tmp, &dest, export, origin, schema);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| Imported::Written(dest))
}

fn write_checked(
    tmp: &Path,
    dest: &Path,
    export: &Export,
    origin: &Path,
    schema: &Schema,
) -> Result<(), TransferError> {
    let write_err = TransferError::Write;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        // Artifacts are read by the slots' unprivileged user, whoever imports them.
        .mode(0o644)
        .open(tmp)
        .map_err(write_err)?;
    file.write_all(&export.payload).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    let artifact = Artifact::load(tmp).map_err(|source| TransferError::Schema {
        path: origin.to_path_buf(),
        source,
    })?;
    if artifact.version != export.header.version {
        return Err(TransferError::VersionMismatch {
            path: origin.to_path_buf(),
            header: export.header.version.clone(),
            artifact: artifact.version,
        });
    }
    if artifact.schema() != *schema {
        return Err(TransferError::OtherSchema {
            path: origin.to_path_buf(),
            theirs: artifact.schema(),
            ours: schema.clone(),
        });
    }
    let schema_err = |source| TransferError::Schema {
        path: origin.to_path_buf(),
        source,
    };
    let here = artifact
        .predict_one(&artifact.example)
        .map_err(schema_err)?;
    let there = export.header.probe.price;
    if export.header.probe.row != artifact.example || here.to_bits() != there.to_bits() {
        return Err(TransferError::ProbeMismatch {
            path: origin.to_path_buf(),
            here,
            there,
        });
    }
    // Not a plain rename: if another import of the same version won the race, its file
    // stays, and this one is judged against it like any existing file.
    fs::hard_link(tmp, dest).map_err(write_err)?;
    fs::remove_file(tmp).map_err(write_err)?;
    fsutil::sync_dir(dest.parent().unwrap_or(Path::new("."))).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    fn store_with_model(dir: &Path, version: &str) -> Store {
        let store = Store::new(dir);
        fs::create_dir_all(dir).unwrap();
        let artifact = model::tests::trained(&model::tests::boston(), model::Kind::Linear, version);
        store.write(&artifact).unwrap();
        store
    }

    #[test]
    fn an_export_round_trips_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let from = store_with_model(&dir.path().join("a"), "v0002-x");
        let bytes = export(&from, "v0002-x").unwrap();
        let file = dir.path().join("v2.export");
        fs::write(&file, &bytes).unwrap();
        let checked = read(&file).unwrap();
        assert_eq!(checked.header.version, "v0002-x");
        assert!((checked.header.probe.price - 30.23).abs() < 0.01);

        let to = Store::new(&dir.path().join("b"));
        fs::create_dir_all(dir.path().join("b")).unwrap();
        let written = import(&to, &checked, &file, &Schema::boston()).unwrap();
        assert_eq!(written, Imported::Written(to.path_of("v0002-x")));
        assert_eq!(
            fs::read(to.path_of("v0002-x")).unwrap(),
            fs::read(from.path_of("v0002-x")).unwrap()
        );
        assert_eq!(to.versions().unwrap(), ["v0002-x"]);
        assert_eq!(
            import(&to, &checked, &file, &Schema::boston()).unwrap(),
            Imported::AlreadyPresent(to.path_of("v0002-x"))
        );
    }

    #[test]
    fn a_bad_artifact_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let payload = br#"{"format": 1, "version": "v0003-x"}"#.to_vec();
        let export = Export {
            header: Header {
                export: KIND.into(),
                format: FORMAT,
                version: "v0003-x".into(),
                bytes: payload.len() as u64,
                sha256: sha256_hex(&payload),
                probe: Probe {
                    row: model::tests::EXAMPLE.to_vec(),
                    price: 30.0,
                },
            },
            payload,
        };
        let err = import(&store, &export, Path::new("f"), &Schema::boston()).unwrap_err();
        assert!(matches!(err, TransferError::Schema { .. }), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
