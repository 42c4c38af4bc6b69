//! The request formats and inference protocols of issue #9: pandas' split orient on `POST /`,
//! the Open Inference Protocol (v2) with its standard client `tritonclient`, and KServe v1;
//! on a slot and through NGINX under `bluegreen up`.

use std::net::SocketAddr;
use std::process::Command;

use serde_json::{json, Value};

use crate::util::{get, post, price, request, serve, stop, Env, EXAMPLE};

/// The original's example row, and the Boston feature names.
const ROW: [f64; 13] = [
    0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
];
const FEATURES: [&str; 13] = [
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
];
/// A second Boston row, so that batches hold different rows.
const ROW2: [f64; 13] = [
    0.02731, 0.0, 7.07, 0.0, 0.469, 6.421, 78.9, 4.9671, 2.0, 242.0, 17.8, 396.9, 9.14,
];

/// The prices `POST /` gives for `rows`: the reference every protocol must equal exactly.
fn prices(addr: SocketAddr, rows: &[[f64; 13]]) -> Vec<f64> {
    let r = post(addr, &json!({ "data": rows }).to_string());
    assert_eq!(r.status, 200, "{:?}", r.json());
    serde_json::from_value(r.json().unwrap()["prices"].clone()).unwrap()
}

/// An error in the inference protocols' shape: `status`, and a body that is exactly
/// `{"error": "<what>; hint: <next>"}`. Returns the message.
fn protocol_error(r: &bluegreen::http::Response, status: u16, what: &str) -> String {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "{what}: {body}");
    let json = r
        .json()
        .unwrap_or_else(|| panic!("{what}: not JSON: {body}"));
    let object = json.as_object().unwrap();
    assert_eq!(
        object.len(),
        1,
        "{what}: the protocol's error has one key: {body}"
    );
    let message = object["error"].as_str().unwrap().to_string();
    assert!(
        message.contains("; hint: "),
        "{what}: no hint in {message:?}"
    );
    message
}

#[test]
fn split_orient_columns_are_mapped_by_name_and_unknown_keys_are_refused() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    // Pandas' split orient with the columns reversed: a client that sent this got Price 867
    // when `columns` was ignored, where the row's price is about 30.
    let mut columns = FEATURES;
    columns.reverse();
    let mut row = ROW;
    row.reverse();
    let expected = price(&post(addr, EXAMPLE));
    for body in [
        json!({ "columns": columns, "data": [row] }),
        json!({ "columns": columns, "index": [0], "data": [row] }),
        json!({ "dataframe_split": { "columns": columns, "data": [row] } }),
        json!({ "dataframe_records": [FEATURES.iter().zip(ROW).map(|(f, v)| (f.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()] }),
    ] {
        let r = post(addr, &body.to_string());
        assert_eq!(r.status, 200, "{body}: {:?}", r.json());
        assert_eq!(price(&r), expected, "{body}");
    }
    for (body, what) in [
        (
            json!({ "data": [ROW], "columns_": FEATURES }),
            "unknown key \"columns_\"",
        ),
        (
            json!({ "data": [ROW], "model": "x" }),
            "unknown key \"model\"",
        ),
        (
            json!({ "columns": ["crim"], "data": [[1]] }),
            "columns[0] \"crim\" is not a feature",
        ),
        (
            json!({ "columns": &FEATURES[1..], "data": [&ROW[1..]] }),
            "\"columns\" lacks the feature \"CRIM\"",
        ),
    ] {
        let r = post(addr, &body.to_string());
        let error = crate::util::assert_json_error(&r, 422, what);
        assert!(error.contains(what), "{body}: {error:?} lacks {what:?}");
    }
    assert!(stop(child).success());
}

/// A request with binary tensor data after its JSON (Triton's extension), as raw bytes.
fn binary_request(path: &str, header: &Value, binary: &[u8]) -> Vec<u8> {
    let json = header.to_string();
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: {}\r\nContent-Length: {}\r\n\r\n",
        json.len(),
        json.len() + binary.len()
    )
    .into_bytes();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(binary);
    out
}

#[test]
fn the_open_inference_protocol_on_a_slot_answers_as_the_spec_says() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let expected = prices(addr, &[ROW, ROW2]);
    let version = get(addr, "/readyz").json().unwrap()["model"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(
        get(addr, "/v2/health/live").json(),
        Some(json!({"live": true}))
    );
    assert_eq!(
        get(addr, "/v2/health/ready").json(),
        Some(json!({"ready": true}))
    );
    let server = get(addr, "/v2").json().unwrap();
    assert_eq!(server["name"], "bluegreen");
    assert_eq!(server["extensions"], json!(["binary_tensor_data"]));
    let metadata = json!({
        "name": "bluegreen",
        "versions": [version],
        "platform": "smartcore_linear",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}],
        "outputs": [{"name": "output-0", "datatype": "FP64", "shape": [-1]}],
    });
    let versioned = format!("/v2/models/bluegreen/versions/{version}");
    for model in ["/v2/models/bluegreen", versioned.as_str()] {
        assert_eq!(get(addr, model).json(), Some(metadata.clone()), "{model}");
        assert_eq!(
            get(addr, &format!("{model}/ready")).json(),
            Some(json!({"name": "bluegreen", "ready": true}))
        );
    }

    let infer = |path: &str, body: Value| request(addr, "POST", path, &body.to_string());
    let input = |datatype: &str, data: Value| json!({"id": "42", "inputs": [{"name": "input-0", "shape": [2, 13], "datatype": datatype, "data": data}]});
    let answer = |data: Value| {
        json!({"model_name": "bluegreen", "model_version": version, "id": "42",
               "outputs": [{"name": "output-0", "datatype": "FP64", "shape": [2], "data": data}]})
    };
    let flat: Vec<f64> = ROW.iter().chain(&ROW2).copied().collect();
    for (path, data) in [
        ("/v2/models/bluegreen/infer", json!([ROW, ROW2])),
        (&format!("{versioned}/infer"), json!(flat)),
    ] {
        let r = infer(path, input("FP64", data));
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json(), Some(answer(json!(expected))), "{path}");
    }
    // FP32: each element is an f32, as in the tensor's binary form.
    let as_f32 = |row: [f64; 13]| row.map(|v| v as f32 as f64);
    let expected_f32 = prices(addr, &[as_f32(ROW), as_f32(ROW2)]);
    let r = infer("/v2/models/bluegreen/infer", input("FP32", json!(flat)));
    assert_eq!(r.json(), Some(answer(json!(expected_f32))));

    // Binary tensor data in, and the output as bytes, as tritonclient sends by default.
    let header = json!({"inputs": [{"name": "input-0", "shape": [2, 13], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 104}}],
                        "parameters": {"binary_data_output": true}});
    let bytes: Vec<u8> = flat
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    let r = crate::util::raw(
        addr,
        &binary_request("/v2/models/bluegreen/infer", &header, &bytes),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let json_length: usize = r
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    let head: Value = serde_json::from_slice(&r.body[..json_length]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 16);
    assert!(head["outputs"][0].get("data").is_none(), "{head}");
    let got: Vec<f64> = r.body[json_length..]
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, expected_f32);

    // Errors: the protocol's shape, the right status, what and where.
    for (path, body, status, what) in [
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": []}),
            400,
            "the request has 0 inputs; the model takes one, \"input-0\"",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP64", "data": ROW}]}),
            400,
            "inputs[0] is named \"x\"",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [1, 12], "datatype": "FP64", "data": &ROW[1..]}]}),
            400,
            "has shape [1, 12]; it takes [rows, 13]",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [2, 13], "datatype": "FP64", "data": ROW}]}),
            400,
            "has 13 values in \"data\"; its shape [2, 13] holds 26",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "INT64", "data": ROW}]}),
            400,
            "datatype \"INT64\"",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP32", "data": [1e39, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}]}),
            400,
            "value 0 (row 0, CRIM) is not a finite FP32",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": ["x"]}]}),
            400,
            "invalid type: string \"x\"",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": ROW}], "outputs": [{"name": "price"}]}),
            400,
            "outputs[0] asks for \"price\"",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"inputs": [{"name": "input-0", "shape": [0, 13], "datatype": "FP64", "data": []}]}),
            400,
            "\"inputs[0]\" is empty",
        ),
        (
            "/v2/models/bluegreen/infer",
            json!({"id": "1"}),
            400,
            "missing field `inputs`",
        ),
        (
            "/v2/models/other/infer",
            json!({}),
            404,
            "unknown model \"other\"",
        ),
        (
            "/v2/models/bluegreen/versions/v9999-x/infer",
            json!({}),
            404,
            "model \"bluegreen\" has no version \"v9999-x\" here",
        ),
        (
            "/v2/models/bluegreen/nope",
            json!({}),
            404,
            "no such path \"/v2/models/bluegreen/nope\"",
        ),
        (
            "/v1/models/other:predict",
            json!({"instances": [ROW]}),
            404,
            "unknown model \"other\"",
        ),
        (
            "/v1/models/bluegreen:predict",
            json!({"instances": [ROW], "x": 1}),
            400,
            "unknown key \"x\"",
        ),
        (
            "/v1/models/bluegreen:predict",
            json!({"instances": [&ROW[1..]]}),
            400,
            "instances[0] has 12 values; expected 13",
        ),
        (
            "/v1/models/bluegreen:predict",
            json!({"instances": []}),
            400,
            "\"instances\" is empty",
        ),
    ] {
        let message = protocol_error(&infer(path, body.clone()), status, path);
        assert!(
            message.contains(what),
            "{path} {body}: {message:?} lacks {what:?}"
        );
    }
    let r = request(addr, "POST", "/v2/models/bluegreen/infer", "{not json");
    assert!(protocol_error(&r, 400, "bad JSON").contains("not valid"));
    let r = get(addr, "/v2/models/other");
    assert!(
        protocol_error(&r, 404, "metadata of another model").contains("unknown model \"other\"")
    );
    let r = get(addr, "/v2/models/bluegreen/infer");
    assert!(protocol_error(&r, 405, "GET infer").contains("method GET not allowed"));
    let r = crate::util::raw(
        addr,
        &binary_request("/v2/models/bluegreen/infer", &header, &bytes[..100]),
    );
    assert!(protocol_error(&r, 400, "short binary")
        .contains("binary_data_size 104, but the body holds 100 bytes"));
    let metrics = String::from_utf8(get(addr, "/metrics").body).unwrap();
    assert!(!metrics.contains("status=\"5"), "no 5xx, ever: {metrics}");
    assert!(stop(child).success());
}

/// The Python interpreter with `tritonclient[http]` (`.ci/run` installs it): `python3`, or
/// `BLUEGREEN_TEST_PYTHON`.
fn python() -> String {
    std::env::var("BLUEGREEN_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn standard_clients_work_unchanged_through_nginx() {
    let env = Env::new();
    let _up = env.up();
    let addr = env.public;
    let expected = prices(addr, &[ROW, ROW2]);
    let as_f32 = |row: [f64; 13]| row.map(|v| v as f32 as f64);
    let expected_f32 = prices(addr, &[as_f32(ROW), as_f32(ROW2)]);

    // tritonclient, the Open Inference Protocol's standard client, as its docs use it.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/oip_client.py");
    let python = python();
    let out = Command::new(&python)
        .arg(&script)
        .arg(addr.to_string())
        .arg("bluegreen")
        .arg(json!([ROW, ROW2]).to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; hint: set BLUEGREEN_TEST_PYTHON to a Python 3 with tritonclient[http] (README: Tests)"));
    assert!(
        out.status.success(),
        "{script:?} failed under {python}; hint: install tritonclient[http] in a venv and name its python in BLUEGREEN_TEST_PYTHON (README: Tests; .ci/run does)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["live"], true);
    assert_eq!(got["ready"], true);
    assert_eq!(got["model_ready"], true);
    assert_eq!(got["server"]["extensions"], json!(["binary_tensor_data"]));
    let version = crate::util::post(addr, EXAMPLE)
        .header("x-model-version")
        .unwrap()
        .to_string();
    assert_eq!(got["metadata"]["versions"], json!([version]));
    for (case, want) in [
        ("FP64 json", &expected),
        ("FP64 binary", &expected),
        ("FP64 defaults", &expected),
        ("FP32 json", &expected_f32),
        ("FP32 binary", &expected_f32),
    ] {
        assert_eq!(
            got["infer"][case]["predictions"],
            json!(want),
            "{case}: {}",
            got["infer"][case]
        );
        assert_eq!(
            got["infer"][case]["model_version"],
            json!(version),
            "{case}"
        );
    }
    assert_eq!(got["unknown_model"]["status"], "404");
    assert!(
        got["unknown_model"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown model \"nope\""),
        "{}",
        got["unknown_model"]
    );

    // KServe v1 with a plain HTTP client: rows as lists and as objects.
    let object: serde_json::Map<String, Value> = FEATURES
        .iter()
        .zip(ROW2)
        .map(|(f, v)| (f.to_string(), json!(v)))
        .collect();
    let r = request(
        addr,
        "POST",
        "/v1/models/bluegreen:predict",
        &json!({"instances": [ROW, object]}).to_string(),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json(), Some(json!({"predictions": expected})));
    assert_eq!(r.header("x-model-version"), Some(version.as_str()));
    assert_eq!(
        get(addr, "/v1/models/bluegreen").json(),
        Some(json!({"name": "bluegreen", "ready": true}))
    );
    assert_eq!(
        get(addr, "/v1/models").json(),
        Some(json!({"models": ["bluegreen"]}))
    );
    let r = get(addr, "/v1/models/nope");
    assert!(protocol_error(&r, 404, "v1 other model").contains("unknown model \"nope\""));
}

#[test]
fn the_api_examples_in_the_readme_work_as_written() {
    let env = Env::with_extra("");
    let _up = env.up();
    let text = crate::readme::section("## The API");
    let blocks = crate::readme::sh_blocks(&text);
    assert!(!blocks.is_empty(), "the API section has no sh block");
    let mut ran = 0;
    for block in blocks {
        let lines: Vec<&str> = block.lines().collect();
        for (i, command) in lines.iter().enumerate() {
            if command.starts_with('#') || command.trim().is_empty() {
                continue;
            }
            let command = command.replace("127.0.0.1:8080", &env.public.to_string());
            let out = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &command])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got = String::from_utf8(out.stdout).unwrap();
            let expected = lines
                .get(i + 1)
                .and_then(|l| l.strip_prefix("# "))
                .unwrap_or_else(|| panic!("{command}: no `# output` line after it"));
            assert_eq!(
                crate::readme::without_times(got.trim_end()),
                crate::readme::without_times(expected),
                "{command}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 6, "only {ran} examples");

    // The Python example with the standard client: what it prints is in its last comment.
    let python_block = text
        .split("```python\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the API section has a Python example")
        .replace("127.0.0.1:8080", &env.public.to_string());
    let expected = python_block
        .lines()
        .last()
        .and_then(|l| l.rsplit_once("# "))
        .expect("the example's last line says what it prints")
        .1;
    let out = Command::new(python())
        .args(["-c", &python_block])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{python_block}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), expected);
}

/// A number beyond a 64-bit float's range (`1e999`, `-1e400`, an integer of 400 digits) is
/// JSON, so it is a bad value like any other that is not a finite number: `POST /` answers
/// 422 and the protocols their 400, each naming where the number is, in every row format
/// that can carry one. serde_json refuses the whole body for it, which used to be a 400 "not
/// valid JSON" naming only a line and a column.
#[test]
fn a_number_beyond_a_64_bit_float_is_a_bad_value_named_by_its_row_and_column() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let huge = format!("1{}", "0".repeat(400));
    for big in ["1e999", "-1e400", huge.as_str()] {
        let mut row: Vec<String> = ROW.iter().map(f64::to_string).collect();
        row[3] = big.to_string();
        let list = format!("[{}]", row.join(", "));
        let named = |i: usize| format!("\"{}\": {}", FEATURES[i], row[i]);
        let object = format!("{{{}}}", (0..13).map(named).collect::<Vec<_>>().join(", "));
        let columns = json!(FEATURES).to_string();
        for (path, body, status, place) in [
            (
                "/",
                format!(r#"{{"data": [{EXAMPLE_ROW}, {list}]}}"#),
                422,
                "data[1][3]",
            ),
            (
                "/inference",
                format!(r#"{{"data": [{object}]}}"#),
                422,
                "data[0].CHAS",
            ),
            (
                "/",
                format!(r#"{{"columns": {columns}, "data": [{list}]}}"#),
                422,
                "data[0][3]",
            ),
            (
                "/",
                format!(r#"{{"dataframe_split": {{"columns": {columns}, "data": [{list}]}}}}"#),
                422,
                "dataframe_split.data[0][3]",
            ),
            (
                "/",
                format!(r#"{{"dataframe_records": [{object}]}}"#),
                422,
                "dataframe_records[0].CHAS",
            ),
            (
                "/v1/models/bluegreen:predict",
                format!(r#"{{"instances": [{EXAMPLE_ROW}, {list}]}}"#),
                400,
                "instances[1][3]",
            ),
            (
                "/v1/models/bluegreen:predict",
                format!(r#"{{"instances": [{object}]}}"#),
                400,
                "instances[0].CHAS",
            ),
            (
                "/v2/models/bluegreen/infer",
                format!(
                    r#"{{"inputs": [{{"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": {list}}}]}}"#
                ),
                400,
                "inputs[0].data[3]",
            ),
            (
                "/v2/models/bluegreen/infer",
                format!(
                    r#"{{"inputs": [{{"name": "input-0", "shape": [1, 13], "datatype": "FP32", "data": [{list}]}}]}}"#
                ),
                400,
                "inputs[0].data[0][3]",
            ),
        ] {
            let r = request(addr, "POST", path, &body);
            let what = format!("{big:.10} in POST {path} {body:.60}");
            let error = if path.starts_with("/v") {
                protocol_error(&r, status, &what)
            } else {
                crate::util::assert_json_error(&r, status, &what)
            };
            assert!(
                error.contains(&format!(
                    "{place} must be a finite number, not one beyond the range of a 64-bit float"
                )),
                "{what}: {error}"
            );
        }
    }
    assert!(stop(child).success());
}

/// The example row as JSON numbers.
const EXAMPLE_ROW: &str =
    "[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]";

/// TF Serving's REST API documents `signature_name` beside `instances`, and its clients send
/// it: a slot takes it and ignores it (it was a 400 "unknown key"); one that is not a string
/// is refused.
#[test]
fn kserve_v1_takes_tf_servings_signature_name() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let expected = prices(addr, &[ROW, ROW2]);
    let path = "/v1/models/bluegreen:predict";
    let body = json!({"signature_name": "serving_default", "instances": [ROW, ROW2]});
    let r = request(addr, "POST", path, &body.to_string());
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json().unwrap(), json!({ "predictions": expected }));
    let body = json!({"instances": [ROW], "signature_name": 1});
    let r = request(addr, "POST", path, &body.to_string());
    let message = protocol_error(&r, 400, "a number as signature_name");
    assert!(
        message.contains("\"signature_name\" must be a string, not a number"),
        "{message}"
    );
    assert!(stop(child).success());
}

/// A value past the bound the CSV reader and `predict` hold to ([`data::max_magnitude`]:
/// about ±1.86e153 for 13 features) is refused in every row format, naming its row and
/// column: `POST /` with 422, the protocols with their 400. `1e300` was a 200 with an absurd
/// price, where `predict --row` refused it.
#[test]
fn a_value_past_the_data_bound_is_refused_in_every_row_format() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let limit = bluegreen::data::max_magnitude(13);
    let mut row: Vec<String> = ROW.iter().map(f64::to_string).collect();
    row[3] = "-1e300".to_string();
    let list = format!("[{}]", row.join(", "));
    let named = |i: usize| format!("\"{}\": {}", FEATURES[i], row[i]);
    let object = format!("{{{}}}", (0..13).map(named).collect::<Vec<_>>().join(", "));
    let columns = json!(FEATURES).to_string();
    for (path, body, status) in [
        ("/", format!(r#"{{"data": [{EXAMPLE_ROW}, {list}]}}"#), 422),
        (
            "/",
            format!(r#"{{"data": [{EXAMPLE_ROW}, {object}]}}"#),
            422,
        ),
        (
            "/",
            format!(r#"{{"columns": {columns}, "data": [{EXAMPLE_ROW}, {list}]}}"#),
            422,
        ),
        (
            "/",
            format!(r#"{{"dataframe_records": [{EXAMPLE_ROW_OBJECT}, {object}]}}"#),
            422,
        ),
        (
            "/v1/models/bluegreen:predict",
            format!(r#"{{"instances": [{EXAMPLE_ROW}, {list}]}}"#),
            400,
        ),
        (
            "/v2/models/bluegreen/infer",
            format!(
                r#"{{"inputs": [{{"name": "input-0", "shape": [2, 13], "datatype": "FP64", "data": [{EXAMPLE_ROW}, {list}]}}]}}"#
            ),
            400,
        ),
    ] {
        let r = request(addr, "POST", path, &body);
        let what = format!("POST {path} {body:.80}");
        let error = if path.starts_with("/v") {
            protocol_error(&r, status, &what)
        } else {
            crate::util::assert_json_error(&r, status, &what)
        };
        assert!(
            error.contains("row 1, column 3 (CHAS): -1e300 is too large")
                && error.contains(&format!("at most ±{limit:.2e}")),
            "{what}: {error}"
        );
    }
    // Just inside the bound is a value like any other.
    let mut row = ROW;
    row[3] = limit;
    let r = post(addr, &json!({ "data": [row] }).to_string());
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(stop(child).success());
}

/// The example row as an object keyed by feature name.
const EXAMPLE_ROW_OBJECT: &str = r#"{"CRIM": 0.00632, "ZN": 18, "INDUS": 2.31, "CHAS": 0, "NOX": 0.538, "RM": 6.575, "AGE": 65.2, "DIS": 4.09, "RAD": 1, "TAX": 296, "PTRATIO": 15.3, "B": 396.9, "LSTAT": 4.98}"#;

/// A key named twice in an object row, or `"data"` twice at the top, is refused naming the
/// key and where it is: serde_json kept the last silently, so the row was predicted on
/// whichever value came last.
#[test]
fn a_key_named_twice_is_refused_by_name() {
    let env = Env::new();
    env.ok(&["init"]);
    let (child, addr) = serve(&env, None);
    let twice = EXAMPLE_ROW_OBJECT.replacen("{", "{\"CRIM\": 1, ", 1);
    for (path, body, status, what) in [
        (
            "/",
            format!(r#"{{"data": [{EXAMPLE_ROW}, {twice}]}}"#),
            422,
            "data[1]: the object names the key \"CRIM\" twice",
        ),
        (
            "/",
            format!(r#"{{"data": [{EXAMPLE_ROW}], "data": [{EXAMPLE_ROW}]}}"#),
            422,
            "the body: the object names the key \"data\" twice",
        ),
        (
            "/",
            format!(r#"{{"dataframe_records": [{twice}]}}"#),
            422,
            "dataframe_records[0]: the object names the key \"CRIM\" twice",
        ),
        (
            "/v1/models/bluegreen:predict",
            format!(r#"{{"instances": [{twice}]}}"#),
            400,
            "instances[0]: the object names the key \"CRIM\" twice",
        ),
    ] {
        let r = request(addr, "POST", path, &body);
        let label = format!("POST {path} {body:.80}");
        let error = if path.starts_with("/v") {
            protocol_error(&r, status, &label)
        } else {
            crate::util::assert_json_error(&r, status, &label)
        };
        assert!(error.contains(what), "{label}: {error}");
    }
    assert!(stop(child).success());
}
