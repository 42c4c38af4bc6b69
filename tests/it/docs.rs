//! The man pages and shell completions (issue 12): generated from the command line, naming
//! every command, and the very files the Debian package ships.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

use crate::util::{read, Env};

/// The commands `bluegreen --help` lists (the hidden ones are for systemd and packaging).
fn commands() -> Vec<String> {
    bluegreen::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Runs `script` in `program` (bash, fish or zsh) without the user's startup files, and
/// returns what it printed; fails the test if the shell fails or is not installed.
fn shell(program: &str, script: &str) -> String {
    let flag = match program {
        "bash" => "--norc",
        "fish" => "--no-config",
        _ => "-f",
    };
    let out = Command::new(program)
        .args([flag, "-c", script])
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e}; hint: `apt-get install bash zsh fish` (.ci/run installs them)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program}: {stderr}");
    assert!(stderr.is_empty(), "{program}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Fails unless `packaged` holds exactly the files of `generated`, byte for byte.
fn same_as_packaged(generated: &Path, packaged: &str, how: &str) {
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join(packaged);
    assert_eq!(
        files(generated),
        files(&packaged),
        "hint: run `{how}` and commit the result"
    );
    for name in files(generated) {
        assert_eq!(
            read(&generated.join(&name)),
            read(&packaged.join(&name)),
            "{name} is out of date; hint: run `{how}` and commit the result"
        );
    }
}

#[test]
fn the_man_pages_name_every_command_and_are_the_packaged_ones() {
    let env = Env::new();
    let dir = env.dir.path().join("man");
    std::fs::create_dir(&dir).unwrap();
    env.ok(&["generate", "man", dir.to_str().unwrap()]);
    let main = read(&dir.join("bluegreen.1"));
    for command in commands() {
        // roff escapes the hyphens of a name: `add\-data`.
        let roff = command.replace('-', "\\-");
        assert!(
            main.contains(&format!("bluegreen\\-{roff}")),
            "{command} in bluegreen.1"
        );
        let page = read(&dir.join(format!("bluegreen-{command}.1")));
        // The title line: the page's name, its section, and the program with its version.
        let version = env!("CARGO_PKG_VERSION");
        let title = format!(".TH bluegreen-{command} 1  \"bluegreen {version}\"");
        assert!(
            page.lines().any(|l| l.trim_end() == title),
            "{title} in {page}"
        );
    }
    assert!(!dir.join("bluegreen-systemd-generator.1").exists());
    assert!(!dir.join("bluegreen-generate.1").exists());
    // It renders as a man page through man-db's formatter (the VM test runs `man bluegreen`
    // on the installed package).
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.join("bluegreen-train.1"))
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
        .expect("man; hint: `apt-get install man-db` (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in ["bluegreen-train", "--if-due", "Exit status"] {
        assert!(text.contains(wanted), "{wanted} in {text}");
    }
    same_as_packaged(
        &dir,
        "packaging/man",
        "cargo run -- generate man packaging/man",
    );
}

#[test]
fn the_completions_name_every_command_and_are_the_packaged_ones() {
    let env = Env::new();
    let dir = env.dir.path().join("completions");
    std::fs::create_dir(&dir).unwrap();
    env.ok(&["generate", "completions", dir.to_str().unwrap()]);
    assert_eq!(
        files(&dir),
        ["_bluegreen", "bluegreen.bash", "bluegreen.fish"]
            .map(String::from)
            .into(),
    );
    for file in files(&dir) {
        let text = read(&dir.join(&file));
        for command in commands() {
            assert!(text.contains(&command), "{command} in {file}");
        }
        // An option of a command, so the completions go past the command names.
        assert!(text.contains("if-due"), "--if-due in {file}");
    }
    // Each shell reads its script and completes from it.
    let bash = dir.join("bluegreen.bash");
    let replies = shell(
        "bash",
        &format!(
            "source {}; COMP_WORDS=(bluegreen rol); COMP_CWORD=1; _bluegreen bluegreen rol bluegreen; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ),
    );
    assert_eq!(replies.trim(), "rollback");
    let fish = dir.join("bluegreen.fish");
    let replies = shell(
        "fish",
        &format!(
            "source {}; complete -C 'bluegreen rol'; complete -C 'bluegreen train --if'",
            fish.display()
        ),
    );
    let names: Vec<&str> = replies
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names, ["rollback", "--if-due"], "{replies}");
    // zsh completes only in an interactive line editor; what can be checked without one is
    // that compsys loads the script and binds it to the command.
    let zsh = dir.join("_bluegreen");
    let bound = shell(
        "zsh",
        &format!(
            "autoload -U compinit; compinit -u -d {}/zcompdump; source {}; print -r -- $_comps[bluegreen]",
            dir.display(),
            zsh.display()
        ),
    );
    assert_eq!(bound.trim(), "_bluegreen");
    std::fs::remove_file(dir.join("zcompdump")).unwrap();
    same_as_packaged(
        &dir,
        "packaging/completions",
        "cargo run -- generate completions packaging/completions",
    );
}
