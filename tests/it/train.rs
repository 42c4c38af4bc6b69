//! `train`: exit codes for trained, not due, a deploy wanted, refused and error; artifacts
//! and their metadata.

use bluegreen::model::Artifact;

use crate::util::{read, stdout, Env};

fn models(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn exit_codes_tell_trained_not_due_refused_and_error_apart() {
    let env = Env::new();
    env.ok(&["init"]);
    assert_eq!(models(&env).len(), 1);

    let out = env.exits(&["train", "--if-due"], 0); // not due
    assert!(stdout(&out).contains("2 more rows needed"));
    assert_eq!(models(&env).len(), 1, "not due writes nothing");

    env.ok(&["add-data", "--sample", "2"]);
    env.exits(&["train", "--if-due"], 10); // trained under --if-due
    let names = models(&env);
    assert_eq!(names.len(), 2);
    assert!(names[1].starts_with("v0002-"), "{names:?}");
    let artifact = Artifact::load(&env.state().join("models").join(&names[1])).unwrap();
    assert_eq!(artifact.rows, 508);
    assert_eq!(artifact.data_sha256.len(), 64);
    assert!(artifact.metrics.holdout_rmse > 0.0 && artifact.metrics.train_r2 > 0.7);
    assert!(artifact.gate.as_ref().unwrap().passed);

    env.exits(&["train"], 0); // a plain train that trained

    // Poisoned rows: the model is trained, kept, and refused.
    env.ok(&[
        "add-data",
        "--row",
        "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9",
        "--row",
        "0.2,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9",
    ]);
    let out = env.exits(&["train", "--if-due"], 3); // refused by the gate
    let out = stdout(&out);
    assert!(out.contains("quality gate: REFUSED: RMSE"), "{out}");
    let newest = models(&env).pop().unwrap();
    let refused = Artifact::load(&env.state().join("models").join(newest)).unwrap();
    assert!(!refused.gate.unwrap().passed);
    let mut history = bluegreen::history::read_all(&env.state().join("deploys.jsonl")).unwrap();
    // add-data's measurements of the live RMSE (issue 11) aside.
    history.retain(|r| r.outcome != bluegreen::history::Outcome::Measured);
    assert_eq!(history.len(), 1, "the refusal is recorded");
    assert_eq!(history[0].outcome, bluegreen::history::Outcome::Refused);

    // Not due, but v0003 passed the gate and was never deployed: a deploy is wanted.
    let out = env.exits(&["train", "--if-due"], 10);
    let out = stdout(&out);
    assert!(
        out.contains("training not due")
            && out.contains("v0003-")
            && out.contains("asking for a deploy"),
        "{out}"
    );

    // A broken CSV is an error that names the line.
    std::fs::write(
        env.csv(),
        format!("{}\n1,2,3\n", bluegreen::data::Schema::boston().header()),
    )
    .unwrap();
    let err = env.fails(&["train"], 1);
    assert!(err.contains("boston.csv line 2: has 3 values"), "{err}");
}

/// Training is due when the data is no longer what the newest model learned from (issue #8
/// §7): rows appended, or rows removed or edited, even in place at the same size. Today,
/// after the operator removes poisoned rows by hand and adds two good ones, status says
/// "0 since v0002, 2 more needed" forever.
#[test]
fn training_is_due_when_rows_were_removed_or_edited_not_only_appended() {
    let env = Env::new();
    env.ok(&["init"]);
    let clean = std::fs::read_to_string(env.csv()).unwrap();
    env.ok(&[
        "add-data",
        "--row",
        "0.1,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9",
        "--row",
        "0.2,0,8,0,0.5,6,87,4.9,4,301,21,390,15,1e9",
    ]);
    env.exits(&["train", "--if-due"], 3); // v0002, refused, learned from 508 rows

    // The operator removes the poisoned rows by hand, then adds two good ones.
    std::fs::write(env.csv(), &clean).unwrap();
    let out = env.ok(&["add-data", "--sample", "2"]);
    assert!(
        out.contains("508 total, the data changed since v0002-")
            && out.contains("(rows removed or edited); training is due"),
        "{out}"
    );
    let status = env.status_json();
    assert_eq!(status["training_due"], true, "{status}");
    assert_eq!(status["data_changed"], true, "{status}");
    let table = env.ok(&["status"]);
    assert!(table.contains("the data changed since v0002-"), "{table}");
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(out.contains("trained v0003-"), "{out}");
    // Exit 10 again: not due, but v0003 waits for a deploy (nothing deploys here).
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(out.contains("training not due: 0 since v0003-"), "{out}");

    // An edit in place that keeps the file's size.
    let text = std::fs::read_to_string(env.csv()).unwrap();
    let edited = text.replacen("0.00632,18,", "0.00633,18,", 1);
    assert_eq!(edited.len(), text.len());
    std::fs::write(env.csv(), edited).unwrap();
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(out.contains("trained v0004-"), "{out}");
}

/// A value so large that its square overflows (here 1e200) never reaches a fit: `add-data`
/// refuses it with its line, column and the limit, and a training on a file that holds one
/// (edited by hand) names it. Before, a knn training overflowed its stack (exit 134), lasso
/// and elastic net failed with "Exceeded maximum number of iteration" and a hint about row
/// counts, and ridge trained NaN coefficients.
#[test]
fn a_value_too_large_for_any_model_is_refused_with_its_place_and_the_limit() {
    let env = Env::with_extra("[model]\nkind = \"knn\"");
    env.ok(&["init"]);
    let before = std::fs::read(env.csv()).unwrap();
    let row = "0.1,0,8,0,0.8,5,87,4,4,301,21,452,1e200,21";
    let err = env.fails(&["add-data", "--row", row], 1);
    assert!(
        err.contains("--row #1 line 1, column 13 (LSTAT): 1e200 is too large: values may be at most ±1.79e153"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert_eq!(
        std::fs::read(env.csv()).unwrap(),
        before,
        "nothing was added"
    );

    // The same row, appended by hand: every kind's training refuses it by its place.
    let mut edited = before.clone();
    edited.extend_from_slice(format!("{row}\n").as_bytes());
    std::fs::write(env.csv(), &edited).unwrap();
    for kind in ["knn", "lasso", "ridge"] {
        std::fs::write(
            &env.config,
            read(&env.config).replace("kind = \"knn\"", &format!("kind = \"{kind}\"")),
        )
        .unwrap();
        let err = env.fails(&["train"], 1);
        assert!(
            err.contains("boston.csv line 508, column 13 (LSTAT): 1e200 is too large"),
            "{kind}: {err}"
        );
        std::fs::write(
            &env.config,
            read(&env.config).replace(&format!("kind = \"{kind}\""), "kind = \"knn\""),
        )
        .unwrap();
    }
    assert_eq!(models(&env).len(), 1, "no model was written");
}

/// A training that fails says its cause first, then a hint worked out from that cause (not
/// one fixed hint about row counts for every failure of every schema).
#[test]
fn a_failed_training_says_its_cause_then_a_hint_from_that_cause() {
    let env = Env::new();
    env.ok(&["init"]);
    let config = read(&env.config);
    let cases = [
        (
            "[model]\nkind = \"lasso\"\ntol = 1e-300\n",
            "training a lasso model on 405 rows failed: Fit failed: Exceeded maximum number of iteration",
            "hint: the lasso optimizer did not converge: within model.max_iter = 1000 iterations its error did not fall below model.tol = 1e-300",
        ),
        (
            "[model]\nkind = \"knn\"\nk = 600\n",
            "a knn model cannot predict: Find failed: k is > than the dataset size",
            "hint: model.k = 600 is more neighbours than the rows the model was fit on",
        ),
    ];
    for (extra, cause, hint) in cases {
        std::fs::write(&env.config, format!("{config}{extra}")).unwrap();
        let err = env.fails(&["train"], 1);
        let cause_at = err
            .find(cause)
            .unwrap_or_else(|| panic!("no {cause:?} in {err}"));
        let hint_at = err
            .find(hint)
            .unwrap_or_else(|| panic!("no {hint:?} in {err}"));
        assert!(err.starts_with("error: ") && cause_at < hint_at, "{err}");
        assert!(!err.contains("15 rows for 13 features"), "{err}");
    }

    // Too few rows, for a schema of 13 features: the count comes from the schema.
    std::fs::write(&env.config, &config).unwrap();
    let text = read(&env.csv());
    let three: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(env.csv(), three.join("\n") + "\n").unwrap();
    let err = env.fails(&["train"], 1);
    assert!(
        err.contains(
            "training a linear model on 2 rows failed: 2 training rows are too few for 14 unknowns"
        ) && err.contains(
            "; hint: a linear model of 13 features needs at least 14 rows to fit on, and it had 2"
        ),
        "{err}"
    );
}

/// The history names only versions that were written: a failed training records no
/// `to_version` (it used to name the number it would have taken, which the next training
/// then gave to another model).
#[test]
fn a_failed_training_names_no_version_in_the_history() {
    let env = Env::new();
    env.ok(&["init"]);
    let config = read(&env.config);
    std::fs::write(
        &env.config,
        format!("{config}[model]\nkind = \"knn\"\nk = 600\n"),
    )
    .unwrap();
    env.fails(&["train"], 1);
    std::fs::write(&env.config, &config).unwrap();
    env.ok(&["add-data", "--sample", "2"]);
    env.ok(&["train"]);
    let records = bluegreen::history::last(&env.state().join("deploys.jsonl"), 10).unwrap();
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == bluegreen::history::Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{records:?}");
    assert_eq!(failed[0].to_version, None, "{:?}", failed[0]);
    let stored = models(&env);
    for r in &records {
        if let Some(v) = &r.to_version {
            assert!(
                stored.contains(&format!("{v}.json")),
                "{v} was never written: {records:?}"
            );
        }
    }
}

/// R² is undefined on fewer than 2 holdout rows (or a label that does not vary): 5 rows hold
/// out one, where R² came out as -1.07e32. The output says "n/a" and why, the artifact stores
/// `null`, a later training reads it back, and the gate says its comparison rests on one row.
#[test]
fn r_squared_on_a_single_holdout_row_is_not_a_number_but_na() {
    let env =
        Env::with_extra("[data]\nfile = \"tiny.csv\"\nfeatures = [\"a\", \"b\"]\nlabel = \"y\"\n");
    let file = env.dir.path().join("tiny.csv");
    std::fs::write(&file, "a,b,y\n1,2,3\n2,3,5.5\n3,5,7\n4,4,8.5\n5,7,11.2\n").unwrap();
    let out = env.ok(&["init", "--data", file.to_str().unwrap()]);
    assert!(
        out.contains("holdout R² n/a (fewer than 2 rows, or a label that does not vary)"),
        "{out}"
    );
    let v1 = models(&env)[0].clone();
    let artifact: serde_json::Value =
        serde_json::from_str(&read(&env.state().join("models").join(&v1))).unwrap();
    assert!(artifact["metrics"]["holdout_r2"].is_null(), "{artifact}");
    assert_eq!(artifact["metrics"]["holdout_rows"], 1);
    env.ok(&["add-data", "--row", "6,6,12.9", "--row", "7,9,15.1"]);
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(out.contains("holdout R² n/a"), "{out}");
    assert!(
        out.contains("on 1 holdout rows (a single holdout row"),
        "{out}"
    );
    assert_eq!(
        env.status_json()["newest_model"].as_str().unwrap()[..5],
        *"v0002"
    );
}
