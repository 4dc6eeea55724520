//! `ReadOnlySql` against the attack and allowed corpora, and the SQLite execution layers on a
//! real database file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_secure::types::sql::{
    Postgres, QueryError, QueryLimits, ReadOnlySql, SqlDialect, SqlPolicy, SqlRejection, Sqlite,
    open_read_only, query_sqlite,
};
use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Corpus

struct Line {
    number: usize,
    dialect: SqlDialect,
    rule: Option<String>,
    sql: String,
}

fn corpus(name: &str, with_rule: bool) -> Vec<Line> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sql_corpus")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut fields = raw.splitn(if with_rule { 3 } else { 2 }, '\t');
        let dialect = match fields.next() {
            Some("sqlite") => SqlDialect::Sqlite,
            Some("postgres") => SqlDialect::Postgres,
            other => panic!("{name}:{}: unknown dialect {other:?}", i + 1),
        };
        let rule = with_rule.then(|| fields.next().expect("rule").to_owned());
        let sql = fields
            .next()
            .unwrap_or_else(|| panic!("{name}:{}: no SQL", i + 1));
        lines.push(Line {
            number: i + 1,
            dialect,
            rule,
            sql: sql.to_owned(),
        });
    }
    lines
}

fn parse(dialect: SqlDialect, sql: &str) -> Result<(), SqlRejection> {
    match dialect {
        SqlDialect::Sqlite => ReadOnlySql::<Sqlite>::parse(sql).map(drop),
        _ => ReadOnlySql::<Postgres>::parse(sql).map(drop),
    }
}

#[test]
fn every_attack_is_refused_by_its_rule() {
    let attacks = corpus("attacks.txt", true);
    assert!(attacks.len() >= 80, "only {} attacks", attacks.len());
    for dialect in [SqlDialect::Sqlite, SqlDialect::Postgres] {
        assert!(attacks.iter().filter(|a| a.dialect == dialect).count() >= 20);
    }
    let mut failures = Vec::new();
    for a in &attacks {
        let expected = a.rule.as_deref().unwrap();
        match parse(a.dialect, &a.sql) {
            Ok(()) => failures.push(format!(
                "line {}: accepted, expected `{expected}`: {}",
                a.number, a.sql
            )),
            Err(e) => {
                if e.rule().as_str() != expected {
                    failures.push(format!(
                        "line {}: refused by `{}` ({}), expected `{expected}`: {}",
                        a.number,
                        e.rule(),
                        e.detail(),
                        a.sql
                    ));
                }
                // The message never repeats the query (nor, for long queries, most of it).
                let message = e.to_string();
                if a.sql.len() > 24 && message.contains(a.sql.trim()) {
                    failures.push(format!(
                        "line {}: message echoes the query: {message}",
                        a.number
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_allowed_query_is_accepted() {
    let allowed = corpus("allowed.txt", false);
    assert!(
        allowed.len() >= 40,
        "only {} allowed queries",
        allowed.len()
    );
    let mut failures = Vec::new();
    for q in &allowed {
        if let Err(e) = parse(q.dialect, &q.sql) {
            failures.push(format!("line {}: {e}: {}", q.number, q.sql));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn refusals_name_the_offender() {
    let e = ReadOnlySql::<Postgres>::parse("SELECT id, pg_sleep(3600) FROM users").unwrap_err();
    assert_eq!(e.detail(), "function `pg_sleep` is not allowed");
    let e = ReadOnlySql::<Postgres>::parse("SELECT pg_catalog.pg_sleep(1)").unwrap_err();
    assert_eq!(
        e.detail(),
        "schema-qualified function `pg_catalog.pg_sleep` is not allowed"
    );
    let e = ReadOnlySql::<Sqlite>::parse("SELECT * FROM users JOIN sqlite_master").unwrap_err();
    assert_eq!(e.detail(), "system catalog `sqlite_master` is not readable");
    let e =
        ReadOnlySql::<Sqlite>::parse("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d")
            .unwrap_err();
    assert_eq!(e.detail(), "common table expression `d` runs DELETE");
    let e = ReadOnlySql::<Sqlite>::parse(&"x".repeat(1001)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "SQL refused by rule `too_long`: the query is longer than 1000 characters"
    );
}

struct Shop;
impl SqlPolicy for Shop {
    const DIALECT: SqlDialect = SqlDialect::Sqlite;
    fn allowed_tables() -> Option<&'static [&'static str]> {
        Some(&["users", "orders", "public_users"])
    }
}

#[test]
fn table_allow_list() {
    assert!(
        ReadOnlySql::<Shop>::parse(
            "SELECT u.name, sum(o.total) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY 1"
        )
        .is_ok()
    );
    for sql in [
        "SELECT * FROM products",
        "SELECT name FROM users UNION SELECT name FROM products",
        "SELECT * FROM users WHERE id IN (SELECT product_id FROM order_items)",
        "WITH x AS (SELECT * FROM products) SELECT * FROM x",
        "SELECT * FROM (WITH products AS (SELECT 1) SELECT * FROM products) a, products",
    ] {
        let e = ReadOnlySql::<Shop>::parse(sql).unwrap_err();
        assert_eq!(e.rule().as_str(), "table_not_allowed", "{sql}");
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite execution

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT,
                                created_at TEXT, role TEXT);
             CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER, total REAL, status TEXT,
                                 created_at TEXT);
             CREATE TABLE products(id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
             CREATE TABLE order_items(order_id INTEGER, product_id INTEGER, qty INTEGER, price REAL);
             CREATE TABLE deleted_items(id INTEGER PRIMARY KEY, deleted_at TEXT);
             CREATE TABLE api_keys(id INTEGER PRIMARY KEY, secret TEXT);
             CREATE VIEW public_users AS SELECT id, name FROM users;
             CREATE VIEW formatted AS SELECT printf('%05d', id) AS code FROM users;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
             INSERT INTO users SELECT i, 'user' || i, 'user' || i || '@example.com',
                 CASE i % 3 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' ELSE NULL END,
                 date('2024-01-01', '+' || i || ' days'), CASE WHEN i % 10 = 0 THEN 'admin' END
             FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
             INSERT INTO orders SELECT i, 1 + i % 50, (i * 37) % 250, CASE i % 4 WHEN 0 THEN 'paid'
                 WHEN 1 THEN 'open' WHEN 2 THEN '' ELSE 'refunded' END,
                 datetime('2024-01-01', '+' || i || ' hours') FROM n;
             INSERT INTO products VALUES (1, 'Hammer', 'tools', 12.5), (2, 'Saw', 'tools', 20),
                                         (3, 'Apple', 'food', 0.5);
             INSERT INTO order_items VALUES (1, 1, 2, 12.5), (2, 3, 10, 0.5), (3, 2, 1, 20);
             INSERT INTO deleted_items VALUES (1, datetime('now')), (2, '2020-01-01');
             INSERT INTO api_keys VALUES (1, 'sk_live_do_not_leak');",
        )
        .unwrap();
        drop(conn);
        Db { _dir: dir, path }
    }

    fn conn(&self) -> Connection {
        open_read_only(&self.path).unwrap()
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

fn run<P: SqlPolicy>(
    conn: &Connection,
    sql: &str,
    limits: QueryLimits,
) -> Result<mcp_secure::types::sql::QueryRows, QueryError> {
    let sql = ReadOnlySql::<P>::parse(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    query_sqlite(conn, &sql, limits)
}

#[test]
fn a_normal_query_returns_rows() {
    let db = Db::new();
    let conn = db.conn();
    let rows = run::<Sqlite>(
        &conn,
        "SELECT country, count(*) AS n FROM users WHERE country IS NOT NULL GROUP BY country ORDER BY country",
        QueryLimits::default(),
    )
    .unwrap();
    assert_eq!(rows.columns, ["country", "n"]);
    assert_eq!(
        rows.rows,
        vec![vec![json!("DE"), json!(16)], vec![json!("FR"), json!(17)]]
    );
    assert!(!rows.truncated);
    let json = serde_json::to_value(&rows).unwrap();
    assert_eq!(json["rows"][0][0], "DE");
}

#[test]
fn every_allowed_sqlite_query_runs() {
    let db = Db::new();
    let conn = db.conn();
    let mut failures = Vec::new();
    for q in corpus("allowed.txt", false)
        .iter()
        .filter(|q| q.dialect == SqlDialect::Sqlite)
    {
        let sql = ReadOnlySql::<Sqlite>::parse(&q.sql).unwrap();
        if let Err(e) = query_sqlite(&conn, &sql, QueryLimits::default()) {
            failures.push(format!("line {}: {e}: {}", q.number, q.sql));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

struct Recursive;
impl SqlPolicy for Recursive {
    const DIALECT: SqlDialect = SqlDialect::Sqlite;
    const ALLOW_RECURSIVE: bool = true;
}

fn short_deadline() -> QueryLimits {
    QueryLimits {
        deadline: Duration::from_millis(150),
        ..QueryLimits::default()
    }
}

#[test]
fn a_runaway_recursive_cte_hits_the_deadline() {
    let db = Db::new();
    let conn = db.conn();
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) SELECT count(*) FROM c";
    let e = run::<Recursive>(&conn, sql, short_deadline()).unwrap_err();
    assert!(matches!(e, QueryError::DeadlineExceeded { .. }), "{e:?}");
    assert_eq!(e.code(), "deadline_exceeded");
    // The connection is usable afterwards, with no progress handler left behind.
    let rows = run::<Sqlite>(&conn, "SELECT count(*) FROM users", QueryLimits::default()).unwrap();
    assert_eq!(rows.rows[0][0], 50);
}

#[test]
fn a_huge_cross_join_hits_the_deadline() {
    let db = Db::new();
    let conn = db.conn();
    let sql = "SELECT count(*) FROM users a, users b, users c, users d, users e, users f, users g";
    let e = run::<Sqlite>(&conn, sql, short_deadline()).unwrap_err();
    assert!(matches!(e, QueryError::DeadlineExceeded { .. }), "{e:?}");
}

#[test]
fn the_row_cap_truncates() {
    let db = Db::new();
    let conn = db.conn();
    let limits = QueryLimits {
        max_rows: 5,
        ..QueryLimits::default()
    };
    let rows = run::<Sqlite>(&conn, "SELECT id FROM users ORDER BY id", limits).unwrap();
    assert_eq!(rows.rows.len(), 5);
    assert!(rows.truncated);
    assert_eq!(rows.rows[4][0], 5);

    let limits = QueryLimits {
        max_rows: 50,
        ..QueryLimits::default()
    };
    let rows = run::<Sqlite>(&conn, "SELECT id FROM users", limits).unwrap();
    assert_eq!(rows.rows.len(), 50);
    assert!(!rows.truncated, "exactly max_rows rows is not a truncation");
}

#[test]
fn the_byte_cap_truncates() {
    let db = Db::new();
    let conn = db.conn();
    let limits = QueryLimits {
        max_bytes: 300,
        ..QueryLimits::default()
    };
    let rows = run::<Sqlite>(&conn, "SELECT id, email FROM users ORDER BY id", limits).unwrap();
    assert!(rows.truncated);
    assert!(
        !rows.rows.is_empty() && rows.rows.len() < 50,
        "{}",
        rows.rows.len()
    );
    assert!(serde_json::to_string(&rows).unwrap().len() < 600);
}

#[test]
fn the_engine_refuses_what_the_parser_cannot_see() {
    let db = Db::new();
    let conn = db.conn();
    // The view calls `printf`, which is outside the policy; only the authorizer sees it.
    let e = run::<Sqlite>(&conn, "SELECT code FROM formatted", QueryLimits::default()).unwrap_err();
    assert!(matches!(e, QueryError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("printf"), "{e}");

    // A listed view may read an unlisted table, but the unlisted table is not readable directly.
    let rows = run::<Shop>(
        &conn,
        "SELECT name FROM public_users WHERE id = 1",
        QueryLimits::default(),
    )
    .unwrap();
    assert_eq!(rows.rows, vec![vec![json!("user1")]]);
    assert!(ReadOnlySql::<Shop>::parse("SELECT secret FROM api_keys").is_err());
}

#[test]
fn the_read_only_connection_refuses_writes_on_its_own() {
    let db = Db::new();
    let before = db.bytes();
    let conn = db.conn();
    for sql in [
        "DELETE FROM users",
        "UPDATE users SET role = 'admin'",
        "INSERT INTO api_keys VALUES (2, 'x')",
        "DROP TABLE api_keys",
        "CREATE TABLE stolen(x)",
        "CREATE TEMP TABLE stash(x)",
        "ATTACH DATABASE ':memory:' AS evil",
        "SELECT load_extension('/tmp/x.so')",
    ] {
        assert!(
            conn.execute(sql, []).is_err(),
            "{sql} was accepted by the read-only connection"
        );
    }
    // Even with query_only switched off, the file is opened read-only.
    conn.execute_batch("PRAGMA query_only = OFF").unwrap();
    assert!(conn.execute("DELETE FROM users", []).is_err());
    drop(conn);
    assert!(db.bytes() == before, "the database file changed");
}

/// Allows what the default policy refuses, to push more attacks through to SQLite.
struct Permissive;
impl SqlPolicy for Permissive {
    const DIALECT: SqlDialect = SqlDialect::Sqlite;
    const ALLOW_RECURSIVE: bool = true;
    const ALLOW_SYSTEM_CATALOGS: bool = true;
}

#[test]
fn no_attack_changes_the_database_file() {
    let db = Db::new();
    let before = db.bytes();
    let conn = db.conn();
    let mut ran = 0;
    for a in corpus("attacks.txt", true) {
        if let Ok(sql) = ReadOnlySql::<Sqlite>::parse(&a.sql) {
            let _ = query_sqlite(&conn, &sql, short_deadline());
            ran += 1;
        }
        if let Ok(sql) = ReadOnlySql::<Permissive>::parse(&a.sql) {
            let _ = query_sqlite(&conn, &sql, short_deadline());
            ran += 1;
        }
    }
    assert!(
        ran > 0,
        "the permissive policy lets some attacks reach SQLite"
    );
    drop(conn);
    assert!(db.bytes() == before, "the database file changed");
}

// ---------------------------------------------------------------------------------------------
// Robustness

fn parse_both(sql: &str) {
    let _ = ReadOnlySql::<Sqlite>::parse(sql);
    let _ = ReadOnlySql::<Postgres>::parse(sql);
    let _ = ReadOnlySql::<Permissive>::parse(sql);
}

fn corpus_queries() -> &'static [String] {
    static QUERIES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    QUERIES.get_or_init(|| {
        let mut all: Vec<String> = corpus("attacks.txt", true)
            .into_iter()
            .map(|l| l.sql)
            .collect();
        all.extend(corpus("allowed.txt", false).into_iter().map(|l| l.sql));
        all
    })
}

/// Pieces that make a random string more likely to get deep into the parser.
const SQL_PIECES: &[&str] = &[
    "SELECT ",
    "FROM ",
    "WHERE ",
    "WITH ",
    "RECURSIVE ",
    "AS ",
    "(",
    ")",
    ",",
    ";",
    "'",
    "\"",
    "$$",
    "/*",
    "*/",
    "--",
    "\n",
    "UNION ",
    "ALL ",
    "JOIN ",
    "ON ",
    "INTO ",
    "FOR UPDATE ",
    "DELETE ",
    "RETURNING ",
    "VALUES ",
    "x ",
    "users ",
    "pg_sleep",
    "sqlite_master ",
    "1 ",
    "= ",
    "OVER ",
    "PARTITION BY ",
    "ORDER BY ",
    "LIMIT ",
    "CASE ",
    "WHEN ",
    "END ",
    "::",
    "[",
    "]",
    "`",
    "ＳＥＬＥＣＴ",
    "\u{0}",
    "е",
    "$1",
    "?",
    "@",
    ":x ",
    "LATERAL ",
    "TABLE ",
    "ONLY ",
    "NOT ",
    "EXISTS ",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Case(usize),
}

fn apply(sql: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = sql.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match edit {
            Edit::Insert(at, s) => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, s.chars());
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            Edit::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(chars.len());
                if at < end {
                    let copy: Vec<char> = chars[at..end].to_vec();
                    chars.splice(end..end, copy);
                }
            }
            Edit::Case(at) => {
                if let Some(c) = chars.get_mut(at % len) {
                    *c = if c.is_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            prop::sample::select(SQL_PIECES).prop_map(str::to_owned)
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Edit::Insert(a, c.to_string())),
        (any::<usize>(), 0usize..20).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        any::<usize>().prop_map(Edit::Case),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in any::<String>()) {
        parse_both(&s);
    }

    #[test]
    fn random_sql_like_strings_never_panic(pieces in prop::collection::vec(prop::sample::select(SQL_PIECES), 0..60)) {
        parse_both(&pieces.concat());
    }

    #[test]
    fn mutated_corpus_queries_never_panic(
        index in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let sql = apply(index.get::<String>(corpus_queries()), &edits);
        parse_both(&sql);
        // Whatever is accepted is still one read-only query, checked again from its own text.
        if let Ok(q) = ReadOnlySql::<Sqlite>::parse(&sql) {
            prop_assert!(ReadOnlySql::<Sqlite>::parse(q.as_str()).is_ok());
        }
    }
}
