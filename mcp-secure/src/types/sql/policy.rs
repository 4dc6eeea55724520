//! What a [`ReadOnlySql`](super::ReadOnlySql) accepts: the dialect, the length cap, and the
//! allow-lists of functions and tables.

/// The SQL dialect a query is parsed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlDialect {
    /// SQLite, as bundled with `rusqlite`.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl SqlDialect {
    /// The dialect's name, as used in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            SqlDialect::Sqlite => "sqlite",
            SqlDialect::Postgres => "postgres",
        }
    }

    /// The default function allow-list of this dialect: aggregates, window functions and
    /// side-effect-free scalar functions for analytic queries.
    ///
    /// Nothing that reads or writes files, sleeps, loads code, changes settings, talks to other
    /// servers, runs a query given as a string, allocates a caller-chosen amount of memory
    /// (`randomblob`, `zeroblob`, `printf`, `repeat`, `lpad`), or generates an unbounded number
    /// of rows (`generate_series`).
    pub const fn default_functions(self) -> &'static [&'static str] {
        match self {
            SqlDialect::Sqlite => SQLITE_FUNCTIONS,
            SqlDialect::Postgres => POSTGRES_FUNCTIONS,
        }
    }

    /// The schema an unqualified table name resolves to (`main`, `public`).
    pub(crate) const fn default_schema(self) -> &'static str {
        match self {
            SqlDialect::Sqlite => "main",
            SqlDialect::Postgres => "public",
        }
    }
}

impl std::fmt::Display for SqlDialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`ReadOnlySql`](super::ReadOnlySql) accepts.
///
/// Use [`Sqlite`] or [`Postgres`] as they are, or write a policy of your own to restrict the
/// tables a query may read:
///
/// ```
/// use mcp_secure::types::sql::{ReadOnlySql, SqlDialect, SqlPolicy};
///
/// struct Shop;
///
/// impl SqlPolicy for Shop {
///     const DIALECT: SqlDialect = SqlDialect::Sqlite;
///     const MAX_LEN: usize = 2000;
///     fn allowed_tables() -> Option<&'static [&'static str]> {
///         Some(&["customers", "orders"])
///     }
/// }
///
/// assert!(ReadOnlySql::<Shop>::parse("SELECT count(*) FROM orders").is_ok());
/// let refused = ReadOnlySql::<Shop>::parse("SELECT * FROM api_keys").unwrap_err();
/// assert_eq!(refused.rule().as_str(), "table_not_allowed");
/// ```
pub trait SqlPolicy: Send + Sync + 'static {
    /// The dialect queries are parsed with.
    const DIALECT: SqlDialect;

    /// The longest query accepted, in characters. Checked before parsing.
    const MAX_LEN: usize = 1000;

    /// Whether recursive common table expressions are accepted. A recursive CTE can run
    /// forever; only enable this where the execution layer enforces a deadline.
    const ALLOW_RECURSIVE: bool = false;

    /// Whether system catalogs (`sqlite_master`, `pragma_*`, `pg_catalog`,
    /// `information_schema`, ...) may be read.
    const ALLOW_SYSTEM_CATALOGS: bool = false;

    /// The functions a query may call (compared with unqualified, lowercase names). Also the
    /// table-valued functions it may use in `FROM`. Defaults to
    /// [`SqlDialect::default_functions`].
    fn allowed_functions() -> &'static [&'static str] {
        Self::DIALECT.default_functions()
    }

    /// The tables (and views) a query may read, or `None` for any table that is not a system
    /// catalog. Entries are table names, optionally schema-qualified (`"reporting.sales"`); an
    /// unqualified entry also matches the name qualified with the default schema (`main.x`,
    /// `public.x`). SQLite names compare case-insensitively; PostgreSQL names compare as
    /// PostgreSQL resolves them (unquoted identifiers are folded to lowercase).
    fn allowed_tables() -> Option<&'static [&'static str]> {
        None
    }
}

/// The default SQLite policy: one read-only query of at most 1000 characters, no recursive CTEs,
/// no system catalogs, [`SqlDialect::default_functions`], any other table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqlite;

impl SqlPolicy for Sqlite {
    const DIALECT: SqlDialect = SqlDialect::Sqlite;
}

/// The default PostgreSQL policy: one read-only query of at most 1000 characters, no recursive
/// CTEs, no system catalogs, [`SqlDialect::default_functions`], any other table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Postgres;

impl SqlPolicy for Postgres {
    const DIALECT: SqlDialect = SqlDialect::Postgres;
}

const SQLITE_FUNCTIONS: &[&str] = &[
    // Aggregates.
    "count",
    "sum",
    "total",
    "avg",
    "min",
    "max",
    "group_concat",
    "string_agg",
    // NULL handling and conditionals.
    "coalesce",
    "ifnull",
    "nullif",
    "iif",
    // Numbers.
    "abs",
    "round",
    "sign",
    // Text.
    "lower",
    "upper",
    "length",
    "octet_length",
    "substr",
    "substring",
    "trim",
    "ltrim",
    "rtrim",
    "replace",
    "instr",
    "unicode",
    "char",
    "typeof",
    "concat",
    "concat_ws",
    // Dates and times.
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // Window functions.
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // JSON.
    "json",
    "json_extract",
    "json_array_length",
    "json_type",
    "json_valid",
    "json_object",
    "json_array",
    "json_group_array",
    "json_group_object",
];

const POSTGRES_FUNCTIONS: &[&str] = &[
    // Aggregates.
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "percentile_cont",
    "percentile_disc",
    "mode",
    // NULL handling and conditionals.
    "coalesce",
    "nullif",
    "greatest",
    "least",
    // Constructors the parser reads as calls: `ARRAY(SELECT ...)`, `ROW(a, b)`.
    "array",
    "row",
    // Numbers.
    "abs",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "mod",
    "sign",
    "sqrt",
    "power",
    "exp",
    "ln",
    "log",
    // Text.
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "position",
    "strpos",
    "left",
    "right",
    "split_part",
    "concat",
    "concat_ws",
    "initcap",
    "starts_with",
    "reverse",
    // Dates and times.
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "date_trunc",
    "date_part",
    "extract",
    "age",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "make_date",
    // Window functions.
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // JSON.
    "json_extract_path",
    "json_extract_path_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "json_array_length",
    "jsonb_array_length",
    "json_typeof",
    "jsonb_typeof",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "to_json",
    "to_jsonb",
];

/// Whether a relation name (its parts, any case) names a system catalog of either dialect.
///
/// Both dialects' catalogs are refused under either policy: refusing a user table called
/// `pg_x` in SQLite costs little, and one list is easier to get right.
pub(crate) fn is_system_relation<S: AsRef<str>>(parts: &[S]) -> bool {
    let last = parts.len().saturating_sub(1);
    parts.iter().enumerate().any(|(i, part)| {
        let p = part.as_ref().to_ascii_lowercase();
        p == "pg_catalog"
            || p == "information_schema"
            || p.starts_with("pg_")
            || p.starts_with("sqlite_")
            || (i == last && (p.starts_with("pragma_") || p == "dbstat"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lists_hold_nothing_dangerous() {
        for dialect in [SqlDialect::Sqlite, SqlDialect::Postgres] {
            for f in dialect.default_functions() {
                assert_eq!(*f, f.to_ascii_lowercase(), "{f}");
                for bad in ["pg_", "lo_", "dblink", "sqlite_", "pragma_"] {
                    assert!(!f.starts_with(bad), "{f}");
                }
                for bad in [
                    "load_extension",
                    "randomblob",
                    "zeroblob",
                    "set_config",
                    "current_setting",
                    "readfile",
                    "writefile",
                    "edit",
                    "fts3_tokenizer",
                    "printf",
                    "format",
                    "repeat",
                    "lpad",
                    "rpad",
                    "generate_series",
                    "nextval",
                    "setval",
                    "query_to_xml",
                    "ts_stat",
                ] {
                    assert_ne!(*f, bad);
                }
            }
        }
    }

    #[test]
    fn system_relations() {
        assert!(is_system_relation(&["sqlite_master"]));
        assert!(is_system_relation(&["main", "SQLITE_SCHEMA"]));
        assert!(is_system_relation(&["sqlite_temp_master"]));
        assert!(is_system_relation(&["pragma_table_info"]));
        assert!(is_system_relation(&["dbstat"]));
        assert!(is_system_relation(&["pg_catalog", "anything"]));
        assert!(is_system_relation(&["information_schema", "tables"]));
        assert!(is_system_relation(&["pg_user"]));
        assert!(!is_system_relation(&["users"]));
        assert!(!is_system_relation(&["deleted_items"]));
        assert!(!is_system_relation(&["pragma_notes", "t"]));
    }
}
