//! The revocation listener against a real database, where a process cannot show it: what
//! it does while every connection of the pool is busy.

use std::time::Duration;

use auth_service::revocation::{Revocations, follow};
use sqlx::{Connection as _, PgConnection, postgres::PgListener};
use wxauth_harness::{db::TestDb, eventually};

use crate::support::store_of_one_connection;

/// The heartbeat channel of the one listener on `db`, from the `LISTEN` its connection ran
/// (it is listening once the cache is live).
async fn heartbeat_channel(db: &TestDb) -> String {
    let listens: Vec<String> = sqlx::query_scalar(
        "select query from pg_stat_activity \
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_all(&db.pool().await)
    .await
    .unwrap();
    let [query] = listens.as_slice() else {
        panic!("one listener on the database, not {listens:?}")
    };
    let name = &query[query
        .find("wxauth_heartbeat_")
        .expect("a heartbeat channel")..];
    name[..name.find('"').expect("a quoted name")].to_owned()
}

#[tokio::test]
async fn a_pool_with_no_connection_to_spare_neither_stalls_nor_silences_the_listener() {
    let (db, pool, store) = store_of_one_connection().await;
    let revocations = Revocations::new(Duration::from_secs(900));
    let follower = tokio::spawn(follow(
        store,
        revocations.clone(),
        Duration::from_millis(50),
    ));
    eventually("the cache is live", Duration::from_secs(10), || async {
        revocations.is_live()
    })
    .await;
    let mut beats = PgListener::connect(&db.url).await.unwrap();
    beats.listen(&heartbeat_channel(&db).await).await.unwrap();

    // Every connection of the pool busy (a burst of logins, a slow statement).
    let held = pool.lease().await.unwrap();
    for beat in 1..=3 {
        tokio::time::timeout(Duration::from_secs(2), beats.recv())
            .await
            .unwrap_or_else(|_| panic!("heartbeat {beat} did not come while the pool was busy"))
            .unwrap();
    }
    assert!(revocations.is_live(), "the listener is still trusted");
    assert_eq!(
        pool.waiting(),
        0,
        "and it waits for no connection of the pool"
    );

    // Another replica revokes family 42, and the cache knows at once.
    let mut elsewhere = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("select pg_notify('wxauth_revoked', '42')")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    eventually(
        "the revocation is known while the pool is busy",
        Duration::from_secs(2),
        || async { revocations.check(42) == Some(true) },
    )
    .await;
    drop(held);
    follower.abort();
}
