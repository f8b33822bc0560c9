//! Loading definitions: good ones load, bad ones report file, line and what is wrong.

use std::path::Path;

use portcullis_connect::Connector;

fn errors(yaml: &str) -> Vec<String> {
    Connector::parse(Path::new("bad.yaml"), yaml).expect_err("invalid").iter().map(ToString::to_string).collect()
}

#[test]
fn the_documented_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/acme.yaml");
    let connector = Connector::load(&path).expect("example loads");
    assert_eq!(connector.name, "acme");
    assert!(connector.methods.contains_key("list_contacts"));
}

#[test]
fn the_schema_is_json() {
    let text = include_str!("../schema/connector.schema.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("schema parses");
    assert_eq!(schema["required"], serde_json::json!(["base_url", "auth", "methods"]));
}

#[test]
fn unknown_keys_name_the_line() {
    let e = errors("base_url: http://x\nauth:\n  type: none\nmethods:\n  m:\n    path: /a\n    verb: GET\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("bad.yaml:7:"), "{e:?}");
    assert!(e[0].contains("unknown field `verb`"), "{e:?}");
}

#[test]
fn semantic_errors_are_all_reported_with_lines() {
    let yaml = "base_url: ftp://x\nauth:\n  type: oauth2\n  grant: authorization_code\n  token_url: http://t\nmethods:\n  m:\n    http_method: FETCH\n    path: /a\n    script: 'function before_action( {'\nlookup:\n  method: missing\n  output_property: S\n  response_path: a\n";
    let e = errors(yaml);
    assert!(e.iter().any(|m| m.starts_with("bad.yaml:1:") && m.contains("base_url")), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("bad.yaml:4:") && m.contains("authorize_url")), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("bad.yaml:8:") && m.contains("FETCH")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("script does not compile") && m.contains("SyntaxError")), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("bad.yaml:11:") && m.contains("missing")), "{e:?}");
}

#[test]
fn wrong_auth_type_is_reported() {
    let e = errors("base_url: http://x\nauth:\n  type: kerberos\nmethods: {}\n");
    assert!(e[0].starts_with("bad.yaml:3:") && e[0].contains("kerberos"), "{e:?}");
}

#[test]
fn scripts_in_their_own_files_are_read_byte_for_byte() {
    let dir = tempfile::tempdir().expect("dir");
    // What YAML quoting would mangle: quotes, a comment marker, `: `, tabs, trailing spaces, no final newline.
    let connector_js = "function before_action() {\n\tvar s = 'a: b # not a comment';  \n\treturn true;\n}";
    let method_js = "function after_action() { method_response = { q: \"it's\" }; return true; }\r\n";
    std::fs::write(dir.path().join("acme.js"), connector_js).expect("write");
    std::fs::create_dir(dir.path().join("methods")).expect("dir");
    std::fs::write(dir.path().join("methods/list.js"), method_js).expect("write");
    let yaml = "base_url: http://x\nauth:\n  type: none\nscript_file: acme.js\nmethods:\n  list:\n    path: /a\n    script_file: methods/list.js\n";
    std::fs::write(dir.path().join("acme.yaml"), yaml).expect("write");
    let connector = Connector::load(&dir.path().join("acme.yaml")).expect("loads");
    assert_eq!(connector.script.as_deref(), Some(connector_js));
    assert_eq!(connector.methods["list"].script.as_deref(), Some(method_js));

    let refused = |yaml: &str| {
        std::fs::write(dir.path().join("bad.yaml"), yaml).expect("write");
        Connector::load(&dir.path().join("bad.yaml"))
            .expect_err("refused")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let both = refused("base_url: http://x\nauth:\n  type: none\nscript: 'x'\nscript_file: acme.js\nmethods: {}\n");
    assert!(both.iter().any(|e| e.contains("script_file") && e.contains("script")), "{both:?}");
    let missing = refused("base_url: http://x\nauth:\n  type: none\nscript_file: nope.js\nmethods: {}\n");
    assert!(missing.iter().any(|e| e.contains("nope.js")), "{missing:?}");
    let outside =
        refused("base_url: http://x\nauth:\n  type: none\nmethods:\n  m:\n    path: /a\n    script_file: ../x.js\n");
    assert!(outside.iter().any(|e| e.contains("../x.js")), "{outside:?}");
}

#[test]
fn connector_urls_may_use_only_declared_properties() {
    let yaml = "name: regional\nbase_url: https://{{ Region }}.api.example.com\nproperties:\n  - name: Region\n    required: true\npartner_properties:\n  - name: Tenant\n    value: acme\nauth:\n  type: oauth2\n  grant: authorization_code\n  authorize_url: https://login.example.com/{{Tenant}}/authorize\n  token_url: https://{{Region}}.api.example.com/oauth/{{Caller}}\nmethods:\n  m:\n    path: /a\n";
    let e = errors(yaml);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("token_url") && e[0].contains("{{Caller}}"), "{e:?}");
    Connector::parse(Path::new("ok.yaml"), &yaml.replace("{{Caller}}", "token")).expect("properties may fill URLs");
    let e = errors(
        &yaml.replace("base_url: https://{{ Region }}.api.example.com", "base_url: '{{Region}}://x.example.com'"),
    );
    assert!(e.iter().any(|m| m.contains("base_url") && m.contains("not an http(s) URL")), "{e:?}");
}

#[test]
fn paging_settings_are_checked() {
    let e = errors(
        "base_url: http://x\nauth:\n  type: none\nmethods:\n  m:\n    path: /a\n    paging:\n      type: page_number\n      items_path: items\n      tokens:\n        FILTER: meta.filter\n  n:\n    path: /b\n    outbound_paging:\n      location: data.[records]\n",
    );
    assert!(e.iter().any(|m| m.contains("method m: tokens are for token paging")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("method n: outbound paging needs a JSON body")), "{e:?}");
    let e = errors(
        "base_url: http://x\nauth:\n  type: none\nmethods:\n  m:\n    path: /a\n    paging:\n      type: token\n      next_path: next\n      tokens:\n        'a-b': meta.filter\n",
    );
    assert!(e.iter().any(|m| m.contains("token name \"a-b\"")), "{e:?}");
}
