//! Every statement the service runs, planned against a database that has lived: a cluster
//! of the test's own with `auto_explain` logging the plan of each statement, a seeded
//! database (200,000 users, 600,000 refresh tokens, a million audit events, analyzed), and
//! the request paths and the purge driven through the real services. A sequential scan of a
//! large table fails the test, with the statement that planned it.
//!
//! A seeded database of ten million users is the benchmark's (`scripts/bench --seeded`);
//! here the tables only need to be large enough that the planner plans as it would there.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::{
    db::TestDb,
    eventually,
    pg::Cluster,
    seed,
    stack::{APP, Options, Stack},
};
use wxauth_proto::v1::{
    ExportUserRequest, FindUsersRequest, GetUserRequest, ListAccountUsersRequest,
    ListAuditEventsRequest, RevokeUserSessionsRequest, ValidateTokenRequest,
    find_users_request::By,
};

/// An operator who may see phone numbers (to find users by one).
const PII_KEY: &str = "pii-ops-key-plans-0123456789";

/// Users seeded: enough that every table the requests touch has tens of thousands of pages.
const USERS: u64 = 200_000;

/// The tables that grow with the users; a sequential scan of one of them on a request
/// path, or in a purge that runs every few minutes, costs in proportion to the product's size.
const LARGE: [&str; 7] = [
    "users",
    "accounts",
    "user_session_keys",
    "token_families",
    "refresh_tokens",
    "audit_events",
    "webhook_events",
];

/// Each plan `auto_explain` logged (its JSON), with the statement's text.
fn logged_plans(log: &str) -> Vec<Value> {
    let mut plans = Vec::new();
    let mut rest = log;
    while let Some(at) = rest.find("plan:\n") {
        rest = &rest[at + "plan:\n".len()..];
        // The JSON runs until the next log line, which starts with its timestamp.
        let end = rest
            .match_indices('\n')
            .find(|(at, _)| rest[at + 1..].starts_with("20"))
            .map_or(rest.len(), |(at, _)| at);
        if let Ok(plan) = serde_json::from_str::<Value>(&rest[..end]) {
            plans.push(plan);
        }
        rest = &rest[end..];
    }
    plans
}

/// The relations a plan node or its children read by a sequential scan.
fn sequential_scans(node: &Value, found: &mut Vec<String>) {
    if node["Node Type"] == "Seq Scan"
        && let Some(relation) = node["Relation Name"].as_str()
    {
        found.push(relation.to_owned());
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        sequential_scans(child, found);
    }
}

#[tokio::test]
async fn no_statement_scans_a_large_table_of_a_seeded_database() {
    let cluster = Cluster::start_with_settings(
        "-c shared_preload_libraries=auto_explain -c auto_explain.log_format=json",
    );
    let db = TestDb::create_on(cluster.url()).await;
    let pool = db.pool().await;
    let seeded = seed::seed(&pool, APP, USERS, |_| {})
        .await
        .expect("the database can be seeded");
    assert_eq!(seeded.users, USERS);
    pool.close().await;
    // From here on, every statement of every connection to the database has its plan logged,
    // nested ones too (the statements inside a purge's loop are plain statements).
    db.admin("alter database {db} set auto_explain.log_min_duration = 0")
        .await;
    db.admin("alter database {db} set auto_explain.log_nested_statements = on")
        .await;
    let stack = Stack::start_on(
        db,
        Options {
            // The purge runs during the test, and finds audit events past a retention of
            // 59 days among the seeded ones (spread over 60).
            purge_interval_secs: Some(1),
            auth_env: vec![("WXAUTH_AUDIT_RETENTION_SECS", (59 * 86_400).to_string())],
            extra_callers: vec![format!("pii-ops:admin+validate+pii:{PII_KEY}")],
            ..Options::default()
        },
    )
    .await;

    drive_the_request_paths(&stack).await;
    let before_purge = cluster.log().len();
    eventually(
        "a purge deletes the audit events past their retention",
        Duration::from_secs(60),
        || async { cluster.log()[before_purge..].contains("delete from audit_events") },
    )
    .await;

    let plans = logged_plans(&cluster.log());
    assert!(plans.len() > 50, "too few plans logged: {}", plans.len());
    let mut offending = Vec::new();
    for plan in &plans {
        let mut scanned = Vec::new();
        sequential_scans(&plan["Plan"], &mut scanned);
        for relation in scanned {
            if LARGE.contains(&relation.as_str()) {
                offending.push(format!(
                    "{relation}: {}",
                    plan["Query Text"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    offending.sort();
    offending.dedup();
    assert!(
        offending.is_empty(),
        "sequential scans of large tables:\n{}",
        offending.join("\n")
    );
}

/// The paths a product's traffic takes, on seeded users and on new ones: each of the login
/// kinds, refresh and its reuse detection, the user's own calls, the admin calls, deletion.
async fn drive_the_request_paths(stack: &Stack) {
    // A seeded user logs in again, by each flow.
    let returning = stack
        .v1_login_with(APP, &seed::openid(4_242), Some(&seed::unionid(4_242)))
        .await;
    let seeded_login = stack
        .login(APP, &seed::openid(77), json!({"nickName": "Seeded again"}))
        .await;
    assert!(seeded_login["token"].is_string(), "{seeded_login}");
    // A new user.
    let new = stack.v1_login(APP, "o-plans-new").await;
    let access = new["access_token"].as_str().expect("an access token");
    let user_id = new["user"]["user_id"]
        .as_str()
        .expect("a user id")
        .to_owned();

    let (status, refreshed) = stack.v1_refresh(&returning["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    // Reuse of a rotated token past the grace ends the family: refused either way.
    let (status, _) = stack.v1_refresh("not-a-refresh-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(stack.get_me(Some(access)).await.status(), StatusCode::OK);
    let (status, body) = stack
        .post_as("/v1/me/profile", json!({"nickname": "Plans"}), Some(access))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let phone_code = stack
        .mint_phone_code(APP, "o-plans-new", "13800138000")
        .await;
    let (status, body) = stack
        .bind_phone(Some(access), json!({"code": phone_code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let export = stack
        .http
        .get(format!("{}/v1/me/export", stack.gateway.url()))
        .bearer_auth(access)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(export.status(), StatusCode::OK);

    let mut ops = stack.grpc_as(Some(PII_KEY)).await;
    ops.validate_token(ValidateTokenRequest {
        token: access.into(),
        appid: APP.into(),
    })
    .await
    .expect("the token is valid");
    ops.get_user(GetUserRequest {
        user_id: user_id.clone(),
    })
    .await
    .expect("the user is there");
    ops.list_account_users(ListAccountUsersRequest {
        account_id: new["user"]["account_id"]
            .as_str()
            .expect("an account id")
            .into(),
    })
    .await
    .expect("the account is there");
    ops.list_audit_events(ListAuditEventsRequest {
        user_id: user_id.clone(),
        limit: 10,
        ..ListAuditEventsRequest::default()
    })
    .await
    .expect("the audit events are listed");
    ops.list_audit_events(ListAuditEventsRequest {
        kinds: vec!["login".into()],
        limit: 10,
        ..ListAuditEventsRequest::default()
    })
    .await
    .expect("the audit events are listed by kind");
    for by in [
        By::Unionid(seed::unionid(4_242)),
        By::PhoneNumber("13800138000".into()),
    ] {
        ops.find_users(FindUsersRequest {
            by: Some(by),
            limit: 0,
            page_token: String::new(),
        })
        .await
        .expect("users are found");
    }
    ops.export_user(ExportUserRequest {
        user_id: user_id.clone(),
    })
    .await
    .expect("the user is exported");
    ops.revoke_user_sessions(RevokeUserSessionsRequest {
        user_id: returning["user"]["user_id"]
            .as_str()
            .expect("a user id")
            .into(),
    })
    .await
    .expect("the sessions are revoked");

    let deleted = stack
        .http
        .delete(format!("{}/v1/me", stack.gateway.url()))
        .bearer_auth(access)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(deleted.status(), StatusCode::OK);
}
