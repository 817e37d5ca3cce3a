//! The service's [`Timestamp`] as a PostgreSQL `timestamptz`, in and out, exactly: both
//! count microseconds (PostgreSQL from 2000-01-01 UTC), so nothing is rounded on the way.
//! This is how the service's clock reaches SQL: statements take the time as a parameter.

use sqlx::{
    Decode, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{
        PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, types::Oid,
    },
};

use crate::clock::Timestamp;

/// PostgreSQL's epoch, 2000-01-01 UTC, in Unix microseconds.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// The built-in type's OID, fixed by PostgreSQL.
const TIMESTAMPTZ: Oid = Oid(1184);
const TIMESTAMPTZ_ARRAY: Oid = Oid(1185);

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ)
    }
}

impl PgHasArrayType for Timestamp {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_ARRAY)
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend(&self.micros().saturating_sub(PG_EPOCH_MICROS).to_be_bytes());
        Ok(IsNull::No)
    }
}

impl Decode<'_, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 8] = value.as_bytes()?.try_into()?;
                Ok(Timestamp::from_micros(
                    i64::from_be_bytes(bytes).saturating_add(PG_EPOCH_MICROS),
                ))
            }
            // Only the simple-query protocol answers in text, and the store does not use it.
            PgValueFormat::Text => Err("a timestamptz must be read in the binary format".into()),
        }
    }
}
