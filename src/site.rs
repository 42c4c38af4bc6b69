//! The NGINX files bluegreen renders from its configuration, against the files NGINX reads
//! (issue 8 §3: a configuration change reaches NGINX, not only the slots).
//!
//! The files:
//! - **the site** ([`nginx::render_site`]), which holds `limits.max_body_bytes`,
//!   `nginx.upstream_timeout_secs`, the header and body timeouts and `public_port`. Under
//!   `bluegreen up` it is `state_dir/nginx/site.conf`, with `up`'s main configuration beside
//!   it (`nginx.conf`: `nginx.worker_shutdown_timeout_secs`). Under systemd it is the file of
//!   the system's NGINX configuration that includes this state folder's include, found in
//!   `nginx -T`'s dump (the package installs it as `/etc/nginx/sites-available/bluegreen`,
//!   enabled by a link in `sites-enabled/`);
//! - **the dashboard's include** (`dashboard::access::render`): `[dashboard] allow` and the
//!   slots' addresses;
//! - **the previews' include** (`rollout::preview::render`): `nginx.preview_from` (issue 11).
//!
//! [`files`] says which of them differ from what the configuration renders (`bluegreen check`
//! warns); [`apply`] writes those and reloads NGINX once (`bluegreen restart`), and only when
//! one changed: a reload closes every client's idle keep-alive connection.
//!
//! The system's site is a conffile, which an admin may edit and whose edits survive upgrades.
//! So bluegreen replaces it only while it is bluegreen's own: the text the package installs
//! (the default configuration's rendering, `nginx/bluegreen.conf`), or the text bluegreen
//! itself last wrote or found in place (its SHA-256 is kept in `state_dir/nginx/site.sha256`).
//! A site edited by hand is left as it is, and `check` and `restart` say how to merge.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::dashboard;
use crate::fsutil;
use crate::layout::Layout;
use crate::nginx::{self, Nginx, NginxError};
use crate::rollout;

/// The site as the package installs it: the default configuration's rendering (a unit test
/// in `nginx` keeps the two equal).
const SHIPPED: &str = include_str!("../nginx/bluegreen.conf");

/// How long [`apply`] waits for NGINX's workers from before the reload to stop accepting.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// Which file bluegreen renders for NGINX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The site: `server { … }` and what it needs.
    Site,
    /// The main configuration of `up`'s NGINX.
    Main,
    /// The dashboard's include (`[dashboard] allow`, the slots' addresses).
    Dashboard,
    /// The previews' include (`nginx.preview_from`, issue 11).
    Preview,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Site => "the site",
            Kind::Main => "the main configuration",
            Kind::Dashboard => "the dashboard's include",
            Kind::Preview => "the previews' include",
        })
    }
}

/// A file bluegreen renders for NGINX.
#[derive(Debug)]
pub struct File {
    /// Where NGINX reads it (through any links).
    pub path: PathBuf,
    /// Which file it is.
    pub kind: Kind,
    /// Its text now; `None` when it cannot be read.
    pub now: Option<String>,
    /// The text the configuration renders.
    pub wanted: String,
    /// Whether bluegreen may replace it (see the module doc).
    pub owned: bool,
}

impl File {
    /// True when the file does not hold what the configuration renders.
    pub fn stale(&self) -> bool {
        self.now.as_deref() != Some(self.wanted.as_str())
    }

    /// The first line that differs, as `line N: "old" → "new"`, for messages.
    pub fn first_difference(&self) -> String {
        let now = self.now.as_deref().unwrap_or("");
        let (mut old, mut new) = (now.lines(), self.wanted.lines());
        for n in 1.. {
            match (old.next(), new.next()) {
                (None, None) => break,
                (a, b) if a == b => {}
                (a, b) => {
                    return format!(
                        "line {n}: {:?} → {:?}",
                        a.unwrap_or("").trim(),
                        b.unwrap_or("").trim()
                    )
                }
            }
        }
        "the same lines, ending differently".to_string()
    }
}

/// Every file bluegreen renders for `nginx` from `config`, with its text now. For the
/// system's NGINX this runs `nginx -T` to find the site; a configuration that does not
/// include this state folder's include has no site of bluegreen's (`bluegreen check` says
/// so on its own).
pub fn files(config: &Config, nginx: &Nginx) -> Result<Vec<File>, NginxError> {
    let layout = Layout::new(&config.state_dir);
    let include = layout.upstream_include();
    let site = nginx::render_site(config, &include);
    let mut files = Vec::new();
    match &nginx.local {
        // `up`'s own NGINX: `up` writes these at every start; nobody else does.
        Some((prefix, _)) => {
            files.push(file(prefix.join("site.conf"), Kind::Site, site, |_| true));
            files.push(file(
                prefix.join("nginx.conf"),
                Kind::Main,
                nginx::render_local_main(config, &layout),
                |_| true,
            ));
        }
        None => {
            if let Some(path) = site_in_dump(&dump(nginx)?, &include) {
                let path = fs::canonicalize(&path).unwrap_or(path);
                let record = fs::read_to_string(record_path(&layout)).ok();
                files.push(file(path, Kind::Site, site, |now| {
                    now == SHIPPED || record.as_deref() == Some(fingerprint(now).as_str())
                }));
            }
        }
    }
    files.push(file(
        layout.dashboard_include(),
        Kind::Dashboard,
        dashboard::access::render(config),
        |_| true,
    ));
    files.push(file(
        layout.preview_include(),
        Kind::Preview,
        rollout::preview::render(config),
        |_| true,
    ));
    Ok(files)
}

fn file(path: PathBuf, kind: Kind, wanted: String, owned: impl Fn(&str) -> bool) -> File {
    let now = fs::read_to_string(&path).ok();
    // A file that already holds the rendering is bluegreen's from now on.
    let owned = now.as_deref().is_none_or(|now| now == wanted || owned(now));
    File {
        path,
        kind,
        now,
        wanted,
        owned,
    }
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The files it wrote, after which NGINX reloaded; empty when nothing changed.
    pub written: Vec<File>,
    /// Files that differ from the rendering but were edited by hand, left as they are.
    pub left: Vec<File>,
}

/// Puts the configuration's rendering into effect: writes every file of [`files`] that
/// differs and is bluegreen's, has `nginx -t` check the whole configuration (and puts every
/// old file back if it fails), reloads NGINX once, and waits until its workers from before
/// the reload no longer accept connections. Nothing is written or reloaded when nothing
/// changed. The system's site, once it holds the rendering (written now, or put there by
/// hand with `bluegreen nginx-site`), is recorded as bluegreen's own (see the module doc).
pub fn apply(config: &Config, nginx: &Nginx) -> Result<Applied, NginxError> {
    let layout = Layout::new(&config.state_dir);
    let mut applied = Applied::default();
    let mut in_sync = None;
    for file in files(config, nginx)? {
        match (file.stale(), file.owned) {
            (false, _) => {
                if nginx.local.is_none() && file.kind == Kind::Site {
                    in_sync = Some(file.wanted);
                }
            }
            (true, true) => applied.written.push(file),
            (true, false) => applied.left.push(file),
        }
    }
    if let Some(site) = in_sync {
        record(&layout, &site)?;
    }
    if applied.written.is_empty() {
        return Ok(applied);
    }
    for file in &applied.written {
        write(&file.path, file.wanted.as_bytes())?;
    }
    if let Err(e) = nginx.test() {
        for file in &applied.written {
            let _ = match &file.now {
                Some(old) => fsutil::write_atomic(&file.path, old.as_bytes()),
                None => fs::remove_file(&file.path),
            };
        }
        return Err(e);
    }
    let before = nginx.workers();
    nginx.reload()?;
    let deadline = Instant::now() + RELOAD_WAIT;
    while nginx.still_accepting(&before) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let written_site = applied
        .written
        .iter()
        .find(|f| nginx.local.is_none() && f.kind == Kind::Site);
    if let Some(site) = written_site {
        record(&layout, &site.wanted)?;
    }
    Ok(applied)
}

fn record(layout: &Layout, site: &str) -> Result<(), NginxError> {
    let path = record_path(layout);
    if fs::read_to_string(&path).is_ok_and(|r| r == fingerprint(site)) {
        return Ok(());
    }
    write(&path, fingerprint(site).as_bytes())
}

fn write(path: &Path, text: &[u8]) -> Result<(), NginxError> {
    fsutil::write_atomic(path, text).map_err(NginxError::Write)
}

fn record_path(layout: &Layout) -> PathBuf {
    layout.nginx_dir().join("site.sha256")
}

fn fingerprint(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `nginx -T`: the test, and every file of the configuration it tested.
fn dump(nginx: &Nginx) -> Result<String, NginxError> {
    let output = nginx
        .command()
        .arg("-T")
        .arg("-q")
        .output()
        .map_err(|source| NginxError::Missing {
            binary: nginx.binary.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NginxError::TestFailed {
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The file of an `nginx -T` dump that includes `include` (the site), by the path NGINX read
/// it from. The dump is each file's text after a line `# configuration file PATH:`.
fn site_in_dump(dump: &str, include: &Path) -> Option<PathBuf> {
    let mut current: Option<&str> = None;
    for line in dump.lines() {
        if let Some(path) = line
            .strip_prefix("# configuration file ")
            .and_then(|rest| rest.strip_suffix(':'))
        {
            current = Some(path);
            continue;
        }
        let directive = line.split('#').next().unwrap_or("").trim();
        let includes = directive
            .strip_prefix("include")
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .map(|rest| rest.trim().trim_end_matches(';').trim());
        if includes.is_some_and(|arg| Path::new(arg) == include) {
            return current.map(PathBuf::from);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_is_the_file_that_includes_the_state_folders_include() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\n\
                    http {\n    include /etc/nginx/sites-enabled/*;\n}\n\n\
                    # configuration file /etc/nginx/sites-enabled/other:\n\
                    # include /var/lib/bluegreen/nginx/upstream.conf;\n\
                    server { listen 80; }\n\n\
                    # configuration file /etc/nginx/sites-enabled/bluegreen:\n\
                    # comment\ninclude /var/lib/bluegreen/nginx/upstream.conf;\nserver {}\n\n\
                    # configuration file /var/lib/bluegreen/nginx/upstream.conf:\n\
                    upstream bluegreen_active {}\n";
        let include = Path::new("/var/lib/bluegreen/nginx/upstream.conf");
        assert_eq!(
            site_in_dump(dump, include),
            Some(PathBuf::from("/etc/nginx/sites-enabled/bluegreen"))
        );
        assert_eq!(site_in_dump(dump, Path::new("/elsewhere.conf")), None);
    }

    #[test]
    fn a_site_is_bluegreens_while_it_holds_what_the_package_or_bluegreen_put_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bluegreen");
        let wanted = "server { client_max_body_size 4096; }\n".to_string();
        let record = fingerprint("server { client_max_body_size 1024; }\n");
        let owned_by_record = |now: &str| now == SHIPPED || record == fingerprint(now);
        for (now, owned) in [
            (SHIPPED, true),
            ("server { client_max_body_size 1024; }\n", true),
            (wanted.as_str(), true),
            ("server { client_max_body_size 1024; } # mine\n", false),
        ] {
            fs::write(&path, now).unwrap();
            let f = file(path.clone(), Kind::Site, wanted.clone(), owned_by_record);
            assert_eq!(f.owned, owned, "{now}");
            assert_eq!(f.stale(), now != wanted, "{now}");
        }
        fs::remove_file(&path).unwrap();
        let f = file(path, Kind::Site, wanted, owned_by_record);
        assert!(f.owned && f.stale(), "a missing file is written");
    }

    #[test]
    fn the_first_difference_names_its_line() {
        let f = File {
            path: PathBuf::from("/x"),
            kind: Kind::Site,
            now: Some("a\n  client_max_body_size 1;\nc\n".into()),
            wanted: "a\n  client_max_body_size 2;\nc\n".into(),
            owned: true,
        };
        assert_eq!(
            f.first_difference(),
            "line 2: \"client_max_body_size 1;\" → \"client_max_body_size 2;\""
        );
    }
}
