//! Read-only SQL from untrusted callers: [`ReadOnlySql`], a query that is safe to run by
//! construction, and the execution layers behind it.
//!
//! # Why not a substring filter
//!
//! The usual guard, "refuse `drop` and `delete`, require a leading `select`", is wrong in both
//! directions. It lets through
//!
//! - stacked statements: `SELECT 1; UPDATE users SET role = 'admin'`, also hidden by comments
//!   (`select/**/1;update ...`) or case (`SeLeCt`);
//! - writes that start with `SELECT` or `WITH`: `WITH d AS (DELETE FROM orders RETURNING *)
//!   SELECT * FROM d`, `SELECT * INTO stolen FROM users`, `SELECT ... FOR UPDATE` (row locks);
//! - functions with effects: `SELECT pg_sleep(3600)`, `SELECT load_extension('/tmp/x.so')`,
//!   `SELECT pg_read_file('/etc/passwd')`, `SELECT lo_import(...)`, `SELECT dblink(...)`,
//!   `SELECT set_config(...)`, `SELECT randomblob(2000000000)`;
//! - queries that never end: a recursive CTE counting to 10¹², a cross join of large tables;
//! - the schema and other metadata: `sqlite_master`, `pragma_table_info(...)`,
//!   `information_schema.tables`, `pg_catalog.pg_user`;
//!
//! while it refuses honest queries such as `SELECT id FROM deleted_items` or
//! `SELECT name AS dropoff FROM users`. SQL is a language; deciding what a query does takes a
//! parser, and even a parser is only the first of several layers.
//!
//! # The layers
//!
//! 1. **The type** ([`ReadOnlySql<P>`]). [`ReadOnlySql::parse`] (and deserialization, which
//!    calls it) checks the length (before parsing), parses with `sqlparser` in the policy's
//!    dialect, accepts exactly one statement that is a query, then walks the *whole* tree with
//!    sqlparser's visitor and checks every query node explicitly, including subqueries, CTE
//!    bodies, derived tables, set operations and subqueries inside expressions: no nested
//!    statement, no data-modifying CTE, no `INTO`, no `FOR UPDATE/SHARE`, no recursive CTE
//!    (a CTE that names itself counts, with or without `RECURSIVE`) unless
//!    [`SqlPolicy::ALLOW_RECURSIVE`], only [`SqlPolicy::allowed_functions`] (unqualified: a
//!    schema-qualified call such as `pg_catalog.pg_sleep(1)` is refused), also for
//!    table-valued functions in `FROM`, no system catalog unless
//!    [`SqlPolicy::ALLOW_SYSTEM_CATALOGS`], and only [`SqlPolicy::allowed_tables`] if set
//!    (CTE names are resolved with their scope, so a CTE cannot stand in for a real table
//!    outside it). Each refusal is a [`SqlRejection`] naming its [`SqlRule`], with a message
//!    that names the offending function, table or clause but never repeats the query.
//!    As a `#[tool]` parameter, `ReadOnlySql` is [`Bounded`](crate::Bounded): its JSON schema
//!    is a string with `maxLength` = [`SqlPolicy::MAX_LEN`].
//!
//! 2. **A read-only connection** ([`open_read_only`], SQLite): opened with
//!    `SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only = ON`, defensive mode, untrusted schema, no
//!    `ATTACH`, no extension loading, a cap on the size of any value.
//!
//! 3. **The engine agrees** ([`query_sqlite`]): an SQLite authorizer re-applies the policy
//!    while the statement is compiled (only reads, only allow-listed functions and tables,
//!    recursion and system tables only if allowed), so a disagreement between sqlparser and
//!    SQLite's own parser fails closed; then `sqlite3_stmt_readonly()` must say the statement
//!    is read-only.
//!
//! 4. **Caps** ([`QueryLimits`]): a progress handler interrupts the query at its deadline;
//!    results stop at `max_rows` rows and `max_bytes` bytes and say they were truncated.
//!
//! ```
//! use mcp_secure::types::sql::{open_read_only, query_sqlite, QueryLimits, ReadOnlySql, Sqlite};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("shop.db");
//! # rusqlite::Connection::open(&path).unwrap().execute_batch(
//! #     "CREATE TABLE orders(id INTEGER, total REAL); INSERT INTO orders VALUES (1, 9.5), (2, 20.0);",
//! # ).unwrap();
//! let conn = open_read_only(&path)?;
//! let sql = ReadOnlySql::<Sqlite>::parse("SELECT count(*) AS n, sum(total) AS revenue FROM orders")?;
//! let result = query_sqlite(&conn, &sql, QueryLimits::default())?;
//! assert_eq!(result.columns, ["n", "revenue"]);
//! assert_eq!(result.rows[0][0], 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # PostgreSQL
//!
//! This crate has no PostgreSQL driver. Check queries with [`ReadOnlySql<Postgres>`], then run
//! each one in its own read-only transaction with a server-side deadline:
//!
//! ```text
//! BEGIN READ ONLY;
//! SET LOCAL statement_timeout = '2000ms';
//! SET LOCAL lock_timeout = '2000ms';
//! SET LOCAL idle_in_transaction_session_timeout = '10000ms';
//! <the query, sent as its own statement, ideally with the extended protocol>
//! ROLLBACK;
//! ```
//!
//! ([`POSTGRES_SESSION_SETUP`], [`postgres_session_setup`], [`POSTGRES_SESSION_END`]). Read rows
//! incrementally from the driver and stop at your row and byte caps rather than wrapping the
//! query in more SQL. Send the query with the extended query protocol (a prepared statement),
//! which makes the server itself refuse a second statement; keep `standard_conforming_strings`
//! on (the default since 9.1), since the parser assumes a backslash in `'...'` is not an
//! escape; and keep `pg_catalog` first on the `search_path` (the default), so allow-listed
//! names resolve to the built-in functions.
//!
//! **Connect as a least-privilege role anyway.** The parser walk is defence in depth, not the
//! boundary:
//!
//! - a read-only transaction still lets functions with side effects run (`pg_sleep`,
//!   `pg_terminate_backend`, `lo_export`, `dblink`, `pg_read_file`, and any user-defined
//!   function); the allow-list keeps them out of the query text, but PostgreSQL can also call
//!   functions that never appear as calls: operators, casts, the attribute notation
//!   `t.func` for `func(t)`, functions inside views, defaults and index expressions;
//! - privileges are the only layer that knows which *rows and columns* a caller may see
//!   (`GRANT SELECT` on the tables the tool needs, row-level security, no superuser, no
//!   `pg_read_server_files`/`pg_execute_server_program`, `REVOKE EXECUTE` on dangerous
//!   functions from `PUBLIC`);
//! - sqlparser does not model all of PostgreSQL, and where it models it differently the check
//!   sees another query than the server runs. Known cases are refused (for example
//!   sqlparser 0.63 reads `FROM ONLY pg_user` as the table `only`, so unquoted reserved words
//!   are refused as names), but the server-side role and transaction are what do not depend on
//!   agreeing with a parser.
//!
//! The same holds for SQLite: the file's permissions, not the parser, are what finally keep a
//! database unwritten.

mod check;
mod linear;
mod policy;
mod postgres;
mod read_only;
mod rejection;
mod sqlite;

pub use policy::{Postgres, SqlDialect, SqlPolicy, Sqlite};
pub use postgres::{POSTGRES_SESSION_END, POSTGRES_SESSION_SETUP, postgres_session_setup};
pub use read_only::ReadOnlySql;
pub use rejection::{SqlRejection, SqlRule};
pub use sqlite::{
    QueryError, QueryLimits, QueryRows, SQLITE_MAX_LIKE_PATTERN_BYTES, SQLITE_MAX_VALUE_BYTES,
    open_read_only, query_sqlite,
};
