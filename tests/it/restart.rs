//! `bluegreen restart` under `bluegreen up`: a configuration change applied one slot at a
//! time, the resting one first, with no failed request; a bad one refused, nothing restarted
//! (issue 8 §3, §4).

use std::time::Duration;

use crate::load::{assert_no_failures, Client, Load};
use crate::util::{read, request, stdout, Env};

/// A request of `rows` copies of the example row.
fn rows(n: usize) -> String {
    let row = "[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]";
    format!("{{\"data\": [{}]}}", vec![row; n].join(","))
}

#[test]
fn restart_applies_a_config_change_one_slot_at_a_time_and_fails_no_request() {
    let env = Env::new();
    let _up = env.up();
    let before = (env.slot_pid("blue"), env.slot_pid("green"));
    assert_eq!(request(env.public, "POST", "/", &rows(600)).status, 200);
    let config = read(&env.config);
    std::fs::write(&env.config, format!("{config}\n[limits]\nmax_rows = 500\n")).unwrap();

    let load = Load::issue8(env.public);
    std::thread::sleep(Duration::from_millis(300));
    let out = env.exits(&["restart"], 0);
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("restart under load: {results:?}");
    assert_no_failures(&results);

    let said = stdout(&out);
    let green = said.find("restarting green (resting)").expect(&said);
    let blue = said.find("restarting blue (active)").expect(&said);
    assert!(green < blue, "the resting slot first: {said}");
    assert!(
        said.contains("restarted green (resting), then blue (active)"),
        "{said}"
    );
    assert_ne!(env.slot_pid("blue"), before.0, "blue was restarted");
    assert_ne!(env.slot_pid("green"), before.1, "green was restarted");
    // The new limit is what the slots apply now.
    let r = request(env.public, "POST", "/", &rows(600));
    assert_eq!(r.status, 413, "{:?}", r.json());
    assert_eq!(request(env.public, "POST", "/", &rows(500)).status, 200);
}

#[test]
fn in_socket_mode_restarts_fail_no_request_either() {
    // On a unix socket, a slot that closed its idle connections on stopping made NGINX write
    // to one dead cached connection after another (EPIPE at once) until its 8 attempts were
    // spent: 502s (`crate::server::conn`). The VM test's wrk load met that at every
    // `systemctl restart bluegreen.target`; this lighter load under `up` did not in 10
    // restarts, so it guards the drain rather than reproducing the race.
    let env = Env::with_extra("[nginx]\nswitch = \"socket\"");
    let _up = env.up();
    let load = Load::issue8(env.public);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        env.exits(&["restart"], 0);
    }
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("restarts in socket mode under load: {results:?}");
    assert_no_failures(&results);
}

#[test]
fn restart_refuses_a_bad_config_and_restarts_nothing() {
    let env = Env::new();
    let _up = env.up();
    let before = (env.slot_pid("blue"), env.slot_pid("green"));
    let good = read(&env.config);
    let load = Load::issue8(env.public);

    std::fs::write(&env.config, format!("batch_size = 0\n{good}")).unwrap();
    let err = env.fails(&["restart"], 1);
    assert!(
        err.contains("config key `batch_size` is invalid: must be at least 1 row")
            && err.contains("hint: "),
        "{err}"
    );

    // A site NGINX refuses is caught by `nginx -t` before anything restarts.
    std::fs::write(&env.config, &good).unwrap();
    let site = env.state().join("nginx/site.conf");
    let site_text = read(&site);
    std::fs::write(&site, format!("{site_text}\nthis_is_not_a_directive on;\n")).unwrap();
    let err = env.fails(&["restart"], 1);
    assert!(
        err.contains("nothing was restarted") && err.contains("this_is_not_a_directive"),
        "{err}"
    );
    std::fs::write(&site, site_text).unwrap();

    // `up` has held green's socket since it started: a restart cannot move it.
    let moved = crate::util::free_port();
    let green = env.green.to_string();
    std::fs::write(
        &env.config,
        good.replace(&green, &format!("127.0.0.1:{moved}")),
    )
    .unwrap();
    let err = env.fails(&["restart"], 1);
    assert!(
        err.contains(&format!(
            "config key `slots.green` asks for 127.0.0.1:{moved}, but bluegreen up has held {green}"
        )) && err.contains("hint: stop bluegreen up"),
        "{err}"
    );
    std::fs::write(&env.config, &good).unwrap();

    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    assert_eq!(
        (env.slot_pid("blue"), env.slot_pid("green")),
        before,
        "no slot was restarted"
    );
}

/// NGINX's side of a configuration change (issue 8 §3): limits and timeouts that live in
/// NGINX's site reach NGINX on `bluegreen restart`, with one reload, and `bluegreen check`
/// warns until then; a restart that changes nothing of NGINX's reloads nothing. Keep-alive
/// clients here retry a request once when a reused connection closes before any answer, as
/// the README asks of clients, since a reload closes idle keep-alive connections.
#[test]
fn restart_applies_nginxs_side_of_a_config_change_and_reloads_it_only_then() {
    let env = Env::new();
    let _up = env.up();
    let site = env.state().join("nginx/site.conf");
    let mut config: toml::Table = read(&env.config).parse().unwrap();
    config.insert(
        "limits".into(),
        toml::toml! { max_body_bytes = 4096 }.into(),
    );
    config["nginx"]
        .as_table_mut()
        .unwrap()
        .insert("upstream_timeout_secs".into(), 7.into());
    std::fs::write(&env.config, toml::to_string(&config).unwrap()).unwrap();
    let out = env.exits(&["check"], 0);
    let warned = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        warned.contains("site.conf (the site): differs from what this configuration renders")
            && warned.contains("client_max_body_size 2097152;")
            && warned.contains("hint: `bluegreen restart` writes it and reloads NGINX"),
        "{warned}"
    );

    let load = Load::mixed(env.public, &[(Client::Retrying, 16), (Client::Fresh, 8)]);
    std::thread::sleep(Duration::from_millis(300));
    let out = env.exits(&["restart"], 0);
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("restart with NGINX's side changed, under load: {results:?}");
    assert_no_failures(&results);
    let said = stdout(&out);
    assert!(
        said.contains("NGINX reloaded with what the config renders now: the site"),
        "{said}"
    );
    let text = read(&site);
    assert!(
        text.contains("client_max_body_size 4096;") && text.contains("proxy_read_timeout 7s;"),
        "{text}"
    );
    // NGINX itself now refuses a body over the new limit, in JSON, before any slot sees it.
    let r = request(env.public, "POST", "/", &rows(60));
    let error = crate::util::assert_json_error(&r, 413, "a body over 4096 bytes");
    assert!(error.contains("larger than 4096 bytes"), "{error}");
    assert_eq!(r.header("x-slot"), None, "NGINX answered it itself");
    let out = env.exits(&["check"], 0);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing of NGINX's changed: no reload, so no client's keep-alive connection is closed,
    // and NGINX's workers are the same processes.
    let nginx = bluegreen::nginx::Nginx::local(
        &bluegreen::config::Config::from_file(&env.config).unwrap(),
        &bluegreen::layout::Layout::new(&env.state()),
    );
    let mut workers = nginx.workers();
    let load = Load::issue8(env.public);
    std::thread::sleep(Duration::from_millis(300));
    let said = stdout(&env.exits(&["restart"], 0));
    std::thread::sleep(Duration::from_millis(300));
    assert_no_failures(&load.finish());
    assert!(!said.contains("NGINX reloaded"), "{said}");
    let mut now = nginx.workers();
    workers.sort();
    now.sort();
    assert_eq!(workers, now, "NGINX was not reloaded");
}
