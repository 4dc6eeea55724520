//! Why a query was refused.

use std::fmt;

/// The rule that refused a query. [`SqlRule::as_str`] is a stable name, safe to match on and to
/// show to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlRule {
    /// Longer than the policy's `MAX_LEN` characters.
    TooLong,
    /// Nothing but whitespace and comments.
    Empty,
    /// The parser could not parse it (this includes NUL characters and look-alike Unicode
    /// keywords).
    ParseError,
    /// More than one statement (`SELECT 1; DELETE ...`).
    MultipleStatements,
    /// The statement is not a query (`SELECT`, `VALUES`, `WITH ... SELECT`): `INSERT`, `PRAGMA`,
    /// `ATTACH`, `COPY`, `EXPLAIN`, `CREATE`, ...
    NotAQuery,
    /// A common table expression modifies data (`WITH d AS (DELETE ... RETURNING *) ...`).
    DataModifyingCte,
    /// `SELECT ... INTO` creates a table.
    SelectInto,
    /// `FOR UPDATE` / `FOR SHARE` takes row locks.
    LockingClause,
    /// A recursive common table expression, which can run forever.
    RecursiveCte,
    /// A function (or table-valued function) that is not in the policy's allow-list, or a
    /// schema-qualified function.
    FunctionNotAllowed,
    /// A system catalog (`sqlite_master`, `pragma_*`, `pg_catalog`, `information_schema`, ...).
    SystemCatalog,
    /// A table that is not in the policy's allow-list.
    TableNotAllowed,
    /// A data-modifying statement nested inside the query.
    NestedStatement,
    /// Syntax that a read-only analytic query does not need and that this check does not
    /// analyse (dialect extensions such as `FOR XML`, pipe operators, `CONNECT BY`).
    UnsupportedSyntax,
}

impl SqlRule {
    /// The rule's stable name (`"function_not_allowed"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            SqlRule::TooLong => "too_long",
            SqlRule::Empty => "empty",
            SqlRule::ParseError => "parse_error",
            SqlRule::MultipleStatements => "multiple_statements",
            SqlRule::NotAQuery => "not_a_query",
            SqlRule::DataModifyingCte => "data_modifying_cte",
            SqlRule::SelectInto => "select_into",
            SqlRule::LockingClause => "locking_clause",
            SqlRule::RecursiveCte => "recursive_cte",
            SqlRule::FunctionNotAllowed => "function_not_allowed",
            SqlRule::SystemCatalog => "system_catalog",
            SqlRule::TableNotAllowed => "table_not_allowed",
            SqlRule::NestedStatement => "nested_statement",
            SqlRule::UnsupportedSyntax => "unsupported_syntax",
        }
    }

    /// Every rule, in declaration order.
    pub const ALL: &'static [SqlRule] = &[
        SqlRule::TooLong,
        SqlRule::Empty,
        SqlRule::ParseError,
        SqlRule::MultipleStatements,
        SqlRule::NotAQuery,
        SqlRule::DataModifyingCte,
        SqlRule::SelectInto,
        SqlRule::LockingClause,
        SqlRule::RecursiveCte,
        SqlRule::FunctionNotAllowed,
        SqlRule::SystemCatalog,
        SqlRule::TableNotAllowed,
        SqlRule::NestedStatement,
        SqlRule::UnsupportedSyntax,
    ];

    /// The rule with this stable name.
    pub fn from_name(name: &str) -> Option<SqlRule> {
        SqlRule::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for SqlRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused query: the rule that refused it and a short explanation.
///
/// The explanation names the offending function, table or clause but never repeats the query
/// (nor a parser's quotation of it), so it is safe to return to a client and to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SQL refused by rule `{rule}`: {detail}")]
pub struct SqlRejection {
    /// The rule that refused the query.
    pub rule: SqlRule,
    /// The explanation (without the rule name); never contains the query.
    pub detail: String,
}

impl SqlRejection {
    pub(crate) fn new(rule: SqlRule, detail: impl Into<String>) -> Self {
        SqlRejection {
            rule,
            detail: detail.into(),
        }
    }

    /// The rule that refused the query.
    pub fn rule(&self) -> SqlRule {
        self.rule
    }

    /// The explanation (without the rule name).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// Quotes a name taken from the query for a message (see [`crate::types::quote`]).
pub(crate) fn quote_name(name: &str) -> String {
    crate::types::quote(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_unique() {
        let names: std::collections::HashSet<_> = SqlRule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), SqlRule::ALL.len());
        for rule in SqlRule::ALL {
            assert_eq!(SqlRule::from_name(rule.as_str()), Some(*rule));
        }
        assert_eq!(SqlRule::from_name("nope"), None);
    }

    #[test]
    fn message_shape() {
        let r = SqlRejection::new(
            SqlRule::FunctionNotAllowed,
            "function `pg_sleep` is not allowed",
        );
        assert_eq!(
            r.to_string(),
            "SQL refused by rule `function_not_allowed`: function `pg_sleep` is not allowed"
        );
    }

    #[test]
    fn quoted_names_are_short_and_clean() {
        assert_eq!(quote_name("users"), "`users`");
        assert_eq!(quote_name("a`b\nc"), "`a?b?c`");
        assert_eq!(quote_name(&"x".repeat(100)).chars().count(), 64 + 3);
    }
}
