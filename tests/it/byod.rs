//! Your data, your model (issue #9): a second dataset with another model kind through the
//! whole cycle, a deliberate change of features, and old artifacts after an upgrade.

use std::time::Duration;

use bluegreen::history;

use crate::util::{get, post, price, read, stdout, Env, EXAMPLE};

const FEATURES: [&str; 10] = [
    "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
];

const DIABETES: &str = r#"
[data]
file = "diabetes.csv"
features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
label = "progression"
ignore = ["id"]
[model]
name = "diabetes"
kind = "random_forest"
n_trees = 20
seed = 7
"#;

/// smartcore's bundled diabetes data (442 rows, 10 features, the disease's progression as
/// the label) as a CSV a user might bring: an ID column first, the label next, the features
/// in reverse order, some names in capitals.
fn diabetes_csv() -> (String, Vec<Vec<f64>>) {
    let dataset = smartcore::dataset::diabetes::load_dataset();
    let mut reversed: Vec<&str> = FEATURES.to_vec();
    reversed.reverse();
    let mut text = format!("ID,Progression,{}\n", reversed.join(",").to_uppercase());
    let mut rows = Vec::new();
    for (i, (x, y)) in dataset
        .data
        .chunks(dataset.num_features)
        .zip(&dataset.target)
        .enumerate()
    {
        let mut fields: Vec<String> = x.iter().rev().map(f32::to_string).collect();
        fields.insert(0, y.to_string());
        fields.insert(0, i.to_string());
        text.push_str(&fields.join(","));
        text.push('\n');
        let row: Vec<f64> = x.iter().map(|v| v.to_string().parse().unwrap()).collect();
        rows.push(row);
    }
    (text, rows)
}

fn csv_row(row: &[f64]) -> String {
    row.iter().map(f64::to_string).collect::<Vec<_>>().join(",")
}

/// The whole cycle on the diabetes data with a random forest under `bluegreen up`: first
/// data, predictions through NGINX (as lists and as objects, the same as `bluegreen predict`
/// computes), add-data, train, gate, deploy, flip, rollback.
#[test]
fn diabetes_with_a_random_forest_goes_through_the_whole_cycle() {
    let env = Env::with_extra(DIABETES);
    let (text, rows) = diabetes_csv();
    let first = env.dir.path().join("first.csv");
    std::fs::write(&first, &text).unwrap();

    let err = env.fails(&["init"], 1);
    assert!(err.contains("run `bluegreen init --data FILE`"), "{err}");
    let out = env.ok(&["init", "--data", first.to_str().unwrap()]);
    assert!(out.contains("wrote 442 rows from"), "{out}");
    let stored = read(&env.state().join("data/diabetes.csv"));
    let mut lines = stored.lines();
    assert_eq!(
        lines.next(),
        Some("age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression")
    );
    assert_eq!(
        lines.next(),
        Some(format!("{},151", csv_row(&rows[0])).as_str())
    );
    let err = env.fails(&["add-data", "--sample", "2"], 1);
    assert!(
        err.contains("there are no sample rows for this data"),
        "{err}"
    );

    let up = env.up();
    // Its banner suggests what works for this data: no sample rows but the Boston demo's.
    assert!(
        up.banner.contains(
            "add data with `bluegreen add-data FILE` (CSV with the columns age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression)"
        ) && !up.banner.contains("--sample"),
        "{}",
        up.banner
    );
    let body = format!("{{\"data\": [[{}]]}}", csv_row(&rows[3]));
    let r = post(env.public, &body);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let v1 = r.header("x-model-version").unwrap().to_string();
    assert_eq!(r.header("x-slot"), Some("blue"));
    let served = price(&r);
    let local = env.ok(&["predict", "--row", &csv_row(&rows[3])]);
    assert_eq!(
        local.trim().parse::<f64>().unwrap(),
        served,
        "predict = the slot"
    );
    let object: Vec<String> = FEATURES
        .iter()
        .zip(&rows[3])
        .map(|(n, v)| format!("\"{n}\": {v}"))
        .collect();
    let r = post(
        env.public,
        &format!("{{\"data\": [{{{}}}]}}", object.join(", ")),
    );
    assert_eq!(price(&r), served);
    let r = post(env.public, EXAMPLE);
    assert_eq!(r.status, 422);
    let error = r.json().unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("data[0] has 13 values; expected 10 (age, sex, bmi"),
        "{error}"
    );
    let model = get(env.public, "/model").json().unwrap();
    assert_eq!(model["model"]["kind"], "random_forest");
    assert_eq!(model["model"]["params"]["n_trees"], 20);
    assert_eq!(model["model"]["params"]["seed"], 7);
    assert_eq!(model["model"]["features"][2], "bmi");
    assert_eq!(model["model"]["label"], "progression");
    assert!(model["model"].get("fitted").is_none(), "no trees in /model");

    // Two more rows, with a header in yet another order: retrained, judged, deployed.
    let more = env.dir.path().join("more.csv");
    std::fs::write(
        &more,
        format!(
            "{},progression\n{},200\n{},90\n",
            FEATURES.join(","),
            csv_row(&rows[10]),
            csv_row(&rows[11])
        ),
    )
    .unwrap();
    env.ok(&["add-data", more.to_str().unwrap()]);
    let v2 = env.wait_for_new_version(&v1, Duration::from_secs(60));
    let r = post(env.public, &body);
    assert_eq!(r.header("x-slot"), Some("green"));
    let deploys = history::last(&env.state().join("deploys.jsonl"), 10).unwrap();
    let gate = deploys.last().unwrap().gate.clone().unwrap();
    assert!(gate.passed && gate.rows_compared == 88, "{gate:?}");
    assert!(gate.reason.contains("(random_forest) within"), "{gate:?}");
    let metrics = String::from_utf8(get(env.public, "/metrics").body).unwrap();
    assert!(
        metrics.contains(&format!(
            "bluegreen_model_info{{version=\"{v2}\",kind=\"random_forest\",slot=\"green\""
        )),
        "{metrics}"
    );
    assert_eq!(env.status_json()["data_rows"], 444);

    env.ok(&["rollback"]);
    let r = post(env.public, &body);
    assert_eq!(r.header("x-slot"), Some("blue"));
    assert_eq!(r.header("x-model-version"), Some(v1.as_str()));
    assert_eq!(price(&r), served);
}

/// A model of other features changes what clients send: `train` refuses it, `deploy`
/// refuses it unless told `--allow-schema-change`, and the history records the change.
#[test]
fn a_model_of_other_features_is_deployed_only_when_meant() {
    let env = Env::new();
    env.ok(&["init"]);
    // The Boston data without B and LSTAT, in a file of its own.
    let config = read(&env.config).replace(
        "\n[slots]",
        "\n[data]\nfile = \"boston-11.csv\"\nfeatures = [\"CRIM\", \"ZN\", \"INDUS\", \"CHAS\", \"NOX\", \"RM\", \"AGE\", \"DIS\", \"RAD\", \"TAX\", \"PTRATIO\"]\nignore = [\"B\", \"LSTAT\"]\n[slots]",
    );
    std::fs::write(&env.config, config).unwrap();
    let out = env.ok(&["init", "--data", env.csv().to_str().unwrap()]);
    assert!(out.contains("wrote 506 rows from"), "{out}");
    let out = stdout(&env.exits(&["train"], 3));
    assert!(
        out.contains("quality gate: REFUSED: its schema differs from v0001-")
            && out.contains("features CRIM,ZN,INDUS,CHAS,NOX,RM,AGE,DIS,RAD,TAX,PTRATIO,B,LSTAT → CRIM,ZN,INDUS,CHAS,NOX,RM,AGE,DIS,RAD,TAX,PTRATIO"),
        "{out}"
    );

    let _up = env.up();
    // A plain deploy deploys the newest model that passed the gate: the active one.
    let out = env.ok(&["deploy"]);
    assert!(out.contains("already serves"), "{out}");
    let err = env.fails(&["deploy", "v0002"], 3);
    assert!(
        err.contains("its schema differs") && err.contains("--allow-schema-change"),
        "{err}"
    );
    assert_eq!(env.predict().status, 200, "still the 13 features");
    let out = env.ok(&["deploy", "--allow-schema-change"]);
    assert!(out.contains("deployed v0002-"), "{out}");
    let eleven = r#"{"data": [[0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3]]}"#;
    let r = post(env.public, eleven);
    assert_eq!(r.status, 200);
    assert!(r.header("x-model-version").unwrap().starts_with("v0002-"));
    assert_eq!(
        env.predict().status,
        422,
        "13 values are one row of another schema"
    );

    // The training's refusal, the plain deploy's, then the deploy that was meant.
    let records = history::last(&env.state().join("deploys.jsonl"), 10).unwrap();
    let [trained, refused, deployed] = &records[..] else {
        panic!("{records:?}")
    };
    assert_eq!(trained.action, history::Action::Train);
    assert_eq!(refused.outcome, history::Outcome::Refused);
    assert_eq!(deployed.outcome, history::Outcome::Deployed);
    let change = deployed
        .gate
        .as_ref()
        .unwrap()
        .schema_change
        .clone()
        .unwrap();
    assert_eq!(
        (change.from.features.len(), change.to.features.len()),
        (13, 11)
    );
    assert!(deployed.gate.as_ref().unwrap().passed);
}

/// Artifacts of format 1 (before issue #9) still load and serve after an upgrade, and
/// "rows since" still counts from them.
#[test]
fn a_format_1_artifact_still_loads_and_serves() {
    let env = Env::new();
    env.ok(&["init"]);
    let models = env.state().join("models");
    for entry in std::fs::read_dir(&models).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let name = "v0001-20261129T161140Z.json";
    std::fs::write(
        models.join(name),
        include_str!("fixtures/format-1-v0001.json"),
    )
    .unwrap();
    for slot in ["blue", "green"] {
        let link = env.state().join(format!("slots/{slot}.json"));
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(format!("../models/{name}"), &link).unwrap();
    }
    let out = env.exits(&["train", "--if-due"], 0);
    assert!(
        stdout(&out).contains("not due: 0 since v0001-20261129T161140Z"),
        "{}",
        stdout(&out)
    );
    let local = env.ok(&[
        "predict",
        "--model",
        "v0001",
        "--row",
        "0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98",
    ]);
    // Format 1 trained on every row, holdout included: 30.00 (format 2: 30.23).
    assert!(
        (local.trim().parse::<f64>().unwrap() - 30.00).abs() < 0.01,
        "{local}"
    );

    let _up = env.up();
    let r = env.predict();
    assert_eq!(r.header("x-model-version"), Some("v0001-20261129T161140Z"));
    assert!((price(&r) - 30.00).abs() < 0.01);
    let model = get(env.public, "/model").json().unwrap();
    assert_eq!(
        (
            model["model"]["format"].as_u64(),
            model["model"]["kind"].as_str()
        ),
        (Some(1), Some("linear"))
    );
    env.ok(&["add-data", "--sample", "2"]);
    let v2 = env.wait_for_new_version("v0001-20261129T161140Z", Duration::from_secs(30));
    let model = get(env.public, "/model").json().unwrap();
    assert_eq!(model["model"]["format"], 2, "{v2}");
}

/// `bluegreen predict` reads rows as add-data does (a header in any order, the label and
/// ignored columns dropped), from a file, stdin or `--row`, with any model.
#[test]
fn predict_reads_rows_like_add_data_and_names_its_model() {
    let env = Env::new();
    env.ok(&["init"]);
    let file = env.dir.path().join("rows.csv");
    std::fs::write(&file, read(&env.csv())).unwrap();
    let out = env.run(&["predict", file.to_str().unwrap()]);
    assert!(out.status.success());
    let predictions: Vec<f64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(predictions.len(), 506);
    assert!((predictions[0] - 30.23).abs() < 0.01, "{}", predictions[0]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("506 predictions by v0001-") && err.contains("(linear, label MEDV)"),
        "{err}"
    );

    let err = env.fails(&["predict", "--model", "v9", "--row", "1"], 1);
    assert!(
        err.contains("there is no model \"v9\"; the stored models are v0001-"),
        "{err}"
    );
    let err = env.fails(&["predict", "--row", "1,2,3"], 1);
    assert!(err.contains("has 3 values; expected 13"), "{err}");
}
