//! The command line itself: help, and configuration errors that name the key.

use crate::util::Env;

#[test]
fn help_documents_exit_codes() {
    let env = Env::new();
    let out = env.ok(&["train", "--help"]);
    assert!(out.contains("10  with --if-due: trained"), "{out}");
    let out = env.ok(&["deploy", "--help"]);
    assert!(out.contains("3   the quality gate refused"), "{out}");
}

#[test]
fn a_bad_config_value_is_refused_with_its_key_and_a_hint() {
    let env = Env::new();
    std::fs::write(&env.config, "batch_size = 0\n").unwrap();
    let err = env.fails(&["status"], 1);
    assert!(err.contains("config key `batch_size` is invalid"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    std::fs::write(&env.config, "[slots]\nblue = 8081\n").unwrap();
    let err = env.fails(&["status"], 1);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn commands_before_init_say_what_to_do() {
    let env = Env::new();
    let err = env.fails(&["add-data", "--sample", "2"], 1);
    assert!(err.contains("bluegreen init"), "{err}");
    let err = env.fails(&["serve", "--slot", "blue"], 1);
    assert!(err.contains("slot blue has no model"), "{err}");
}

#[test]
fn up_without_nginx_says_how_to_install_it() {
    let env = Env::new();
    let text = std::fs::read_to_string(&env.config).unwrap();
    let nginx = crate::util::nginx_binary();
    std::fs::write(
        &env.config,
        text.replace(&nginx.display().to_string(), "/nonexistent/nginx"),
    )
    .unwrap();
    let err = env.fails(&["up"], 1);
    assert!(
        err.contains("cannot run NGINX (/nonexistent/nginx)"),
        "{err}"
    );
    assert!(err.contains("apt install nginx"), "{err}");
}
