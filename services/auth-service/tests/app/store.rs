//! The store against a real database: each statement's guarantee, seen from outside.

use auth_service::{
    domain::{
        CallContext, Profile, UserUpdate,
        rotation::{RefreshRules, Refusal},
    },
    secrets::Sealed,
    store::{
        Completion, IssuedLogin, NewRefresh, NewSession, Notice, PgStore, RefreshOutcome, Rotation,
        upkeep::Retention,
    },
};

use crate::support::{APP, TestApp};

/// An hour of audit trail and of webhook events kept.
const HOUR_KEPT: Retention = Retention {
    audit_secs: 3600,
    events_secs: 3600,
};

fn sealed() -> Sealed {
    Sealed {
        kid: "k1".into(),
        nonce: vec![0; 12],
        ciphertext: vec![1, 2, 3],
    }
}

async fn new_session(store: &PgStore, id: u8, openid: &str, ttl_secs: i64) -> Vec<u8> {
    let id_hash = vec![id; 32];
    store
        .create_session(NewSession {
            id_hash: &id_hash,
            appid: APP,
            openid,
            unionid: None,
            sealed_key: &sealed(),
            user_key: &sealed(),
            ttl_secs,
        })
        .await
        .unwrap();
    id_hash
}

fn refresh(byte: u8) -> Vec<u8> {
    vec![byte; 32]
}

fn context() -> CallContext {
    CallContext {
        caller: Some("test".into()),
        client_addr: Some("192.0.2.1".into()),
        request_id: "rid-store".into(),
        client_request_id: None,
        reach: Default::default(),
    }
}

/// Completes a login on `session` with refresh token `hash`, using the session up.
async fn complete(
    store: &PgStore,
    session: &[u8],
    openid: &str,
    update: &UserUpdate,
    hash: u8,
) -> Option<IssuedLogin> {
    store
        .complete_login(
            session,
            Completion::UsesUpSession,
            APP,
            openid,
            update,
            NewRefresh {
                scope: None,
                hash: &refresh(hash),
                ttl_secs: 60,
            },
            None,
            &context(),
        )
        .await
        .unwrap()
        .issued()
}

/// Rotates refresh token `old` into `new`, with a grace of `grace_secs`.
async fn rotate(store: &PgStore, old: u8, new: u8, grace_secs: i64) -> RefreshOutcome {
    store
        .rotate_refresh(
            &refresh(old),
            Rotation {
                new_hash: &refresh(new),
                successor: &sealed(),
                rules: RefreshRules {
                    grace_secs,
                    idle_secs: 60,
                    family_max_age_secs: 3600,
                },
            },
            &context(),
        )
        .await
        .unwrap()
}

fn named(nickname: &str) -> UserUpdate {
    UserUpdate {
        profile: Profile {
            nickname: Some(nickname.into()),
            ..Profile::default()
        },
        ..UserUpdate::default()
    }
}

#[tokio::test]
async fn a_code_is_claimed_once_per_app() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    assert!(store.claim_code(APP, b"code-1").await.unwrap());
    assert!(!store.claim_code(APP, b"code-1").await.unwrap());
    assert!(
        store
            .claim_code("wx0123456789abcdef", b"code-1")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_newer_session_replaces_the_older_and_only_a_live_one_completes() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let older = new_session(&store, 1, "o-s", 600).await;
    let newer = new_session(&store, 2, "o-s", 600).await;
    assert!(store.find_session(&older).await.unwrap().is_none());
    assert_eq!(
        store.find_session(&newer).await.unwrap().unwrap().openid,
        "o-s"
    );

    let stale = complete(&store, &older, "o-s", &named("A"), 1).await;
    assert!(stale.is_none(), "a replaced session completes nothing");
    let done = complete(&store, &newer, "o-s", &named("A"), 2)
        .await
        .unwrap();
    assert_eq!(done.user.profile.nickname.as_deref(), Some("A"));
    assert!(
        complete(&store, &newer, "o-s", &named("A"), 4)
            .await
            .is_none(),
        "a session completes once"
    );
    // A later login that knows nothing of the profile keeps it.
    let again = new_session(&store, 3, "o-s", 600).await;
    let kept = complete(&store, &again, "o-s", &UserUpdate::default(), 3)
        .await
        .unwrap();
    assert_eq!(kept.user.id, done.user.id);
    assert_eq!(kept.user.profile.nickname.as_deref(), Some("A"));
    assert_ne!(
        kept.family_id, done.family_id,
        "each login is its own family"
    );

    let expired = new_session(&store, 4, "o-expired", -1).await;
    assert!(store.find_session(&expired).await.unwrap().is_none());
}

/// Two exchanges of one user can reach the store out of order (two logins at once): the one
/// that came back from WeChat last keeps its session_key and its session, whichever is
/// stored last.
#[tokio::test]
async fn an_exchange_stored_after_a_newer_one_replaces_nothing() {
    use auth_service::clock::ManualClock;

    let app = TestApp::spawn(&[]).await;
    let earlier = app.store_with_clock(ManualClock::new());
    app.clock.advance(5);
    let later = app.store();
    let key = |nonce: u8| Sealed {
        kid: "k1".into(),
        nonce: vec![nonce; 12],
        ciphertext: vec![nonce],
    };
    let store_session = async |store: &PgStore, id: u8| {
        let id_hash = vec![id; 32];
        store
            .create_session(NewSession {
                id_hash: &id_hash,
                appid: APP,
                openid: "o-order",
                unionid: None,
                sealed_key: &key(id),
                user_key: &key(id),
                ttl_secs: 600,
            })
            .await
            .unwrap();
        id_hash
    };
    let newer = store_session(&later, 1).await;
    let older = store_session(&earlier, 2).await;
    let kept = later
        .user_session_key(APP, "o-order")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.sealed, key(1), "the newer key stays");
    assert!(later.find_session(&newer).await.unwrap().is_some());
    assert!(
        later.find_session(&older).await.unwrap().is_none(),
        "the older session is not stored"
    );
    // A newer exchange still replaces both.
    app.clock.advance(5);
    let newest = store_session(&later, 3).await;
    let kept = later
        .user_session_key(APP, "o-order")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.sealed, key(3));
    assert!(later.find_session(&newer).await.unwrap().is_none());
    assert!(later.find_session(&newest).await.unwrap().is_some());
}

/// A login decided on facts that went stale (the user joined another account meanwhile)
/// writes nothing on them: the store reads the facts again and decides again.
#[tokio::test]
async fn a_login_decided_on_stale_account_facts_is_decided_again() {
    use auth_service::domain::merge::{AccountState, StoredUser};

    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let session = new_session(&store, 8, "o-stale", 600).await;
    let first = complete(&store, &session, "o-stale", &named("S"), 70)
        .await
        .unwrap();
    let again = new_session(&store, 9, "o-stale", 600).await;
    let stale = AccountState {
        stored: Some(StoredUser {
            account_id: first.user.account_id + 1_000,
            unionid: None,
        }),
        unionid: None,
        unionid_account: None,
        standing: None,
    };
    let second = store
        .complete_login(
            &again,
            Completion::UsesUpSession,
            APP,
            "o-stale",
            &UserUpdate::default(),
            NewRefresh {
                scope: None,
                hash: &refresh(71),
                ttl_secs: 60,
            },
            Some(stale),
            &context(),
        )
        .await
        .unwrap()
        .issued()
        .expect("completed on fresh facts");
    assert_eq!(
        second.user.account_id, first.user.account_id,
        "not the stale one"
    );
    assert!(
        store.find_session(&again).await.unwrap().is_none(),
        "used up once"
    );
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_family_and_every_replica_hears_it() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let mut feed = store
        .listen_revocations("wxauth_heartbeat_test")
        .await
        .unwrap();
    let session = new_session(&store, 5, "o-r", 600).await;
    let login = complete(&store, &session, "o-r", &named("R"), 10)
        .await
        .unwrap();
    let rotated = rotate(&store, 10, 11, 0).await;
    assert!(
        matches!(rotated, RefreshOutcome::Rotated(ref issued) if issued.family_id == login.family_id)
    );
    assert!(!store.is_family_revoked(login.family_id).await.unwrap());

    let reused = rotate(&store, 10, 12, 0).await;
    assert!(matches!(reused, RefreshOutcome::Reused { family_id } if family_id == login.family_id));
    assert_eq!(
        feed.next().await.unwrap(),
        Some(Notice::Revoked(login.family_id))
    );
    assert!(store.is_family_revoked(login.family_id).await.unwrap());
    assert!(
        matches!(
            rotate(&store, 11, 13, 0).await,
            RefreshOutcome::Refused {
                why: Refusal::Revoked,
                ..
            }
        ),
        "the whole family is over"
    );
    assert!(matches!(
        rotate(&store, 99, 14, 0).await,
        RefreshOutcome::Refused {
            why: Refusal::Unknown,
            family: None
        }
    ));
}

/// Transactions open on the test's database that nothing is running in.
async fn idle_in_transaction(url: &str) -> i64 {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity \
         where datname = current_database() and state like 'idle in transaction%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// Each way a refresh is refused with its rows locked ends the transaction before the
/// connection goes back: nothing stays `idle in transaction` holding the family's locks, so
/// the family's other token, and an operator revoking the user, are answered at once.
#[tokio::test]
async fn a_refused_refresh_leaves_no_transaction_and_no_lock_behind() {
    let app = TestApp::spawn(&["--purge-interval-secs=3600"]).await;
    let store = app.store();
    let session = new_session(&store, 7, "o-x", 600).await;
    let login = complete(&store, &session, "o-x", &named("X"), 60)
        .await
        .unwrap();
    assert!(matches!(
        rotate(&store, 60, 61, 0).await,
        RefreshOutcome::Rotated(_)
    ));
    // Token 61 is the family's live one; 60 was used. Move past 61's idle limit of 60 s.
    app.clock.advance(61);
    for (presented, why) in [(61, Refusal::Expired), (99, Refusal::Unknown)] {
        let outcome = rotate(&store, presented, 62, 0).await;
        assert!(
            matches!(outcome, RefreshOutcome::Refused { why: got, .. } if got == why),
            "{presented}: {outcome:?}"
        );
        assert_eq!(idle_in_transaction(&app.db.url).await, 0, "after {why:?}");
    }
    let context = context();
    let revoke = store.revoke_user(login.user.id, "test", &context);
    let revoked = tokio::time::timeout(std::time::Duration::from_secs(2), revoke)
        .await
        .expect("no lock left to wait for")
        .unwrap();
    assert_eq!(revoked, [login.family_id]);
    let refused = rotate(&store, 60, 63, 0).await;
    assert!(
        matches!(
            refused,
            RefreshOutcome::Refused {
                why: Refusal::Revoked,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(idle_in_transaction(&app.db.url).await, 0);
}

#[tokio::test]
async fn within_the_grace_the_same_successor_comes_back_until_it_is_used() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let session = new_session(&store, 6, "o-g", 600).await;
    let login = complete(&store, &session, "o-g", &named("G"), 20)
        .await
        .unwrap();
    assert!(matches!(
        rotate(&store, 20, 21, 30).await,
        RefreshOutcome::Rotated(_)
    ));
    // A retry of token 20 (its answer was lost): the same successor, nothing revoked.
    match rotate(&store, 20, 22, 30).await {
        RefreshOutcome::Replayed { issued, successor } => {
            assert_eq!(issued.family_id, login.family_id);
            assert_eq!(successor, sealed());
        }
        other => panic!("expected the successor again, got {other:?}"),
    }
    // Once the successor is used, token 20 is reuse even within the grace.
    assert!(matches!(
        rotate(&store, 21, 23, 30).await,
        RefreshOutcome::Rotated(_)
    ));
    assert!(matches!(
        rotate(&store, 20, 24, 30).await,
        RefreshOutcome::Reused { .. }
    ));
    assert!(store.is_family_revoked(login.family_id).await.unwrap());
}

#[tokio::test]
async fn revoking_a_user_ends_each_live_family_once() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let (mut user_id, mut families) = (0, Vec::new());
    for (id, hash) in [(20, 30), (21, 31)] {
        let session = new_session(&store, id, "o-many", 600).await;
        let login = complete(&store, &session, "o-many", &named("M"), hash)
            .await
            .unwrap();
        user_id = login.user.id;
        families.push(login.family_id);
    }
    let open = new_session(&store, 22, "o-many", 600).await;
    let mut revoked = store
        .revoke_user(user_id, "test", &context())
        .await
        .unwrap();
    revoked.sort_unstable();
    assert_eq!(revoked, families, "each live family, named");
    assert_eq!(
        store
            .revoke_user(user_id, "test", &context())
            .await
            .unwrap(),
        Vec::<i64>::new()
    );
    assert!(
        store.find_session(&open).await.unwrap().is_none(),
        "the user's open login session ended with them"
    );
    let trail = store.audit_events_of(user_id, None, 10).await.unwrap();
    let kinds: Vec<&str> = trail.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["revoked", "revoked", "login", "login"], "{trail:?}");
    assert_eq!(trail[0].actor.as_deref(), Some("test"));
    assert_eq!(trail[0].client_addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(trail[0].outcome, "test");
    assert_eq!(
        store.get_user(user_id).await.unwrap().unwrap().openid,
        "o-many"
    );
    assert!(store.get_user(user_id + 1000).await.unwrap().is_none());
}

#[tokio::test]
async fn purging_deletes_what_expired_and_keeps_what_lives() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let gone = new_session(&store, 40, "o-p1", -10).await;
    let live = new_session(&store, 41, "o-p2", 600).await;
    let purged = store.purge_expired(1, HOUR_KEPT).await.unwrap();
    assert!(purged >= 1, "{purged}");
    assert!(store.find_session(&live).await.unwrap().is_some());
    // Purged, the expired session's digest is free again.
    assert_eq!(new_session(&store, 40, "o-p1", 600).await, gone);
}

/// Replicas purge on their own timers, and a request may hold a row a purge picks: a purge
/// takes the rows no one holds and leaves the rest, instead of waiting on them (its statement
/// timeout would end it) or deadlocking against another replica's purge.
#[tokio::test]
async fn a_purge_leaves_rows_another_transaction_holds_and_takes_the_rest() {
    use sqlx::Connection as _;

    // The service's own purge must not run during the test.
    let app = TestApp::spawn(&["--purge-interval-secs=3600"]).await;
    let store = app.store();
    let held = new_session(&store, 50, "o-h1", -10).await;
    new_session(&store, 51, "o-h2", -10).await;
    let mut other = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let mut holding = other.begin().await.unwrap();
    sqlx::query("select 1 from login_sessions where id_hash = $1 for update")
        .bind(&held)
        .execute(&mut *holding)
        .await
        .unwrap();

    let purged = store.purge_expired(10, HOUR_KEPT).await.unwrap();
    assert!(purged >= 1, "{purged}");
    let left: Vec<Vec<u8>> = sqlx::query_scalar("select id_hash from login_sessions")
        .fetch_all(&mut *holding)
        .await
        .unwrap();
    assert_eq!(left, [held], "the free row purged, the held one left");

    holding.rollback().await.unwrap();
    assert_eq!(
        store.purge_expired(10, HOUR_KEPT).await.unwrap(),
        1,
        "taken once free"
    );
    let left: i64 = sqlx::query_scalar("select count(*) from login_sessions")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// The kept session_keys are purged by a walk in key order, a few batches per interval: the
/// ones not renewed for 30 days go, the renewed ones stay, and the walk starts over at the end.
#[tokio::test]
async fn the_walk_through_kept_session_keys_purges_the_old_ones_and_starts_over() {
    use auth_service::store::upkeep::KeyWalk;

    let app = TestApp::spawn(&["--purge-interval-secs=3600"]).await;
    let store = app.store();
    for (id, openid) in [
        (70, "o-k1"),
        (71, "o-k2"),
        (72, "o-k3"),
        (73, "o-k4"),
        (74, "o-k5"),
    ] {
        new_session(&store, id, openid, 600).await;
    }
    app.clock.advance(31 * 86_400);
    // Two users log in again: their keys are renewed.
    new_session(&store, 75, "o-k2", 600).await;
    new_session(&store, 76, "o-k5", 600).await;
    let kept = async || -> Vec<String> {
        sqlx::query_scalar("select openid from user_session_keys order by openid")
            .fetch_all(&app.db.pool().await)
            .await
            .unwrap()
    };

    let mut walk = KeyWalk::default();
    // One batch of two: o-k1 (old) goes, o-k2 (renewed) stays; the walk stands after o-k2.
    assert_eq!(store.purge_kept_keys(&mut walk, 2, 1).await.unwrap(), 1);
    assert_eq!(kept().await, ["o-k2", "o-k3", "o-k4", "o-k5"]);
    // On to the end: o-k3 and o-k4 go, then the walk reaches the end and starts over.
    assert_eq!(store.purge_kept_keys(&mut walk, 2, 5).await.unwrap(), 2);
    assert_eq!(kept().await, ["o-k2", "o-k5"]);
    assert_eq!(store.purge_kept_keys(&mut walk, 2, 5).await.unwrap(), 0);
    // Past 30 days of those two as well, a walk from the start takes them.
    app.clock.advance(31 * 86_400);
    assert_eq!(store.purge_kept_keys(&mut walk, 2, 5).await.unwrap(), 2);
    assert!(kept().await.is_empty());
}
