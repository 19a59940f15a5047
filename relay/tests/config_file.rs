//! The binary's settings as an operator gives them: a `--config` TOML file, `STELGANO_*`
//! variables and flags, in that order of precedence; `--print-config`; errors that name the
//! setting.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn relay(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"));
    // A developer's own STELGANO_* settings must not leak into the test.
    for (k, _) in std::env::vars() {
        if k.starts_with("STELGANO_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn value(toml: &str, key: &str) -> String {
    toml.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} missing from:\n{toml}"))
        .to_owned()
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        "lock_minutes = 5\nmax_failures = 4\njoin_floor_ms = 250\nhsts = true\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, err) = relay(
        &["--config", f, "--max-failures", "9", "--print-config"],
        &[
            ("STELGANO_MAX_FAILURES", "6"),
            ("STELGANO_JOIN_FLOOR_MS", "100"),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(value(&out, "lock_minutes"), "5", "from the file");
    assert_eq!(
        value(&out, "join_floor_ms"),
        "100",
        "the environment beats the file"
    );
    assert_eq!(value(&out, "max_failures"), "9", "a flag beats both");
    assert_eq!(value(&out, "hsts"), "true");
    // Unset anywhere: the library's default.
    assert_eq!(value(&out, "max_lock_minutes"), "1440");
    // The printed settings are a config file that reads back to the same settings.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &out).unwrap();
    let (ok, out2, err) = relay(
        &["--config", again.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(out, out2);
}

#[test]
fn bad_settings_are_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "lock_minuts = 5\n").unwrap();
    let (ok, _, err) = relay(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("lock_minuts"), "{err}");
    let (ok, _, err) = relay(&["--max-failures", "0"], &[]);
    assert!(!ok && err.contains("max_failures = 0"), "{err}");
    let (ok, _, err) = relay(&["--lock-minutes", "60", "--max-lock-minutes", "30"], &[]);
    assert!(!ok && err.contains("max_lock_minutes = 30"), "{err}");
    let (ok, _, err) = relay(&["--config", "/nonexistent/relay.toml"], &[]);
    assert!(!ok && err.contains("cannot read"), "{err}");
    // --help shows each default, taken from the library's Config::default().
    let (ok, out, _) = relay(&["--help"], &[]);
    assert!(ok && out.contains("[default: 30]") && out.contains("[default: 127.0.0.1:8080]"));
}
