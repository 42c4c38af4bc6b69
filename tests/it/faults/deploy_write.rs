//! A deploy whose writes fail (issue 8 §8): the NGINX include's folder is full (a tiny
//! tmpfs, filled; as root) or read-only (otherwise). The deploy fails at the step that could
//! not write, says the real cause (not a later error about the history), records it, and
//! leaves traffic where it was; with the history unwritable too, it still names the cause.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use bluegreen::history::{self, Outcome};

use crate::load::{assert_no_failures, Client, Load};
use crate::util::Env;

/// A folder whose writes fail: a small tmpfs mounted over it and then filled (as root, who
/// may write anywhere), or made read-only (as anyone else).
struct Unwritable {
    dir: PathBuf,
    mounted: bool,
}

impl Unwritable {
    /// Mounts the tmpfs (as root) before anything is written into `dir`.
    fn prepare(dir: &Path) -> Unwritable {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = nix::unistd::geteuid().is_root();
        if mounted {
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "mount a tmpfs on {}", dir.display());
        }
        Unwritable {
            dir: dir.to_path_buf(),
            mounted,
        }
    }

    /// From now on, writes in the folder fail: "No space left on device" or "Permission
    /// denied".
    fn engage(&self) -> &'static str {
        if self.mounted {
            let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
            let block = vec![0u8; 4096];
            while filler.write_all(&block).is_ok() {}
            "No space left on device"
        } else {
            chmod(&self.dir, 0o555);
            "Permission denied"
        }
    }
}

fn chmod(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        } else {
            chmod(&self.dir, 0o755);
        }
    }
}

#[test]
fn a_deploy_that_cannot_write_the_include_reports_and_records_the_real_cause() {
    let env = Env::with_extra("batch_size = 1000");
    let nginx_dir = env.state().join("nginx");
    // Declared before `up`, so that it is undone after `up` stopped.
    let unwritable = Unwritable::prepare(&nginx_dir);
    let _up = env.up_idle();
    let v1 = env.predict().header("x-model-version").unwrap().to_string();
    env.ok(&["train"]);
    let load = Load::start(env.public, &[Client::Fresh, Client::Retrying], 2);
    let cause = unwritable.engage();

    let errno = if unwritable.mounted { 28 } else { 13 };
    let err = env.fails(&["deploy"], 1);
    // What failed, on which file (fs-err names the include's temporary file beside it, the
    // operation and the OS error), and where traffic is.
    assert!(
        err.contains(&format!(
            "deploy failed at step \"include\"; traffic stays on blue ({v1}): cannot write the NGINX include: failed to "
        )) && err.contains(&format!("`{}/.upstream.conf.tmp.", nginx_dir.display()))
            && err.trim_end().ends_with(&format!("`: {cause} (os error {errno})")),
        "{err}"
    );
    assert!(!err.contains("deploys.jsonl"), "{err}");
    let record = history::last(&env.state().join("deploys.jsonl"), 1)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(record.outcome, Outcome::Failed);
    let reason = record.reason.unwrap();
    assert!(
        reason.starts_with("include: cannot write the NGINX include: failed to ")
            && reason.contains(".upstream.conf.tmp.")
            && reason.contains(cause),
        "{reason}"
    );

    // Now the history cannot be written either: the error still names the include first.
    if unwritable.mounted {
        let history = env.state().join("deploys.jsonl");
        std::fs::remove_file(&history).unwrap();
        std::os::unix::fs::symlink(nginx_dir.join("deploys.jsonl"), &history).unwrap();
        let err = env.fails(&["deploy"], 1);
        assert!(
            err.contains("deploy failed at step \"include\"; traffic stays on blue"),
            "{err}"
        );
        assert!(
            err.contains("the failure is not in the history (cannot append to the history"),
            "{err}"
        );
        assert!(
            err.contains(".upstream.conf.tmp.")
                && err.ends_with(&format!("`: {cause} (os error 28)\n")),
            "{err}"
        );
    }

    assert_eq!(env.predict().header("x-slot"), Some("blue"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_no_failures(&load.finish());
}
