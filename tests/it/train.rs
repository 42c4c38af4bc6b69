//! `train`: exit codes for trained, not due, a deploy wanted, refused and error; artifacts
//! and their metadata.

use bluegreen::model::Artifact;

use crate::util::{stdout, Env};

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
