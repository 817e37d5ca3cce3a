//! TLS on every hop that carries secrets: gateway and services to the auth-service (with
//! mutual TLS and callers known by their certificate), the certificate renewed without a
//! restart, and PostgreSQL verified with `sslmode=verify-full`. Certificates are made by the
//! test (rcgen), so none is committed and none expires in the repository.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection as _;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wxauth_client::connect::{ClientTls, endpoint};
use wxauth_e2e::{
    certs::{Ca, Role},
    db::TestDb,
    eventually,
    pg::Cluster,
    process::run_to_exit,
    random_hex,
    stack::{APP, CallerKey, Options, Stack},
};
use wxauth_proto::v1::{ValidateTokenRequest, auth_service_client::AuthServiceClient};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wxauth-tls-{}", random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A channel to `url` that verifies the server against `ca` and, with `identity`, presents
/// that client certificate. Connects on first use, as clients do.
fn tls_channel(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Channel {
    let tls = ClientTls::from_files(ca, identity, None).unwrap();
    endpoint(url, Some(&tls)).unwrap().connect_lazy()
}

/// Whether a health check over `channel` is answered.
async fn answers(channel: Channel) -> Result<(), String> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
        .map_err(|status| format!("{status:?}"))
}

fn validate(token: &str) -> ValidateTokenRequest {
    ValidateTokenRequest {
        token: token.into(),
        appid: APP.into(),
    }
}

#[tokio::test]
async fn logins_cross_mutual_tls_and_a_caller_may_be_known_by_its_certificate() {
    let dir = scratch();
    let ca = Ca::new("wxauth test ca");
    let ca_file = ca.write(&dir, "ca");
    let (server_cert, server_key) = ca.issue("auth-service", Role::Server).write(&dir, "auth");
    let (gateway_cert, gateway_key) = ca.issue("gateway", Role::Client).write(&dir, "gateway");
    let billing = ca.issue("billing", Role::Client);
    let (billing_cert, billing_key) = billing.write(&dir, "billing");
    let stranger_ca = Ca::new("someone else's ca");
    let stranger_ca_file = stranger_ca.write(&dir, "stranger-ca");
    let (stranger_cert, stranger_key) = stranger_ca
        .issue("stranger", Role::Client)
        .write(&dir, "stranger");

    let stack = Stack::start_with(Options {
        auth_env: vec![
            ("WXAUTH_TLS_CERT", server_cert.display().to_string()),
            ("WXAUTH_TLS_KEY", server_key.display().to_string()),
            ("WXAUTH_TLS_CLIENT_CA", ca_file.display().to_string()),
        ],
        gateway_env: vec![
            ("AUTH_TLS_CA", ca_file.display().to_string()),
            ("AUTH_TLS_CERT", gateway_cert.display().to_string()),
            ("AUTH_TLS_KEY", gateway_key.display().to_string()),
        ],
        extra_callers: vec![format!("billing:validate:{}", billing.caller_credential())],
        ..Options::default()
    })
    .await;
    let url = stack.auth.https_url();

    // A Kubernetes HTTP probe still reads readiness in plain HTTP, on the metrics listener
    // (the kubelet's gRPC probe cannot speak TLS).
    let metrics = stack.auth.metrics_addr().unwrap();
    let ready = stack
        .http
        .get(format!("http://{metrics}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    // The mini-program's login crosses the gateway's TLS hop.
    let login = stack
        .login(APP, "o-tls-user", json!({ "nickName": "TLS" }))
        .await;
    let token = login["token"].as_str().unwrap();

    // A service known by its certificate alone validates the token, with no key.
    let billing_channel = tls_channel(&url, &ca_file, Some((&billing_cert, &billing_key)));
    let user = AuthServiceClient::new(billing_channel)
        .validate_token(validate(token))
        .await
        .expect("the certificate-mapped caller is known")
        .into_inner();
    assert_eq!(user.openid, "o-tls-user", "{user:?}");

    // A service with the right certificate and its key works as before.
    let ops = tls_channel(&url, &ca_file, Some((&billing_cert, &billing_key)));
    let mut by_key =
        AuthServiceClient::with_interceptor(ops, CallerKey::new(&stack.keys.service).unwrap());
    assert!(by_key.validate_token(validate(token)).await.is_ok());

    // A valid client certificate that names no caller, and no key: not a caller.
    let gateway_channel = tls_channel(&url, &ca_file, Some((&gateway_cert, &gateway_key)));
    let refused = AuthServiceClient::new(gateway_channel)
        .validate_token(validate(token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // Refused before any call is read: plaintext, TLS without a client certificate, a client
    // certificate of another CA, and a client that does not trust the server's CA.
    let plaintext = tonic::transport::Endpoint::from_shared(stack.auth.url())
        .unwrap()
        .connect_lazy();
    assert!(answers(plaintext).await.is_err(), "plaintext is refused");
    assert!(
        answers(tls_channel(&url, &ca_file, None)).await.is_err(),
        "mutual TLS: a client without a certificate is refused"
    );
    assert!(
        answers(tls_channel(
            &url,
            &ca_file,
            Some((&stranger_cert, &stranger_key))
        ))
        .await
        .is_err(),
        "a client certificate of another CA is refused"
    );
    let unverified = answers(tls_channel(
        &url,
        &stranger_ca_file,
        Some((&billing_cert, &billing_key)),
    ))
    .await
    .unwrap_err();
    assert!(
        unverified.contains("UnknownIssuer"),
        "the client refuses a server its CA did not sign: {unverified}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused_by_clients_and_the_gateway() {
    let dir = scratch();
    let ca = Ca::new("wxauth test ca");
    let ca_file = ca.write(&dir, "ca");
    let (cert, key) = ca
        .issue_valid("auth-service", Role::Server, false)
        .write(&dir, "auth");
    let stack = Stack::start_with(Options {
        auth_env: vec![
            ("WXAUTH_TLS_CERT", cert.display().to_string()),
            ("WXAUTH_TLS_KEY", key.display().to_string()),
        ],
        gateway_env: vec![("AUTH_TLS_CA", ca_file.display().to_string())],
        ..Options::default()
    })
    .await;
    let refused = answers(tls_channel(&stack.auth.https_url(), &ca_file, None))
        .await
        .unwrap_err();
    assert!(refused.contains("Expired"), "{refused}");

    // The gateway cannot reach it either, and says so as an outage, not a bad request.
    let code = stack.mint_code(APP, "o-expired", None).await;
    let (status, body) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = scratch();
    let old_ca = Ca::new("this year's ca");
    let old_ca_file = old_ca.write(&dir, "old-ca");
    let new_ca = Ca::new("next year's ca");
    let new_ca_file = new_ca.write(&dir, "new-ca");
    let (cert, key) = old_ca
        .issue("auth-service", Role::Server)
        .write(&dir, "auth");
    let stack = Stack::start_with(Options {
        auth_env: vec![
            ("WXAUTH_TLS_CERT", cert.display().to_string()),
            ("WXAUTH_TLS_KEY", key.display().to_string()),
            ("WXAUTH_TLS_RELOAD_SECS", "1".into()),
        ],
        gateway_env: vec![("AUTH_TLS_CA", old_ca_file.display().to_string())],
        ..Options::default()
    })
    .await;
    let url = stack.auth.https_url();
    answers(tls_channel(&url, &old_ca_file, None))
        .await
        .expect("the first certificate is served");

    // A half-written renewal (a certificate that is not the key's) is refused and logged;
    // the current certificate stays in service.
    std::fs::write(&cert, new_ca.issue("auth-service", Role::Server).cert_pem).unwrap();
    eventually(
        "the broken pair is noticed",
        Duration::from_secs(10),
        || async { stack.auth.log().contains("keeping the current one") },
    )
    .await;
    answers(tls_channel(&url, &old_ca_file, None))
        .await
        .expect("the current certificate is still served");

    // The whole renewal is picked up from the next handshake on.
    new_ca
        .issue("auth-service", Role::Server)
        .write(&dir, "auth");
    eventually(
        "the renewed certificate is served",
        Duration::from_secs(10),
        || async { answers(tls_channel(&url, &new_ca_file, None)).await.is_ok() },
    )
    .await;
    assert!(
        answers(tls_channel(&url, &old_ca_file, None))
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tls_settings_that_cannot_work_stop_the_start_naming_the_setting() {
    let stack = Stack::start().await;
    let dir = scratch();
    let ca = Ca::new("wxauth test ca");
    let issued = ca.issue("auth-service", Role::Server);
    let (cert, key) = issued.write(&dir, "auth");
    let other_key = ca.issue("other", Role::Server).write(&dir, "other").1;
    let run = |changes: Vec<(&'static str, String)>| {
        let mut env = stack.auth_env();
        env.retain(|(name, _)| !changes.iter().any(|(changed, _)| changed == name));
        env.extend(changes);
        run_to_exit("auth-service", &env)
    };

    let (code, stderr) = run(vec![("WXAUTH_TLS_CERT", cert.display().to_string())]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("WXAUTH_TLS_KEY"), "{stderr}");

    let missing = dir.join("missing.pem");
    let (code, stderr) = run(vec![
        ("WXAUTH_TLS_CERT", missing.display().to_string()),
        ("WXAUTH_TLS_KEY", key.display().to_string()),
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");

    let (code, stderr) = run(vec![
        ("WXAUTH_TLS_CERT", cert.display().to_string()),
        ("WXAUTH_TLS_KEY", other_key.display().to_string()),
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("not the key of the certificate"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(issued.key_pem.lines().nth(1).unwrap()),
        "no key material in the message"
    );

    // The gateway: an https:// URL needs a CA, and a CA needs https://.
    let gateway = |url: String, ca: Option<&Path>| {
        let mut env = vec![
            ("AUTH_GRPC_URL", url),
            ("AUTH_CALLER_KEY", stack.keys.gateway.clone()),
            ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
        ];
        if let Some(ca) = ca {
            env.push(("AUTH_TLS_CA", ca.display().to_string()));
        }
        run_to_exit("gateway", &env)
    };
    let ca_file = ca.write(&dir, "ca");
    let (code, stderr) = gateway("https://127.0.0.1:50051".into(), None);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("needs a CA"), "{stderr}");
    let (code, stderr) = gateway("http://127.0.0.1:50051".into(), Some(&ca_file));
    assert_eq!(code, Some(64), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_is_reached_with_verify_full_and_a_wrong_ca_stops_the_start() {
    let dir = scratch();
    let ca = Ca::new("database ca");
    let ca_file = ca.write(&dir, "db-ca");
    let cluster = Cluster::start_tls(&ca.issue("postgres", Role::Server));
    let db = TestDb::create_on(cluster.url()).await;
    // Through `localhost`, the name the server's certificate carries.
    let verified = |ca: &Path| {
        let url = db.url.replace("127.0.0.1", "localhost");
        format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
    };
    let stack = Stack::start_on(
        db.same(),
        Options {
            auth_env: vec![("DATABASE_URL", verified(&ca_file))],
            ..Options::default()
        },
    )
    .await;
    stack
        .login(APP, "o-db-tls", json!({ "nickName": "DB" }))
        .await;
    // The test's own look is in clear, so every encrypted connection is the service's.
    let mut look = sqlx::PgConnection::connect(&format!("{}?sslmode=disable", db.url))
        .await
        .unwrap();
    let encrypted: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_ssl join pg_stat_activity using (pid) \
         where ssl and datname = current_database()",
    )
    .fetch_one(&mut look)
    .await
    .unwrap();
    assert!(
        encrypted > 0,
        "the auth-service's connections are encrypted"
    );

    let wrong_ca = Ca::new("not the database's ca").write(&dir, "wrong-ca");
    let mut env = stack.auth_env();
    env.retain(|(name, _)| *name != "DATABASE_URL");
    env.push(("DATABASE_URL", verified(&wrong_ca)));
    let (code, stderr) = run_to_exit("auth-service", &env);
    assert_eq!(code, Some(69), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
