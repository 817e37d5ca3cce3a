//! The revocation listener against a real database, where a process cannot show it: what
//! it does while the pool has no connection to spare.

use std::time::Duration;

use auth_service::{
    revocation::{Revocations, follow},
    store::{PgStore, Pool},
};
use sqlx::{Connection as _, PgConnection, postgres::PgConnectOptions};
use wxauth_e2e::eventually;

use crate::support::TestApp;

#[tokio::test]
async fn a_revocation_is_heard_while_the_listener_waits_for_a_connection() {
    let app = TestApp::spawn(&[]).await;
    let options: PgConnectOptions = app.db.url.parse().unwrap();
    let pool = Pool::new(options, 1);
    let revocations = Revocations::new(Duration::from_secs(900));
    let follower = tokio::spawn(follow(
        PgStore::new(pool.clone()),
        revocations.clone(),
        Duration::from_millis(50),
    ));
    eventually("the cache is live", Duration::from_secs(10), || async {
        revocations.is_live()
    })
    .await;

    // Every connection of the pool busy (a burst of logins, a slow statement): the
    // listener's next heartbeat waits for one, as long as the pool lets it (5 s).
    let held = pool.lease().await.unwrap();
    eventually(
        "the heartbeat waits for a connection",
        Duration::from_secs(5),
        || async { pool.waiting() == 1 },
    )
    .await;

    // Another replica revokes family 42.
    let mut elsewhere = PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("select pg_notify('wxauth_revoked', '42')")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    eventually(
        "the revocation is known while the heartbeat still waits",
        Duration::from_secs(2),
        || async { revocations.check(42) == Some(true) },
    )
    .await;
    assert_eq!(
        pool.waiting(),
        1,
        "the heartbeat was still waiting when the revocation was recorded"
    );
    drop(held);
    follower.abort();
}
