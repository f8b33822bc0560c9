//! Layered configuration and the reference file.
#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment's own large error")]

use std::collections::BTreeSet;

use figment::Jail;
use figment::providers::Env;
use portcullis_server::config::{CommandLine, Config, ENV_PREFIX};

const REFERENCE: &str = include_str!("../../../../portcullis.reference.toml");

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

#[test]
fn reference_file_lists_every_key_with_its_default_and_variable() {
    let mut documented = BTreeSet::new();
    flatten("", &REFERENCE.parse::<toml::Table>().expect("reference parses"), &mut documented);
    let mut actual = BTreeSet::new();
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    flatten("", &defaults, &mut actual);
    assert_eq!(documented, actual, "portcullis.reference.toml and Config have different keys");

    // The reference holds exactly the defaults.
    let parsed: Config = toml::from_str(REFERENCE).expect("reference is a valid configuration");
    assert_eq!(parsed, Config::default());

    // Each key line is preceded by a `default: … · env: NAME` comment.
    let mut section = String::new();
    let mut previous = "";
    for line in REFERENCE.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
        } else if let Some((key, _)) = line.split_once(" = ").filter(|_| !line.starts_with('#')) {
            let full = format!("{section}{key}");
            let expected = format!("· env: {}", env_name(&full));
            assert!(
                previous.starts_with("# default: ") && previous.ends_with(&expected),
                "`{full}` lacks `# default: … {expected}`"
            );
        }
        previous = line;
    }
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "custom.toml",
            "data_dir = \"/srv/pc\"\n[server]\nlisten = \"0.0.0.0:8000\"\nshutdown_grace_secs = 5\n",
        )?;
        jail.set_env("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:9999");
        jail.set_env("PORTCULLIS_KEYS__ALGORITHM", "RS256");
        jail.set_env("PORTCULLIS_TEST_POSTGRES_URL", "ignored by the server");
        jail.set_env("PORTCULLIS_CONFIG", "custom.toml");
        let config =
            Config::load_from(Some("custom.toml".as_ref()), Env::prefixed(ENV_PREFIX)).map_err(|e| e.to_string())?;
        assert_eq!(config.data_dir.to_str(), Some("/srv/pc"));
        assert_eq!(config.server.listen, "127.0.0.1:9999");
        assert_eq!(config.server.shutdown_grace_secs, 5);
        assert_eq!(config.keys.algorithm.as_str(), "RS256");
        assert_eq!(config.public_url(), "http://127.0.0.1:9999");
        Ok(())
    });
}

fn load_error(setup: impl FnOnce(&mut Jail) -> figment::error::Result<()>) -> String {
    let mut message = String::new();
    Jail::expect_with(|jail| {
        setup(jail)?;
        let file = std::path::Path::new("portcullis.toml");
        let file = file.exists().then_some(file);
        message = Config::load_from(file, Env::prefixed(ENV_PREFIX))
            .expect_err("invalid config accepted")
            .to_string()
            .to_ascii_lowercase();
        Ok(())
    });
    message
}

#[test]
fn invalid_values_name_the_key() {
    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_SERVER__REQUEST_TIMEOUT_SECS", "soon");
        Ok(())
    });
    assert!(message.contains("request_timeout_secs"), "{message}");

    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_SERVER__LISTEN", "localhost");
        Ok(())
    });
    assert!(message.contains("server.listen"), "{message}");

    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_STORE__BACKEND", "postgres");
        Ok(())
    });
    assert!(message.contains("store.postgres_url"), "{message}");

    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_KEYS__ALGORITHM", "HS256");
        Ok(())
    });
    assert!(message.contains("algorithm"), "{message}");
}

/// Login codes keep at least 20 bits (6–10 digits) and the cap on wrong codes stays within NIST's 100;
/// other values stop the start with a message naming the key.
#[test]
fn login_code_settings_are_checked() {
    for (key, value) in
        [("CODE_DIGITS", "5"), ("CODE_DIGITS", "11"), ("MAX_CODE_FAILURES", "0"), ("MAX_CODE_FAILURES", "101")]
    {
        let message = load_error(|jail| {
            jail.set_env(format!("PORTCULLIS_LOGIN__{key}"), value);
            Ok(())
        });
        let name = format!("login.{}", key.to_ascii_lowercase());
        assert!(message.contains(&name) && message.contains("must be between"), "{key}={value}: {message}");
    }
    Jail::expect_with(|jail| {
        jail.set_env("PORTCULLIS_LOGIN__CODE_DIGITS", "8");
        jail.set_env("PORTCULLIS_LOGIN__MAX_CODE_FAILURES", "100");
        let config = Config::load_from(None, Env::prefixed(ENV_PREFIX)).map_err(|e| e.to_string())?;
        assert_eq!((config.login.code_digits, config.login.max_code_failures), (8, 100));
        Ok(())
    });
    let defaults = Config::default();
    assert_eq!((defaults.login.code_digits, defaults.login.max_code_failures), (6, 20));
}

#[test]
fn session_settings_are_checked() {
    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_SESSION__CORS_ALLOWED_ORIGINS", "[\"*\"]");
        Ok(())
    });
    assert!(message.contains("cors_allowed_origins") && message.contains("`*`"), "{message}");
    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_SESSION__COOKIE_SAME_SITE", "none");
        Ok(())
    });
    assert!(message.contains("cookie_same_site"), "{message}");
    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_SESSION__REFRESH_GRACE_SECS", "301");
        Ok(())
    });
    assert!(message.contains("refresh_grace_secs"), "{message}");
}

#[test]
fn unknown_keys_are_rejected() {
    let message = load_error(|jail| jail.create_file("portcullis.toml", "[server]\nlisten_port = 80\n").map(|_| ()));
    assert!(message.contains("listen_port"), "{message}");
    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_SERVR__LISTEN", "127.0.0.1:1");
        Ok(())
    });
    assert!(message.contains("servr"), "{message}");
}

#[test]
fn a_named_file_must_exist() {
    let error = Config::load_from(Some("/nonexistent/portcullis.toml".as_ref()), Env::prefixed("PORTCULLIS_UNUSED_"))
        .expect_err("missing file");
    assert!(error.to_string().contains("/nonexistent/portcullis.toml"));
}

#[test]
fn secrets_never_print() {
    let mut config = Config { master_key: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=".into(), ..Config::default() };
    config.store.postgres_url = "postgres://user:hunter2@db/portcullis".into();
    config.admin.token = "a-very-long-admin-token-that-is-secret".into();
    let debug = format!("{config:?}");
    for secret in ["c2VjcmV0", "hunter2", "a-very-long-admin-token"] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
}

/// Flags are the last layer: `--data-dir` and `--listen` win over the file and the environment, and
/// `--port` keeps the configured address.
#[test]
fn command_line_flags_override_everything() {
    Jail::expect_with(|jail| {
        jail.create_file("portcullis.toml", "data_dir = \"/from/file\"\n[server]\nlisten = \"10.0.0.1:8000\"\n")?;
        jail.set_env("PORTCULLIS_DATA_DIR", "/from/env");
        let flags =
            CommandLine { data_dir: Some("/from/flag".into()), listen: Some("127.0.0.2:9001".to_owned()), port: None };
        let config = Config::load_with(Some("portcullis.toml".as_ref()), &flags).map_err(|e| e.to_string())?;
        assert_eq!(config.data_dir.to_str(), Some("/from/flag"));
        assert_eq!(config.server.listen, "127.0.0.2:9001");

        let flags = CommandLine { port: Some(0), ..CommandLine::default() };
        let config = Config::load_with(Some("portcullis.toml".as_ref()), &flags).map_err(|e| e.to_string())?;
        assert_eq!((config.data_dir.to_str(), config.server.listen.as_str()), (Some("/from/env"), "10.0.0.1:0"));

        let flags = CommandLine { listen: Some("localhost".to_owned()), ..CommandLine::default() };
        let message = Config::load_with(None, &flags).expect_err("a host name is not a socket address").to_string();
        assert!(message.contains("server.listen"), "{message}");
        Ok(())
    });
}

/// A wildcard listen address cannot be browsed to: the derived public URL names loopback instead.
#[test]
fn the_derived_public_url_never_names_a_wildcard_address() {
    let mut config = Config::default();
    for (listen, url) in [
        ("0.0.0.0:7420", "http://127.0.0.1:7420"),
        ("[::]:7420", "http://[::1]:7420"),
        ("192.0.2.7:80", "http://192.0.2.7:80"),
    ] {
        listen.clone_into(&mut config.server.listen);
        assert_eq!(config.public_url(), url, "{listen}");
    }
    "https://login.example.com/".clone_into(&mut config.server.public_url);
    assert_eq!(config.public_url(), "https://login.example.com");
}

/// List-valued keys take a TOML array from the environment (as the reference file documents); a bare word
/// is refused with the key's name rather than read as a one-element list.
#[test]
fn list_valued_variables_are_toml_arrays() {
    Jail::expect_with(|jail| {
        jail.set_env("PORTCULLIS_CONNECTORS__EGRESS_ALLOW", r#"["10.0.0.0/8", "127.0.0.1"]"#);
        let config = Config::load_from(None, Env::prefixed(ENV_PREFIX)).map_err(|e| e.to_string())?;
        assert_eq!(config.connectors.egress_allow, ["10.0.0.0/8", "127.0.0.1"]);
        Ok(())
    });
    let message = load_error(|jail| {
        jail.set_env("PORTCULLIS_CONNECTORS__EGRESS_ALLOW", "api.example.com");
        Ok(())
    });
    assert!(message.contains("egress_allow"), "{message}");
}
