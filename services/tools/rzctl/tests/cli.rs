//! The command line: help, version, and refused arguments.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn rzctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rzctl"))
        .args(args)
        .output()
        .expect("rzctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn help_names_every_command() {
    let o = rzctl(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for command in ["dlq", "events", "seed", "landscape", "pki"] {
        assert!(text.contains(command), "{command} in\n{text}");
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        &["seed", "--help"][..],
        &["landscape", "--help"],
        &["events", "--help"],
        &["dlq", "--help"],
        &["dlq", "replay", "--help"],
        &["pki", "init", "--help"],
    ] {
        let o = rzctl(args);
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains("Usage: rzctl"), "{args:?}");
    }
    let text = stdout(&rzctl(&["seed", "--help"]));
    assert!(
        text.contains("--endpoint <URL>")
            && text.contains("--file <PATH>")
            && text.contains("--pki <DIR>")
            && text.contains("--as <FOLDER>"),
        "{text}"
    );
}

#[test]
fn version() {
    let o = rzctl(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("rzctl {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_commands_flags_and_bad_values_are_refused() {
    for args in [
        &[][..],
        &["nonsense"],
        &["seed", "--bogus"],
        &["dlq", "replay", "seven"],
        &["events"],
        &["events", "--provider", "03010028", "--limit", "many"],
    ] {
        let o = rzctl(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn a_broken_seed_file_is_refused_before_anything_is_sent() {
    let path = std::env::temp_dir().join(format!("rzctl-broken-seed-{}.toml", std::process::id()));
    std::fs::write(&path, "[providers]\norganisations = []\n").unwrap();
    // Nothing listens on port 9: the file is refused first.
    let o = rzctl(&[
        "seed",
        "--endpoint",
        "http://127.0.0.1:9",
        "--file",
        path.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rzctl-broken-seed"), "{err}");
    assert!(!err.contains("cannot connect"), "{err}");
}

#[test]
fn pki_init_writes_the_layout_and_refuses_bad_codes() {
    let dir = std::env::temp_dir().join(format!("rzctl-pki-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let o = rzctl(&[
        "pki",
        "init",
        "--dir",
        d,
        "--providers",
        "03010028,12345678",
        "--municipalities",
        "0222",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "ca.crt",
        "token-signing.pub",
        "jwks.json",
        "provider-03010028/tls.crt",
        "provider-12345678/tls.key",
        "municipality-0222/staff.jwt",
        "operator/tls.crt",
        "service-access/tls.crt",
        "service-reporting/tls.key",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let o = rzctl(&[
        "pki",
        "init",
        "--dir",
        d,
        "--providers",
        "../etc",
        "--municipalities",
        "0222",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!dir.exists());
    let o = rzctl(&["pki", "init"]);
    assert_eq!(o.status.code(), Some(2));
}
