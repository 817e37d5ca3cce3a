//! How the store's statements are prepared. Directly connected, each is a named prepared
//! statement, cached per connection: one round trip per statement after the first. Through a
//! pooler in transaction mode a named statement would outlive the transaction on a server
//! connection another client gets next, so there every statement is unnamed (parsed for each
//! use), and a unit of work runs in one transaction, so all its statements reach one server
//! connection. Which it is, is set for the unit of work ([`within`]); the constructors here
//! read it, so the statements themselves are written once.

use std::future::Future;

use sqlx::{
    FromRow, Postgres,
    postgres::{PgArguments, PgRow},
    query::{Query, QueryAs, QueryScalar},
};

tokio::task_local! {
    /// Whether the unit of work running goes through a pooler.
    static POOLED: bool;
}

/// Runs `work` with its statements unnamed when `pooled`. The statements must be made
/// inside `work` (an async block or fn), not before it: a statement made outside the scope
/// is named.
pub(super) async fn within<F: Future>(pooled: bool, work: F) -> F::Output {
    POOLED.scope(pooled, work).await
}

/// Whether statements are kept prepared on the connection.
fn persistent() -> bool {
    !POOLED.try_with(|pooled| *pooled).unwrap_or(false)
}

/// A statement, as [`sqlx::query`].
pub(super) fn query(sql: &str) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(persistent())
}

/// A statement whose rows are `O`, as [`sqlx::query_as`].
pub(super) fn query_as<'q, O>(sql: &'q str) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(persistent())
}

/// A statement of one column, as [`sqlx::query_scalar`].
pub(super) fn query_scalar<'q, O>(sql: &'q str) -> QueryScalar<'q, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(persistent())
}
