//! Files survive faults (issue #8 §8): a full disk, a partial last line left by a crashed
//! writer, a corrupt artifact, and an `add-data` whose exit status says whether its rows
//! were written.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bluegreen::data::{self, Schema};

use crate::util::{read, stdout, Env};

/// 500 rows of a valid Boston shape, about 25 KB.
fn five_hundred_rows(env: &Env) -> PathBuf {
    let file = env.dir.path().join("500.csv");
    let rows: String = (0..500)
        .map(|i| format!("{i},1,2,0,0.5,6,60,4,1,300,15,390,{}.5,20\n", i % 7))
        .collect();
    std::fs::write(&file, rows).unwrap();
    file
}

/// A small tmpfs mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one, or `None` when this process may not (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` but for about `free` bytes.
fn fill_but(dir: &Path, free: u64) {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(free)).unwrap();
    file.sync_all().unwrap();
}

/// `add-data` on a full disk: the write stops part way, and the file must be as it was.
/// Today 67 of 500 rows stay appended, the last one cut short, and every later training
/// fails on it. Uses a 2 MiB tmpfs as state_dir when it can mount one (root), else a file
/// size limit (RLIMIT_FSIZE) just past the data's size, which cuts the write the same way.
#[test]
fn add_data_on_a_full_disk_adds_nothing_and_leaves_the_file_whole() {
    let env = Env::new();
    let tmpfs = Tmpfs::mount(&env.state(), "2m");
    env.ok(&["init"]);
    let before = read(&env.csv());
    let file = five_hundred_rows(&env);
    let mut cmd = env.cmd(&["add-data", file.to_str().unwrap()]);
    if tmpfs.is_some() {
        fill_but(&env.state(), 8 * 1024);
    } else {
        let limit = before.len() as u64 + 8 * 1024;
        // SAFETY: between fork and exec this calls only signal(2) and setrlimit(2), both
        // async-signal-safe. SIGXFSZ is ignored (and stays ignored across exec), so a write
        // past the limit fails with EFBIG instead of killing the process.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGXFSZ,
                    nix::sys::signal::SigHandler::SigIgn,
                )?;
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_FSIZE,
                    limit,
                    limit,
                )?;
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing was added"), "{err}");
    assert!(
        err.contains("No space left on device") || err.contains("File too large"),
        "{err}"
    );
    let after = read(&env.csv());
    assert!(
        after == before,
        "the data file must be as it was: {} bytes before, {} after, ending {:?}",
        before.len(),
        after.len(),
        &after[after.len().saturating_sub(80)..]
    );
    // With room again, the same rows go in whole, and training reads them all.
    let _ = std::fs::remove_file(env.state().join("filler"));
    env.ok(&["add-data", file.to_str().unwrap()]);
    let rows = data::read_dataset(&env.csv(), &Schema::boston())
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1006);
    env.ok(&["train"]);
    drop(tmpfs);
}

/// A partial last line, as another writer's crash leaves it: `add-data`, `status` and
/// `train` name it, and `add-data` never appends after it (the two would merge into one
/// wrong row). Today `add-data` "mends" it with a newline and appends: the cut row is then
/// read as a row whose last number lost its digits, or fails every training.
#[test]
fn a_partial_last_line_is_named_and_nothing_is_appended_after_it() {
    let env = Env::new();
    env.ok(&["init"]);
    let cut = format!("{}0.13004,12.5,8.87,0,0.592,6.8", read(&env.csv()));
    std::fs::write(env.csv(), &cut).unwrap();
    let keep = cut.len() - "0.13004,12.5,8.87,0,0.592,6.8".len();

    let err = env.fails(&["add-data", "--sample", "2"], 1);
    assert!(err.contains("boston.csv line 508 is cut short"), "{err}");
    assert!(err.contains(&format!("truncate -s {keep} ")), "{err}");
    assert!(
        read(&env.csv()) == cut,
        "nothing is appended after a partial line"
    );

    let status = env.ok(&["status"]);
    assert!(
        status.contains("data     cannot be read:") && status.contains("line 508 is cut short"),
        "{status}"
    );
    assert!(env.status_json()["data_error"]
        .as_str()
        .unwrap()
        .contains("line 508 is cut short"));

    let err = env.fails(&["train"], 1);
    assert!(err.contains("boston.csv line 508 is cut short"), "{err}");

    // Removed as the hint says, and all is well again.
    std::fs::write(env.csv(), &cut[..keep]).unwrap();
    env.ok(&["add-data", "--sample", "2"]);
    env.exits(&["train", "--if-due"], 10);
}

/// Writes a corrupt artifact `v<seq>` that no slot serves.
fn corrupt(env: &Env, seq: u32) -> PathBuf {
    let path = env
        .state()
        .join(format!("models/v{seq:04}-20261126T000000Z.json"));
    std::fs::write(&path, b"{\"format\": 2, \"version\": \"v0002-2026").unwrap();
    path
}

/// One corrupt artifact that no slot serves stops nothing: `status`, `train` and `deploy`
/// report it and skip it. Today each of them fails on it.
#[test]
fn a_corrupt_artifact_no_slot_serves_is_reported_and_skipped() {
    let env = Env::new();
    let _up = env.up();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    let v2 = corrupt(&env, 2);

    let status = env.ok(&["status"]);
    assert!(status.contains("newest v0001-"), "{status}");
    assert!(
        status.contains("note     skipped model")
            && status.contains("v0002-20261126T000000Z.json is corrupt"),
        "{status}"
    );
    let notes = env.status_json()["notes"].to_string();
    assert!(
        notes.contains("v0002-20261126T000000Z.json is corrupt"),
        "{notes}"
    );

    // The skip is a warning, on stderr; the rest is on stdout.
    let out = env.exits(&["train", "--if-due"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: skipping a model that cannot be read")
            && err.contains("v0002-20261126T000000Z.json is corrupt")
            && stdout(&out).contains("training not due: 0 since v0001-"),
        "{err}"
    );

    // The automatic path: add-data → train (skips it, trains v0003) → deploy.
    env.ok(&["add-data", "--sample", "2"]);
    let v3 = env.wait_for_new_version(&v1, Duration::from_secs(30));
    assert!(v3.starts_with("v0003-"), "{v3}");

    // By hand: deploy skips a corrupt newest artifact and deploys the newest readable one.
    env.ok(&["train"]);
    corrupt(&env, 5);
    let out = env.exits(&["deploy"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: skipping a model that cannot be read")
            && err.contains("v0005-20261126T000000Z.json is corrupt"),
        "{err}"
    );
    assert!(stdout(&out).contains("deployed v0004-"), "{}", stdout(&out));
    assert!(
        v2.exists(),
        "bluegreen reports the file; removing it is the operator's call"
    );
}

/// `add-data` exits 0 whenever its rows were written. Today, with a corrupt newest
/// artifact, it appends the rows and then exits 1 on reading that artifact for its summary,
/// so a client that retries adds the rows twice.
#[test]
fn add_data_exits_0_when_its_rows_were_written() {
    let env = Env::new();
    env.ok(&["init"]);
    corrupt(&env, 2);
    let out = env.exits(&["add-data", "--sample", "2"], 0);
    assert!(
        stdout(&out).starts_with("appended 2 rows (508 total, 2 since v0001-"),
        "{}",
        stdout(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: skipping a model that cannot be read"),
        "{err}"
    );
    let rows = data::read_dataset(&env.csv(), &Schema::boston())
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 508, "written once");
}
