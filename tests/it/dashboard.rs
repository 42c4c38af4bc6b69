//! The dashboard at `/-/` (issue 12): in a real browser (headless Chromium), its JSON API,
//! who may see it, and that it changes nothing.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{self, assert_json_error, from, get, post, Env, EXAMPLE};

/// Loopback, but not this host's own address as NGINX sees it (127.0.0.1): the site allows
/// only 127.0.0.1 and ::1, so a client bound to this address is one the rules must refuse
/// unless the config lists it. NGINX matches the source address against its `allow` and
/// `deny` lines whatever network it is on, so this is the refusal any other address gets.
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const THIRD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Adds `[dashboard] allow = …` to the environment's config file.
fn allow(env: &Env, entries: &[&str]) {
    let mut table: toml::Table = util::read(&env.config).parse().unwrap();
    let mut dashboard = toml::Table::new();
    dashboard.insert(
        "allow".into(),
        toml::Value::Array(entries.iter().map(|e| toml::Value::from(*e)).collect()),
    );
    table.insert("dashboard".into(), toml::Value::Table(dashboard));
    std::fs::write(&env.config, toml::to_string(&table).unwrap()).unwrap();
}

#[test]
fn only_this_host_and_the_listed_addresses_see_the_dashboard_the_rest_get_a_json_403() {
    let env = Env::new();
    let _up = env.up_idle();
    let page = get(env.public, "/-/");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // Every spelling of a dashboard path, and the per-slot locations nested in it.
    let paths = [
        "/-/",
        "/-",
        "/-/api/status",
        "//-//api/status",
        "/x/../-/api/history",
        "/%2D/api/status",
        "/-/slots/green/api/slot",
        "/-/vendor/uplot/uPlot.iife.min.js",
    ];
    for path in paths {
        let r = from(OTHER, env.public, "GET", path, "");
        let error = assert_json_error(&r, 403, &format!("GET {path} from {OTHER}"));
        assert!(error.contains("[dashboard] allow"), "{error}");
        assert_eq!(r.header("x-slot"), None, "NGINX refused it, no slot saw it");
    }
    // The prediction API stays open to everyone.
    let r = from(OTHER, env.public, "POST", "/", EXAMPLE);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    allow(&env, &[&format!("{OTHER}/32")]);
    let out = env.ok(&["restart"]);
    assert!(
        out.contains("NGINX reloaded with what the config renders now: the dashboard's include"),
        "{out}"
    );
    let include = util::read(&env.state().join("nginx/dashboard.conf"));
    assert!(include.contains("allow 127.0.0.2/32;"), "{include}");
    for path in paths.iter().filter(|p| !p.contains("%2D")) {
        let r = from(OTHER, env.public, "GET", path, "");
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = from(THIRD, env.public, "GET", "/-/api/status", "");
    assert_json_error(&r, 403, &format!("{THIRD} is still not listed"));
    // Past the rules, straight to a slot (or through an NGINX site older than the rules),
    // the slot itself refuses: only what the site's `/-` location passed is answered.
    for path in ["/-/", "/-/api/status", "/-/api/slot"] {
        let r = get(env.blue, path);
        let error = assert_json_error(&r, 403, &format!("GET {path} straight to blue"));
        assert!(error.contains("only through NGINX"), "{error}");
    }
    // A restart with the same list reloads nothing.
    let out = env.ok(&["restart"]);
    assert!(!out.contains("NGINX reloaded"), "{out}");
}

#[test]
fn nothing_under_the_dashboard_changes_state_other_methods_get_a_json_405() {
    let env = Env::new();
    let _up = env.up_idle();
    let state = || {
        let link = |slot: &str| std::fs::read_link(env.state().join(format!("slots/{slot}.json")));
        (
            util::read(&env.state().join("nginx/upstream.conf")),
            link("blue").unwrap(),
            link("green").unwrap(),
        )
    };
    let before = state();
    for path in [
        "/-/",
        "/-/api/status",
        "/-/api/history",
        "/-/slots/blue/api/slot",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = util::request(env.public, method, path, "{}");
            let error = assert_json_error(&r, 405, &format!("{method} {path}"));
            assert!(error.contains("read-only"), "{error}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    // NGINX refuses TRACE itself, in the same JSON shape.
    let r = util::request(env.public, "TRACE", "/-/", "");
    assert_json_error(&r, 405, "TRACE /-/");
    // HEAD answers like GET, without a body.
    let mut stream = TcpStream::connect(env.public).unwrap();
    stream
        .write_all(b"HEAD /-/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("<!doctype"), "{answer}");
    assert_eq!(
        before,
        state(),
        "the include and the slots' links are as they were"
    );
    assert!(
        !env.state().join("deploys.jsonl").exists(),
        "no record was written"
    );
}

#[test]
fn the_api_serves_the_status_report_models_predictions_history_and_each_slots_counters() {
    let env = Env::new();
    let _up = env.up_idle();
    let first = env.status_json()["newest_model"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["add-data", "--sample", "2"]);
    let second = env.wait_for_new_version(&first, Duration::from_secs(60));

    // One report: `status --json` and /-/api/status agree on everything but what only
    // `status` probes over HTTP (a slot has no network of its own under systemd).
    let mut cli = env.status_json();
    let mut api = get(env.public, "/-/api/status").json().unwrap();
    for report in [&mut cli, &mut api] {
        let object = report.as_object_mut().unwrap();
        object.remove("nginx_routes");
        object.remove("notes");
        for slot in object["slots"].as_array_mut().unwrap() {
            slot.as_object_mut().unwrap().remove("serving");
            slot.as_object_mut().unwrap().remove("health");
        }
    }
    assert_eq!(cli, api);
    assert_eq!(api["active"], "green");

    let models = get(env.public, "/-/api/models").json().unwrap();
    let versions: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, [first.as_str(), second.as_str()]);
    assert_eq!(models["models"][1]["rows"], 508);
    assert_eq!(models["models"][1]["kind"], "linear");
    assert!(
        models["models"][1]["metrics"]["holdout_rmse"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // After a rollback the active model (blue's, the first) and the newest differ.
    env.ok(&["rollback"]);
    let p = get(env.public, "/-/api/predictions").json().unwrap();
    assert_eq!(
        p["holdout_rows"], 101,
        "every fifth of the 506 rows both learned from"
    );
    let actual: Vec<f64> = serde_json::from_value(p["actual"].clone()).unwrap();
    assert_eq!(actual.len(), 101);
    assert!(
        actual.windows(2).all(|w| w[0] <= w[1]),
        "sorted by actual value"
    );
    let roles: Vec<(String, Vec<String>)> = p["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let predicted = m["predicted"].as_array().unwrap();
            assert_eq!(predicted.len(), actual.len());
            (
                m["version"].as_str().unwrap().to_string(),
                serde_json::from_value(m["roles"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (first.clone(), vec!["active".to_string()]),
            (second.clone(), vec!["newest".to_string()])
        ]
    );

    let history = get(env.public, "/-/api/history").json().unwrap();
    let actions: Vec<(&str, &str)> = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("add-data", "measured"),
            ("deploy", "deployed"),
            ("rollback", "rolled-back")
        ]
    );
    // add-data's live accuracy of the model that was active (issue 11), as recorded.
    let live = &history["records"][0]["live"];
    assert_eq!(live["model"].as_str(), Some(first.as_str()), "{live}");
    assert!(live["rmse"].as_f64().is_some_and(f64::is_finite), "{live}");

    // Each slot's counters come from that slot, whichever is active; the dashboard's own
    // requests are not counted, predictions are.
    let live = |slot: &str| {
        let r = get(env.public, &format!("/-/slots/{slot}/api/slot"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-slot"), Some(slot));
        let json = r.json().unwrap();
        assert_eq!(json["slot"], slot);
        json
    };
    let requests = |json: &serde_json::Value| -> u64 {
        json["requests"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    assert_eq!(live("green")["model"], second.as_str());
    let before = requests(&live("blue"));
    for _ in 0..25 {
        assert_eq!(env.predict().status, 200);
    }
    for path in [
        "/-/",
        "/-/api/status",
        "/-/api/models",
        "/-/api/history",
        "/-/api/predictions",
    ] {
        assert_eq!(get(env.public, path).status, 200, "{path}");
    }
    let after = live("blue");
    assert_eq!(requests(&after) - before, 25);
    let buckets = after["latency_buckets"].as_array().unwrap();
    assert!(
        buckets.last().unwrap()[0].is_null(),
        "the last bucket is +Inf"
    );
}

#[test]
fn in_socket_switch_mode_the_page_reaches_each_slot_on_its_unix_socket() {
    let env = Env::with_extra("[nginx]\nswitch = \"socket\"");
    let _up = env.up_idle();
    let include = util::read(&env.state().join("nginx/dashboard.conf"));
    assert!(include.contains("proxy_pass http://unix:"), "{include}");
    for slot in ["blue", "green"] {
        let r = get(env.public, &format!("/-/slots/{slot}/api/slot"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json().unwrap()["slot"], slot);
    }
    assert_eq!(
        get(env.public, "/-/api/status").json().unwrap()["switch"],
        "socket"
    );
}

// --- In a real browser ------------------------------------------------------------------------

/// Headless Chromium, run as issue 12 asks, each time with a fresh profile.
struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// Chromium from PATH; a missing one fails the test with what to do (CI installs it).
    fn find() -> Chromium {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let binary = std::env::split_paths(&path)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
            .expect(
                "this test loads the dashboard in headless Chromium, which is not installed; \
                 hint: `apt-get install chromium` (.ci/run installs it)",
            );
        Chromium { binary }
    }

    /// The dashboard's page through `env`'s NGINX as Chromium rendered it, after 6 s of virtual
    /// time.
    fn page(&self, env: &Env) -> String {
        let dom = self.run(
            &format!("http://{}/-/", env.public),
            Duration::from_secs(6),
            &["--dump-dom"],
        );
        String::from_utf8(dom.stdout).unwrap()
    }

    /// Loads `url`, lets the page run for `budget` of virtual time (Chromium advances its
    /// clock past idle waits, but not while a request is in flight), and returns stdout.
    fn run(&self, url: &str, budget: Duration, extra: &[&str]) -> Output {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--virtual-time-budget={}", budget.as_millis()))
            .args(extra)
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish with {url} within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = Vec::new();
        let _ = child.stderr.take().unwrap().read_to_end(&mut stderr);
        let output = Output {
            status,
            stdout: reader.join().unwrap(),
            stderr,
        };
        assert!(
            output.status.success(),
            "chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// Predictions through NGINX from a thread, one in ten of them a bad request, so that the
/// traffic charts have something to show; stops when dropped, and by itself after 20,000
/// requests.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for i in 0..20_000 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                // One in ten is a bad request, for the error rate.
                if i % 10 == 9 {
                    assert_eq!(post(addr, "{\"data\": []}").status, 422);
                } else {
                    assert_eq!(post(addr, EXAMPLE).status, 200);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The text of the element that opens at `open`, up to the first `close` after it.
fn section<'a>(dom: &'a str, open: &str, close: &str) -> &'a str {
    let start = dom
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in the page:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

/// The value of the attribute `name` in `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> &'a str {
    let open = format!("{name}=\"");
    let start = tag
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + open.len();
    let rest = &tag[start..];
    &rest[..rest.find('"').unwrap_or(rest.len())]
}

/// Distinct colours in a PNG, and the share of its pixels that the commonest one covers.
fn colours(path: &Path) -> (usize, f64, (u32, u32)) {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let samples = info.color_type.samples();
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for pixel in buffer[..info.buffer_size()].chunks_exact(samples) {
        *counts.entry(pixel).or_default() += 1;
    }
    let pixels = (info.width * info.height) as f64;
    let commonest = counts.values().copied().max().unwrap_or(0) as f64;
    (counts.len(), commonest / pixels, (info.width, info.height))
}

#[test]
fn the_page_in_chromium_shows_both_slots_their_versions_the_timeline_and_its_charts() {
    let chromium = Chromium::find();
    let env = Env::new();
    let _up = env.up_idle();
    let first = env.status_json()["newest_model"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["add-data", "--sample", "2"]);
    let second = env.wait_for_new_version(&first, Duration::from_secs(60));
    env.ok(&["rollback"]);
    // Poisoned rows: `up`'s trainer trains on them, and the gate refuses the model.
    let poisoned = "0.1,0,8,0,0.5,6,60,4,4,300,18,390,10,1000000000";
    env.ok(&["add-data", "--row", poisoned, "--row", poisoned]);
    let history = env.state().join("deploys.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = |r: &bluegreen::history::Record| {
        r.action == bluegreen::history::Action::Train
            && r.outcome == bluegreen::history::Outcome::Refused
    };
    while !bluegreen::history::last(&history, 10)
        .unwrap()
        .iter()
        .any(refused)
    {
        assert!(
            Instant::now() < deadline,
            "the gate never refused the poisoned model"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let traffic = Traffic::start(env.public);
    let url = format!("http://{}/-/", env.public);

    // A screenshot (the README's), which must show something: many colours, none covering
    // most of it. The page polls every 2 s; 12 s of virtual time is several rounds of it.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium.run(
        &url,
        Duration::from_secs(12),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1650",
        ],
    );
    let (distinct, commonest, size) = colours(&shot);
    assert_eq!(size, (1400, 1650));
    assert!(distinct >= 200, "{distinct} colours in {}", shot.display());
    assert!(
        commonest < 0.85,
        "one colour covers {:.0}% of {}",
        commonest * 100.0,
        shot.display()
    );
    println!(
        "screenshot: {} ({distinct} colours, the commonest on {:.0}% of it)",
        shot.display(),
        commonest * 100.0
    );

    // A record of a kind this bluegreen does not know, as a later one may write: the
    // timeline shows it, with its fields.
    let future = "{\"time\":\"2999-01-01T00:00:00.000Z\",\"action\":\"rollout-step\",\"outcome\":\"advanced\",\"percent\":50,\"duration_ms\":30000}\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&history)
        .unwrap()
        .write_all(future.as_bytes())
        .unwrap();

    let dom = chromium.run(&url, Duration::from_secs(12), &["--dump-dom"]);
    drop(traffic);
    let dom = String::from_utf8(dom.stdout).unwrap();
    assert!(
        dom.contains("<body data-ready=\"true\">"),
        "the page never had every chart drawn:\n{dom}"
    );
    assert!(
        !dom.contains("id=\"error\" class=\"error\">"),
        "the page shows an error:\n{dom}"
    );
    assert_eq!(
        dom.matches("class=\"uplot").count(),
        6,
        "six charts:\n{dom}"
    );
    assert!(dom.matches("<canvas").count() >= 6, "{dom}");
    // Both slots, their roles and versions: after the rollback blue serves the first model
    // again and green rests with the second.
    let blue = section(&dom, "id=\"slot-blue\"", "</article>");
    let green = section(&dom, "id=\"slot-green\"", "</article>");
    assert!(blue.contains("data-role=\"active\""), "{blue}");
    assert!(blue.contains(&first), "{blue}");
    assert!(blue.contains("serving v0001"), "{blue}");
    assert!(blue.contains("<dt>kind</dt><dd>linear</dd>"), "{blue}");
    assert!(green.contains("data-role=\"resting\""), "{green}");
    assert!(green.contains(&second), "{green}");
    assert!(green.contains("serving v0002"), "{green}");
    // The active slot's request rate, error rate and p99, from its counters, while the
    // traffic ran (one request in ten a bad one): the highest of each in the charts' window,
    // and the latest on its card.
    for chart in ["chart-rate", "chart-errors", "chart-p99"] {
        let open = section(&dom, &format!("id=\"{chart}\""), ">");
        let max = attribute(open, "data-blue-max")
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{chart}: {open}"));
        assert!(max > 0.0, "{chart}: {open}");
        // Green rests: no requests, so no rate above 0 and no p99 at all.
        assert!(
            ["0", ""].contains(&attribute(open, "data-green-max")),
            "green rests: {open}"
        );
    }
    let rate = section(blue, "class=\"rate\">", "</dd>");
    assert!(
        rate["class=\"rate\">".len()..].parse::<f64>().is_ok(),
        "{blue}"
    );
    assert!(
        section(blue, "class=\"p99\">", "</dd>").ends_with(" ms"),
        "{blue}"
    );
    // The timeline, newest first.
    let timeline = section(
        section(&dom, "id=\"timeline\"", "</table>"),
        "<tbody>",
        "</tbody>",
    );
    let rows: Vec<&str> = timeline.split("<tr ").skip(1).collect();
    assert_eq!(rows.len(), 6, "{timeline}");
    assert!(
        rows[0].starts_with("data-action=\"rollout-step\" data-outcome=\"advanced\""),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains("percent: 50") && rows[0].contains("30.00 s"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with("data-action=\"train\" data-outcome=\"refused\""),
        "{}",
        rows[1]
    );
    assert!(
        rows[1].contains("→ v0003") && rows[1].contains("is worse than"),
        "{}",
        rows[1]
    );
    // add-data's live accuracy of the active model on the rows it appended (issue 11): the
    // poisoned rows, measured on the first model, back on blue after the rollback.
    assert!(
        rows[2].starts_with("data-action=\"add-data\" data-outcome=\"measured\""),
        "{}",
        rows[2]
    );
    assert!(
        rows[2].contains("live RMSE") && rows[2].contains("of v0001 on 2 rows"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3].starts_with("data-action=\"rollback\" data-outcome=\"rolled-back\""),
        "{}",
        rows[3]
    );
    assert!(rows[3].contains("green → blue") && rows[3].contains("v0002 → v0001"));
    assert!(
        rows[4].starts_with("data-action=\"deploy\" data-outcome=\"deployed\""),
        "{}",
        rows[4]
    );
    assert!(rows[4].contains("blue → green") && rows[4].contains("v0001 → v0002"));
    assert!(
        rows[4].contains("data-step=\"restart\""),
        "the deploy's steps: {}",
        rows[4]
    );
    assert!(
        rows[5].starts_with("data-action=\"add-data\" data-outcome=\"measured\"")
            && rows[5].contains("live RMSE"),
        "{}",
        rows[5]
    );
    // The active model's newest live accuracy, beside the data.
    let data = section(&dom, "id=\"data\"", "</dl>");
    assert!(
        data.contains("<dt>live accuracy</dt><dd>live RMSE"),
        "{data}"
    );
    // Model quality: three versions, the refused one marked, the RMSE axis logarithmic for
    // its poisoned RMSE, and the first model's live RMSE from add-data's records.
    let quality = section(&dom, "id=\"chart-quality\"", ">");
    for attribute in [
        "data-log=\"true\"",
        "data-refused=\"1\"",
        "data-live-rmse=\"1\"",
    ] {
        assert!(quality.contains(attribute), "{attribute}: {quality}");
    }
    // The refused model is the newest: its predictions are off the chart, and counted.
    let note = section(&dom, "id=\"predictions-note\"", "</p>");
    assert!(
        note.contains("predictions of v0003 fall outside the chart"),
        "{note}"
    );
}

#[test]
fn the_page_shows_a_candidate_waiting_for_promote_and_the_live_accuracy() {
    let chromium = Chromium::find();
    let env = Env::with_extra("[rollout]\npromote = \"manual\"");
    let _up = env.up();
    env.ok(&["add-data", "--sample", "2"]);
    let waiting = crate::faults::bad_candidate::wait_for_record(&env, "a waiting deploy", |r| {
        r.outcome == bluegreen::history::Outcome::Waiting
    });
    let candidate = waiting.to_version.unwrap();
    let dom = chromium.page(&env);
    let banner = section(&dom, "id=\"rollout\"", "</p>");
    assert!(!banner.contains("hidden"), "{banner}");
    assert!(
        banner.contains(&format!("candidate {candidate} waits on green"))
            && banner.contains("traffic stays on blue")
            && banner.contains("bluegreen promote"),
        "{banner}"
    );
    let green = section(&dom, "id=\"slot-green\"", "</article>");
    assert!(green.contains("candidate waiting"), "{green}");
    let blue = section(&dom, "id=\"slot-blue\"", "</article>");
    assert!(!blue.contains("candidate waiting"), "{blue}");
    // add-data measured the active model on the rows it appended.
    let data = section(&dom, "id=\"data\"", "</dl>");
    assert!(
        data.contains("<dt>live accuracy</dt><dd>live RMSE") && data.contains("on 2 rows"),
        "{data}"
    );

    // Once it is promoted, nothing waits: the banner is hidden.
    env.ok(&["promote"]);
    let dom = chromium.page(&env);
    let banner = section(&dom, "id=\"rollout\"", ">");
    assert!(banner.contains("hidden"), "{banner}");
}

/// A rollout killed mid-phase leaves its figures so far in the intent until a command
/// reconciles it; the page, which reconciles nothing, says when they were read, so that
/// figures that stopped moving do not pass for a rollout that runs (issue 11).
#[test]
fn the_page_says_when_a_rollouts_figures_so_far_were_read() {
    let chromium = Chromium::find();
    let env = Env::with_extra("[rollout]\nsteps = [50, 100]\nstep_seconds = 30");
    let _up = env.up_idle();
    env.ok(&["train"]);
    let mut deploy = env
        .cmd(&["deploy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let intent = env.state().join("run/deploy-intent.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let as_of = loop {
        assert!(std::time::Instant::now() < deadline, "no figures so far");
        assert!(deploy.try_wait().unwrap().is_none(), "the deploy ended");
        let so_far = std::fs::read(&intent)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|i| i["so_far"]["as_of"].as_str().map(str::to_string));
        if let Some(as_of) = so_far {
            break as_of;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    crate::util::kill9(deploy.id() as i32);
    deploy.wait().unwrap();
    let as_of = std::fs::read(&intent)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|i| i["so_far"]["as_of"].as_str().map(str::to_string))
        .unwrap_or(as_of);
    let dom = chromium.page(&env);
    let banner = section(&dom, "id=\"rollout\"", "</p>");
    let shown = as_of.replace('T', " ").replace('Z', "");
    assert!(
        banner.contains("now canary 50%: ") && banner.contains(&format!("as of {shown}")),
        "{shown:?} in {banner}"
    );
    // The next command reconciles the killed rollout.
    env.ok(&["status"]);
}

/// A deploy's row in the timeline lists its rollout's phases with the p99 each judged and
/// what against; for the watch, over which window of the previous slot, as `status` says it
/// (issue 11).
#[test]
fn the_timeline_shows_each_phases_p99_against_its_reference_and_the_watchs_window() {
    let chromium = Chromium::find();
    let env = Env::with_extra(
        "[rollout]\nsteps = [50, 100]\nstep_seconds = 2\nwatch_seconds = 2\nmax_latency_ratio = 50.0",
    );
    let _up = env.up_idle();
    env.ok(&["train"]);
    let load = crate::load::Load::mixed(env.public, &[(crate::load::Client::Retrying, 4)]);
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["deploy"]);
    crate::load::assert_no_failures(&load.finish());
    let dom = chromium.page(&env);
    let timeline = section(&dom, "id=\"timeline\"", "</table>");
    assert!(
        timeline.contains("canary 50% passed: ")
            && timeline.contains(" ms vs ")
            && timeline.contains("watch passed: "),
        "{timeline}"
    );
    // Over the canary step and the deploy before it: the window, not the slot's life.
    assert!(
        timeline.contains(", the previous slot's last "),
        "{timeline}"
    );
}
