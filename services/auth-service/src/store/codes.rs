//! `wx.login()` codes already sent to WeChat: each is exchanged at most once, across every
//! replica.

use super::statement;
use super::{PgStore, StoreError};

impl PgStore {
    /// Records that a code is about to be exchanged. Returns false when it already was: the
    /// primary key makes this atomic across replicas.
    ///
    /// Committed without waiting for the disk (`synchronous_commit` off for this statement
    /// only): the claim is visible to every replica at once, and nothing is promised to the
    /// client on its strength. A database crash in the next fraction of a second could forget
    /// it, and then a resent code reaches WeChat, which answers 40163: the same "log in again".
    pub async fn claim_code(&self, appid: &str, code_hash: &[u8]) -> Result<bool, StoreError> {
        let now = self.now();
        let inserted = self
            .run(async |conn| {
                statement::query(
                    "insert into used_codes (appid, code_hash, created_at) \
                     select $1, $2, $3 from (select set_config('synchronous_commit', 'off', true)) as relaxed \
                     on conflict do nothing",
                )
                .bind(appid)
                .bind(code_hash)
                .bind(now)
                .execute(conn)
                .await
            })
            .await?
            .rows_affected();
        Ok(inserted == 1)
    }
}
