//! Phone numbers at rest: sealed with the key ring (bound to their user), found by a keyed
//! digest of the national number (a blind index), and moved to the active key after a
//! rotation. Rows written by a release before sealing hold the number in the clear; the
//! background pass seals them, a batch at a time, while the service runs.

use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::{Row as _, postgres::PgRow};
use tracing::warn;

use super::statement;
use super::{PgStore, StoreError};
use crate::{
    domain::Phone,
    secrets::{Keyring, SealError, Sealed},
};

/// The key ring that seals phone numbers, and how a number is sealed and found.
#[derive(Debug, Clone)]
pub struct PhoneVault {
    keyring: Arc<Keyring>,
}

/// A phone number as stored: sealed, with its blind index.
#[derive(Debug, Clone)]
pub struct SealedPhone {
    /// The number (all three forms, as JSON), sealed.
    pub sealed: Sealed,
    /// The keyed digest of the national number.
    pub index: Vec<u8>,
    /// The kid of the key that made the digest.
    pub index_kid: String,
}

/// What a phone is sealed with: it opens only in its user's row.
fn context(appid: &str, openid: &str) -> Vec<u8> {
    [
        b"wxauth.phone\0".as_slice(),
        appid.as_bytes(),
        &[0],
        openid.as_bytes(),
    ]
    .concat()
}

/// What the blind index digests: the national number, with a label of its own, so the digest
/// of a number is not the digest of anything else the key ring indexes.
fn index_input(pure_number: &str) -> Vec<u8> {
    [b"wxauth.phone.index\0".as_slice(), pure_number.as_bytes()].concat()
}

impl PhoneVault {
    /// Seals with `keyring`.
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self { keyring }
    }

    /// `phone`, sealed for the user (appid, openid), and its index.
    pub fn seal(&self, appid: &str, openid: &str, phone: &Phone) -> Result<SealedPhone, SealError> {
        let plain = json!({
            "number": phone.number,
            "pure_number": phone.pure_number,
            "country_code": phone.country_code,
        })
        .to_string();
        let sealed = self
            .keyring
            .seal(plain.as_bytes(), &context(appid, openid))?;
        let index = self.keyring.index(&index_input(&phone.pure_number))?;
        Ok(SealedPhone {
            sealed,
            index: index.digest,
            index_kid: index.kid,
        })
    }

    /// The phone sealed for (appid, openid).
    pub fn open(&self, appid: &str, openid: &str, sealed: &Sealed) -> Result<Phone, SealError> {
        let corrupt = || SealError::Corrupt(sealed.kid.clone());
        let plain = self.keyring.open(sealed, &context(appid, openid))?;
        let value: Value = serde_json::from_slice(&plain).map_err(|_| corrupt())?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
        Ok(Phone {
            number: text("number").ok_or_else(corrupt)?,
            pure_number: text("pure_number").ok_or_else(corrupt)?,
            country_code: text("country_code"),
        })
    }

    /// The digests a national number may be indexed under: one per key of the ring, so a
    /// row indexed before a rotation is found until the re-seal moves it.
    pub fn lookups(&self, pure_number: &str) -> Vec<Vec<u8>> {
        self.keyring.indexes(&index_input(pure_number))
    }

    /// The kids the ring opens but no longer seals with.
    fn retired(&self) -> Vec<String> {
        self.keyring
            .retired_kids()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The keyed digest a deleted user is remembered by (appid, openid), and the kid.
    pub fn erased_digest(&self, appid: &str, openid: &str) -> Result<(Vec<u8>, String), SealError> {
        let input = [
            b"wxauth.erased\0".as_slice(),
            appid.as_bytes(),
            &[0],
            openid.as_bytes(),
        ]
        .concat();
        let indexed = self.keyring.index(&input)?;
        Ok((indexed.digest, indexed.kid))
    }
}

/// The phone columns of a user, from a relation named `u`.
pub(super) const PHONE_COLUMNS: &str = "u.phone_number, u.pure_phone_number, u.phone_country_code, \
    u.phone_kid, u.phone_nonce, u.phone_sealed";

/// The sealed phone of a row, if it has one.
fn sealed_of(row: &PgRow) -> Result<Option<Sealed>, sqlx::Error> {
    Ok(
        match (
            row.try_get::<Option<String>, _>("phone_kid")?,
            row.try_get::<Option<Vec<u8>>, _>("phone_nonce")?,
            row.try_get::<Option<Vec<u8>>, _>("phone_sealed")?,
        ) {
            (Some(kid), Some(nonce), Some(ciphertext)) => Some(Sealed {
                kid,
                nonce,
                ciphertext,
            }),
            _ => None,
        },
    )
}

/// The phone in the clear of a row a release before sealing wrote, if any.
fn plain_of(row: &PgRow) -> Result<Option<Phone>, sqlx::Error> {
    Ok(
        match (
            row.try_get::<Option<String>, _>("phone_number")?,
            row.try_get::<Option<String>, _>("pure_phone_number")?,
        ) {
            (Some(number), Some(pure_number)) => Some(Phone {
                number,
                pure_number,
                country_code: row.try_get("phone_country_code")?,
            }),
            _ => None,
        },
    )
}

impl PgStore {
    /// The phone of a user's row of [`PHONE_COLUMNS`]: in the clear while the background pass
    /// has not sealed it yet, else opened. One that does not open (its key was removed from
    /// the ring, the row was tampered with) is left out and logged: the rest of the user is
    /// still served.
    pub(super) fn phone_of(
        &self,
        row: &PgRow,
        appid: &str,
        openid: &str,
    ) -> Result<Option<Phone>, sqlx::Error> {
        if let Some(phone) = plain_of(row)? {
            return Ok(Some(phone));
        }
        let Some(sealed) = sealed_of(row)? else {
            return Ok(None);
        };
        let opened = match &self.phones {
            Some(vault) => vault.open(appid, openid, &sealed),
            None => Err(SealError::UnknownKid(sealed.kid.clone())),
        };
        Ok(opened
            .inspect_err(|err| warn!(error = %err, "a stored phone number cannot be opened"))
            .ok())
    }

    /// `phone` sealed for (appid, openid), ready to store.
    pub(super) fn seal_phone(
        &self,
        appid: &str,
        openid: &str,
        phone: &Phone,
    ) -> Result<SealedPhone, StoreError> {
        self.phones
            .as_ref()
            .ok_or(StoreError::NoKeys)?
            .seal(appid, openid, phone)
            .map_err(|err| StoreError::Seal(err.to_string()))
    }

    /// The digests a number may be found under.
    pub(super) fn phone_lookups(&self, pure_number: &str) -> Vec<Vec<u8>> {
        self.phones
            .as_ref()
            .map(|vault| vault.lookups(pure_number))
            .unwrap_or_default()
    }

    /// The vault, for what must be sealed or digested before a statement.
    pub(super) fn vault(&self) -> Result<&PhoneVault, StoreError> {
        self.phones.as_ref().ok_or(StoreError::NoKeys)
    }

    /// Seals up to `batch` phone numbers still in the clear, and moves up to `batch` sealed
    /// under a retired key to the active one (with a new index). Each row is written only if
    /// it is still as it was read, so replicas doing this at once, or a user binding a new
    /// number meanwhile, lose nothing. Returns how many rows were written.
    pub async fn seal_phones(&self, batch: i64) -> Result<u64, StoreError> {
        let Some(vault) = self.phones.clone() else {
            return Ok(0);
        };
        let retired = vault.retired();
        let rows = self
            .run(async |conn| {
                statement::query(&format!(
                    "(select u.user_id, u.appid, u.openid, {PHONE_COLUMNS} from users u \
                       where u.phone_number is not null limit $1) \
                     union all \
                     (select u.user_id, u.appid, u.openid, {PHONE_COLUMNS} from users u \
                       where u.phone_kid = any($2) limit $1)"
                ))
                .bind(batch)
                .bind(&retired)
                .fetch_all(conn)
                .await
            })
            .await?;
        let mut ids = Vec::new();
        let mut old_kids: Vec<Option<String>> = Vec::new();
        let mut old_plain: Vec<Option<String>> = Vec::new();
        let (mut kids, mut nonces, mut ciphers, mut indexes, mut index_kids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let (appid, openid): (String, Option<String>) =
                (row.try_get("appid")?, row.try_get("openid")?);
            let Some(openid) = openid else { continue };
            let plain = plain_of(row)?;
            let phone = match plain.clone() {
                Some(phone) => phone,
                None => match sealed_of(row)?.map(|sealed| vault.open(&appid, &openid, &sealed)) {
                    Some(Ok(phone)) => phone,
                    Some(Err(err)) => {
                        warn!(error = %err, "a stored phone number cannot be re-sealed; it stays as it is");
                        continue;
                    }
                    None => continue,
                },
            };
            let sealed = vault
                .seal(&appid, &openid, &phone)
                .map_err(|err| StoreError::Seal(err.to_string()))?;
            ids.push(row.try_get::<i64, _>("user_id")?);
            old_kids.push(row.try_get("phone_kid")?);
            old_plain.push(plain.map(|phone| phone.number));
            kids.push(sealed.sealed.kid);
            nonces.push(sealed.sealed.nonce);
            ciphers.push(sealed.sealed.ciphertext);
            indexes.push(sealed.index);
            index_kids.push(sealed.index_kid);
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let done = self
            .run(async |conn| {
                statement::query(
                    "update users as u set phone_kid = n.kid, phone_nonce = n.nonce, \
                       phone_sealed = n.sealed, phone_index = n.index, \
                       phone_index_kid = n.index_kid, phone_number = null, \
                       pure_phone_number = null, phone_country_code = null \
                     from unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], \
                       $6::bytea[], $7::text[], $8::text[]) as n(user_id, old_kid, kid, nonce, \
                       sealed, index, index_kid, old_plain) \
                     where u.user_id = n.user_id \
                       and (u.phone_number = n.old_plain \
                         or (n.old_plain is null and u.phone_number is null \
                             and u.phone_kid = n.old_kid))",
                )
                .bind(&ids)
                .bind(&old_kids)
                .bind(&kids)
                .bind(&nonces)
                .bind(&ciphers)
                .bind(&indexes)
                .bind(&index_kids)
                .bind(&old_plain)
                .execute(conn)
                .await
            })
            .await?;
        Ok(done.rows_affected())
    }
}
