//! `status` on its own: what it says when slots or NGINX do not answer.

use std::net::TcpListener;

use crate::util::Env;

#[test]
fn status_says_in_words_why_a_slot_does_not_answer() {
    let env = Env::new();
    env.ok(&["init"]);
    // Blue's port accepts connections (the kernel completes them) but nothing answers;
    // nothing listens on green's.
    let _silent = TcpListener::bind(env.blue).unwrap();
    let status = env.status_json();
    assert_eq!(
        status["slots"][0]["health"].as_str(),
        Some("down: no answer within 800 ms"),
        "{status:#}"
    );
    assert_eq!(
        status["slots"][1]["health"].as_str(),
        Some(format!("down: nothing listens on {}", env.green).as_str()),
        "{status:#}"
    );
    assert_eq!(
        status["active"].as_str(),
        Some("blue"),
        "the include says so"
    );
    let table = env.ok(&["status"]);
    assert!(
        table.contains(&format!(
            "note     NGINX does not answer on port {}: nothing listens on {}",
            env.public.port(),
            env.public
        )),
        "{table}"
    );
    assert!(!table.contains("os error"), "{table}");
}
