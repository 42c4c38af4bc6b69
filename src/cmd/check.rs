//! `bluegreen check`: like `nginx -t`, for the whole system (issue 8 §3).
//!
//! It judges three things and changes none of them:
//! - **the configuration**: it reads, parses, and every value is valid (all bad keys are
//!   listed, not only the first);
//! - **the state** it names: the data parses, models load, each slot's link names a model
//!   that loads, the NGINX include names a configured slot; under systemd, each slot's socket
//!   unit listens on the slot's configured address;
//! - **NGINX's configuration**, with `nginx -T` (the test, and the configuration it tested):
//!   the system's NGINX, or the one `bluegreen up` runs when `up` is running; it must pass,
//!   include this state's include and listen on `public_port`; and the files bluegreen renders
//!   for it (the site, the dashboard's include: `crate::site`) should hold what this
//!   configuration renders, or NGINX runs with another's limits (a warning, with a hint to
//!   `bluegreen restart`, which applies them).
//!
//! Each problem is printed with the key or the file it is about and a hint. Corrupt model
//! files that no slot serves are warnings: serving does not depend on them. When everything
//! passed, the configuration is saved as the last good one (see `config`), which slots fall
//! back to if they start while the file is bad; that is the one thing `check` writes.
//!
//! `bluegreen restart` runs the same checks first ([`run`], [`Report::print`], [`finish`]) and
//! refuses to touch anything when they fail.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{error_chain as chain, Config, ConfigError};
use crate::data;
use crate::layout::Layout;
use crate::model::{Artifact, Store};
use crate::nginx::Nginx;
use crate::site;
use crate::slot::Slot;
use crate::supervisor;
use crate::switch::Endpoint;
use tracing::info;

/// Exit status when `check` found a problem.
pub const EXIT_PROBLEMS: u8 = 1;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Serving, deploying or a restart would break: `check` fails.
    Error,
    /// Worth fixing, but nothing depends on it: `check` still passes.
    Warning,
}

/// One thing `check` found wrong.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Whether it fails the check.
    pub severity: Severity,
    /// The config key or the file it is about.
    pub subject: String,
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level}: {}: {}\n  hint: {}",
            self.subject, self.what, self.hint
        )
    }
}

/// Everything `check` found, and what passed.
#[derive(Debug)]
pub struct Report {
    /// The configuration, when it loaded and is valid.
    pub config: Option<Config>,
    /// A line for each part that passed ("config …: ok").
    pub passed: Vec<String>,
    /// Every problem found, errors and warnings, in the order checked.
    pub problems: Vec<Problem>,
    /// Parts that were not checked, and why.
    pub skipped: Vec<String>,
}

impl Report {
    /// True when nothing would break: no [`Severity::Error`].
    pub fn ok(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// Prints what passed to stdout and every problem to stderr, as `nginx -t` does: the
    /// report is the command's result, not a log.
    pub fn print(&self) {
        for line in &self.passed {
            // Best effort, as the problems below: the verdict is the exit status.
            let _ = super::out(&format!("{line}\n"));
        }
        for problem in &self.problems {
            super::report(&problem.to_string());
        }
        for skipped in &self.skipped {
            super::report(&format!("note: {skipped}"));
        }
    }
}

/// `bluegreen check`: exit 0 when nothing would break, [`EXIT_PROBLEMS`] otherwise.
pub fn execute(explicit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let report = run(explicit);
    report.print();
    finish(&report)?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    })
}

/// Prints the verdict, and saves the last good configuration when everything passed. For
/// `bluegreen restart` too, which must refuse to act on a report that is not [`Report::ok`].
pub fn finish(report: &Report) -> anyhow::Result<()> {
    let Some(config) = report.config.as_ref().filter(|_| report.ok()) else {
        super::report(&format!(
            "check failed: {} problem(s); the last good configuration was left as it was",
            report.errors()
        ));
        return Ok(());
    };
    match config.save_as_last_good() {
        Ok(path) => info!(
            "check passed; saved as the last good configuration: {}",
            path.display()
        ),
        // Reading needs no privilege, saving does: the verdict stands, and says so.
        Err(ConfigError::Save { ref source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            info!(
                "check passed; not saved as the last good configuration ({}: permission denied; run as root to save it)",
                config.last_good_path().display()
            )
        }
        Err(e) => return Err(anyhow::Error::new(e).context("check passed")),
    }
    Ok(())
}

/// Runs every check; prints nothing and writes nothing.
pub fn run(explicit: Option<&Path>) -> Report {
    let mut report = Report {
        config: None,
        passed: Vec::new(),
        problems: Vec::new(),
        skipped: Vec::new(),
    };
    let Some(config) = check_config(explicit, &mut report) else {
        report
            .skipped
            .push("the state and NGINX are checked once the configuration is valid".into());
        return report;
    };
    check_state(&config, &mut report);
    check_nginx(&config, &mut report);
    report.config = Some(config);
    report
}

fn check_config(explicit: Option<&Path>, report: &mut Report) -> Option<Config> {
    let Some(path) = Config::locate(explicit) else {
        report
            .passed
            .push("config: no file; the built-in defaults: ok".into());
        return Some(Config::default());
    };
    let config = match Config::read_file(&path) {
        Ok(config) => config,
        Err(e) => {
            // toml stops at the first value of the wrong type; every one is listed
            // (`Config::wrong_types`). The checks of the values themselves wait for them:
            // with a key set aside, they would judge its default, not what was written.
            let (all, complete) = match &e {
                ConfigError::Parse { .. } => std::fs::read_to_string(&path)
                    .map(|text| Config::wrong_types(&text))
                    .unwrap_or_default(),
                _ => (Vec::new(), true),
            };
            let shown = path.display().to_string();
            for e in if all.is_empty() { vec![e] } else { all } {
                report.problems.push(config_problem(&shown, e));
            }
            if !complete {
                report.skipped.push(
                    "the file's other values are read once the problems above are fixed".into(),
                );
            }
            report.skipped.push(
                "the values' own checks (ranges, ports, names) run once every value has its type"
                    .into(),
            );
            return None;
        }
    };
    let shown = config
        .source
        .as_deref()
        .unwrap_or(&path)
        .display()
        .to_string();
    let invalid = config.invalid();
    if invalid.is_empty() {
        report.passed.push(format!("config {shown}: ok"));
        return Some(config);
    }
    for e in invalid {
        report.problems.push(config_problem(&shown, e));
    }
    None
}

/// One problem of the config file `shown`, with what to do about it.
fn config_problem(shown: &str, e: ConfigError) -> Problem {
    let (subject, what, hint) = match e {
        ConfigError::Read { source, .. } => (
            shown.to_string(),
            format!("cannot read it: {source}"),
            "create it, or pass --config PATH (every key is optional: an empty file is valid)"
                .to_string(),
        ),
        ConfigError::Parse { message, .. } => (
            shown.to_string(),
            format!("is not valid: {message}"),
            "fix the file at the place named; every key is optional, and the package's config.toml lists them all with their defaults".to_string(),
        ),
        ConfigError::Invalid { key, why } => {
            let default = Config::default_of(key)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            (
                format!("{shown}: key `{key}`"),
                why,
                format!("fix `{key}`, or remove the line for its default{default}"),
            )
        }
        other => (shown.to_string(), chain(&other), "fix the file".to_string()),
    };
    Problem {
        severity: Severity::Error,
        subject,
        what,
        hint,
    }
}

/// The hint for a file of NGINX's that `bluegreen init` writes and that is missing (`init`,
/// since `restart` refuses while `check` fails).
const INIT_WRITES_IT: &str =
    "`bluegreen init` writes it again (it keeps the data, the models and the slots' links)";

fn check_state(config: &Config, report: &mut Report) {
    let layout = Layout::new(&config.state_dir);
    let before = report.problems.len();
    let error = |subject: &Path, what: String, hint: &str| Problem {
        severity: Severity::Error,
        subject: subject.display().to_string(),
        what,
        hint: hint.to_string(),
    };
    if !layout.root().is_dir() {
        let what = if layout.root().exists() {
            "the state folder (state_dir) is not a folder"
        } else {
            "the state folder (state_dir) does not exist"
        };
        report.problems.push(error(
            layout.root(),
            what.into(),
            "run `bluegreen init`, or set state_dir to the folder that holds the state",
        ));
        return;
    }
    let csv = layout.data_csv(&config.data);
    let rows = match data::read_dataset(&csv, &data::Schema::of(&config.data)) {
        Ok(dataset) => Some(dataset.rows.len()),
        Err(e) => {
            report.problems.push(error(
                &csv,
                chain(&e),
                "fix or remove the line named (`bluegreen init` writes the initial data if the file is missing)",
            ));
            None
        }
    };

    let store = Store::new(&layout.models_dir());
    let versions = match store.versions() {
        Ok(v) => v,
        Err(e) => {
            report.problems.push(error(
                &layout.models_dir(),
                chain(&e),
                "make the folder readable, or run `bluegreen init`",
            ));
            Vec::new()
        }
    };
    let linked: Vec<Option<String>> = Slot::ALL
        .iter()
        .map(|s| layout.slot_version(*s).ok().flatten())
        .collect();
    if versions.is_empty() {
        report.problems.push(error(
            &layout.models_dir(),
            "holds no model".into(),
            "run `bluegreen init` (it trains the first model) or `bluegreen train`",
        ));
    }
    for version in &versions {
        if let Err(e) = store.load(version) {
            if linked.iter().any(|l| l.as_deref() == Some(version)) {
                continue; // reported with the slot below
            }
            report.problems.push(Problem {
                severity: Severity::Warning,
                subject: store.path_of(version).display().to_string(),
                what: chain(&e),
                hint: "no slot serves it: remove it, or leave it; it is skipped".into(),
            });
        }
    }

    let active = match crate::switch::route(config, &layout) {
        Ok(Some(route)) if route.mode != config.nginx.switch => {
            // A warning, not an error: `bluegreen restart`, which runs these checks first, is
            // what applies the change. Until then a reboot would put the slots' sockets where
            // the config says, and NGINX, by the include, would not find them (issue 10).
            report.problems.push(Problem {
                severity: Severity::Warning,
                ..error(
                    &layout.upstream_include(),
                    format!(
                        "routes the {} way, but the config says nginx.switch = \"{}\"",
                        route.mode, config.nginx.switch
                    ),
                    "`bluegreen restart` applies the change (under systemd, `systemctl daemon-reload` first)",
                )
            });
            Some(route.slot)
        }
        Ok(Some(route)) => Some(route.slot),
        Ok(None) => {
            report.problems.push(error(
                &layout.upstream_include(),
                "does not exist: NGINX has no slot to send traffic to".into(),
                "run `bluegreen init` (it writes an include naming blue)",
            ));
            None
        }
        Err(e) => {
            report.problems.push(error(
                &layout.upstream_include(),
                chain(&e),
                "set [slots] back to the addresses the include names; or remove the include and run `bluegreen init` (it names blue)",
            ));
            None
        }
    };

    let mut serving = Vec::new();
    for slot in Slot::ALL {
        let link = layout.slot_link(slot);
        let other = if Some(slot) == active {
            "`bluegreen rollback` moves traffic to the other slot; then `bluegreen deploy` a good model"
        } else {
            "`bluegreen deploy` puts the newest model on this slot"
        };
        if std::fs::symlink_metadata(&link).is_err() {
            report.problems.push(error(
                &link,
                format!("slot {slot} has no model link"),
                "run `bluegreen init` (it links the newest model)",
            ));
            continue;
        }
        match Artifact::load(&link) {
            Ok(model) if model.is_finite() => {
                let role = match active {
                    Some(a) if a == slot => "active",
                    Some(_) => "resting",
                    None => "-",
                };
                serving.push(format!("{slot} {role} ({})", model.version))
            }
            Ok(model) => report.problems.push(error(
                &link,
                format!(
                    "slot {slot}'s model {} has parameters that are not finite numbers",
                    model.version
                ),
                other,
            )),
            Err(e) => report.problems.push(error(
                &link,
                format!("slot {slot} cannot load its model: {}", chain(&e)),
                other,
            )),
        }
    }

    check_sockets(config, report);

    if report.problems[before..]
        .iter()
        .all(|p| p.severity != Severity::Error)
    {
        report.passed.push(format!(
            "state {}: ok: {} rows, {} model(s), {}",
            layout.root().display(),
            rows.unwrap_or(0),
            versions.len(),
            serving.join(", ")
        ));
    }
}

/// Under systemd, `bluegreen@<slot>.socket` must listen where the config says the slot is:
/// the slot refuses a socket on any other address. (Under `bluegreen up`, `up` binds the
/// configured addresses itself.)
fn check_sockets(config: &Config, report: &mut Report) {
    let layout = Layout::new(&config.state_dir);
    if !Path::new("/run/systemd/system").is_dir()
        || supervisor::detect(config, &layout).name() != "systemd"
    {
        return;
    }
    for slot in Slot::ALL {
        let unit = format!("bluegreen@{slot}.socket");
        let Ok(out) = std::process::Command::new("systemctl")
            .args(["show", "--property=LoadState,Listen", &unit])
            .output()
        else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        if value("LoadState").as_deref() != Some("loaded") {
            continue;
        }
        // "127.0.0.1:8081 (Stream)" or "/var/lib/bluegreen/sockets/blue.sock (Stream)", one
        // per ListenStream=.
        let listens: Vec<String> = value("Listen")
            .unwrap_or_default()
            .split_whitespace()
            .filter(|w| !w.starts_with('('))
            .map(str::to_string)
            .collect();
        let want = crate::switch::endpoint(config, slot);
        let listens_there = |l: &String| match &want {
            Endpoint::Tcp(addr) => l.parse() == Ok(*addr),
            Endpoint::Unix(path) => Path::new(l) == path,
        };
        if !listens.iter().any(listens_there) {
            let key = match want {
                Endpoint::Tcp(_) => format!("slots.{slot}"),
                Endpoint::Unix(_) => "nginx.switch".to_string(),
            };
            report.problems.push(Problem {
                severity: Severity::Error,
                subject: format!("key `{key}` and {unit}"),
                what: format!(
                    "the config puts slot {slot} on {want}, but {unit} listens on {}; the slot would refuse that socket",
                    if listens.is_empty() { "nothing".to_string() } else { listens.join(", ") }
                ),
                hint: format!(
                    "run `systemctl daemon-reload`: bluegreen's generator writes {unit}'s address from the config; then `bluegreen restart` (or set `{key}` back)"
                ),
            });
        }
    }
}

fn check_nginx(config: &Config, report: &mut Report) {
    let layout = Layout::new(&config.state_dir);
    let supervisor = supervisor::detect(config, &layout);
    let nginx: &Nginx = supervisor.nginx();
    let whose = match supervisor.name() {
        "systemd" => "the system's NGINX",
        _ => "the NGINX of `bluegreen up`",
    };
    let subject = format!("{} ({whose})", nginx.conf.display());
    let mut error = |what: String, hint: String| {
        report.problems.push(Problem {
            severity: Severity::Error,
            subject: subject.clone(),
            what,
            hint,
        })
    };
    let output = match nginx.command().arg("-T").output() {
        Ok(output) => output,
        Err(e) => {
            return error(
                format!("cannot run {}: {e}", nginx.binary.display()),
                "install NGINX (`apt install nginx`), or set nginx.binary in the config".into(),
            )
        }
    };
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let text = text.trim();
        let root = nix::unistd::geteuid().is_root();
        return error(
            format!("`nginx -t` failed:\n    {}", text.replace('\n', "\n    ")),
            if !root && text.contains("Permission denied") {
                "run it as root (`sudo bluegreen check`): NGINX opens its logs and pid file as root"
                    .into()
            } else if text.contains("No such file")
                && text.contains(&format!("\"{}/", layout.nginx_dir().display()))
            {
                // A file bluegreen writes for NGINX in the state folder is gone. `up` writes its
                // own NGINX's main file and site at start; `init` writes the includes again.
                // Not `restart`: it refuses while this check fails.
                let up_writes = ["site.conf", "nginx.conf"].iter().any(|name| {
                    text.contains(&format!("\"{}\"", layout.nginx_dir().join(name).display()))
                });
                if up_writes {
                    "a file `bluegreen up` writes for its NGINX at start is missing: stop `up` (Ctrl-C) and start it again".into()
                } else {
                    format!("a file bluegreen writes for NGINX in the state folder is missing: {INIT_WRITES_IT}")
                }
            } else {
                "fix the file and line NGINX names above".into()
            },
        );
    }
    // `-T` prints every file it read, so what NGINX would run can be checked too.
    let dump = String::from_utf8_lossy(&output.stdout);
    let include = layout.upstream_include();
    let site = if whose == "the system's NGINX" {
        "/etc/nginx/sites-available/bluegreen (enabled by a link in /etc/nginx/sites-enabled/)"
    } else {
        "the site `bluegreen up` writes at start (restart `up` to apply the change)"
    };
    let mut ok = true;
    if !directives(&dump, "include").any(|arg| Path::new(arg) == include) {
        ok = false;
        error(
            format!(
                "does not include {}: NGINX would not route to the slots of this state",
                include.display()
            ),
            format!(
                "the site must hold `include {};`: {site}",
                include.display()
            ),
        );
    }
    let port = config.public_port;
    if !directives(&dump, "listen").any(|arg| listen_port(arg) == Some(port)) {
        ok = false;
        error(
            format!("listens on no port {port} (public_port)"),
            format!("make the site listen on {port}, or set public_port to the port it listens on: {site}"),
        );
    }
    // What NGINX reads of bluegreen's rendering must be this config's (a warning: NGINX
    // serves on, with the old limits, until `bluegreen restart` applies it). `nginx -T` passed
    // above, so `files` fails only if that changed meanwhile.
    let state_exists = layout.root().is_dir();
    for file in site::files(config, nginx).unwrap_or_default() {
        // Without the state folder these files cannot be there; the state's own error
        // (`check_state`) says what to do, and a warning per file would only repeat it.
        if !file.stale() || (file.now.is_none() && !state_exists) {
            continue;
        }
        let path = file.path.display();
        report.problems.push(Problem {
            severity: Severity::Warning,
            subject: format!("{path} ({})", file.kind),
            what: if file.now.is_none() {
                "is missing or unreadable, and NGINX's configuration includes it".to_string()
            } else {
                format!(
                    "differs from what this configuration renders, so NGINX runs with another's ({})",
                    file.first_difference()
                )
            },
            hint: if file.now.is_none() {
                INIT_WRITES_IT.to_string()
            } else if file.owned {
                "`bluegreen restart` writes it and reloads NGINX".to_string()
            } else {
                format!(
                    "it was edited by hand, so `bluegreen restart` leaves it: merge `bluegreen nginx-site` into it (`bluegreen nginx-site | diff {path} -`), then `nginx -t` and `systemctl reload nginx`"
                )
            },
        });
    }
    if ok {
        report.passed.push(format!(
            "nginx {}: ok: `nginx -t` passed; includes {} and listens on {port}",
            nginx.conf.display(),
            include.display()
        ));
    }
}

/// The first argument of every `name` directive in an `nginx -T` dump (comments removed).
fn directives<'a>(dump: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    dump.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(move |l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(name)).then(|| words.next())?
        })
        .map(|arg| arg.trim_end_matches(';'))
}

/// The port of a `listen` argument: `8080`, `127.0.0.1:8080`, `[::]:8080`, `*:8080`.
fn listen_port(arg: &str) -> Option<u16> {
    arg.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_ports_in_every_form() {
        for (arg, port) in [
            ("8080", Some(8080)),
            ("127.0.0.1:8080", Some(8080)),
            ("[::]:8080", Some(8080)),
            ("*:80", Some(80)),
            ("unix:/run/x.sock", None),
        ] {
            assert_eq!(listen_port(arg), port, "{arg}");
        }
    }

    #[test]
    fn directives_skip_comments_and_other_names() {
        let dump =
            "# include /nope;\n  include /etc/x.conf;\nlisten 8080 default_server;\nlistening 1;\n";
        assert_eq!(
            directives(dump, "include").collect::<Vec<_>>(),
            ["/etc/x.conf"]
        );
        assert_eq!(directives(dump, "listen").collect::<Vec<_>>(), ["8080"]);
    }
}
