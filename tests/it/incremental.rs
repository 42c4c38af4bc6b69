//! Incremental training of the linear family (issue #10, part 2): a training after appends
//! reads only the appended rows and equals a one-shot fit; any other change falls back to a
//! full pass; a partial last line or statistics that are not the model's are refused.

use bluegreen::model::Artifact;

use crate::util::{read, stdout, Env};

/// The newest artifact in `env`'s store.
fn newest(env: &Env) -> Artifact {
    let dir = env.state().join("models");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    Artifact::load(&dir.join(names.last().unwrap())).unwrap()
}

/// The Boston rows, without the header.
fn boston_rows() -> Vec<String> {
    bluegreen::data::boston_csv()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn header() -> String {
    bluegreen::data::Schema::boston().header()
}

/// Writes `rows` as a CSV file with the header, in `env`'s folder.
fn csv_file(env: &Env, name: &str, rows: &[String]) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, format!("{}\n{}\n", header(), rows.join("\n"))).unwrap();
    path.to_str().unwrap().to_string()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Coefficients, intercept and holdout RMSE of `a` equal `b`'s to 1e-9 relative.
fn assert_same_fit(a: &Artifact, b: &Artifact) {
    let (ia, ca) = a.fitted.linear().unwrap();
    let (ib, cb) = b.fitted.linear().unwrap();
    assert!(close(ia, ib), "intercept {ia} vs {ib}");
    for (k, (x, y)) in ca.iter().zip(cb).enumerate() {
        assert!(close(*x, *y), "coefficient {k}: {x} vs {y}");
    }
    let (ra, rb) = (a.metrics.holdout_rmse, b.metrics.holdout_rmse);
    assert!(close(ra, rb), "holdout RMSE {ra} vs {rb}");
    assert_eq!(a.metrics.holdout_rows, b.metrics.holdout_rows);
    assert_eq!(
        (a.rows, a.data_bytes, &a.data_sha256),
        (b.rows, b.data_bytes, &b.data_sha256)
    );
}

/// After appends in uneven batches, each training reads only the appended rows, and the
/// last model equals a one-shot fit on all the rows, for `linear` and `ridge`.
#[test]
fn appends_in_uneven_batches_equal_a_one_shot_fit() {
    let rows = boston_rows();
    for kind in ["linear", "ridge"] {
        let config = format!("[model]\nkind = \"{kind}\"\n");
        let env = Env::with_extra(&config);
        // CHAS is 0 in the first 140 rows: a linear fit needs it to vary.
        let first = csv_file(&env, "first.csv", &rows[..200]);
        env.ok(&["init", "--data", &first]);
        let mut at = 200;
        for (i, batch) in [1, 2, 7, 50, 101, 13, 89, 43].into_iter().enumerate() {
            let file = csv_file(&env, &format!("b{i}.csv"), &rows[at..at + batch]);
            at += batch;
            let out = env.ok(&["add-data", &file]);
            assert!(out.contains(&format!("({at} total,")), "{out}");
            let out = env.ok(&["train"]);
            assert!(
                out.contains(&format!(
                    "on the {batch} rows appended since v{:04}-",
                    i + 1
                )) && out.contains("from its statistics"),
                "{kind}: {out}"
            );
        }
        assert_eq!(at, 506);
        let incremental = newest(&env);
        assert!(incremental.stats.is_some());

        let whole = Env::with_extra(&config);
        let all = csv_file(&whole, "all.csv", &rows);
        whole.ok(&["init", "--data", &all]);
        let one_shot = newest(&whole);
        assert_same_fit(&incremental, &one_shot);
        // And the fit is the least-squares (or ridge) fit of the training rows: the example
        // row predicts what every linear test expects.
        let price = incremental.predict_one(&incremental.example).unwrap();
        if kind == "linear" {
            assert!((price - 30.23).abs() < 0.01, "{price}");
        }
    }
}

/// An edit in place that keeps the file's size, a removed row, and a file replaced by
/// another: each makes the next training read the whole file, and the model is the one-shot
/// fit of the file as it is.
#[test]
fn any_other_change_falls_back_to_a_full_pass() {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["add-data", "--sample", "2"]);
    let out = env.ok(&["train"]);
    assert!(out.contains("from its statistics"), "{out}");

    // One digit changed in place: the same size.
    let text = read(&env.csv());
    let edited = text.replacen("0.00632,18,", "0.00633,18,", 1);
    assert_eq!(edited.len(), text.len());
    std::fs::OpenOptions::new()
        .write(true)
        .open(env.csv())
        .and_then(|mut f| std::io::Write::write_all(&mut f, edited.as_bytes()))
        .unwrap();
    env.ok(&["add-data", "--sample", "2"]);
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(out.contains("in one pass over"), "{out}");
    let after_edit = newest(&env);
    assert_eq!(after_edit.example[0], 0.00633);

    // Appends after that go incremental again.
    env.ok(&["add-data", "--sample", "2"]);
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(out.contains("on the 2 rows appended since"), "{out}");

    // A row removed (the second), then as many appended: the same row count.
    let text = read(&env.csv());
    let mut lines: Vec<&str> = text.lines().collect();
    let removed = lines.remove(2).to_string();
    lines.push(&removed);
    std::fs::write(env.csv(), format!("{}\n", lines.join("\n"))).unwrap();
    let out = stdout(&env.exits(&["train", "--if-due"], 10));
    assert!(
        out.contains("the data changed since") || out.contains("in one pass over"),
        "{out}"
    );
    let reordered = newest(&env);
    let fresh = Env::new();
    let file = fresh.dir.path().join("all.csv");
    std::fs::write(&file, read(&env.csv())).unwrap();
    fresh.ok(&["init", "--data", file.to_str().unwrap()]);
    assert_same_fit(&reordered, &newest(&fresh));
}

/// A data file that ends in a partial line is refused with its line, by a training that
/// would have read only the appended rows too, and nothing is half-updated: no model, the
/// ledger as it was.
#[test]
fn a_partial_last_line_is_refused_and_nothing_is_half_updated() {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["add-data", "--sample", "2"]);
    let ledger = env.state().join("run/data-ledger.json");
    let before = read(&ledger);
    let models = std::fs::read_dir(env.state().join("models"))
        .unwrap()
        .count();
    let cut = format!("{}0.13004,12.5,8.87", read(&env.csv()));
    std::fs::write(env.csv(), &cut).unwrap();
    for args in [&["train"][..], &["train", "--if-due"], &["status"]] {
        let err = if args == ["status"] {
            env.ok(args)
        } else {
            env.fails(args, 1)
        };
        assert!(err.contains("boston.csv line 510 is cut short"), "{err}");
    }
    assert_eq!(
        std::fs::read_dir(env.state().join("models"))
            .unwrap()
            .count(),
        models
    );
    assert_eq!(read(&ledger), before, "the ledger is as it was");
    assert_eq!(read(&env.csv()), cut);
}

/// An artifact whose statistics are not its model's is refused when it is loaded: a training
/// would go on from them.
#[test]
fn an_artifact_whose_statistics_do_not_match_its_coefficients_is_refused() {
    let env = Env::new();
    env.ok(&["init"]);
    let dir = env.state().join("models");
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let path = dir.join(&name);
    let mut json: serde_json::Value = serde_json::from_str(&read(&path)).unwrap();
    let stats = json["stats"]["train"]["r"][3][0].as_f64().unwrap();
    json["stats"]["train"]["r"][3][0] = (stats * 1.01).into();
    let edited = dir.join("v0002-20261129T000000Z.json");
    json["version"] = "v0002-20261129T000000Z".into();
    std::fs::write(&edited, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = Artifact::load(&edited).unwrap_err().to_string();
    assert!(
        err.contains("is corrupt: its statistics do not match its coefficients"),
        "{err}"
    );
    let row = "0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98";
    let err = env.fails(
        &["predict", "--model", edited.to_str().unwrap(), "--row", row],
        1,
    );
    assert!(err.contains("do not match its coefficients"), "{err}");
    // The training passes over it (a corrupt artifact), and trains from the data.
    let out = env.run(&["train"]);
    let (text, warnings) = (stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}{warnings}");
    assert!(text.contains("trained v0003-"), "{text}");
    assert!(
        warnings.contains("warning: skipping a model that cannot be read"),
        "{warnings}"
    );
}
