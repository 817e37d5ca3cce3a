//! Migrations applied by a job, under a role that may change the schema, while the service
//! runs under one that may not (`WXAUTH_MIGRATIONS`): the job needs only the database's URL
//! and exits; a replica told to skip them waits until the schema is its build's, then
//! serves.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use wxauth_e2e::{
    db::TestDb,
    eventually,
    process::{bin_dir, run_to_exit},
    stack::{APP, Options, Stack},
};

/// How many migrations the database has applied.
async fn applied(db: &TestDb) -> i64 {
    let pool = db.pool().await;
    let exists: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(&pool)
        .await
        .unwrap();
    let count = if exists {
        sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        0
    };
    pool.close().await;
    count
}

#[tokio::test]
async fn a_job_migrates_and_a_replica_that_skips_them_waits_for_it() {
    let db = TestDb::create_empty().await;
    assert_eq!(applied(&db).await, 0);

    // A replica that skips the migrations, started first, on the empty database.
    let log = std::env::temp_dir().join(format!("wxauth-skip-{}.log", wxauth_e2e::random_hex(6)));
    let mut replica = Command::new(bin_dir().join("auth-service"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("DATABASE_URL", db.url.as_str()),
            ("WXAUTH_MIGRATIONS", "skip"),
            ("WXAUTH_DEV", "1"),
            (
                "WXAUTH_APPS",
                "wx4f4bc4dec97d474b:0123456789abcdef0123456789abcdef",
            ),
            (
                "WXAUTH_CALLERS",
                "gateway:login:gateway-key-0123456789abcdef",
            ),
            ("WXAUTH_GRPC_ADDR", "127.0.0.1:0"),
            ("WXAUTH_METRICS_ADDR", "127.0.0.1:0"),
            ("WECHAT_API_BASE", "http://127.0.0.1:9"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the auth-service starts");
    let (lines, listening) = mpsc::channel();
    let stdout = replica.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("listening on ") {
                let _ = lines.send(line);
            }
        }
    });
    eventually(
        "the replica waits for the migrations",
        Duration::from_secs(10),
        || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("waiting for the migrations job")
            }
        },
    )
    .await;
    assert!(listening.try_recv().is_err(), "it does not serve meanwhile");
    assert_eq!(applied(&db).await, 0, "and migrates nothing itself");

    // The job: the database's URL and nothing else; it migrates and exits 0.
    let (code, stderr) = run_to_exit(
        "auth-service",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("WXAUTH_MIGRATIONS", "only".into()),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("migrations applied"), "{stderr}");
    assert!(applied(&db).await >= 9);

    // The waiting replica now serves.
    let line = listening
        .recv_timeout(Duration::from_secs(15))
        .expect("the replica serves once the schema is migrated");
    assert!(line.starts_with("listening on "));
    let _ = replica.kill();
    let _ = replica.wait();
    let _ = std::fs::remove_file(&log);

    // A whole stack that skips them runs on the migrated database, under a role that may
    // read and write rows but not change the schema.
    let role = format!("wxauth_app_{}", wxauth_e2e::random_hex(6));
    db.admin(&format!("create role {role} login")).await;
    let pool = db.pool().await;
    for grant in [
        format!("grant select, insert, update, delete on all tables in schema public to {role}"),
        format!("grant usage, select on all sequences in schema public to {role}"),
    ] {
        sqlx::query(&grant).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (_, host_and_db) = rest.split_once('@').unwrap();
    let as_role = format!("{scheme}://{role}@{host_and_db}");
    let stack = Stack::start_on(
        db.same(),
        Options {
            auth_env: vec![
                ("WXAUTH_MIGRATIONS", "skip".into()),
                ("DATABASE_URL", as_role),
            ],
            ..Options::default()
        },
    )
    .await;
    let login = stack.v1_login(APP, "o-migrated").await;
    let (status, body) = stack.v1_refresh(&login["refresh_token"]).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    drop(stack);
    // The role goes with the test (best effort: the database's grants may still hold it).
    db.admin("drop database {db} with (force)").await;
    let _ = db.try_admin(&format!("drop role if exists {role}")).await;
}
