//! A database that has lived: generated users with everything a returning user leaves
//! behind, so the benchmark and the query-plan test see the tables at the size a real
//! product reaches, not empty.
//!
//! Per user, as a mini-program with some history has them: an account (with a unionid), a
//! kept session_key, one token family with three refresh tokens (two used, one live), five
//! audit events spread over the last 60 days, and for one user in three a sealed phone
//! number. The values are made up but shaped like the service's own (sealed bytes of the
//! right length, SHA-256 digests), so row and index sizes are true.
//!
//! Users are `o-seed-<n>` (n zero-padded to 9 digits, unionid `u-seed-<n>`) of `appid`:
//! [`openid`] and [`unionid`] name them, so a load can log in seeded users again. Their
//! profile is the one the benchmark's flows send, as a returning user's is the one they
//! sent before: a login again changes what it would in a product, not every column.
//!
//! Rows go in key order in batches, with each table's plain secondary indexes dropped during
//! the load and built again once at the end (a sort each instead of a random insert per
//! row): 10 million users take minutes, not hours.

use sqlx::{Executor as _, PgPool, Row as _};

/// Users per statement: bounded transactions, and progress a person can watch.
const BATCH: u64 = 500_000;

/// The seeded user number `n`'s openid.
pub fn openid(n: u64) -> String {
    format!("o-seed-{n:09}")
}

/// The seeded user number `n`'s unionid.
pub fn unionid(n: u64) -> String {
    format!("u-seed-{n:09}")
}

/// What the seeding made, row counts by table.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seeded {
    /// Users (and accounts, families, kept session_keys: one each).
    pub users: u64,
    /// Refresh tokens.
    pub refresh_tokens: u64,
    /// Audit events.
    pub audit_events: u64,
}

/// The tables the seeding fills, whose plain indexes it drops and builds again.
const TABLES: [&str; 6] = [
    "accounts",
    "users",
    "user_session_keys",
    "token_families",
    "refresh_tokens",
    "audit_events",
];

/// Fills the migrated, empty database of `pool` with `users` users of `appid`, then
/// vacuums and analyzes it (as a database that has lived has been), so the planner and the
/// visibility map see it as it would be. `progress` hears each finished batch.
///
/// # Errors
/// What the server refused.
pub async fn seed(
    pool: &PgPool,
    appid: &str,
    users: u64,
    mut progress: impl FnMut(u64),
) -> Result<Seeded, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    conn.execute("set maintenance_work_mem = '512MB'").await?;
    conn.execute("set synchronous_commit = off").await?;
    let mut indexes: Vec<String> = Vec::new();
    for table in TABLES {
        let plain: Vec<(String, String)> = sqlx::query_as(
            "select i.relname::text, pg_get_indexdef(x.indexrelid) from pg_index x \
             join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid \
             where t.relname = $1 and t.relnamespace = current_schema()::regnamespace \
               and not x.indisunique and not x.indisprimary",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for (name, definition) in plain {
            conn.execute(format!("drop index {name}").as_str()).await?;
            indexes.push(definition);
        }
    }
    let mut start = 0;
    while start < users {
        let end = (start + BATCH).min(users);
        load_batch(&mut conn, appid, (start, end), users).await?;
        progress(end);
        start = end;
    }
    for definition in &indexes {
        conn.execute(definition.as_str()).await?;
    }
    for (sequence_of, column) in [
        ("accounts", "account_id"),
        ("users", "user_id"),
        ("token_families", "family_id"),
        ("audit_events", "event_id"),
    ] {
        sqlx::query(&format!(
            "select setval(pg_get_serial_sequence('{sequence_of}', '{column}'), \
             greatest((select max({column}) from {sequence_of}), 1))"
        ))
        .execute(&mut *conn)
        .await?;
    }
    for table in TABLES {
        conn.execute(format!("vacuum (analyze) {table}").as_str())
            .await?;
    }
    let count = async |conn: &mut sqlx::PgConnection, table: &str| {
        sqlx::query(&format!("select count(*) from {table}"))
            .fetch_one(conn)
            .await
            .map(|row| u64::try_from(row.get::<i64, _>(0)).unwrap_or(0))
    };
    Ok(Seeded {
        users: count(&mut conn, "users").await?,
        refresh_tokens: count(&mut conn, "refresh_tokens").await?,
        audit_events: count(&mut conn, "audit_events").await?,
    })
}

/// Users `start..end` of `total` and everything that hangs off them, in one transaction.
/// Ids are the user number plus one; every row goes in the order of its table's keys, and
/// audit events are spread evenly in time over all `total` users' events.
async fn load_batch(
    conn: &mut sqlx::PgConnection,
    appid: &str,
    (start, end): (u64, u64),
    total: u64,
) -> Result<(), sqlx::Error> {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    // Each statement reads $1 (appid) and $2..$3 (the user numbers); the last, $4 (all events).
    let statements = [
        "insert into accounts (account_id, unionid, created_at) \
         select n + 1, 'u-seed-' || lpad(n::text, 9, '0'), now() - interval '60 days' \
         from generate_series($2::bigint, $3::bigint - 1) n where $1::text is not null",
        "insert into users (user_id, appid, openid, unionid, nickname, avatar_url, gender, \
           language, city, province, country, account_id, created_at, updated_at, \
           phone_kid, phone_nonce, phone_sealed, phone_index, phone_index_kid) \
         overriding system value \
         select n + 1, $1, 'o-seed-' || lpad(n::text, 9, '0'), 'u-seed-' || lpad(n::text, 9, '0'), \
           'Bench', 'https://thirdwx.qlogo.cn/mmopen/vi_32/bench/132', \
           1, 'zh_CN', 'Guangzhou', 'Guangdong', 'CN', n + 1, \
           now() - interval '60 days', now() - (n % 60) * interval '1 day', \
           case when n % 3 = 0 then 'k1' end, \
           case when n % 3 = 0 then substr(sha256(('pn' || n)::bytea), 1, 12) end, \
           case when n % 3 = 0 then sha256(('ps' || n)::bytea) || substr(sha256(('pt' || n)::bytea), 1, 11) end, \
           case when n % 3 = 0 then sha256(('pi' || n)::bytea) end, \
           case when n % 3 = 0 then 'k1' end \
         from generate_series($2::bigint, $3::bigint - 1) n",
        "insert into user_session_keys (appid, openid, session_key_kid, session_key_nonce, \
           session_key_sealed, obtained_at) \
         select $1, 'o-seed-' || lpad(n::text, 9, '0'), 'k1', substr(sha256(('kn' || n)::bytea), 1, 12), \
           sha256(('ks' || n)::bytea), now() - (n % 7) * interval '1 day' \
         from generate_series($2::bigint, $3::bigint - 1) n",
        "insert into token_families (family_id, user_id, appid, created_at) \
         overriding system value \
         select n + 1, n + 1, $1, now() - (n % 7) * interval '1 day' \
         from generate_series($2::bigint, $3::bigint - 1) n",
        "insert into refresh_tokens (token_hash, family_id, created_at, expires_at, used_at) \
         select sha256(('rt' || n || '.' || t)::bytea), n + 1, \
           now() - (n % 7) * interval '1 day' + t * interval '1 hour', \
           now() + interval '23 days' + t * interval '1 hour', \
           case when t < 2 then now() - (n % 7) * interval '1 day' + (t + 1) * interval '1 hour' end \
         from generate_series($2::bigint, $3::bigint - 1) n, generate_series(0, 2) t \
         order by 1",
        "insert into audit_events (event_id, at, kind, outcome, appid, user_id, family_id, \
           actor, client_addr, request_id, account_id) \
         overriding system value \
         select e + 1, now() - interval '60 days' + e * (interval '60 days' / $4::bigint), \
           (array['login', 'refresh', 'refresh', 'refresh', 'logout'])[e % 5 + 1], 'ok', $1, \
           e / 5 + 1, e / 5 + 1, 'gateway', '10.0.' || (e % 250) || '.' || (e % 199), \
           md5(e::text), e / 5 + 1 \
         from generate_series($2::bigint * 5, $3::bigint * 5 - 1) e",
    ];
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for (at, statement) in statements.into_iter().enumerate() {
        let query = sqlx::query(statement)
            .bind(appid)
            .bind(int(start))
            .bind(int(end));
        // Only the audit events' statement spreads them over all events.
        let query = if at == statements.len() - 1 {
            query.bind(int(total.max(1) * 5))
        } else {
            query
        };
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}
