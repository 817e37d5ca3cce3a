//! The login gate in SQL: the statements that store a login session or write a login, and
//! the rotation of a refresh token, decide alone whether the user may log in.

/// [`crate::domain::lifecycle::barred`] in SQL, over the user row `alias` at the time `now` (a parameter):
/// the login statements decide with it alone. A status this release does not know counts as
/// suspended, as `Status::parse` has it. Tested to agree with the rule.
pub fn barred_sql(alias: &str, now: &str) -> String {
    format!(
        "({alias}.status = 'deleting' or ({alias}.status not in ('active', 'deleting', \
         'deleted') and ({alias}.suspended_until is null or {alias}.suspended_until > {now})))"
    )
}
