//! Real parts for the tests and the benchmark: the workspace's binaries run as child
//! processes ([`process`]), and a database of its own for each user on the server
//! `DATABASE_URL` points at ([`db`]), migrated or empty. Nothing here is a stand-in: the
//! processes are the binaries a deployment runs, and the databases live on a real
//! PostgreSQL.

#![allow(clippy::expect_used, clippy::missing_panics_doc)]

pub mod db;
pub mod process;
pub mod seed;

/// Random hex, for names that must not collide between tests running at once.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the os random source works");
    hex::encode(buf)
}

/// Waits until `check` holds, asking again every 25 ms, and fails the test if it does not
/// hold within `deadline`. For effects of a server's background work (a purge, a health
/// probe) that no call returns: the condition is observed, never assumed after a pause.
pub async fn eventually<F, Fut>(what: &str, deadline: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < deadline,
            "{what}: still not true after {deadline:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
