//! `export` and `import` (issue 13): a model moves between hosts under its own version name;
//! every bad file is refused with what is wrong and what to do, and writes nothing.

use std::path::{Path, PathBuf};

use bluegreen::transfer::sha256_hex;

use crate::util::{price, stdout, Env};

/// The names in a state's models folder, hidden files included, sorted.
fn model_files(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A host with a second model, trained on two added rows; returns its version.
fn trained(env: &Env) -> String {
    env.ok(&["init"]);
    env.ok(&["add-data", "--sample", "2"]);
    env.ok(&["train"]);
    model_files(env)
        .last()
        .unwrap()
        .trim_end_matches(".json")
        .to_string()
}

/// Exports `version` from `env` into a file in `dir`.
fn export(env: &Env, version: &str, dir: &Path) -> PathBuf {
    let out = env.run(&["export", version]);
    assert!(out.status.success(), "{out:?}");
    let path = dir.join(format!("{version}.export"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Splits an export into its header (parsed) and payload.
fn split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
    (
        serde_json::from_slice(&bytes[..newline]).unwrap(),
        bytes[newline + 1..].to_vec(),
    )
}

/// Joins a header and a payload into an export.
fn join(header: &serde_json::Value, payload: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap();
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

#[test]
fn an_imported_model_keeps_its_version_and_deploys_with_the_same_answers() {
    let trainer = Env::new();
    let version = trained(&trainer);
    let file = export(&trainer, &version, trainer.dir.path());
    let (header, payload) = split(&std::fs::read(&file).unwrap());
    assert_eq!(header["export"], "bluegreen-artifact");
    assert_eq!(header["version"].as_str(), Some(version.as_str()));
    assert_eq!(
        payload,
        std::fs::read(trainer.state().join(format!("models/{version}.json"))).unwrap(),
        "the payload is the stored artifact, byte for byte"
    );

    let server = Env::new();
    server.ok(&["init"]);
    let out = server.ok(&["import", file.to_str().unwrap()]);
    assert!(out.contains(&format!("imported {version}")), "{out}");
    assert!(
        out.contains(&format!("bluegreen deploy {version}")),
        "{out}"
    );
    assert_eq!(
        std::fs::read(server.state().join(format!("models/{version}.json"))).unwrap(),
        payload
    );
    // The same file again: a no-op that says so.
    let out = server.ok(&["import", file.to_str().unwrap()]);
    assert!(
        out.contains("already here with identical content; nothing to do")
            || out.contains("already here with identical content ("),
        "{out}"
    );

    let _up = server.up();
    server.ok(&["deploy", &version]);
    let r = server.predict();
    assert_eq!(r.header("x-model-version"), Some(version.as_str()));
    let expected = header["probe"]["price"].as_f64().unwrap();
    assert_eq!(
        price(&r),
        expected,
        "the host answers what the artifact predicts"
    );
}

#[test]
fn every_bad_export_is_refused_with_a_hint_and_writes_nothing() {
    let trainer = Env::new();
    let version = trained(&trainer);
    let good = std::fs::read(export(&trainer, &version, trainer.dir.path())).unwrap();
    let (header, payload) = split(&good);

    let server = Env::new();
    server.ok(&["init"]);
    let before = model_files(&server);
    let dir = server.dir.path();
    let refused = |name: &str, bytes: &[u8], phrases: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = server.fails(&["import", path.to_str().unwrap()], 1);
        for phrase in phrases.iter().chain(&["nothing was imported", "hint:"]) {
            assert!(err.contains(phrase), "{name}: no {phrase:?} in:\n{err}");
        }
        assert_eq!(model_files(&server), before, "{name} wrote something");
    };

    // Truncated: the copy stopped half way.
    refused(
        "truncated.export",
        &good[..good.len() / 2],
        &["is truncated", "copy the file again"],
    );
    // Altered: one digit of a coefficient changed, same length.
    let mut altered = payload.clone();
    let at = altered
        .windows(13)
        .position(|w| w == b"\"intercept\": ")
        .unwrap()
        + 13;
    altered[at] = if altered[at] == b'3' { b'4' } else { b'3' };
    refused(
        "altered.export",
        &join(&header, &altered),
        &["was altered", "SHA-256"],
    );
    // Bytes appended after the artifact.
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"\n{}");
    refused(
        "trailing.export",
        &trailing,
        &["3 bytes after the artifact"],
    );
    // Wrong format: the artifact file itself, a CSV, nothing, a newer envelope.
    refused(
        "artifact.json",
        &payload,
        &[
            "not a bluegreen export",
            "artifact file itself",
            "bluegreen export VERSION",
        ],
    );
    refused(
        "rows.csv",
        b"CRIM,ZN\n1,2\n",
        &[
            "not a bluegreen export",
            "first line is not the JSON header",
        ],
    );
    refused("empty.export", b"", &["not a bluegreen export", "empty"]);
    let mut newer = header.clone();
    newer["format"] = 2.into();
    refused(
        "newer.export",
        &join(&newer, &payload),
        &["export format 2", "upgrade this host"],
    );
    // Sound envelope, unusable artifact (its checksum recomputed to match): the schema.
    let mut artifact: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    artifact["fitted"]["linear"]["coefficients"]
        .as_array_mut()
        .unwrap()
        .pop();
    let bad = serde_json::to_vec_pretty(&artifact).unwrap();
    let mut schema = header.clone();
    schema["bytes"] = bad.len().into();
    schema["sha256"] = sha256_hex(&bad).into();
    refused(
        "schema.export",
        &join(&schema, &bad),
        &[
            "holds an artifact this host cannot use",
            "expected 13 coefficients",
        ],
    );
    // A header that names another version than the artifact it carries.
    let mut renamed = header.clone();
    renamed["version"] = "v0099-20260101T000000Z".into();
    refused(
        "renamed.export",
        &join(&renamed, &payload),
        &["says it holds v0099-20260101T000000Z", &version],
    );

    let missing = server.fails(&["import", "/nonexistent/file.export"], 1);
    assert!(
        missing.contains("cannot read the export: failed to ")
            && missing.contains("`/nonexistent/file.export`: No such file or directory"),
        "{missing}"
    );
    let unknown = trainer.fails(&["export", "v0042-nope"], 1);
    assert!(
        unknown.contains("cannot export v0042-nope: there is no model \"v0042-nope\"; the stored models are v0001-")
            && unknown.contains("hint: "),
        "{unknown}"
    );
}

#[test]
fn a_version_already_here_with_other_content_is_refused() {
    // Two hosts that both trained "the same" version: the second host's copy differs.
    let trainer = Env::new();
    let version = trained(&trainer);
    let server = Env::new();
    server.ok(&["init"]);
    let theirs = trainer.state().join(format!("models/{version}.json"));
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&theirs).unwrap()).unwrap();
    other["trained_at"] = "2026-01-01T00:00:00.000Z".into();
    let ours = server.state().join(format!("models/{version}.json"));
    std::fs::write(&ours, serde_json::to_vec_pretty(&other).unwrap()).unwrap();
    let ours_before = std::fs::read(&ours).unwrap();

    let file = export(&trainer, &version, trainer.dir.path());
    let err = server.fails(&["import", file.to_str().unwrap()], 1);
    assert!(
        err.contains(&format!("{version} is already here")) && err.contains("different content"),
        "{err}"
    );
    assert!(err.contains("hint: model versions are immutable"), "{err}");
    assert_eq!(std::fs::read(&ours).unwrap(), ours_before, "ours is kept");
    let out = server.run(&["status"]);
    assert!(stdout(&out).contains(&version), "{}", stdout(&out));
}

/// A host whose `[data]` has other columns: its config reads the Boston file without B and
/// LSTAT, and `init` trained v0001 on those 11 features.
fn eleven_features() -> Env {
    let env = Env::with_extra(
        "[data]\nfile = \"boston-11.csv\"\nfeatures = [\"CRIM\", \"ZN\", \"INDUS\", \"CHAS\", \"NOX\", \"RM\", \"AGE\", \"DIS\", \"RAD\", \"TAX\", \"PTRATIO\"]\nignore = [\"B\", \"LSTAT\"]\n",
    );
    let boston = Env::new();
    boston.ok(&["init"]);
    env.ok(&["init", "--data", boston.csv().to_str().unwrap()]);
    env
}

/// Issue 13: import verifies the schema. A model of other columns than this host's `[data]`
/// is refused, naming both, and writes nothing; one already in the folder (copied by hand,
/// or imported by an older bluegreen) is never "the newest that passed" nor pending, since
/// a plain deploy would refuse it.
#[test]
fn a_model_of_other_columns_is_refused_by_import_and_never_pending() {
    let trainer = Env::new();
    let version = trained(&trainer);
    let file = export(&trainer, &version, trainer.dir.path());
    let host = eleven_features();
    let before = model_files(&host);
    let err = host.fails(&["import", file.to_str().unwrap()], 1);
    assert!(
        err.contains("other columns than this host's [data]")
            && err.contains("features CRIM,ZN,INDUS,CHAS,NOX,RM,AGE,DIS,RAD,TAX,PTRATIO,B,LSTAT and predicts MEDV")
            && err.contains("features CRIM,ZN,INDUS,CHAS,NOX,RM,AGE,DIS,RAD,TAX,PTRATIO and label MEDV")
            && err.contains("nothing was written")
            && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(model_files(&host), before, "nothing was written");

    let name = format!("{version}.json");
    std::fs::copy(
        trainer.state().join("models").join(&name),
        host.state().join("models").join(&name),
    )
    .unwrap();
    let status = host.status_json();
    assert_eq!(status["newest_model"].as_str(), Some(version.as_str()));
    let passed = status["newest_passed"].as_str().unwrap();
    assert!(passed.starts_with("v0001-"), "{status}");
    assert!(status["pending_deploy"].is_null(), "{status}");
}

/// `export` takes what `deploy` and `predict` take: a unique prefix of a version; an
/// unknown one is refused with the stored versions listed.
#[test]
fn export_takes_a_unique_prefix_and_lists_the_versions_it_does_not_know() {
    let env = Env::new();
    let version = trained(&env);
    let by_prefix = env.run(&["export", "v0002"]);
    assert!(by_prefix.status.success(), "{by_prefix:?}");
    let (header, _) = split(&by_prefix.stdout);
    assert_eq!(header["version"].as_str(), Some(version.as_str()));
    let err = env.fails(&["export", "v9999"], 1);
    assert!(
        err.contains("there is no model \"v9999\"")
            && err.contains(&version)
            && err.contains("v0001-")
            && err.contains("hint:"),
        "{err}"
    );
    let out = env.run(&["export", "v9999"]);
    assert!(out.stdout.is_empty(), "nothing on stdout");
}
