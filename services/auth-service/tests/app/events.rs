//! Webhook events on the service's clock: a receiver that never answers sends its events to
//! the dead letters once the retry window has passed (a day, here an hour, without waiting
//! either), ReplayEvents sends them again, and the purge drops settled events after their
//! retention.

use std::time::Duration;

use serde_json::json;
use tonic::Code;
use wxauth_harness::eventually;
use wxauth_proto::v1::{LoginRequest, ReplayEventsRequest};

use crate::support::{APP, TestApp};

/// How many events are in `state`.
async fn in_state(app: &TestApp, state: &str) -> i64 {
    let pool = app.db.pool().await;
    let count = sqlx::query_scalar("select count(*) from webhook_events where state = $1")
        .bind(state)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

/// Whether a pending event has been tried (and its attempt recorded) since it was queued:
/// a user's first one only, as the next waits for it (per-user order).
async fn first_tried(app: &TestApp) -> bool {
    let pool = app.db.pool().await;
    let tried: i64 = sqlx::query_scalar(
        "select count(*) from webhook_events where state = 'pending' and attempts > 0 \
         and claimed_until is null",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    tried == 1
}

#[tokio::test]
async fn events_no_one_takes_die_after_the_window_come_back_on_replay_and_are_purged() {
    // Port 9 (discard) refuses connections on loopback: a receiver that is never there.
    let webhooks = json!([{
        "name": "crm",
        "appid": APP,
        "url": "http://127.0.0.1:9/events",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "events": ["user.created", "user.login"],
    }]);
    let app = TestApp::spawn(&[
        &format!("--webhooks={webhooks}"),
        "--webhook-poll-ms=20",
        "--webhook-retry-window-secs=3600",
        "--webhook-retention-secs=86400",
        "--purge-interval-secs=1",
    ])
    .await;
    let mut gateway = app.client(0).await;
    gateway
        .login(LoginRequest {
            scope: String::new(),
            appid: APP.into(),
            code: app.code("o-dead"),
        })
        .await
        .unwrap();
    eventually("the first event is tried", Duration::from_secs(10), || {
        first_tried(&app)
    })
    .await;
    assert_eq!(in_state(&app, "pending").await, 2, "retried, not dead yet");

    // Past the window, the next failure is the last; then the user's next event is tried
    // (its window started with the first's) and dies at its first failure.
    app.clock.advance(7200);
    eventually("both events die", Duration::from_secs(10), || async {
        in_state(&app, "dead").await == 2
    })
    .await;

    let mut ops = app.client(2).await;
    for (request, what) in [
        (
            ReplayEventsRequest {
                subscription: "nope".into(),
                event_ids: vec![],
            },
            "subscription",
        ),
        (
            ReplayEventsRequest {
                subscription: String::new(),
                event_ids: vec![-1],
            },
            "event_ids",
        ),
    ] {
        let refused = ops.replay_events(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().starts_with(what), "{}", refused.message());
    }
    let mut gateway_as_ops = app.client(0).await;
    let refused = gateway_as_ops
        .replay_events(ReplayEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "operators only");

    let replayed = ops
        .replay_events(ReplayEventsRequest {
            subscription: "crm".into(),
            event_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .replayed;
    assert_eq!(replayed, 2);
    assert_eq!(in_state(&app, "dead").await, 0);
    eventually(
        "the replayed events are tried again",
        Duration::from_secs(10),
        || first_tried(&app),
    )
    .await;

    // Dead again, then past their retention: purged.
    app.clock.advance(7200);
    eventually("both events die again", Duration::from_secs(10), || async {
        in_state(&app, "dead").await == 2
    })
    .await;
    app.clock.advance(86_400);
    eventually("the purge drops them", Duration::from_secs(10), || async {
        in_state(&app, "dead").await == 0
    })
    .await;
}
