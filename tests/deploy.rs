//! The one-click deploy: app.json (Heroku's Deploy button) names every variable the processes
//! require, each with a generator or a description, both process types and the Key-Value Store
//! add-on, and a post-deploy command the worker has; and `fom-worker check` says what answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(fom_testkit::repo_root().join(name)).unwrap()
}

/// Every variable `.env.example` sets (commented-out ones too), and those its comments call
/// required.
fn env_example() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = repo_file(".env.example");
    let (mut all, mut required) = (BTreeSet::new(), BTreeSet::new());
    let mut comment = String::new();
    for line in text.lines() {
        let line = line.trim();
        let var = |s: &str| {
            let (name, _) = s.split_once('=')?;
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_string())
        };
        if let Some(name) = var(line) {
            if comment.to_ascii_lowercase().contains("(required") {
                required.insert(name.clone());
            }
            all.insert(name);
            comment.clear();
        } else if let Some(c) = line.strip_prefix('#') {
            if let Some(name) = var(c.trim()) {
                all.insert(name);
            } else {
                comment.push_str(c);
                comment.push('\n');
            }
        } else {
            comment.clear();
        }
    }
    (all, required)
}

#[test]
fn app_json_names_every_required_variable_and_both_process_types() {
    let app: Value = serde_json::from_str(&repo_file("app.json")).expect("app.json is JSON");
    let (all, required) = env_example();
    assert!(
        required.contains("APP_PASSWORD") && required.contains("SESSION_SECRET"),
        "{required:?}"
    );
    let env = app["env"].as_object().unwrap();
    for name in &required {
        let entry = &env
            .get(name)
            .unwrap_or_else(|| panic!("app.json does not name {name}"));
        let generated = entry["generator"] == "secret";
        let described = entry["description"].as_str().is_some_and(|d| d.len() > 10);
        assert!(generated || described, "{name}: {entry}");
        assert_ne!(entry["required"], false, "{name} is required");
    }
    // Every variable app.json sets is one the processes read (no typos).
    for (name, entry) in env {
        assert!(
            all.contains(name),
            "app.json names {name}, unknown to .env.example"
        );
        assert!(
            entry["description"].is_string(),
            "{name} has no description"
        );
    }
    // The secrets the processes need are generated (the processes take Heroku's hex form).
    for name in ["SESSION_SECRET", "TOKEN_ENCRYPTION_KEY"] {
        assert_eq!(env[name]["generator"], "secret", "{name}");
    }
    // Both process types, as the Procfile and heroku.yml run them.
    let formation = app["formation"].as_object().unwrap();
    let procfile = repo_file("Procfile");
    for kind in ["web", "worker"] {
        assert!(formation.contains_key(kind), "formation lacks {kind}");
        assert!(
            procfile.lines().any(|l| l.starts_with(&format!("{kind}:"))),
            "Procfile lacks {kind}"
        );
    }
    assert_eq!(app["stack"], "container");
    assert!(repo_file("heroku.yml").contains("worker: fom-worker"));
    let addons: Vec<&str> = app["addons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["plan"].as_str())
        .collect();
    assert!(
        addons.iter().any(|p| p.starts_with("heroku-redis:")),
        "{addons:?}"
    );
    // The post-deploy check is a worker command.
    let post = app["scripts"]["postdeploy"].as_str().unwrap();
    let args: Vec<&str> = post.split_whitespace().collect();
    assert_eq!(args[0], "fom-worker");
    let help = Command::new(fom_testkit::bin_path("fom-worker", "fom-worker"))
        .args(&args[1..])
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "{post} is not a fom-worker command");
}

/// `fom-worker check` against this machine's Redis: every line says ok, exit 0; against a
/// Redis that does not answer: the Redis line fails, with what to check, exit 1.
#[test]
fn the_post_deploy_check_says_what_answers() {
    let worker = || {
        let mut c = Command::new(fom_testkit::bin_path("fom-worker", "fom-worker"));
        c.arg("check")
            .env_remove("QBO_CLIENT_ID")
            .env_remove("UPLOAD_STORE")
            .env("KEY_PREFIX", fom_testkit::web::unique_prefix("check"));
        c
    };
    let out = worker()
        .env("REDIS_URL", fom_testkit::redis_url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for part in [
        "configuration",
        "Redis: answers",
        "pdfium: loaded",
        "upload store",
        "QuickBooks: not set up",
        "extractor",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(!text.contains("FAIL"), "{text}");

    let port = fom_testkit::web::free_port();
    let out = worker()
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .env("REDIS_OUTAGE_WAIT_SECS", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL Redis") && text.contains("REDIS_URL"),
        "{text}"
    );
}
