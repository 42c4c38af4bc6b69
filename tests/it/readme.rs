//! The README's "Bring your own data" walk-through, run as it is written: its first shell
//! block (config, first data file, `init`), its second (`bluegreen up`), and the commands
//! of its third, each of whose output must be the `# …` line below it. Only the ports
//! change (to free ones) and version timestamps are not compared.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{free_ports, get, nginx_binary};

/// The section of README.md under `heading`, up to the next `## ` heading.
pub(crate) fn section(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The contents of its ```sh blocks.
pub(crate) fn sh_blocks(text: &str) -> Vec<String> {
    text.split("```sh\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap().to_string() + "\n")
        .collect()
}

/// `vNNNN-<UTC time>` with the time left out, so outputs compare across runs.
pub(crate) fn without_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('v') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let stamp = rest.get(digits..digits + 17).unwrap_or("");
        if digits == 4 && stamp.starts_with('-') && stamp.ends_with('Z') {
            out.push_str(&rest[..digits]);
            out.push_str("-…");
            rest = &rest[digits + 17..];
        }
    }
    out + rest
}

/// A shell with `bluegreen` and NGINX on its PATH, in `dir`.
fn shell(dir: &Path, script: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_bluegreen")).parent().unwrap();
    let nginx = nginx_binary();
    let path = std::env::join_paths(
        [bin.to_path_buf(), nginx.parent().unwrap().to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("BLUEGREEN_CONFIG")
        .env_remove("NOTIFY_SOCKET");
    cmd
}

/// `bluegreen up`, stopped as Ctrl-C would stop it when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bring_your_own_data_works_as_written() {
    let text = section("## Bring your own data");
    let ports: [u16; 3] = free_ports();
    let blocks: Vec<String> = sh_blocks(&text)
        .into_iter()
        .map(|b| {
            b.replace("8090", &ports[0].to_string())
                .replace("8091", &ports[1].to_string())
                .replace("8092", &ports[2].to_string())
        })
        .collect();
    let [setup, up, client] = &blocks[..] else {
        panic!("expected three sh blocks, got {blocks:?}")
    };
    let dir = tempfile::tempdir().unwrap();
    let out = shell(dir.path(), setup).output().unwrap();
    assert!(
        out.status.success(),
        "{setup}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let houses: PathBuf = dir.path().join("houses");

    // "exec" so that the signal that stops it reaches `bluegreen up` itself.
    let mut child = shell(&houses, &format!("exec {}", up.trim()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _up = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("  | {line}");
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains("bluegreen is up") => break,
            Ok(_) => {}
            Err(_) => panic!("`{up}` did not come up; its output is above"),
        }
    }

    // Each command, and the output the README shows for it.
    let lines: Vec<&str> = client.lines().collect();
    for (i, command) in lines.iter().enumerate() {
        if command.starts_with('#') {
            continue;
        }
        let out = shell(&houses, command).output().unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout).unwrap();
        // The output is the `# ` lines right after the command.
        let expected: Vec<&str> = lines[i + 1..]
            .iter()
            .map_while(|l| l.strip_prefix("# "))
            .collect();
        if !expected.is_empty() {
            assert_eq!(
                without_times(got.trim_end()),
                without_times(&expected.join("\n")),
                "{command}"
            );
        }
    }

    // "A moment later the answers come from green", and `predict` agrees with the slot.
    let public = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let r = crate::util::post(public, r#"{"data": [[4, 120, 30]]}"#);
        if r.header("x-slot") == Some("green") {
            break r;
        }
        assert!(Instant::now() < deadline, "no flip to green");
        std::thread::sleep(Duration::from_millis(50));
    };
    let served = crate::util::price(&answer);
    let out = shell(&houses, "bluegreen predict --row 4,120,30")
        .output()
        .unwrap();
    let local: f64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(local, served);
    let model = get(public, "/model").json().unwrap();
    assert_eq!(model["model"]["kind"], "random_forest");
    assert_eq!(
        model["model"]["features"],
        serde_json::json!(["rooms", "area", "age"])
    );
}

/// The lines of a shell block that are commands, each with its trailing `# comment` removed.
fn commands(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| l.split("  #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn the_rollouts_section_works_as_written() {
    let text = section("## Rollouts");
    // The example `[rollout]` table is a valid config.
    let toml = text
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a toml block");
    let config = bluegreen::config::Config::from_toml(toml).unwrap();
    assert_eq!(config.rollout.promote, bluegreen::rollout::Promote::Manual);

    // Its commands, against a candidate that waits: the preview answers from the candidate,
    // `promote` moves the traffic; then `abort` drops the next candidate.
    let env = crate::util::Env::with_extra("[rollout]\npromote = \"manual\"");
    let _up = env.up();
    // One sh block, indented in its list item.
    let block: String = text
        .split("```sh\n")
        .nth(1)
        .expect("an sh block")
        .lines()
        .take_while(|l| l.trim() != "```")
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let lines = commands(&block.replace("8080", &env.public.port().to_string()));
    let [curl, promote, abort] = &lines[..] else {
        panic!("expected curl, promote and abort, got {lines:?}")
    };
    // New data; the trigger's deploy stops with a candidate other than `before` waiting.
    let wait = |before: Option<&str>| {
        env.ok(&["add-data", "--sample", "2"]);
        let record = crate::faults::bad_candidate::wait_for_record(&env, "a wait", |r| {
            r.outcome == bluegreen::history::Outcome::Waiting && r.to_version.as_deref() != before
        });
        record.to_version.unwrap()
    };
    let run = |command: &str| {
        let out = shell(env.dir.path(), command).output().unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let candidate = wait(None);
    let answer: serde_json::Value = serde_json::from_str(&run(curl)).unwrap();
    assert_eq!(
        answer["model"].as_str(),
        Some(candidate.as_str()),
        "{answer}"
    );
    assert_eq!(answer["slot"], "green");
    assert!(run(promote).contains(&format!("promoted {candidate} on green")));
    assert_eq!(
        env.predict().header("x-model-version"),
        Some(candidate.as_str())
    );
    let next = wait(Some(&candidate));
    assert!(run(abort).contains(&format!("aborted {next}")));
    assert!(env.status_json()["waiting"].is_null());
    assert_eq!(
        env.predict().header("x-model-version"),
        Some(candidate.as_str())
    );
}
