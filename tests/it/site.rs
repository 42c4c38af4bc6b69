//! The NGINX site under systemd (issue 8 §3): the system's NGINX reads the site from its own
//! configuration (`/etc/nginx/sites-available/bluegreen`, enabled by a link), which the
//! package installs as a conffile. `bluegreen check` warns when it differs from what the
//! config renders, and `bluegreen restart` (`bluegreen::site::apply`, called here directly:
//! its slot restarts need systemd) rewrites it and reloads NGINX while it is bluegreen's own,
//! and leaves a site edited by hand alone. A real NGINX runs the "system" configuration, in a
//! temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bluegreen::config::Config;
use bluegreen::nginx::Nginx;

use crate::util::{assert_json_error, nginx_binary, read, request, Env};

/// An NGINX child, stopped when dropped.
struct System(Child);

impl Drop for System {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let _ = self.0.wait();
    }
}

/// Sets `[nginx] conf` and `pid_file` to a "system" NGINX configuration under the env's
/// temp dir, which includes the sites enabled there, and writes `site` as the enabled site;
/// returns the site's path (in sites-available).
fn system_nginx(env: &Env, site: &str) -> PathBuf {
    let etc = env.dir.path().join("etc");
    std::fs::create_dir_all(etc.join("sites-available")).unwrap();
    std::fs::create_dir_all(etc.join("sites-enabled")).unwrap();
    let main = format!(
        "daemon off;\npid {etc}/nginx.pid;\nerror_log {etc}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {etc}/body;\n    proxy_temp_path {etc}/proxy;\n    include {etc}/sites-enabled/*;\n}}\n",
        etc = etc.display()
    );
    std::fs::write(etc.join("nginx.conf"), main).unwrap();
    let available = etc.join("sites-available/bluegreen");
    std::fs::write(&available, site).unwrap();
    std::os::unix::fs::symlink(
        "../sites-available/bluegreen",
        etc.join("sites-enabled/bluegreen"),
    )
    .unwrap();
    set(env, |nginx| {
        nginx.insert(
            "conf".into(),
            etc.join("nginx.conf").display().to_string().into(),
        );
        nginx.insert(
            "pid_file".into(),
            etc.join("nginx.pid").display().to_string().into(),
        );
    });
    available
}

/// Changes the `[nginx]` table of the env's config with `change`.
fn set(env: &Env, change: impl FnOnce(&mut toml::Table)) {
    let mut config: toml::Table = read(&env.config).parse().unwrap();
    change(config["nginx"].as_table_mut().unwrap());
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();
}

/// Sets `[limits] max_body_bytes` in the env's config.
fn set_body_limit(env: &Env, bytes: i64) {
    let mut config: toml::Table = read(&env.config).parse().unwrap();
    config.insert(
        "limits".into(),
        toml::toml! { max_body_bytes = bytes }.into(),
    );
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();
}

/// Starts NGINX on the "system" configuration; returns once it answers on the public port.
fn start(env: &Env, conf: &Path) -> System {
    let child = Command::new(nginx_binary())
        .arg("-c")
        .arg(conf)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let system = System(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bluegreen::http::request(
        env.public,
        "GET",
        "/healthz",
        None,
        Duration::from_millis(500),
    )
    .is_err()
    {
        assert!(Instant::now() < deadline, "NGINX did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    system
}

fn apply(env: &Env) -> bluegreen::site::Applied {
    let config = Config::from_file(&env.config).unwrap();
    bluegreen::site::apply(&config, &Nginx::system(&config)).unwrap()
}

/// `bluegreen check`'s warnings (it passes with them).
fn check_warnings(env: &Env) -> String {
    String::from_utf8_lossy(&env.exits(&["check"], 0).stderr).into_owned()
}

#[test]
fn the_system_site_is_rewritten_while_it_is_bluegreens_and_an_edited_one_is_left_alone() {
    let env = Env::new();
    env.ok(&["init"]);
    let rendered = env.ok(&["nginx-site"]);
    let site = system_nginx(&env, &rendered);
    let _nginx = start(&env, &env.dir.path().join("etc/nginx.conf"));
    let big = format!("{{\"data\": [[{}]]}}", "1,".repeat(2500));
    assert!(check_warnings(&env).is_empty());
    // In place as `bluegreen nginx-site` rendered it, it is bluegreen's from now on.
    assert!(apply(&env).written.is_empty());

    set_body_limit(&env, 4096);
    let warned = check_warnings(&env);
    assert!(
        warned.contains(&format!(
            "{} (the site): differs from what this configuration renders",
            site.display()
        )) && warned.contains("client_max_body_size 2097152;")
            && warned.contains("hint: `bluegreen restart` writes it and reloads NGINX"),
        "{warned}"
    );
    let applied = apply(&env);
    assert_eq!(applied.written.len(), 1, "{applied:?}");
    assert!(read(&site).contains("client_max_body_size 4096;"));
    assert!(
        env.dir
            .path()
            .join("etc/sites-enabled/bluegreen")
            .is_symlink(),
        "the link stays a link"
    );
    // Reloaded: NGINX itself refuses a body over the new limit.
    let r = request(env.public, "POST", "/", &big);
    let error = assert_json_error(&r, 413, "a body over 4096 bytes");
    assert!(error.contains("larger than 4096 bytes"), "{error}");
    assert!(check_warnings(&env).is_empty());

    // Edited by hand: left as it is, and both say how to merge.
    let edited = format!("{}# mine\n", read(&site));
    std::fs::write(&site, &edited).unwrap();
    set_body_limit(&env, 8192);
    let warned = check_warnings(&env);
    assert!(
        warned.contains("it was edited by hand, so `bluegreen restart` leaves it")
            && warned.contains(&format!("bluegreen nginx-site | diff {} -", site.display())),
        "{warned}"
    );
    let applied = apply(&env);
    assert!(applied.written.is_empty(), "{applied:?}");
    assert_eq!(applied.left.len(), 1, "{applied:?}");
    assert_eq!(read(&site), edited);
    let r = request(env.public, "POST", "/", &big);
    assert_json_error(&r, 413, "the old limit still");
}
