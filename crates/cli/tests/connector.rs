//! `portcullis connector validate` and `portcullis connector call` as a connector author runs them.

use std::process::Command;

fn portcullis(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir)
        .env("PORTCULLIS_DATA_DIR", dir.join("data"))
        .env("PORTCULLIS_LOG__LEVEL", "warn")
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .expect("run portcullis")
}

#[test]
fn validate_reports_file_line_and_problem() {
    let dir = tempfile::tempdir().expect("dir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../connect/examples/acme.yaml");
    let ok = portcullis(dir.path(), &["connector", "validate", example]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (connector \"acme\", 3 methods)"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "base_url: http://x\nauth:\n  type: none\nmethods:\n  m:\n    path: /a\n    script: 'function after_action( {'\n")
        .expect("write");
    let out = portcullis(dir.path(), &["connector", "validate", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:5: method m: script does not compile: SyntaxError"), "{stderr}");
}

#[test]
fn call_needs_an_installed_account() {
    let dir = tempfile::tempdir().expect("dir");
    let out = portcullis(dir.path(), &["connector", "call", "org", "acct", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("There is no connector account \"acct\". (entityMissing)"), "{stderr}");
}
