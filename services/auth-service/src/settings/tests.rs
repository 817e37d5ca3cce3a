//! The settings parsed as a person writes them, and refused as a person gets them wrong.

use super::*;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CALLER_KEY: &str = "callerkeycallerkeycallerkey";
const CALLERS: &str = "gateway:login:callerkeycallerkeycallerkey";

fn settings(extra: &[&str]) -> Result<Config, SettingsError> {
    let mut args = vec![
        "auth-service",
        "--database-url",
        "postgres://wx:pa55word@db/wxauth",
    ];
    if !extra.contains(&"--callers") {
        args.extend_from_slice(&["--callers", CALLERS]);
    }
    if !extra.contains(&"--apps") {
        args.extend_from_slice(&["--apps", "wx4f4bc4dec97d474b:topsecretvalue"]);
    }
    args.extend_from_slice(extra);
    Settings::try_parse_from(args).unwrap().into_config()
}

#[test]
fn a_full_configuration_is_accepted_and_its_debug_hides_every_secret() {
    let config = settings(&[
        "--session-key-keys",
        &format!("k2:{KEY},k1:{KEY}"),
        "--token-signing-keys",
        &format!("t1:{KEY}"),
    ])
    .unwrap();
    assert!(!config.throwaway_keys && !config.throwaway_token_keys);
    let printed = format!("{config:?}");
    for secret in ["pa55word", "topsecretvalue", KEY, CALLER_KEY] {
        assert!(!printed.contains(secret), "{secret} leaked into {printed}");
    }
    assert!(printed.contains("wx4f4bc4dec97d474b") && printed.contains("k2"));
}

#[test]
fn keys_are_required_outside_dev_mode() {
    let err = settings(&[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("WXAUTH_SESSION_KEY_KEYS is not set"),
        "{err}"
    );
    let dev = settings(&["--dev"]).unwrap();
    assert!(dev.throwaway_keys);
    let empty = settings(&["--dev", "--session-key-keys", ""]).unwrap();
    assert!(empty.throwaway_keys, "an empty value counts as unset");
    assert!(settings(&["--session-key-keys", " "]).is_err());
}

#[test]
fn wechat_is_reached_over_https_unless_it_is_on_this_machine_or_dev_mode_says_so() {
    for (base, dev, accepted) in [
        ("https://api.weixin.qq.com", false, true),
        ("http://api.weixin.qq.com", false, false),
        ("http://wechat-sim:9090", false, false),
        ("http://wechat-sim:9090", true, true),
        ("http://127.0.0.1:9090", false, true),
        ("http://localhost:9090/", false, true),
        ("http://[::1]:9090", false, true),
        ("ftp://x", true, false),
    ] {
        assert_eq!(
            check_wechat_base(base, dev).is_ok(),
            accepted,
            "{base} dev={dev}"
        );
    }
}

#[test]
fn the_active_kids_choose_who_signs_and_seals_and_must_be_listed() {
    let session_keys = format!("k1:{KEY},k2:{KEY}");
    let signing_keys = format!("t1:{KEY},t2:{KEY}");
    let both = |session_kid: &str, signing_kid: &str| {
        settings(&[
            "--session-key-keys",
            &session_keys,
            "--session-key-kid",
            session_kid,
            "--token-signing-keys",
            &signing_keys,
            "--token-signing-kid",
            signing_kid,
        ])
    };
    let config = both("k2", "t2").unwrap();
    assert_eq!(config.keyring.active_kid(), "k2");
    assert_eq!(config.tokens.signer_kid(), "t2");
    assert_eq!(config.tokens.jwks().keys.len(), 2, "both are published");
    let first = settings(&[
        "--session-key-keys",
        &session_keys,
        "--token-signing-keys",
        &signing_keys,
    ])
    .unwrap();
    assert_eq!(
        (first.keyring.active_kid(), first.tokens.signer_kid()),
        ("k1", "t1"),
        "the first key by default"
    );
    for (config, setting) in [
        (both("k9", "t2"), "WXAUTH_SESSION_KEY_KID"),
        (both("k1", "t9"), "WXAUTH_TOKEN_SIGNING_KID"),
    ] {
        let err = config.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.starts_with(setting), "{err}");
    }
}

#[test]
fn malformed_settings_are_named_without_echoing_the_value() {
    let cases: [(&str, &[&str]); 7] = [
        (
            "short signing key",
            &["--dev", "--token-signing-keys", "t1:c2VjcmV0dmFsdWUx"],
        ),
        (
            "short caller key",
            &["--dev", "--callers", "gw:login:secretvalue1"],
        ),
        (
            "apps without secret",
            &["--apps", "wx4f4bc4dec97d474b", "--dev"],
        ),
        (
            "bad appid",
            &["--apps", "wxNOTHEX0123456789:secretvalue1", "--dev"],
        ),
        (
            "duplicate app",
            &[
                "--apps",
                "wx4f4bc4dec97d474b:secretvalue1,wx4f4bc4dec97d474b:secretvalue2",
                "--dev",
            ],
        ),
        ("short key", &["--session-key-keys", "k1:c2VjcmV0dmFsdWUx"]),
        ("bad kid", &["--session-key-keys", "k 1:secretvalue1"]),
    ];
    for (case, extra) in cases {
        let err = settings(extra)
            .err()
            .unwrap_or_else(|| panic!("{case} was accepted"));
        let message = err.to_string();
        assert!(
            !message.contains("secretvalue") && !message.contains("c2VjcmV0"),
            "{case}: {message}"
        );
    }
}

#[test]
fn the_example_config_file_names_only_real_settings() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/auth-service.example.toml"
    );
    let args = vec!["auth-service".into(), "--config".into(), path.into()];
    let folded = wxauth_process::config::fold_file_into_args(
        &<Settings as clap::CommandFactory>::command(),
        args,
        "WXAUTH_CONFIG",
        |_| None,
    )
    .unwrap();
    let mut args: Vec<String> = folded
        .into_iter()
        .map(|arg| arg.into_string().unwrap())
        .collect();
    args.extend([
        "--database-url=postgres://db/x".into(),
        format!("--callers={CALLERS}"),
        "--apps=wx4f4bc4dec97d474b:s".into(),
        "--dev".into(),
    ]);
    let config = Settings::try_parse_from(args)
        .unwrap()
        .into_config()
        .unwrap();
    assert_eq!(config.metrics_addr.port(), 9464);
    let missing = wxauth_process::config::missing_from_example(
        &<Settings as clap::CommandFactory>::command(),
        &std::fs::read_to_string(path).unwrap(),
    );
    assert!(missing.is_empty(), "the example does not list {missing:?}");
}

#[test]
fn an_empty_app_list_is_refused() {
    let args = [
        "auth-service",
        "--database-url",
        "postgres://db/x",
        "--apps",
        " , ",
        "--callers",
        CALLERS,
        "--dev",
    ];
    let err = Settings::try_parse_from(args)
        .unwrap()
        .into_config()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("WXAUTH_APPS is not set"),
        "{err}"
    );
}

#[test]
fn limits_of_zero_are_refused() {
    for flag in [
        "--wechat-timeout-ms",
        "--db-max-connections",
        "--db-statement-timeout-ms",
        "--max-concurrent-calls",
        "--purge-interval-secs",
        "--tls-reload-secs",
        "--session-ttl-secs",
        "--access-ttl-secs",
        "--refresh-ttl-secs",
        "--family-max-age-secs",
        "--audit-retention-secs",
        "--audit-retention-days",
        "--watermark-max-age-secs",
    ] {
        let parsed = Settings::try_parse_from([
            "auth-service",
            "--database-url",
            "postgres://wx@db/wxauth",
            flag,
            "0",
        ]);
        assert!(parsed.is_err(), "{flag} 0 must be refused");
        let one = Settings::try_parse_from([
            "auth-service",
            "--database-url",
            "postgres://wx@db/wxauth",
            flag,
            "1",
        ]);
        assert!(one.is_ok(), "{flag} 1 is a limit");
    }
}

#[test]
fn an_access_token_may_not_outlive_its_refresh_token() {
    let parse = |access: &str, refresh: &str| {
        settings(&[
            "--dev",
            "--access-ttl-secs",
            access,
            "--refresh-ttl-secs",
            refresh,
        ])
    };
    let err = parse("86400", "3600").unwrap_err().to_string();
    assert!(
        err.starts_with("WXAUTH_ACCESS_TTL_SECS") && err.contains("WXAUTH_REFRESH_TTL_SECS (3600)"),
        "{err}"
    );
    assert!(parse("3600", "3600").is_ok());
    assert!(parse("900", "2592000").is_ok());
}

#[test]
fn a_renamed_variable_still_reaches_its_setting() {
    use clap::CommandFactory;
    use wxauth_process::config::fold_renamed_env;

    for renamed in super::RENAMED {
        let (args, notes) = fold_renamed_env(
            &Settings::command(),
            vec!["auth-service".into()],
            &[renamed],
            |name| (name == renamed.old).then(|| "1234".into()),
        );
        assert_eq!(notes.len(), 1, "{} is not a setting", renamed.new);
        let mut args = args;
        args.extend(["--database-url".into(), "postgres://db/wxauth".into()]);
        let settings = Settings::try_parse_from(args).unwrap();
        assert_eq!(settings.app_token_check_ms, 1234);
    }
}

#[test]
fn an_interval_below_its_minimum_is_refused_not_raised() {
    for (flag, minimum) in [
        ("--revocation-heartbeat-ms", 50),
        ("--app-token-check-ms", 100),
    ] {
        let parse = |value: u64| {
            Settings::try_parse_from([
                "auth-service".to_owned(),
                "--database-url".to_owned(),
                "postgres://wx@db/wxauth".to_owned(),
                flag.to_owned(),
                value.to_string(),
            ])
        };
        let refused = parse(minimum - 1)
            .err()
            .unwrap_or_else(|| panic!("{flag} accepted"));
        assert!(
            refused
                .to_string()
                .contains(&format!("must be at least {minimum}")),
            "{refused}"
        );
        assert!(parse(minimum).is_ok());
    }
}

#[test]
fn webhook_subscriptions_are_checked_and_their_errors_quote_no_secret() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let entry = |changes: serde_json::Value| {
        let mut entry = serde_json::json!({
            "name": "crm",
            "appid": "wx4f4bc4dec97d474b",
            "url": "https://crm.example.com/hooks?token=receiverpassword",
            "secret": SECRET,
            "events": ["user.created", "user.deleted"],
        });
        for (key, value) in changes.as_object().unwrap() {
            entry[key] = value.clone();
        }
        entry
    };
    let parsed = |subscriptions: serde_json::Value, dev: bool| {
        let raw = subscriptions.to_string();
        let (keys, signing) = (format!("k1:{KEY}"), format!("t1:{KEY}"));
        let mut args = vec![
            "--webhooks",
            raw.as_str(),
            "--session-key-keys",
            &keys,
            "--token-signing-keys",
            &signing,
        ];
        if dev {
            args.push("--dev");
        }
        settings(&args).map(|config| config.webhooks)
    };
    let ok = parsed(serde_json::json!([entry(serde_json::json!({}))]), false).unwrap();
    assert_eq!(ok.subscriptions.len(), 1);
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&ok.subscriptions[0].key).len(),
        24
    );
    assert_eq!(ok.retry.window, Duration::from_secs(86_400));
    let printed = format!("{ok:?}");
    assert!(
        !printed.contains("receiverpassword") && !printed.contains("MfKQ9r8G"),
        "{printed}"
    );
    // Plain http: to this machine, or anywhere in dev mode.
    let loopback = entry(serde_json::json!({"url": "http://127.0.0.1:9000/hooks"}));
    assert!(parsed(serde_json::json!([loopback]), false).is_ok());
    let plain = entry(serde_json::json!({"url": "http://crm.example.com/"}));
    assert!(parsed(serde_json::json!([plain]), true).is_ok());

    for (subscriptions, rule) in [
        (serde_json::json!({"name": "crm"}), "must be a JSON array"),
        (
            serde_json::json!([{"name": "crm"}]),
            "missing, unknown or mistyped field",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"name": "c r m"}))]),
            "name is 1 to 64",
        ),
        (
            serde_json::json!([entry(serde_json::json!({})), entry(serde_json::json!({}))]),
            "listed twice",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"appid": "wx0123456789abcdef"}))]),
            "not served",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"url": "http://crm.example.com/"}))]),
            "must be https://",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"url": "crm.example.com"}))]),
            "absolute https:// URL",
        ),
        (
            serde_json::json!([entry(
                serde_json::json!({"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
            )]),
            "whsec_",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"secret": "whsec_c2hvcnQ="}))]),
            "24 to 64",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"events": ["user.*"]}))]),
            "events must list",
        ),
        (
            serde_json::json!([entry(serde_json::json!({"events": []}))]),
            "events must list",
        ),
    ] {
        let err = parsed(subscriptions, false).unwrap_err().to_string();
        assert!(
            err.starts_with("WXAUTH_WEBHOOKS is malformed") && err.contains(rule),
            "{rule}: {err}"
        );
        assert!(
            !err.contains("MfKQ9r8G") && !err.contains("receiverpassword"),
            "{err}"
        );
    }
}

#[test]
fn every_missing_required_setting_is_named_in_one_report() {
    // Given empty, as the environment of the test run may set some of them.
    let unset = [
        "auth-service",
        "--database-url=",
        "--apps=",
        "--callers=",
        "--session-key-keys=",
        "--token-signing-keys=",
    ];
    let err = Settings::try_parse_from(unset)
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("5 settings are missing:"), "{err}");
    for setting in [
        "DATABASE_URL",
        "WXAUTH_APPS",
        "WXAUTH_CALLERS",
        "WXAUTH_SESSION_KEY_KEYS",
        "WXAUTH_TOKEN_SIGNING_KEYS",
    ] {
        assert!(
            err.contains(&format!("\n  - {setting} is not set: ")),
            "{setting}: {err}"
        );
    }
    // In dev mode the keys are made up: three left, still in one report.
    let dev = Settings::try_parse_from(unset.iter().chain(&["--dev"]))
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
    assert!(dev.starts_with("3 settings are missing:"), "{dev}");
    // One alone reads as before.
    let one = settings(&["--session-key-keys", &format!("k1:{KEY}")])
        .unwrap_err()
        .to_string();
    assert!(
        one.starts_with("WXAUTH_TOKEN_SIGNING_KEYS is not set: "),
        "{one}"
    );
}

#[test]
fn the_audit_retention_is_set_in_days_or_seconds_not_both() {
    let keys = format!("k1:{KEY}");
    let with = |extra: &[&str]| {
        let mut args = vec!["--session-key-keys", &keys, "--token-signing-keys", &keys];
        args.extend_from_slice(extra);
        settings(&args)
    };
    assert_eq!(with(&[]).unwrap().audit_retention_secs, 90 * 86_400);
    let days = with(&["--audit-retention-days", "30"]).unwrap();
    assert_eq!(days.audit_retention_secs, 30 * 86_400);
    let secs = with(&["--audit-retention-secs", "120"]).unwrap();
    assert_eq!(secs.audit_retention_secs, 120);
    let both = with(&[
        "--audit-retention-days",
        "30",
        "--audit-retention-secs",
        "120",
    ])
    .unwrap_err()
    .to_string();
    assert!(both.contains("WXAUTH_AUDIT_RETENTION_DAYS"), "{both}");
    assert!(both.contains("not both"), "{both}");
}
