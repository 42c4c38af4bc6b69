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

/// A slot address edited in the config but not applied (`up` holds the old socket, and
/// `restart` refuses to move it): status probes the slot where it really listens and says
/// the change waits. Before, it showed blue "down: nothing listens on" the new address.
#[test]
fn an_edited_slot_address_not_applied_yet_is_probed_where_the_slot_listens() {
    let env = Env::new();
    let _up = env.up();
    let moved = format!("127.0.0.1:{}", crate::util::free_port());
    env.set_key("slots", "blue", toml::Value::from(moved.as_str()));
    let err = env.fails(&["restart"], 1);
    assert!(err.contains("config key `slots.blue`"), "{err}");

    let status = env.status_json();
    assert_eq!(status["active"].as_str(), Some("blue"), "{status:#}");
    assert_eq!(
        status["slots"][0]["health"].as_str(),
        Some("healthy"),
        "{status:#}"
    );
    assert_eq!(
        status["slots"][0]["address"].as_str(),
        Some(env.blue.to_string().as_str()),
        "{status:#}"
    );
    let notes = status["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "the config puts blue on {moved}, but it listens on {}",
            env.blue
        )) && notes.contains("not applied"),
        "{status:#}"
    );
}
