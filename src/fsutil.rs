//! Writing files that other processes read: whole or not at all.
//!
//! A reader (a slot loading its model, NGINX loading the include, `status` reading history)
//! must never see half a file. So every such file is written to a temporary name in the same
//! folder, fsynced, renamed over the real name, and the folder is fsynced so the rename itself
//! survives a crash. Symlinks are swapped the same way: made under a temporary name, renamed.
//!
//! Every file operation goes through `fs-err` (issue 12), so an error names the operation and
//! the path it failed on (`failed to sync file `…/.upstream.conf.tmp.42``) and keeps the OS
//! error as its `source()`; callers say what the file is for, never the path again.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fs_err::{self as fs, File, OpenOptions};

/// A temporary name beside `path`, unique to this process.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// fsyncs a folder, so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Replaces `path` with `contents` as [`write_atomic`] does, unless the file holds exactly
/// `contents` already; returns whether it wrote. For files whose rewrite has a cost beyond
/// the write, such as an NGINX include that a reload must follow.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    write_atomic(path, contents)?;
    Ok(true)
}

/// Replaces `path` with `contents` atomically and durably.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(parent(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Points the symlink `link` at `target`, replacing any previous link atomically.
pub fn swap_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let tmp = temp_beside(link);
    let _ = fs::remove_file(&tmp);
    fs_err::os::unix::fs::symlink(target, &tmp)?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("no/such/dir/f"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn swap_symlink_repoints() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        swap_symlink(Path::new("a"), &link).unwrap();
        swap_symlink(Path::new("b"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("b"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
