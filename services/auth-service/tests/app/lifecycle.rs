//! The account lifecycle on the service's clock: the SQL form of who may log in agrees with
//! the rule, and a deletion is erased when its cooling-off ends, without waiting a day.

use std::time::Duration;

use auth_service::{
    clock::Timestamp,
    domain::lifecycle::{self, Standing, Status},
    store::gate::barred_sql,
};
use tonic::Code;
use tonic_types::StatusExt;
use wxauth_proto::v1::{DeleteMeRequest, GetUserRequest, ListAuditEventsRequest, LoginRequest};

use crate::support::{APP, TestApp};

#[tokio::test]
async fn the_sql_of_who_may_log_in_agrees_with_the_rule() {
    let app = TestApp::spawn(&[]).await;
    let pool = app.db.pool().await;
    let now = Timestamp::from_secs(1_800_000_000);
    let sql = format!(
        "select {} from (select $2::text as status, $3::timestamptz as suspended_until) as u",
        barred_sql("u", "$1")
    );
    let mut cases = 0;
    for status in ["active", "suspended", "deleting", "deleted", "archived"] {
        for until in [None, Some(-60), Some(-1), Some(0), Some(1), Some(3600)] {
            let until = until.map(|secs| now.plus_secs(secs));
            let standing = Standing {
                status: Status::parse(status),
                reason: None,
                suspended_until: until,
                delete_after: None,
            };
            let in_sql: bool = sqlx::query_scalar(&sql)
                .bind(now)
                .bind(status)
                .bind(until)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(
                in_sql,
                lifecycle::barred(&standing, now).is_some(),
                "{status} until {until:?}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 30);
}

#[tokio::test]
async fn a_deletion_is_erased_when_its_cooling_off_ends() {
    let app = TestApp::spawn(&[
        "--deletion-cooling-off-secs=3600",
        "--purge-interval-secs=1",
    ])
    .await;
    let (mut gateway, mut ops) = (app.client(0).await, app.client(2).await);
    let login = gateway
        .login(LoginRequest {
            scope: String::new(),
            appid: APP.into(),
            code: app.code("o-cooled"),
        })
        .await
        .unwrap()
        .into_inner();
    let user_id = login.user.unwrap().user_id;
    let deleted = gateway
        .delete_me(DeleteMeRequest {
            access_token: login.tokens.unwrap().access_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!deleted.erased);
    let read = |mut ops: crate::support::Client, user_id: String| async move {
        ops.get_user(GetUserRequest { user_id }).await
    };
    let waiting = read(ops.clone(), user_id.clone())
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(waiting.openid, "o-cooled", "kept during the cooling-off");

    // Before the end, nothing is due; after it, the purge erases.
    app.clock.advance(3599);
    let context = auth_service::domain::CallContext::default();
    let (_, erased) = app.store_with_keys().erase_due(10, &context).await.unwrap();
    assert_eq!(erased, 0);
    assert!(read(ops.clone(), user_id.clone()).await.is_ok());
    app.clock.advance(2);
    wxauth_harness::eventually("the user is erased", Duration::from_secs(5), || {
        let (ops, user_id) = (ops.clone(), user_id.clone());
        async move {
            match read(ops, user_id).await {
                Ok(_) => false,
                Err(status) => {
                    let reason = status
                        .get_error_details()
                        .error_info()
                        .unwrap()
                        .reason
                        .clone();
                    assert_eq!(
                        (status.code(), reason.as_str()),
                        (Code::NotFound, "USER_DELETED")
                    );
                    true
                }
            }
        }
    })
    .await;
    let events = ops
        .list_audit_events(ListAuditEventsRequest {
            user_id: user_id.clone(),
            kinds: vec!["user_deleted".into(), "deletion_requested".into()],
            ..ListAuditEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|event| (event.kind.as_str(), event.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("user_deleted", "wxauth"),
            ("deletion_requested", "gateway")
        ]
    );
    assert_eq!(
        events[1].outcome, "erased",
        "the typed reason goes with the data"
    );
}
