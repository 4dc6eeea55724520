//! The execution layers for SQLite: a read-only connection, an authorizer, `readonly()`, and a
//! deadline with row and byte caps.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use schemars::JsonSchema;
use serde::Serialize;

use super::check::{cte_names, function_listed, table_listed};
use super::policy::{SqlDialect, SqlPolicy, is_system_relation};
use super::read_only::ReadOnlySql;
use super::rejection::quote_name;

/// The largest string or blob a connection from [`open_read_only`] will build or return
/// (`SQLITE_LIMIT_LENGTH`), in bytes: 16 MiB.
pub const SQLITE_MAX_VALUE_BYTES: usize = 16 << 20;

/// The longest `LIKE` or `GLOB` pattern a connection from [`open_read_only`] accepts
/// (`SQLITE_LIMIT_LIKE_PATTERN_LENGTH`), in bytes: 100. Matching costs up to the length of the
/// text times the length of the pattern, in one step the deadline cannot interrupt.
pub const SQLITE_MAX_LIKE_PATTERN_BYTES: usize = 100;

/// SQLite implements these operators as functions, and the authorizer sees them as such.
const OPERATOR_FUNCTIONS: &[&str] = &["like", "glob", "regexp", "match", "->", "->>"];

/// Opens an SQLite database for queries only.
///
/// - `SQLITE_OPEN_READ_ONLY | SQLITE_OPEN_NO_MUTEX`, without `SQLITE_OPEN_URI` (the path is a
///   path, so it cannot smuggle `?mode=rw`) and without `SQLITE_OPEN_CREATE` (a missing file is
///   an error);
/// - `PRAGMA query_only = ON`, which [`query_sqlite`] checks before every query;
/// - the defensive flag on and `trusted_schema` off, so functions with side effects cannot run
///   from views or triggers;
/// - `ATTACH` impossible (`SQLITE_LIMIT_ATTACHED = 0`) and strings and blobs capped at
///   [`SQLITE_MAX_VALUE_BYTES`] (`SQLITE_LIMIT_LENGTH`), so `replace(replace(...))` cannot
///   build a gigabyte;
/// - `LIKE` and `GLOB` patterns capped at [`SQLITE_MAX_LIKE_PATTERN_BYTES`], and `instr`,
///   `replace`, `trim`, `ltrim` and `rtrim` replaced by linear-time versions with the same
///   results: one call of the built-ins can run for minutes on values of a few megabytes, and
///   the deadline is only checked between SQLite's instructions, never inside a function;
/// - a 500 ms busy timeout (time spent waiting for a lock is not seen by the deadline);
/// - no extension loading: this crate does not enable rusqlite's `load_extension` feature and
///   never enables it on the connection.
///
/// The database file is never written by this connection.
pub fn open_read_only(path: impl AsRef<Path>) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, SQLITE_MAX_VALUE_BYTES as i32)?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        SQLITE_MAX_LIKE_PATTERN_BYTES as i32,
    )?;
    super::linear::install(&conn)?;
    conn.busy_timeout(Duration::from_millis(500))?;
    Ok(conn)
}

/// Caps for one query run by [`query_sqlite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Wall-clock time from the call until the query is interrupted (preparing and stepping).
    /// Default: 2 s.
    pub deadline: Duration,
    /// The most rows returned; more rows set [`QueryRows::truncated`]. Default: 1000.
    pub max_rows: usize,
    /// The most bytes of result (column names and values, measured as their JSON encoding,
    /// approximately); the row that would cross it and all later rows are left out and
    /// [`QueryRows::truncated`] is set. Default: 1 MiB.
    pub max_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            deadline: Duration::from_secs(2),
            max_rows: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// The result of a query: column names and rows of JSON values.
///
/// SQLite values map to JSON as: `NULL` -> `null`, integers and reals -> numbers (a non-finite
/// real -> `null`), text -> string (invalid UTF-8 replaced), blob -> `{"blob_hex": "..."}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct QueryRows {
    /// The result's column names, in order.
    pub columns: Vec<String>,
    /// The rows, each with one value per column.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when rows were left out because of [`QueryLimits::max_rows`] or
    /// [`QueryLimits::max_bytes`].
    pub truncated: bool,
}

/// Why [`query_sqlite`] did not return rows. Messages never contain the query text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The execution layer refused the query: the statement is not read-only, the SQLite
    /// authorizer denied something (a write, a `PRAGMA`, a function or table outside the
    /// policy), the connection is not `query_only`, or the policy is not an SQLite policy.
    #[error("query refused: {reason}")]
    Refused {
        /// What was refused.
        reason: String,
    },
    /// The query ran past [`QueryLimits::deadline`] and was interrupted.
    #[error("query interrupted: it ran longer than {} ms", deadline.as_millis())]
    DeadlineExceeded {
        /// The deadline that was exceeded.
        deadline: Duration,
    },
    /// SQLite reported an error (no such table, a value too big, ...).
    #[error("database error: {message}")]
    Sqlite {
        /// SQLite's message, without the query.
        message: String,
    },
}

impl QueryError {
    /// A stable name for the kind of error: `refused`, `deadline_exceeded` or `sqlite`.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Refused { .. } => "refused",
            QueryError::DeadlineExceeded { .. } => "deadline_exceeded",
            QueryError::Sqlite { .. } => "sqlite",
        }
    }
}

fn refused(reason: impl Into<String>) -> QueryError {
    QueryError::Refused {
        reason: reason.into(),
    }
}

/// SQLite's message without the statement rusqlite attaches to some errors; short and on one
/// line.
fn sqlite_message(e: &rusqlite::Error) -> String {
    let raw = match e {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        rusqlite::Error::SqliteFailure(code, None) => code.to_string(),
        other => other.to_string(),
    };
    let mut message: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if raw.chars().count() > 200 {
        message.push('…');
    }
    message
}

/// Runs a checked query on a read-only connection, under a deadline and row and byte caps.
///
/// In order:
/// 1. the policy must be an SQLite policy, and the connection must be `query_only` (as
///    [`open_read_only`] makes it);
/// 2. an authorizer is installed that allows only reads, the policy's functions (plus the
///    functions SQLite uses for `LIKE`, `GLOB`, `REGEXP`, `MATCH`, `->` and `->>`), recursion
///    only if the policy allows it, system tables only if it allows them, and, with a table
///    allow-list, only listed tables (or tables read through a listed view);
/// 3. a progress handler interrupts the query at [`QueryLimits::deadline`];
/// 4. the statement is prepared and refused unless `sqlite3_stmt_readonly` says it is read-only;
/// 5. rows are read up to [`QueryLimits::max_rows`] and [`QueryLimits::max_bytes`].
///
/// The authorizer sees what the query text does not: functions called inside views must be
/// allow-listed too, and a view's own reads are allowed only if the view is allow-listed (when
/// a table list is set).
///
/// The authorizer and the progress handler are removed before returning (they replace any the
/// connection had). Parameters (`?`) are not bound and read as `NULL`.
pub fn query_sqlite<P: SqlPolicy>(
    conn: &Connection,
    sql: &ReadOnlySql<P>,
    limits: QueryLimits,
) -> Result<QueryRows, QueryError> {
    let deadline = Instant::now() + limits.deadline;
    if P::DIALECT != SqlDialect::Sqlite {
        return Err(refused(format!(
            "the query was checked with the {} policy; use an SQLite policy",
            P::DIALECT
        )));
    }
    let query_only: bool = conn
        .pragma_query_value(None, "query_only", |row| row.get(0))
        .map_err(|e| QueryError::Sqlite {
            message: sqlite_message(&e),
        })?;
    if !query_only {
        return Err(refused(
            "the connection is not query-only; open it with `open_read_only`",
        ));
    }
    let views = match P::allowed_tables() {
        Some(_) => view_names(conn)?,
        None => HashSet::new(),
    };

    let denial = Arc::new(Mutex::new(None::<String>));
    let interrupted = Arc::new(AtomicBool::new(false));
    let authorizer = Authorizer {
        functions: P::allowed_functions(),
        tables: P::allowed_tables(),
        allow_recursive: P::ALLOW_RECURSIVE,
        allow_system: P::ALLOW_SYSTEM_CATALOGS,
        views,
        ctes: cte_names(sql.statement(), SqlDialect::Sqlite)
            .into_iter()
            .collect(),
    };
    // Declared before the statement, so it is dropped (and the hooks removed) after it.
    let _hooks = Hooks::install(
        conn,
        authorizer,
        Arc::clone(&denial),
        deadline,
        Arc::clone(&interrupted),
    );
    let fail = |e: rusqlite::Error| -> QueryError {
        if interrupted.load(Ordering::SeqCst) {
            return QueryError::DeadlineExceeded {
                deadline: limits.deadline,
            };
        }
        if let Some(reason) = denial.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return refused(reason);
        }
        QueryError::Sqlite {
            message: sqlite_message(&e),
        }
    };

    let mut stmt = conn.prepare(sql.as_str()).map_err(fail)?;
    if !stmt.readonly() {
        return Err(refused("the statement would modify the database"));
    }
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let width = columns.len();
    let mut bytes: usize = 2 + columns.iter().map(|c| c.len() + 3).sum::<usize>();
    let mut out = QueryRows {
        columns,
        rows: Vec::new(),
        truncated: false,
    };
    let mut rows = stmt.query([]).map_err(fail)?;
    'rows: while let Some(row) = rows.next().map_err(fail)? {
        if out.rows.len() >= limits.max_rows {
            out.truncated = true;
            break;
        }
        let mut values = Vec::with_capacity(width);
        let mut row_bytes = 3;
        for i in 0..width {
            let value = row.get_ref(i).map_err(fail)?;
            row_bytes += json_size(value) + 1;
            if bytes + row_bytes > limits.max_bytes {
                out.truncated = true;
                break 'rows;
            }
            values.push(to_json(value));
        }
        bytes += row_bytes;
        out.rows.push(values);
    }
    Ok(out)
}

/// The (lowercase) names of the views in `main`, read before the authorizer is installed.
fn view_names(conn: &Connection) -> Result<HashSet<String>, QueryError> {
    let wrap = |e: rusqlite::Error| QueryError::Sqlite {
        message: sqlite_message(&e),
    };
    let mut stmt = conn
        .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'view'")
        .map_err(wrap)?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(wrap)?
        .map(|n| n.map(|n| n.to_ascii_lowercase()))
        .collect::<Result<_, _>>()
        .map_err(wrap)?;
    Ok(names)
}

/// The approximate size of a value in JSON.
fn json_size(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Null => 4,
        ValueRef::Integer(_) => 20,
        ValueRef::Real(_) => 24,
        ValueRef::Text(t) => t.len() + 2,
        ValueRef::Blob(b) => b.len() * 2 + 16,
    }
}

fn to_json(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => serde_json::json!({ "blob_hex": hex::encode(b) }),
    }
}

/// The decisions of the SQLite authorizer (the engine-level copy of the policy).
struct Authorizer {
    functions: &'static [&'static str],
    tables: Option<&'static [&'static str]>,
    allow_recursive: bool,
    allow_system: bool,
    /// Views of the database: reads made through an allow-listed view are allowed.
    views: HashSet<String>,
    /// CTE names of the query: a CTE named like a view is not that view.
    ctes: HashSet<String>,
}

impl Authorizer {
    fn decide(&self, ctx: &AuthContext<'_>) -> Result<(), String> {
        match ctx.action {
            AuthAction::Select => Ok(()),
            AuthAction::Read { table_name, .. } => {
                self.read(table_name, ctx.database_name, ctx.accessor)
            }
            AuthAction::Function { function_name } => {
                let name = function_name.to_ascii_lowercase();
                if function_listed(&name, self.functions, SqlDialect::Sqlite)
                    || OPERATOR_FUNCTIONS.contains(&name.as_str())
                {
                    Ok(())
                } else {
                    Err(format!(
                        "function {} is not allowed",
                        quote_name(function_name)
                    ))
                }
            }
            AuthAction::Recursive if self.allow_recursive => Ok(()),
            AuthAction::Recursive => {
                Err("recursive common table expressions are not allowed".into())
            }
            AuthAction::Pragma { .. } => Err("PRAGMA is not allowed".into()),
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
                Err("ATTACH and DETACH are not allowed".into())
            }
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                Err("transaction control is not allowed".into())
            }
            AuthAction::Insert { .. } | AuthAction::Update { .. } | AuthAction::Delete { .. } => {
                Err("writing is not allowed".into())
            }
            _ => Err("only reading is allowed".into()),
        }
    }

    fn read(
        &self,
        table: &str,
        database: Option<&str>,
        accessor: Option<&str>,
    ) -> Result<(), String> {
        let name = table.to_ascii_lowercase();
        if !self.allow_system && is_system_relation(&[&name]) {
            return Err(format!(
                "system catalog {} is not readable",
                quote_name(table)
            ));
        }
        let Some(list) = self.tables else {
            return Ok(());
        };
        let parts = match database {
            Some(db) if !db.eq_ignore_ascii_case("main") => {
                vec![db.to_ascii_lowercase(), name.clone()]
            }
            _ => vec![name.clone()],
        };
        if table_listed(&parts, list, SqlDialect::Sqlite)
            // A table-valued function the policy allows (`json_each`).
            || (parts.len() == 1 && function_listed(&name, self.functions, SqlDialect::Sqlite))
        {
            return Ok(());
        }
        if let Some(view) = accessor.map(str::to_ascii_lowercase)
            && self.views.contains(&view)
            && !self.ctes.contains(&view)
            && table_listed(std::slice::from_ref(&view), list, SqlDialect::Sqlite)
        {
            return Ok(());
        }
        Err(format!(
            "table {} is not in the allow-list",
            quote_name(table)
        ))
    }
}

/// Installs the authorizer and the progress handler; removes both when dropped.
struct Hooks<'c>(&'c Connection);

impl<'c> Hooks<'c> {
    fn install(
        conn: &'c Connection,
        authorizer: Authorizer,
        denial: Arc<Mutex<Option<String>>>,
        deadline: Instant,
        interrupted: Arc<AtomicBool>,
    ) -> Self {
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            match authorizer.decide(&ctx) {
                Ok(()) => Authorization::Allow,
                Err(reason) => {
                    let mut slot = denial.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(reason);
                    Authorization::Deny
                }
            }
        }));
        conn.progress_handler(
            1000,
            Some(move || {
                let late = Instant::now() >= deadline;
                if late {
                    interrupted.store(true, Ordering::SeqCst);
                }
                late
            }),
        );
        Hooks(conn)
    }
}

impl Drop for Hooks<'_> {
    fn drop(&mut self) {
        self.0.progress_handler(0, None::<fn() -> bool>);
        self.0
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}

/// A refused query is the caller's `invalid_input`, a query past its deadline a `timeout`, and a
/// database error a `failed` call. None of the messages contains the query.
impl From<QueryError> for crate::ToolError {
    fn from(e: QueryError) -> Self {
        let code = match &e {
            QueryError::Refused { .. } => crate::ErrorCode::InvalidInput,
            QueryError::DeadlineExceeded { .. } => crate::ErrorCode::Timeout,
            QueryError::Sqlite { .. } => crate::ErrorCode::Failed,
        };
        crate::ToolError::new(code, e.to_string()).with_detail("query_error", e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::sql::{Postgres, Sqlite};

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let rw = Connection::open(&path).unwrap();
        rw.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB);
             INSERT INTO t VALUES (1, 'a', 1.5, x'00ff'), (2, 'b', NULL, NULL), (3, 'c', 2.0, NULL);
             CREATE TABLE secret(s TEXT); INSERT INTO secret VALUES ('k');
             CREATE VIEW public_t AS SELECT id, name FROM t;
             CREATE VIEW leak AS SELECT s FROM secret;",
        )
        .unwrap();
        drop(rw);
        (dir, open_read_only(&path).unwrap())
    }

    #[test]
    fn values_map_to_json() {
        let (_dir, conn) = db();
        let q = ReadOnlySql::<Sqlite>::parse("SELECT id, name, score, data FROM t ORDER BY id")
            .unwrap();
        let rows = query_sqlite(&conn, &q, QueryLimits::default()).unwrap();
        assert_eq!(rows.columns, ["id", "name", "score", "data"]);
        assert_eq!(
            serde_json::to_value(&rows.rows).unwrap(),
            serde_json::json!([
                [1, "a", 1.5, {"blob_hex": "00ff"}],
                [2, "b", null, null],
                [3, "c", 2.0, null],
            ])
        );
        assert!(!rows.truncated);
    }

    #[test]
    fn hooks_are_removed_afterwards() {
        let (_dir, conn) = db();
        let q = ReadOnlySql::<Sqlite>::parse("SELECT count(*) FROM t").unwrap();
        query_sqlite(&conn, &q, QueryLimits::default()).unwrap();
        // Without the authorizer, a function outside the policy prepares again.
        let n: i64 = conn
            .query_row("SELECT length(printf('%s', 'abc'))", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn wrong_dialect_and_writable_connection_are_refused() {
        let (dir, conn) = db();
        let q = ReadOnlySql::<Postgres>::parse("SELECT 1").unwrap();
        let e = query_sqlite(&conn, &q, QueryLimits::default()).unwrap_err();
        assert_eq!(e.code(), "refused");

        let rw = Connection::open(dir.path().join("t.db")).unwrap();
        let q = ReadOnlySql::<Sqlite>::parse("SELECT 1").unwrap();
        let e = query_sqlite(&rw, &q, QueryLimits::default()).unwrap_err();
        assert!(e.to_string().contains("open_read_only"), "{e}");
    }

    struct Listed;
    impl SqlPolicy for Listed {
        const DIALECT: SqlDialect = SqlDialect::Sqlite;
        fn allowed_tables() -> Option<&'static [&'static str]> {
            Some(&["t", "public_t", "leak"])
        }
    }

    #[test]
    fn authorizer_applies_the_table_allow_list_behind_views_and_ctes() {
        let (_dir, conn) = db();
        // A listed view may read an unlisted table.
        let q = ReadOnlySql::<Listed>::parse("SELECT name FROM public_t ORDER BY id").unwrap();
        assert_eq!(
            query_sqlite(&conn, &q, QueryLimits::default())
                .unwrap()
                .rows
                .len(),
            3
        );
        let q = ReadOnlySql::<Listed>::parse("SELECT s FROM leak").unwrap();
        assert_eq!(
            query_sqlite(&conn, &q, QueryLimits::default())
                .unwrap()
                .rows
                .len(),
            1
        );

        let a = Authorizer {
            functions: Sqlite::allowed_functions(),
            tables: Listed::allowed_tables(),
            allow_recursive: false,
            allow_system: false,
            views: ["public_t".to_owned(), "leak".to_owned()].into(),
            ctes: ["public_t".to_owned()].into(),
        };
        assert!(a.read("t", Some("main"), None).is_ok());
        assert!(a.read("secret", Some("main"), None).is_err());
        assert!(a.read("secret", Some("main"), Some("leak")).is_ok());
        // A CTE that shadows a listed view does not inherit its rights.
        assert!(a.read("secret", Some("main"), Some("public_t")).is_err());
        assert!(a.read("secret", Some("main"), Some("other")).is_err());
        assert!(a.read("sqlite_master", Some("main"), None).is_err());
        assert!(a.read("t", Some("temp"), None).is_err());
    }

    /// A megabyte of `a`, built by nested `replace` (every function here is allow-listed).
    const MEGABYTE_OF_A: &str = "replace(replace(replace(replace('aaaaaaaaaaaaaaaa', 'a', 'aaaaaaaaaaaaaaaa'), 'a', 'aaaaaaaaaaaaaaaa'), 'a', 'aaaaaaaaaaaaaaaa'), 'a', 'aaaaaaaaaaaaaaaa')";

    /// One call of an allow-listed function can do quadratic work inside SQLite, where the
    /// progress handler never runs: the query must still end near its deadline.
    fn stops_near_the_deadline(expr: &str) {
        let (_dir, conn) = db();
        let sql = format!("WITH h(s) AS (SELECT {MEGABYTE_OF_A}) SELECT {expr} FROM h");
        let q = ReadOnlySql::<Sqlite>::parse(&sql).unwrap();
        let limits = QueryLimits {
            deadline: Duration::from_millis(500),
            ..QueryLimits::default()
        };
        let started = Instant::now();
        let result = query_sqlite(&conn, &q, limits);
        let took = started.elapsed();
        // Generous: the built-ins ran for 50 s to several minutes here; the query should end
        // within a second or so, and a loaded machine must not fail it.
        assert!(
            took < Duration::from_secs(10),
            "{expr}: ran {took:?} past a 500 ms deadline ({result:?})"
        );
    }

    #[test]
    fn quadratic_instr_stops_near_the_deadline() {
        stops_near_the_deadline("instr(s || s || s || s, s || s || 'b')");
    }

    #[test]
    fn quadratic_replace_stops_near_the_deadline() {
        stops_near_the_deadline("length(replace(s || s || s || s, s || s || 'b', 'x'))");
    }

    #[test]
    fn quadratic_trim_stops_near_the_deadline() {
        stops_near_the_deadline("length(ltrim(s, substr(replace(s, 'a', 'b'), 1, 30000) || 'a'))");
    }

    #[test]
    fn quadratic_like_stops_near_the_deadline() {
        stops_near_the_deadline("s LIKE '%' || substr(s, 1, 40000) || 'b'");
    }

    #[test]
    fn like_with_the_longest_pattern_stops_near_the_deadline() {
        stops_near_the_deadline("s || s || s || s LIKE '%' || substr(s, 1, 98) || 'b'");
    }

    #[test]
    fn quadratic_glob_stops_near_the_deadline() {
        stops_near_the_deadline("s GLOB '*' || substr(s, 1, 40000) || 'b'");
    }

    #[test]
    fn errors_do_not_contain_the_query() {
        let (_dir, conn) = db();
        let q = ReadOnlySql::<Sqlite>::parse(
            "SELECT hunter2_column FROM t WHERE name = 'hunter2_value'",
        )
        .unwrap();
        let e = query_sqlite(&conn, &q, QueryLimits::default()).unwrap_err();
        assert_eq!(e.code(), "sqlite");
        assert!(!e.to_string().contains("hunter2_value"), "{e}");
        assert!(!e.to_string().contains("WHERE"), "{e}");
    }
}
