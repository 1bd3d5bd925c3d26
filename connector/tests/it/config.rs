//! Configuration: layering (file, environment, flags) and refusal of unsafe settings.

use std::path::Path;

use connector::config::{ConfigError, Overrides, Settings};

use crate::helpers::*;

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn base() -> String {
    format!(
        r#"
        [entra]
        client_id = "{CLIENT_ID}"
        client_secret = "TEST-ONLY-secret"
        [obo]
        cache_keys = ["{KEY}"]
        "#
    )
}

fn load_text(text: &str) -> Result<Settings, ConfigError> {
    load_with_env(text, Vec::new())
}

fn load_with_env(text: &str, env: Vec<(String, String)>) -> Result<Settings, ConfigError> {
    let dir = temp_dir();
    let file = dir.join("connector.toml");
    std::fs::write(&file, text).unwrap();
    let result = Settings::load(Some(&file), env, &Overrides::default());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn refusal(text: &str) -> String {
    load_text(text).expect_err("should be refused").to_string()
}

#[test]
fn defaults_are_the_production_services() {
    let s = load_text(&base()).unwrap();
    assert_eq!(s.entra.authority.as_str(), "https://login.microsoftonline.com/");
    assert_eq!(s.graph.base_url.as_str(), "https://graph.microsoft.com/v1.0");
    assert_eq!(s.entra.required_scope, "access_as_user");
    assert_eq!(s.entra.audiences, vec![CLIENT_ID.to_owned(), format!("api://{CLIENT_ID}")]);
    assert_eq!(s.obo.max_reuse.as_secs(), 300);
    assert_eq!(s.entra.jwks_refresh_floor.as_secs(), 60);
    assert_eq!(s.entra.jwks_url(), "https://login.microsoftonline.com/common/discovery/v2.0/keys");
}

#[test]
fn plain_http_is_refused_outside_loopback() {
    let text = format!("{}\n[graph]\nbase_url = \"http://graph.example.com/v1.0\"", base());
    assert!(refusal(&text).contains("graph.base_url"));
    let text = base().replace("[entra]", "[entra]\nauthority = \"http://login.example.com\"");
    let err = refusal(&text);
    assert!(err.contains("entra.authority") && err.contains("https"), "{err}");
    let loopback = base().replace("[entra]", "[entra]\nauthority = \"http://127.0.0.1:8400\"");
    assert!(load_text(&loopback).is_ok());
}

#[test]
fn a_missing_client_id_or_audience_is_refused() {
    assert!(
        refusal(&base().replace(&format!("client_id = \"{CLIENT_ID}\""), ""))
            .contains("entra.client_id")
    );
    let text = base().replace("[entra]", "[entra]\naudiences = []");
    assert!(refusal(&text).contains("entra.audiences"));
    let graph = base().replace("[entra]", "[entra]\naudiences = [\"https://graph.microsoft.com\"]");
    assert!(refusal(&graph).contains("Graph"));
}

#[test]
fn a_cache_key_of_the_wrong_size_is_refused() {
    let err = refusal(&base().replace(KEY, "AAAA"));
    assert!(err.contains("obo.cache_keys") && err.contains("expected 32"), "{err}");
    let err = refusal(&base().replace(KEY, "not base64!"));
    assert!(err.contains("base64"), "{err}");
    let err = refusal(&base().replace(&format!("cache_keys = [\"{KEY}\"]"), "cache_keys = []"));
    assert!(err.contains("obo.cache_keys"), "{err}");
}

#[test]
fn a_credential_is_required_and_only_one() {
    let err = refusal(&base().replace("client_secret = \"TEST-ONLY-secret\"", ""));
    assert!(err.contains("credential"), "{err}");
    let both = base().replace(
        "[obo]",
        "[entra.certificate]\nprivate_key_pem = \"-----BEGIN PRIVATE KEY-----\"\nthumbprint_x5t = \"abc\"\n[obo]",
    );
    assert!(refusal(&both).contains("not both"));
}

#[test]
fn unknown_settings_are_refused_by_name() {
    let err = refusal(&format!("{}\n[limits]\nmax_inflight = 3", base()));
    assert!(err.contains("max_inflight"), "{err}");
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let env = vec![
        ("M365_SERVER__LISTEN".to_owned(), "127.0.0.1:4000".to_owned()),
        ("M365_OBO__MAX_REUSE_SECS".to_owned(), "0".to_owned()),
    ];
    let s = load_with_env(&base(), env.clone()).unwrap();
    assert_eq!(s.server.listen.port(), 4000);
    assert_eq!(s.obo.max_reuse.as_secs(), 0);
    let dir = temp_dir();
    let file = dir.join("c.toml");
    std::fs::write(&file, base()).unwrap();
    let s = Settings::load(
        Some(&file),
        env,
        &Overrides { listen: Some("127.0.0.1:5000".into()), ..Overrides::default() },
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 5000);
    // Relative paths resolve against the config file's directory.
    assert_eq!(s.policy.path, dir.join("policy.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_public_url_must_be_the_canonical_mcp_endpoint() {
    let text = format!("{}\n[server]\npublic_url = \"https://mcp.contoso.com/mcp/\"", base());
    assert!(refusal(&text).contains("server.public_url"));
    let text = format!("{}\n[server]\npublic_url = \"https://mcp.contoso.com/mcp\"", base());
    let s = load_text(&text).unwrap();
    assert_eq!(
        s.server.resource_metadata_url(),
        "https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(s.server.allowed_hosts, vec!["mcp.contoso.com".to_owned()]);
}

#[test]
fn the_example_config_file_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let s = Settings::load(Some(&example), Vec::new(), &Overrides::default()).unwrap();
    assert_eq!(s.entra.authority.as_str(), "http://127.0.0.1:8400/");
    assert_eq!(s.graph.base_url.as_str(), "http://127.0.0.1:8500/v1.0");
    connector::policy::Policy::load(&s.policy.path).unwrap();
}

#[test]
fn the_admin_consent_url_lists_every_graph_permission() {
    let s = load_text(&base()).unwrap();
    let url =
        connector::tools::permissions::admin_consent_url(&s, CONTOSO, "https://example.com/done");
    assert!(url.starts_with(&format!(
        "https://login.microsoftonline.com/{CONTOSO}/v2.0/adminconsent?client_id={CLIENT_ID}&scope="
    )));
    assert!(url.contains("https%3A%2F%2Fgraph.microsoft.com%2FUser.Read"));
    assert!(url.contains("redirect_uri=https%3A%2F%2Fexample.com%2Fdone"));
    assert!(!url.contains("offline_access"));
}

#[test]
fn download_hosts_must_be_sharepoint_or_onedrive_shapes_unless_overridden() {
    let with_hosts = |hosts: &str, extra: &str| {
        format!("{}\n[graph]\ndownload_hosts = {hosts}\n{extra}", base())
    };
    for bad in [r#"["*.com"]"#, r#"["*"]"#, r#"["evil-sharepoint.com"]"#, r#"["127.0.0.1"]"#] {
        let err = refusal(&with_hosts(bad, ""));
        assert!(
            err.contains("graph.download_hosts") && err.contains("allow_any_download_host"),
            "{bad}: {err}"
        );
    }
    let good =
        r#"["*.sharepoint.com", "contoso-my.sharepoint.com", "*.svc.ms", "*.sharepoint.us"]"#;
    assert!(load_text(&with_hosts(good, "")).is_ok());
    assert!(load_text(&with_hosts(r#"["*.com"]"#, "allow_any_download_host = true")).is_ok());
    // Loopback downloads (the fakes) only while Graph itself is on loopback.
    let fakes = with_hosts(r#"["127.0.0.1"]"#, "base_url = \"http://127.0.0.1:8500/v1.0\"");
    assert!(load_text(&fakes).is_ok());
}

#[test]
fn published_test_only_secrets_are_refused_off_loopback() {
    const EXAMPLE_CACHE_KEY: &str = "VEVTVC1PTkxZLWNhY2hlLWtleS0zMi1ieXRlcy0hISE=";
    let public = "[server]\nlisten = \"0.0.0.0:3111\"\npublic_url = \"https://mcp.contoso.com/mcp\"\nallowed_hosts = [\"mcp.contoso.com\"]\n";
    let own_secret = base().replace("TEST-ONLY-secret", "a-secret-of-our-own-making-1234");
    let err = refusal(&format!("{public}{}", own_secret.replace(KEY, EXAMPLE_CACHE_KEY)));
    assert!(err.contains("obo.cache_keys") && err.contains("TEST-ONLY"), "{err}");
    let err =
        refusal(&format!("{public}{own_secret}\n[tools]\ncursor_key = \"{EXAMPLE_CACHE_KEY}\""));
    assert!(err.contains("tools.cursor_key"), "{err}");
    // Own secrets in public; published ones on loopback (the sandbox, the example config).
    assert!(load_text(&format!("{public}{own_secret}")).is_ok());
    assert!(load_text(&base().replace(KEY, EXAMPLE_CACHE_KEY)).is_ok());
}
