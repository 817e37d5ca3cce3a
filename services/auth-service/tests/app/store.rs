//! The store against a real database: each statement's guarantee, seen from outside.

use auth_service::{
    domain::{Profile, UserUpdate},
    secrets::Sealed,
    store::{NewRefresh, NewSession, PgStore, RefreshOutcome},
};

use crate::support::{APP, TestApp};

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
            ttl_secs,
        })
        .await
        .unwrap();
    id_hash
}

fn refresh(byte: u8) -> Vec<u8> {
    vec![byte; 32]
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

    let stale = store
        .complete_login(
            &older,
            APP,
            "o-s",
            &named("A"),
            NewRefresh {
                hash: &refresh(1),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap();
    assert!(stale.is_none(), "a replaced session completes nothing");
    let done = store
        .complete_login(
            &newer,
            APP,
            "o-s",
            &named("A"),
            NewRefresh {
                hash: &refresh(2),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.user.profile.nickname.as_deref(), Some("A"));
    // A later login that knows nothing of the profile keeps it.
    let again = new_session(&store, 3, "o-s", 600).await;
    let kept = store
        .complete_login(
            &again,
            APP,
            "o-s",
            &UserUpdate::default(),
            NewRefresh {
                hash: &refresh(3),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap()
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

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_family_and_every_replica_hears_it() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let mut feed = store.listen_revocations().await.unwrap();
    let session = new_session(&store, 5, "o-r", 600).await;
    let login = store
        .complete_login(
            &session,
            APP,
            "o-r",
            &named("R"),
            NewRefresh {
                hash: &refresh(10),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let rotated = store
        .rotate_refresh(
            &refresh(10),
            NewRefresh {
                hash: &refresh(11),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(rotated, RefreshOutcome::Rotated(ref issued) if issued.family_id == login.family_id)
    );
    assert!(!store.is_family_revoked(login.family_id).await.unwrap());

    let reused = store
        .rotate_refresh(
            &refresh(10),
            NewRefresh {
                hash: &refresh(12),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap();
    assert!(matches!(reused, RefreshOutcome::Reused { family_id } if family_id == login.family_id));
    assert_eq!(feed.next().await.unwrap(), Some(login.family_id));
    assert!(store.is_family_revoked(login.family_id).await.unwrap());
    let after = store
        .rotate_refresh(
            &refresh(11),
            NewRefresh {
                hash: &refresh(13),
                ttl_secs: 60,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(after, RefreshOutcome::Invalid),
        "the whole family is over"
    );
    assert!(matches!(
        store
            .rotate_refresh(
                &refresh(99),
                NewRefresh {
                    hash: &refresh(14),
                    ttl_secs: 60
                }
            )
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    ));
}

#[tokio::test]
async fn revoking_a_user_ends_each_live_family_once() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let mut user_id = 0;
    for (id, hash) in [(20, 30), (21, 31)] {
        let session = new_session(&store, id, "o-many", 600).await;
        user_id = store
            .complete_login(
                &session,
                APP,
                "o-many",
                &named("M"),
                NewRefresh {
                    hash: &refresh(hash),
                    ttl_secs: 60,
                },
            )
            .await
            .unwrap()
            .unwrap()
            .user
            .id;
    }
    assert_eq!(store.revoke_user(user_id, "test").await.unwrap(), 2);
    assert_eq!(store.revoke_user(user_id, "test").await.unwrap(), 0);
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
    let purged = store.purge_expired(1).await.unwrap();
    assert!(purged >= 1, "{purged}");
    assert!(store.find_session(&live).await.unwrap().is_some());
    // Purged, the expired session's digest is free again.
    assert_eq!(new_session(&store, 40, "o-p1", 600).await, gone);
}
