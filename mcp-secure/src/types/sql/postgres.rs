//! The execution layers for PostgreSQL, as statements to run around the query (this crate has
//! no PostgreSQL driver).

use std::time::Duration;

/// The statements to run, in one session, before a [`ReadOnlySql<Postgres>`] query, with the
/// default 2 s deadline. Send them as separate statements (or as this one simple-query string),
/// then the query, then [`POSTGRES_SESSION_END`]. See [`postgres_session_setup`] for another
/// deadline and the [module documentation](super) for why the database role matters more.
///
/// [`ReadOnlySql<Postgres>`]: super::ReadOnlySql
pub const POSTGRES_SESSION_SETUP: &str = "BEGIN READ ONLY; \
SET LOCAL statement_timeout = '2000ms'; \
SET LOCAL lock_timeout = '2000ms'; \
SET LOCAL idle_in_transaction_session_timeout = '10000ms'";

/// Ends the read-only transaction opened by [`POSTGRES_SESSION_SETUP`]. A read-only
/// transaction has nothing to commit; roll back so that nothing can be committed.
pub const POSTGRES_SESSION_END: &str = "ROLLBACK";

/// The statements of [`POSTGRES_SESSION_SETUP`] for a given deadline, one per element:
///
/// 1. `BEGIN READ ONLY`: PostgreSQL itself refuses `INSERT`/`UPDATE`/`DELETE`, DDL,
///    `nextval()` and the like for the rest of the transaction;
/// 2. `SET LOCAL statement_timeout`: the server cancels the query at the deadline;
/// 3. `SET LOCAL lock_timeout`: waiting for a lock cannot outlast the deadline either;
/// 4. `SET LOCAL idle_in_transaction_session_timeout`: a client that stalls mid-transaction
///    does not hold a snapshot open for ever (five times the deadline).
///
/// `SET LOCAL` settings end with the transaction, so pooled connections are not affected.
///
/// ```
/// use std::time::Duration;
/// use mcp_secure::types::sql::postgres_session_setup;
///
/// let setup = postgres_session_setup(Duration::from_millis(1500));
/// assert_eq!(setup[0], "BEGIN READ ONLY");
/// assert_eq!(setup[1], "SET LOCAL statement_timeout = '1500ms'");
/// ```
pub fn postgres_session_setup(deadline: Duration) -> [String; 4] {
    let ms = deadline.as_millis().clamp(1, i32::MAX as u128);
    let idle = (ms * 5).clamp(1, i32::MAX as u128);
    [
        "BEGIN READ ONLY".to_owned(),
        format!("SET LOCAL statement_timeout = '{ms}ms'"),
        format!("SET LOCAL lock_timeout = '{ms}ms'"),
        format!("SET LOCAL idle_in_transaction_session_timeout = '{idle}ms'"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_matches_the_default_deadline() {
        assert_eq!(
            POSTGRES_SESSION_SETUP,
            postgres_session_setup(Duration::from_secs(2)).join("; ")
        );
        let zero = postgres_session_setup(Duration::ZERO);
        assert_eq!(zero[1], "SET LOCAL statement_timeout = '1ms'");
        let huge = postgres_session_setup(Duration::from_secs(u64::MAX));
        assert_eq!(
            huge[1],
            format!("SET LOCAL statement_timeout = '{}ms'", i32::MAX)
        );
    }
}
