//! Exclusive locks between bluegreen processes (`flock` on a file under `state_dir/run`).
//!
//! The folder of the lock file is created when it is missing, so a state folder that has its
//! data but lost `run/` (a tmpfs, a hand cleanup) works as it is (issue 8 §9).
//!
//! A lock is held for as long as the returned guard lives, and the kernel drops it if the
//! process dies, so a crashed deploy can never wedge the next one. The holder writes its pid
//! into the file so that a waiter can say whom it is waiting for.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create the folder {dir} for the lock file; hint: run as a user who may write there, or `bluegreen init` as root")]
    Folder {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("another {what} (pid {holder}) still holds {path} after {waited:?}; hint: wait for it to finish, then run `bluegreen status`")]
    Busy {
        what: &'static str,
        holder: String,
        path: PathBuf,
        waited: Duration,
    },
}

/// Takes the lock at `path`, waiting up to `timeout`. `on_wait` is called once if the lock is
/// busy, with the holder's pid, so the caller can say it is waiting.
pub fn acquire(
    path: &Path,
    what: &'static str,
    timeout: Duration,
    on_wait: impl FnOnce(&str),
) -> Result<Flock<File>, LockError> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| LockError::Open {
                path: path.to_path_buf(),
                source,
            })
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LockError::Folder {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let started = Instant::now();
    let mut on_wait = Some(on_wait);
    let mut file = open()?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = write!(lock, "{}", std::process::id());
                return Ok(lock);
            }
            Err((f, Errno::EWOULDBLOCK)) => {
                file = f;
                let holder = holder(&mut file);
                if started.elapsed() >= timeout {
                    return Err(LockError::Busy {
                        what,
                        holder,
                        path: path.to_path_buf(),
                        waited: started.elapsed(),
                    });
                }
                if let Some(f) = on_wait.take() {
                    f(&holder);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, errno)) => {
                return Err(LockError::Open {
                    path: path.to_path_buf(),
                    source: errno.into(),
                })
            }
        }
    }
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    if text.trim().is_empty() {
        "unknown".to_string()
    } else {
        text.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        // The folder does not exist yet: the lock makes it.
        let path = dir.path().join("run/x.lock");
        let first = acquire(&path, "deploy", Duration::from_secs(1), |_| {}).unwrap();
        let mut waited_for = None;
        let err = acquire(&path, "deploy", Duration::from_millis(200), |h| {
            waited_for = Some(h.to_string())
        })
        .unwrap_err()
        .to_string();
        let me = std::process::id().to_string();
        assert_eq!(waited_for.as_deref(), Some(me.as_str()));
        assert!(err.contains(&format!("pid {me}")), "{err}");
        drop(first);
        acquire(&path, "deploy", Duration::from_secs(1), |_| {}).unwrap();
    }
}
