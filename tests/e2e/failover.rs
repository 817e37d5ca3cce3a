//! The failover drill: a primary with a synchronous standby, the primary killed with
//! SIGKILL under login load, the standby promoted and the database's address moved to it.
//! Every login acknowledged before the kill still refreshes afterwards, and the service
//! follows the new primary without a restart.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::Value;
use wxauth_e2e::{
    db::{TestDb, with_address},
    eventually,
    pg::Cluster,
    proxy::Proxy,
    stack::{APP, Options, Stack},
};

/// One silent login; the refresh token when it was acknowledged, else the refusal.
async fn login(stack: &Stack, openid: &str) -> Result<Value, (StatusCode, Value)> {
    match stack.try_v1_login(APP, openid, None).await {
        Ok((StatusCode::OK, body)) => Ok(body["data"]["refresh_token"].clone()),
        Ok(refusal) => Err(refusal),
        Err(_) => Err((StatusCode::BAD_GATEWAY, Value::Null)),
    }
}

#[tokio::test]
async fn a_primary_killed_under_load_loses_no_acknowledged_login_after_promotion() {
    // A commit returns only once the standby has the WAL on disk (synchronous_commit=on,
    // the default): what makes a promoted standby hold every acknowledged login.
    let mut primary = Cluster::start_with_settings("-c synchronous_standby_names=standby1");
    let standby = Cluster::standby_of(&primary, "standby1");
    eventually(
        "the standby streams synchronously",
        Duration::from_secs(30),
        || primary.has_synchronous_standby(),
    )
    .await;

    // The service reaches the database through an address that can move, as a Kubernetes
    // Service or a virtual IP in front of the primary does.
    let proxy = Proxy::start(primary.addr());
    let mut db = TestDb::create_on(primary.url()).await;
    db.url = with_address(&db.url, proxy.addr);
    let stack = Arc::new(Stack::start_on(db, Options::default()).await);

    let running = Arc::new(AtomicBool::new(true));
    let killed = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (stack, running, killed) = (stack.clone(), running.clone(), killed.clone());
            tokio::spawn(async move {
                let (mut before, mut after, mut refused) = (Vec::new(), 0, Vec::new());
                let mut n = 0;
                while running.load(Ordering::Relaxed) {
                    n += 1;
                    // Read before the call: a login counted as before the kill started
                    // before it, so it was acknowledged by the old primary or refused.
                    let was_killed = killed.load(Ordering::SeqCst);
                    match login(&stack, &format!("o-failover-{worker}-{n}")).await {
                        Ok(refresh) if !was_killed => before.push(refresh),
                        Ok(_) => after += 1,
                        Err(refusal) => refused.push(refusal),
                    }
                }
                (before, after, refused)
            })
        })
        .collect();
    eventually("logins flow", Duration::from_secs(20), || async {
        stack.count("token_families").await >= 50
    })
    .await;

    killed.store(true, Ordering::SeqCst);
    primary.kill_primary();
    // `pg_ctl promote` waits for the promotion: off this runtime, so the load goes on
    // meanwhile and meets the failover as a mini-program's logins would.
    let standby = tokio::task::spawn_blocking(move || {
        standby.promote();
        standby
    })
    .await
    .unwrap();
    proxy.retarget(standby.addr());
    let flowing = stack.count("token_families").await;
    eventually(
        "logins flow again on the promoted standby",
        Duration::from_secs(30),
        || async { stack.count("token_families").await >= flowing + 20 },
    )
    .await;
    running.store(false, Ordering::Relaxed);

    let (mut acknowledged, mut after) = (Vec::new(), 0);
    for worker in workers {
        let (before, done_after, refused) = worker.await.unwrap();
        for (status, body) in refused {
            // A clean refusal the mini-program retries, never a 500.
            assert!(matches!(status.as_u16(), 401 | 503), "{status}: {body}");
        }
        acknowledged.extend(before);
        after += done_after;
    }
    eprintln!(
        "{} logins acknowledged before the kill, {after} after the failover",
        acknowledged.len()
    );
    assert!(acknowledged.len() >= 50, "{}", acknowledged.len());
    assert!(after >= 1, "no login succeeded after the failover");
    let mut lost = 0;
    for refresh_token in &acknowledged {
        let (status, _) = stack.v1_refresh(refresh_token).await;
        if status != StatusCode::OK {
            lost += 1;
        }
    }
    assert_eq!(
        lost,
        0,
        "{lost} of {} logins acknowledged before the kill were lost",
        acknowledged.len()
    );
}
