//! What an operator relies on: metrics, request ids in every log line, JSON logs, settings
//! from a config file.

use std::time::Duration;

use serde_json::{Value, json};
use wxauth_e2e::{
    eventually,
    process::{Proc, run_to_exit},
    random_hex,
    stack::{APP, Options, Stack, envelope},
};
use wxauth_proto::v1::ValidateTokenRequest;

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|number| number.parse().ok())
}

#[tokio::test]
async fn metrics_count_calls_by_rpc_route_and_wechat_errcode() {
    let stack = Stack::start().await;
    stack
        .login(APP, "o-metrics", json!({"nickName": "M"}))
        .await;
    let (status, _) = stack
        .get_session_key(&[("appid", APP), ("code", "never-minted")])
        .await;
    assert_eq!(status, 401);

    let auth = stack.scrape(&stack.auth).await;
    let cases = [
        (
            r#"wxauth_rpc_requests_total{method="CreateSession",outcome="OK"}"#,
            1.0,
        ),
        (
            r#"wxauth_rpc_requests_total{method="CreateSession",outcome="CODE_REJECTED"}"#,
            1.0,
        ),
        (
            r#"wxauth_rpc_requests_total{method="CompleteLogin",outcome="OK"}"#,
            1.0,
        ),
        (
            r#"wxauth_wechat_calls_total{api="jscode2session",outcome="ok"}"#,
            1.0,
        ),
        (
            r#"wxauth_wechat_calls_total{api="jscode2session",outcome="40029"}"#,
            1.0,
        ),
        (
            r#"wxauth_rpc_duration_seconds_count{method="CreateSession"}"#,
            2.0,
        ),
    ];
    for (series, expected) in cases {
        assert_eq!(value(&auth, series), Some(expected), "{series} in\n{auth}");
    }
    assert!(
        value(&auth, r#"wxauth_db_pool_connections{state="idle"}"#).is_some(),
        "{auth}"
    );

    let gateway = stack.scrape(&stack.gateway).await;
    let cases = [
        (
            r#"wxauth_gateway_requests_total{route="/wxauth/getsessionkey",status="200"}"#,
            1.0,
        ),
        (
            r#"wxauth_gateway_requests_total{route="/wxauth/getsessionkey",status="401"}"#,
            1.0,
        ),
        (
            r#"wxauth_gateway_requests_total{route="/wxauth/wxsmallusersave",status="200"}"#,
            1.0,
        ),
    ];
    for (series, expected) in cases {
        assert_eq!(
            value(&gateway, series),
            Some(expected),
            "{series} in\n{gateway}"
        );
    }
}

#[tokio::test]
async fn a_request_id_follows_the_request_into_every_json_log_line() {
    let stack = Stack::start_with(Options {
        json_logs: true,
        ..Options::default()
    })
    .await;
    let request_id = format!("rid-{}", random_hex(6));
    let code = stack.mint_code(APP, "o-rid", None).await;
    let response = stack
        .http
        .get(format!("{}/wxauth/getsessionkey", stack.gateway.url()))
        .query(&[("appid", APP), ("code", code.as_str())])
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], request_id.as_str());
    assert_eq!(envelope(response).await.0, 200);

    for (name, proc) in [("auth-service", &stack.auth), ("gateway", &stack.gateway)] {
        // A log line is written by the process's log thread a moment after the event.
        eventually(
            &format!("{name} logs the request"),
            Duration::from_secs(5),
            || async { proc.log().contains(&request_id) },
        )
        .await;
        let log = proc.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|_| panic!("{name}: not JSON: {line}"))
            })
            .collect();
        // The gateway logs under the client's id; the auth-service under its own, with the
        // caller's beside it.
        let field = if name == "gateway" {
            "request_id"
        } else {
            "client_request_id"
        };
        let of_request: Vec<&Value> = lines
            .iter()
            .filter(|line| line["span"][field] == request_id.as_str())
            .collect();
        assert!(
            !of_request.is_empty(),
            "{name} logged nothing under {request_id}:\n{log}"
        );
        // Every line written while serving the request carries its id.
        let unlabelled = lines
            .iter()
            .filter(|line| line["span"]["name"] == "rpc" || line["span"]["name"] == "http")
            .filter(|line| line["span"]["request_id"].is_null());
        assert_eq!(unlabelled.count(), 0, "{name}:\n{log}");
    }
}

#[tokio::test]
async fn settings_come_from_a_config_file_under_the_environment() {
    let stack = Stack::start().await;
    // The stack's own folder, removed with it.
    let dir = stack.dir().to_owned();
    let path = dir.join("auth-service.toml");
    let file = format!(
        "# every secret of the service, from a file\napps = {apps:?}\ncallers = {callers:?}\n\
         session-key-keys = {session:?}\ntoken-signing-keys = {signing:?}\nwechat-api-base = {wechat:?}\n\
         grpc-addr = \"127.0.0.1:1\"\n",
        apps = stack.auth_setting("WXAUTH_APPS"),
        callers = stack.auth_setting("WXAUTH_CALLERS"),
        session = stack.auth_setting("WXAUTH_SESSION_KEY_KEYS"),
        signing = stack.auth_setting("WXAUTH_TOKEN_SIGNING_KEYS"),
        wechat = stack.auth_setting("WECHAT_API_BASE"),
    );
    std::fs::write(&path, file).unwrap();
    // The environment overrides the file's grpc-addr (port 1 would fail to bind).
    let from_file = Proc::spawn_named(
        "auth-service",
        &format!("auth-service-config-{}", random_hex(4)),
        &[
            ("WXAUTH_CONFIG", path.display().to_string()),
            ("DATABASE_URL", stack.db.url.clone()),
            ("WXAUTH_GRPC_ADDR", "127.0.0.1:0".into()),
            ("WXAUTH_METRICS_ADDR", "127.0.0.1:0".into()),
        ],
        &dir,
    );
    let login = stack.v1_login(APP, "o-config").await;
    let answer = stack
        .grpc_to(&from_file, Some(&stack.keys.service))
        .await
        .validate_token(ValidateTokenRequest {
            token: login["access_token"].as_str().unwrap().into(),
            appid: APP.into(),
        })
        .await;
    assert!(
        answer.is_ok(),
        "the service configured from the file verifies the tokens: {answer:?}"
    );

    // A malformed file stops the start with a message that names it and echoes no value.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "apps = \"wx4f4bc4dec97d474b:topsecret\"\nnot toml\n").unwrap();
    let (code, stderr) = run_to_exit(
        "auth-service",
        &[("WXAUTH_CONFIG", bad.display().to_string())],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(!stderr.contains("topsecret"), "{stderr}");
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_live_routes() {
    let stack = Stack::start().await;
    let doc: Value = stack
        .http
        .get(format!("{}/openapi.json", stack.gateway.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");

    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = [
        ("get", "/wxauth/getsessionkey"),
        ("post", "/wxauth/wxsmallusersave"),
        ("get", "/healthz"),
        ("post", "/v1/login"),
        ("post", "/v1/token/refresh"),
        ("post", "/v1/logout"),
        ("get", "/v1/me"),
        ("delete", "/v1/me"),
        ("get", "/v1/me/export"),
        ("post", "/v1/me/profile"),
        ("post", "/v1/me/phone"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/.well-known/openid-configuration"),
        ("get", "/.well-known/oauth-authorization-server"),
        ("post", "/oauth/token"),
        ("post", "/oauth/introspect"),
        ("post", "/oauth/revoke"),
        ("get", "/oauth/userinfo"),
        ("post", "/oauth/userinfo"),
        ("get", "/openapi.json"),
    ]
    .iter()
    .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
    .collect();
    expected.sort();
    assert_eq!(documented, expected);

    // Each documented route exists on the live gateway: no "no such route", no 405.
    for (method, path) in &documented {
        let url = format!("{}{path}", stack.gateway.url());
        let request = match method.as_str() {
            "get" => stack.http.get(url),
            "post" => stack.http.post(url).json(&json!({})),
            "delete" => stack.http.delete(url),
            other => panic!("undocumented method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        // The headers the document declares for this answer are the ones it carries.
        let declared = &doc["paths"][path][method]["responses"][status.to_string()]["headers"];
        let declared = declared
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} {status}: no headers declared"));
        assert!(declared.contains_key("Cache-Control"), "{method} {path}");
        for name in declared.keys() {
            assert!(
                response.headers().contains_key(name.as_str()),
                "{method} {path} {status} lacks {name}"
            );
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !(status == 404 && body["msg"] == "no such route"),
            "{method} {path} is not routed"
        );
    }
    for schema in [
        "SavedLogin",
        "UserView",
        "ErrorEnvelope",
        "SilentLogin",
        "TokenPairView",
        "SaveUserBody",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn a_port_in_use_names_the_setting_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = wxauth_e2e::db::TestDb::create().await;
    let (code, stderr) = run_to_exit(
        "auth-service",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("WXAUTH_DEV", "1".into()),
            (
                "WXAUTH_APPS",
                format!("{APP}:0123456789abcdef0123456789abcdef"),
            ),
            (
                "WXAUTH_CALLERS",
                "gateway:login:gateway-key-0123456789abcdef".into(),
            ),
            ("WXAUTH_GRPC_ADDR", addr.clone()),
            ("WXAUTH_METRICS_ADDR", "127.0.0.1:0".into()),
        ],
    );
    assert_eq!(code, Some(69), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (WXAUTH_GRPC_ADDR)")),
        "{stderr}"
    );
    let (code, stderr) = run_to_exit(
        "gateway",
        &[
            ("AUTH_CALLER_KEY", "gateway-key-0123456789abcdef".into()),
            ("GATEWAY_HTTP_ADDR", addr.clone()),
        ],
    );
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("(GATEWAY_HTTP_ADDR)"), "{stderr}");
}

#[test]
fn a_missing_or_malformed_setting_exits_64_naming_the_variable() {
    // Every required setting missing: one report names them all.
    let (code, stderr) = run_to_exit("auth-service", &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("5 settings are missing"), "{stderr}");
    for setting in [
        "DATABASE_URL",
        "WXAUTH_APPS",
        "WXAUTH_CALLERS",
        "WXAUTH_SESSION_KEY_KEYS",
        "WXAUTH_TOKEN_SIGNING_KEYS",
    ] {
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
    // A mistyped variable is named, with the setting it means: a warning, or with the
    // strict setting the reason the start stops.
    let (code, stderr) = run_to_exit("auth-service", &[("WXAUTH_APP", "wx:secret".into())]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("WXAUTH_APP names no setting (did you mean WXAUTH_APPS?): ignored"),
        "{stderr}"
    );
    assert!(!stderr.contains("wx:secret"), "the value is never echoed");
    let (code, stderr) = run_to_exit(
        "auth-service",
        &[
            ("WXAUTH_APP", "wx:secret".into()),
            ("WXAUTH_STRICT_ENV", "1".into()),
        ],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "WXAUTH_APP names no setting (did you mean WXAUTH_APPS?): refused (WXAUTH_STRICT_ENV is set)"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("settings are missing"),
        "it stops before: {stderr}"
    );
    let (code, stderr) = run_to_exit(
        "gateway",
        &[
            ("GATEWAY_HTTP_ADRR", "127.0.0.1:0".into()),
            ("GATEWAY_STRICT_ENV", "true".into()),
        ],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("did you mean GATEWAY_HTTP_ADDR?"),
        "{stderr}"
    );

    let (code, stderr) = run_to_exit("gateway", &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("AUTH_CALLER_KEY"), "{stderr}");

    let (code, stderr) = run_to_exit(
        "gateway",
        &[
            ("AUTH_CALLER_KEY", "gateway-key-0123456789abcdef".into()),
            ("GATEWAY_HTTP_ADDR", "not-an-address".into()),
        ],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("GATEWAY_HTTP_ADDR"), "{stderr}");
    assert!(!stderr.contains("gateway-key-0123456789abcdef"), "{stderr}");
}

#[test]
fn a_caller_key_listed_under_two_callers_stops_the_start_naming_both() {
    let key = "shared-key-0123456789abcdef";
    let (code, stderr) = run_to_exit(
        "auth-service",
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none".into()),
            ("WXAUTH_DEV", "1".into()),
            ("WXAUTH_APPS", "wx4f4bc4dec97d474b:secret".into()),
            (
                "WXAUTH_CALLERS",
                format!("gateway:login:{key},ops2:admin:{key}"),
            ),
        ],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("WXAUTH_CALLERS") && stderr.contains("gateway") && stderr.contains("ops2"),
        "names the setting and both callers: {stderr}"
    );
    assert!(!stderr.contains(key), "never the key: {stderr}");
}

#[test]
fn a_limit_of_zero_is_refused_rather_than_read_as_one_millisecond() {
    // PostgreSQL and most HTTP clients read 0 as "no limit"; these services once read it as
    // the smallest limit, and every statement (or WeChat call) then failed at run time.
    for (bin, setting) in [
        ("auth-service", "WXAUTH_DB_STATEMENT_TIMEOUT_MS"),
        ("auth-service", "WECHAT_TIMEOUT_MS"),
        ("auth-service", "WXAUTH_MAX_CONCURRENT_CALLS"),
        ("gateway", "GATEWAY_UPSTREAM_TIMEOUT_MS"),
        ("gateway", "GATEWAY_MAX_CONCURRENT_REQUESTS"),
    ] {
        let (code, stderr) = run_to_exit(bin, &[(setting, "0".into())]);
        assert_eq!(code, Some(64), "{bin} with {setting}=0: {stderr}");
        assert!(
            stderr.contains(setting) && stderr.contains("must be at least 1"),
            "{bin} names {setting} and says why: {stderr}"
        );
    }
}

#[tokio::test]
async fn replicas_starting_at_once_on_a_new_database_all_migrate_it_and_serve() {
    let stack = Stack::start().await;
    let fresh = wxauth_e2e::db::TestDb::create_empty().await;
    let replicas: Vec<Proc> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..3)
            .map(|n| {
                let (stack, url) = (&stack, fresh.url.clone());
                scope.spawn(move || {
                    stack.spawn_replica_with(&format!("auth-fresh-{n}"), &[("DATABASE_URL", url)])
                })
            })
            .collect();
        started
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert_eq!(replicas.len(), 3, "every replica started");
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(&fresh.pool().await)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../services/auth-service/migrations"
    ))
    .unwrap()
    .count();
    assert_eq!(applied, files as i64, "each migration applied once");
}

/// A rollback, or a replica of the old release restarting in the middle of a rollout: the
/// database already holds a migration of a newer release. Migrations are additive, so the
/// older build starts on it, says so, and serves what was there.
#[tokio::test]
async fn an_older_release_starts_on_a_schema_a_newer_one_migrated() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-rollback").await;
    stack
        .execute(
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
             values (9999, 'from a newer release', true, '\\x00', 0)",
        )
        .await;

    let migrations = stack.count("_sqlx_migrations").await;
    let older = stack.spawn_replica("auth-older");
    let answer = stack
        .grpc_to(&older, Some(&stack.keys.ops))
        .await
        .validate_token(ValidateTokenRequest {
            token: login["access_token"].as_str().unwrap().into(),
            appid: APP.into(),
        })
        .await
        .expect("the older build serves the tokens it finds");
    assert_eq!(answer.into_inner().appid, APP);
    let log = older.log();
    assert!(
        log.contains("WARN") && log.contains("9999"),
        "the newer schema is named in a warning: {log}"
    );
    // Nothing was migrated again, and the newer migration is left as it was.
    assert_eq!(stack.count("_sqlx_migrations").await, migrations);

    // And a release from before accounts (migration 5) writes users without an account id:
    // each gets an account of their own, as a user without a unionid does here.
    stack
        .execute(&format!(
            "insert into users (appid, openid) values ('{APP}', 'o-old-1'), ('{APP}', 'o-old-2')"
        ))
        .await;
    let accounts: Vec<i64> = sqlx::query_scalar(
        "select account_id from users where openid in ('o-old-1', 'o-old-2', 'o-rollback')",
    )
    .fetch_all(&stack.db.pool().await)
    .await
    .unwrap();
    let distinct: std::collections::HashSet<_> = accounts.iter().collect();
    assert_eq!((accounts.len(), distinct.len()), (3, 3), "{accounts:?}");
}
