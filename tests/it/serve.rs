//! `serve`: the slot's API on an ephemeral port, its 4xx answers, and sd_notify readiness.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::{get, post, price, serve, serve_activated, stop, Env, Served, EXAMPLE};

#[test]
fn answers_the_original_example_with_about_30_and_its_headers() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    for path in ["/", "/inference"] {
        let r = crate::util::request(addr, "POST", path, EXAMPLE);
        assert_eq!(r.status, 200);
        let p = price(&r);
        assert!((p - 30.23).abs() < 0.01, "{p}");
        let json = r.json().unwrap();
        assert_eq!(json["prices"][0].as_f64(), Some(p));
        assert_eq!(json["slot"], "blue");
        let version = r.header("x-model-version").unwrap();
        assert!(version.starts_with("v0001-"), "{version}");
        assert_eq!(json["model"], version);
        assert_eq!(r.header("x-slot"), Some("blue"));
    }
    // Rows keyed by feature name, as the original's health check wrote them, and several rows.
    let body = r#"{"data": [{"CRIM": 0.00632, "ZN": 18, "INDUS": 2.31, "CHAS": 0, "NOX": 0.538, "RM": 6.575, "AGE": 65.2, "DIS": 4.09, "RAD": 1, "TAX": 296, "PTRATIO": 15.3, "B": 396.9, "LSTAT": 4.98}, [0.02731, 0, 7.07, 0, 0.469, 6.421, 78.9, 4.9671, 2, 242, 17.8, 396.9, 9.14]]}"#;
    let r = post(addr, body);
    assert_eq!(r.status, 200);
    let prices = r.json().unwrap()["prices"].as_array().unwrap().clone();
    assert_eq!(prices.len(), 2);
    assert!((prices[0].as_f64().unwrap() - 30.23).abs() < 0.01);
    assert!(
        (prices[1].as_f64().unwrap() - 25.20).abs() < 0.01,
        "{prices:?}"
    );

    for path in ["/healthz", "/readyz", "/model", "/metrics"] {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("x-slot"), Some("blue"), "{path}");
    }
    let model = get(addr, "/model").json().unwrap();
    assert_eq!(model["model"]["coefficients"].as_array().unwrap().len(), 13);
    assert_eq!(model["model"]["rows"], 506);
    let metrics = String::from_utf8(get(addr, "/metrics").body).unwrap();
    assert!(
        metrics.contains("bluegreen_requests_total{status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bluegreen_request_duration_seconds_bucket{le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bluegreen_model_info{version=\"v0001-"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bluegreen_rows_predicted_total 4"),
        "{metrics}"
    );
    // When the counters began (Prometheus's process metric): a reader tells a restart by it.
    let started: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_start_time_seconds "))
        .expect("process_start_time_seconds")
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 600.0,
        "{started} vs {now}"
    );
    // Monitors' polls are not traffic: /metrics and the health routes are not counted, so a
    // rollout polling a candidate's /metrics cannot pass for requests it answered well.
    let answered = |addr| {
        let text = String::from_utf8(get(addr, "/metrics").body).unwrap();
        text.lines()
            .filter(|l| l.starts_with("bluegreen_requests_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    let before = answered(addr);
    assert!(before > 0, "the predictions and /model are counted");
    for _ in 0..5 {
        for path in [
            "/metrics",
            "/healthz",
            "/readyz",
            "/v2/health/live",
            "/v2/health/ready",
        ] {
            assert_eq!(get(addr, path).status, 200, "{path}");
        }
    }
    assert_eq!(answered(addr), before, "probes were counted as requests");
    assert_eq!(get(addr, "/model").status, 200);
    assert_eq!(answered(addr), before + 1, "an API request is counted");
    assert!(
        stop(child).success(),
        "SIGTERM must end the server with status 0"
    );
}

#[test]
fn every_bad_request_gets_a_4xx_json_error_that_says_what_and_where() {
    let env = Env::with_extra("[limits]\nmax_rows = 3\nmax_body_bytes = 2048");
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let twelve = "[1,2,3,4,5,6,7,8,9,10,11,12]";
    let good = "[0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15]";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("POST", "{not json".into(), 400, "not valid JSON"),
        ("POST", "".into(), 400, "not valid JSON"),
        (
            "POST",
            "[1,2]".into(),
            422,
            "must be an object with a \"data\" field",
        ),
        (
            "POST",
            r#"{"rows": []}"#.into(),
            422,
            "unknown key \"rows\"",
        ),
        ("POST", r#"{}"#.into(), 422, "no \"data\" field"),
        (
            "POST",
            r#"{"data": 5}"#.into(),
            422,
            "must be a list of rows, not a number",
        ),
        ("POST", r#"{"data": []}"#.into(), 422, "\"data\" is empty"),
        (
            "POST",
            format!(r#"{{"data": [{good}, {twelve}]}}"#),
            422,
            "data[1] has 12 values; expected 13",
        ),
        (
            "POST",
            format!(r#"{{"data": [{good}, {good}, {good}, {good}]}}"#),
            413,
            "at most 3",
        ),
        (
            "POST",
            r#"{"data": [[1,2,3,4,5,6,7,8,9,10,11,12,"x"]]}"#.into(),
            422,
            "data[0][12] (LSTAT) must be a finite number, not a string",
        ),
        (
            "POST",
            r#"{"data": [[1,2,3,4,5,6,7,8,9,10,11,12,1e999]]}"#.into(),
            422,
            "data[0][12] must be a finite number, not one beyond the range of a 64-bit float",
        ),
        (
            "POST",
            r#"{"data": [[1,2,3,4,1e308,6,7,8,9,10,11,12,13]]}"#.into(),
            422,
            "row 0, column 4 (NOX): 1e308 is too large",
        ),
        (
            "POST",
            r#"{"data": [{"CRIM": 1}]}"#.into(),
            422,
            "data[0] is missing the field \"ZN\"",
        ),
        (
            "POST",
            r#"{"data": [{"crim": 1}]}"#.into(),
            422,
            "unknown field \"crim\"",
        ),
        ("POST", r#"{"data": [null]}"#.into(), 422, "not null"),
        (
            "POST",
            format!(r#"{{"data": [{}]}}"#, "1,".repeat(2000)),
            413,
            "larger than the limit",
        ),
    ];
    for (method, body, status, message) in cases {
        let r = crate::util::request(addr, method, "/", &body);
        let json = r.json().unwrap_or_else(|| {
            panic!(
                "{body:?}: a JSON error, got {:?}",
                String::from_utf8_lossy(&r.body)
            )
        });
        let error = json["error"].as_str().unwrap_or_default();
        assert_eq!(r.status, status, "{body:.80}: {error}");
        assert!(
            error.contains(message),
            "{body:.80}: {error:?} lacks {message:?}"
        );
        assert!(
            json["hint"].as_str().is_some_and(|h| !h.is_empty()),
            "{body:.80}: no hint in {json}"
        );
        assert!(r.header("x-model-version").is_some());
    }
    for (method, path, status, message) in [
        ("GET", "/", 405, "method GET not allowed on /"),
        (
            "PUT",
            "/inference",
            405,
            "method PUT not allowed on /inference",
        ),
        ("POST", "/readyz", 405, "method POST not allowed on /readyz"),
        ("GET", "/nope", 404, "no such path \"/nope\""),
        ("POST", "//nope/", 404, "no such path \"/nope\""),
    ] {
        let r = crate::util::request(addr, method, path, "");
        assert_eq!(r.status, status, "{method} {path}");
        let json = r.json().unwrap();
        assert!(
            json["error"].as_str().unwrap().contains(message),
            "{method} {path}: {json}"
        );
        assert!(
            json["hint"].as_str().unwrap().contains("POST /"),
            "{method} {path}: {json}"
        );
    }
    let metrics = String::from_utf8(get(addr, "/metrics").body).unwrap();
    assert!(!metrics.contains("status=\"5"), "no 5xx, ever: {metrics}");
    assert!(stop(child).success());
}

#[test]
fn ready_is_notified_only_after_the_model_loaded_and_the_socket_is_bound() {
    let env = Env::new();
    env.ok(&["init"]);
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (child, addr) = serve(&env, Some(&socket_path));
    let mut buf = [0u8; 1024];
    let n = socket.recv(&mut buf).unwrap();
    let message = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
    assert!(
        message.contains("STATUS=active: serving v0001-"),
        "{message}"
    );
    assert!(message.contains(&addr.to_string()), "{message}");
    // READY came after the bind: the very next request is answered.
    assert_eq!(post(addr, EXAMPLE).status, 200);
    assert!(stop(child).success());
    let n = socket.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));

    // A corrupt model: a clear error, a non-zero exit, and no READY at all.
    let link = env.state().join("slots/blue.json");
    let target = std::fs::canonicalize(&link).unwrap();
    std::fs::write(&target, b"{\"format\": 1, \"version\": ").unwrap();
    let out = env
        .cmd(&["serve", "--slot", "blue", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &socket_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("slot blue cannot load its model") && err.contains("is corrupt"),
        "{err}"
    );
    socket.set_nonblocking(true).unwrap();
    assert!(
        socket.recv(&mut buf).is_err(),
        "no notification from a server that failed"
    );
}

/// The next `STATUS=` line the slot sends on `socket`.
fn next_status(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    loop {
        let n = socket.recv(&mut buf).expect("a STATUS= line within 10 s");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(line) = message.lines().find_map(|l| l.strip_prefix("STATUS=")) {
            return line.to_string();
        }
    }
}

#[test]
fn the_status_line_says_whether_the_slot_is_active_and_follows_every_flip() {
    let env = Env::new();
    env.ok(&["init"]);
    let config = bluegreen::config::Config::from_file(&env.config).unwrap();
    let include = env.state().join("nginx/upstream.conf");
    let layout = bluegreen::layout::Layout::new(&config.state_dir);
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (child, addr) = serve(&env, Some(&socket_path));
    let first = next_status(&socket);
    assert!(
        first.starts_with("active: serving v0001-") && first.ends_with(&addr.to_string()),
        "{first}"
    );
    // Flips, as deploy and rollback write the include; the slot keeps running.
    use bluegreen::slot::Slot;
    for (active, expected) in [
        (
            Slot::Green,
            "resting (NGINX sends requests to green): serving v0001-",
        ),
        (Slot::Blue, "active: serving v0001-"),
        (
            Slot::Green,
            "resting (NGINX sends requests to green): serving v0001-",
        ),
    ] {
        bluegreen::switch::write(&config, &layout, active).unwrap();
        let line = next_status(&socket);
        assert!(
            line.starts_with(expected),
            "after a flip to {active}: {line}"
        );
    }
    std::fs::remove_file(&include).unwrap();
    let line = next_status(&socket);
    assert!(line.starts_with("role unknown (no NGINX include"), "{line}");
    // An include rewritten with the same role sends nothing new: the next line is the change.
    bluegreen::switch::write(&config, &layout, Slot::Blue).unwrap();
    bluegreen::switch::write(&config, &layout, Slot::Blue).unwrap();
    assert!(next_status(&socket).starts_with("active: "));
    assert!(stop(child).success());
    assert_eq!(next_status(&socket), "stopping");
}

#[test]
fn a_socket_passed_by_systemd_is_served_only_on_the_slots_address() {
    let env = Env::new();
    env.ok(&["init"]);
    let listener = std::net::TcpListener::bind(env.blue).unwrap();
    let child = Served(Some(serve_activated(&env, &listener, &[])));
    drop(listener);
    // The socket was open before the server started, so this connects at once and waits in
    // the backlog until the server accepts it.
    let r = post(env.blue, EXAMPLE);
    assert_eq!(r.status, 200);
    assert!((price(&r) - 30.23).abs() < 0.01);
    assert!(stop(child).success());

    let wrong = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = serve_activated(&env, &wrong, &[])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was handed a socket on") && err.contains("bluegreen@blue.socket"),
        "{err}"
    );
}

/// `GET /model` shows the artifact without the fitted model's insides (README): a linear
/// model's intercept and coefficients, and not its `stats`, the QR factors a training goes
/// on from (about 5 KB of numbers).
#[test]
fn get_model_leaves_out_the_fitted_models_insides() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let r = get(addr, "/model");
    assert_eq!(r.status, 200);
    let model = r.json().unwrap()["model"].clone();
    assert_eq!(model["coefficients"].as_array().unwrap().len(), 13);
    assert_eq!(model["rows"], 506);
    for insides in ["stats", "fitted"] {
        assert!(model.get(insides).is_none(), "{insides} in {model}");
    }
    assert!(r.body.len() < 3000, "{} bytes: {model}", r.body.len());
    assert!(stop(child).success());
}
