//! Behind PgBouncer in transaction mode, as a managed PostgreSQL or CloudNativePG fronts
//! the database: the requests go through the pooler (no prepared statement outlives a
//! transaction, no session setting is relied on), LISTEN and the migrations go direct
//! (WXAUTH_DATABASE_DIRECT_URL), and everything a replica set needs still holds.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::{
    db::TestDb,
    pooler::Pooler,
    refused_within_a_second,
    stack::{APP, Options, Stack, sim_count},
};

/// A stack whose auth-service reaches its database through PgBouncer (five server
/// connections, for ten in the service's pool).
async fn pooled() -> (Stack, Pooler) {
    let db = TestDb::create().await;
    let pooler = Pooler::start(&db.url, 5);
    let options = Options {
        auth_env: vec![
            ("DATABASE_URL", pooler.url_for(&db.url)),
            ("WXAUTH_DATABASE_DIRECT_URL", db.url.clone()),
            ("WXAUTH_DB_MAX_CONNECTIONS", "10".into()),
        ],
        ..Options::default()
    };
    (Stack::start_on(db, options).await, pooler)
}

#[tokio::test]
async fn through_pgbouncer_logins_refreshes_revocations_and_one_token_refresher_hold() {
    let (stack, pooler) = pooled().await;
    assert!(
        pooler.log().contains("login attempt"),
        "the service connects through the pooler: {}",
        pooler.log()
    );

    // Many logins at once: more than the pooler's server connections, each statement
    // prepared afresh on whichever server connection it gets.
    let mut calls = tokio::task::JoinSet::new();
    for at in 0..24 {
        let code = stack.mint_code(APP, &format!("o-pooled-{at}"), None).await;
        let url = format!("{}/v1/login", stack.gateway.url());
        post(
            &mut calls,
            at,
            &stack.http,
            url,
            json!({"appid": APP, "code": code}),
            None,
        );
    }
    let logins: Vec<Value> = in_order(calls)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::OK, "{body}");
            body["data"].clone()
        })
        .collect();
    let first = &logins[0];
    let (status, refreshed) = stack.v1_refresh(&first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    // A revocation on one replica reaches another (which LISTENs directly) within a second.
    let replica = stack.spawn_replica("auth-pooled-2");
    let mut on_replica = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    let access = refreshed["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    on_replica
        .validate_token(wxauth_proto::v1::ValidateTokenRequest {
            token: access.clone(),
            appid: String::new(),
        })
        .await
        .expect("the replica accepts the live token");
    let (status, body) = stack.post_as("/v1/logout", json!({}), Some(&access)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused_within_a_second(&mut on_replica, &access, Instant::now()).await;

    // Several binds need the app token at once: one fetch (the transaction-scoped lock
    // works through the pooler).
    let mut calls = tokio::task::JoinSet::new();
    for (at, login) in logins.iter().enumerate().skip(1).take(6) {
        let code = stack
            .mint_phone_code(APP, &format!("o-pooled-{at}"), "13800138000")
            .await;
        let token = login["access_token"].as_str().unwrap().to_owned();
        let url = format!("{}/v1/me/phone", stack.gateway.url());
        post(
            &mut calls,
            at,
            &stack.http,
            url,
            json!({ "code": code }),
            Some(token),
        );
    }
    for (status, body) in in_order(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let stats = stack.sim_stats().await;
    assert_eq!(sim_count(&stats, "token_fetches", APP), 1, "{stats}");
}

/// `POST base+path` with a JSON body (and a bearer), on a task of its own: (status, body).
fn post(
    calls: &mut tokio::task::JoinSet<(usize, StatusCode, Value)>,
    at: usize,
    http: &reqwest::Client,
    url: String,
    body: Value,
    bearer: Option<String>,
) {
    let http = http.clone();
    calls.spawn(async move {
        let mut request = http.post(url).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        (at, status, response.json().await.unwrap_or(Value::Null))
    });
}

/// The answers of `calls`, in the order they were made.
async fn in_order(
    calls: tokio::task::JoinSet<(usize, StatusCode, Value)>,
) -> Vec<(StatusCode, Value)> {
    let mut answers = calls.join_all().await;
    answers.sort_by_key(|(at, ..)| *at);
    answers
        .into_iter()
        .map(|(_, status, body)| (status, body))
        .collect()
}
