//! A restore, as docs/operations.md describes it: the database dumped with `pg_dump`, lost
//! (dropped), created again and restored with `pg_restore`, under a running service. With
//! the same keys, every session the dump holds still refreshes, tokens signed before still
//! validate, and logins go on.

use std::{process::Command, time::Duration};

use reqwest::StatusCode;
use wxauth_e2e::{
    eventually,
    stack::{APP, Stack},
};
use wxauth_proto::v1::ValidateTokenRequest;

/// Runs a PostgreSQL client tool; panics with its output when it fails.
fn tool(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program} runs (apt-get install postgresql-client): {err}"));
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_dump_restored_after_the_database_is_lost_keeps_every_session() {
    let stack = Stack::start().await;
    let users: Vec<_> = {
        let mut users = Vec::new();
        for openid in ["o-restore-1", "o-restore-2", "o-restore-3"] {
            users.push(stack.v1_login(APP, openid).await);
        }
        users
    };

    // The backup.
    let dump = stack.dir().join("wxauth.dump");
    let dump = dump.to_str().unwrap();
    tool(
        "pg_dump",
        &["--format=custom", "--file", dump, &stack.db.url],
    );

    // The database is lost, then made again, empty, and restored into.
    stack.db.admin("drop database {db} with (force)").await;
    stack.db.admin("create database {db}").await;
    tool(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            &stack.db.url,
            dump,
        ],
    );

    // The service was never restarted: its connections to the old database are gone, and it
    // serves again on the restored one.
    let mut validate = stack.grpc_as(Some(&stack.keys.service)).await;
    eventually(
        "the service serves the restored database",
        Duration::from_secs(15),
        || {
            let mut validate = validate.clone();
            let token = users[0]["access_token"].as_str().unwrap().to_owned();
            async move {
                validate
                    .validate_token(ValidateTokenRequest {
                        token,
                        appid: APP.into(),
                    })
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    for login in &users {
        let (status, body) = stack.v1_refresh(&login["refresh_token"]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a session of the dump refreshes: {body}"
        );
        validate
            .validate_token(ValidateTokenRequest {
                token: body["data"]["access_token"].as_str().unwrap().into(),
                appid: APP.into(),
            })
            .await
            .expect("and its new token validates");
    }
    // A user of the dump logs in again as the same user; a new one is made as new.
    let again = stack.v1_login(APP, "o-restore-1").await;
    assert_eq!(again["user"]["user_id"], users[0]["user"]["user_id"]);
    let fresh = stack.v1_login(APP, "o-restore-new").await;
    let id = |login: &serde_json::Value| -> u64 {
        login["user"]["user_id"].as_str().unwrap().parse().unwrap()
    };
    assert!(
        users.iter().all(|login| id(&fresh) > id(login)),
        "the restored sequences go on: no id is given twice"
    );
}
