//! The validated type.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use sqlparser::ast::Statement;

use super::check::check;
use super::policy::{SqlPolicy, Sqlite};
use super::rejection::SqlRejection;

/// One read-only SQL query that passed every rule of the policy `P`.
///
/// The only ways to get one are [`ReadOnlySql::parse`] and deserialization (which calls it), so
/// a function that takes a `ReadOnlySql<P>` never sees a query that `P` refuses. As a `#[tool]`
/// parameter it needs no `#[validate(length(max = ..))]` rule: its length is bounded by
/// [`SqlPolicy::MAX_LEN`], and its JSON schema says so.
///
/// ```
/// use mcp_secure::types::sql::{Postgres, ReadOnlySql};
///
/// let q = ReadOnlySql::<Postgres>::parse("SELECT name FROM users WHERE id = 7").unwrap();
/// assert_eq!(q.as_str(), "SELECT name FROM users WHERE id = 7");
///
/// let refused = ReadOnlySql::<Postgres>::parse("SELECT 1; UPDATE users SET admin = true").unwrap_err();
/// assert_eq!(refused.rule().as_str(), "multiple_statements");
/// ```
///
/// Parsing is the first layer only; see the [module documentation](super) for the others.
pub struct ReadOnlySql<P: SqlPolicy = Sqlite> {
    text: Arc<str>,
    statement: Arc<Statement>,
    policy: PhantomData<fn() -> P>,
}

impl<P: SqlPolicy> ReadOnlySql<P> {
    /// Checks `sql` against every rule of `P`: at most `P::MAX_LEN` characters, exactly one
    /// statement, which is a query, with no data-modifying CTE, no `INTO`, no locking clause,
    /// no recursion (unless allowed), only allow-listed functions, no system catalogs (unless
    /// allowed) and only allow-listed tables (if a list is set).
    pub fn parse(sql: &str) -> Result<Self, SqlRejection> {
        let statement = check::<P>(sql)?;
        Ok(ReadOnlySql {
            text: Arc::from(sql),
            statement: Arc::new(statement),
            policy: PhantomData,
        })
    }

    /// The query, exactly as given. This is what is sent to the database.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed statement (always a [`Statement::Query`]).
    pub fn statement(&self) -> &Statement {
        &self.statement
    }
}

impl<P: SqlPolicy> Clone for ReadOnlySql<P> {
    fn clone(&self) -> Self {
        ReadOnlySql {
            text: Arc::clone(&self.text),
            statement: Arc::clone(&self.statement),
            policy: PhantomData,
        }
    }
}

impl<P: SqlPolicy> PartialEq for ReadOnlySql<P> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<P: SqlPolicy> Eq for ReadOnlySql<P> {}

impl<P: SqlPolicy> fmt::Debug for ReadOnlySql<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlySql")
            .field("dialect", &P::DIALECT)
            .field("sql", &&*self.text)
            .finish()
    }
}

impl<P: SqlPolicy> fmt::Display for ReadOnlySql<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<P: SqlPolicy> AsRef<str> for ReadOnlySql<P> {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl<P: SqlPolicy> std::str::FromStr for ReadOnlySql<P> {
    type Err = SqlRejection;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de, P: SqlPolicy> Deserialize<'de> for ReadOnlySql<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `Cow` borrows when it can; a string with escapes arrives owned.
        let text = Cow::<'de, str>::deserialize(d)?;
        ReadOnlySql::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl<P: SqlPolicy> serde::Serialize for ReadOnlySql<P> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<P: SqlPolicy> JsonSchema for ReadOnlySql<P> {
    fn schema_name() -> Cow<'static, str> {
        "ReadOnlySql".into()
    }

    // Policies differ in `maxLength` and dialect; never share one definition between them.
    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let description = format!(
            "A single read-only {} SELECT query (WITH and VALUES allowed), at most {} characters. \
             One statement only; no INSERT/UPDATE/DELETE, no SELECT INTO, no FOR UPDATE/SHARE{}{}; \
             only allow-listed functions{}.",
            dialect_name(P::DIALECT),
            P::MAX_LEN,
            if P::ALLOW_RECURSIVE {
                ""
            } else {
                ", no recursive CTEs"
            },
            if P::ALLOW_SYSTEM_CATALOGS {
                ""
            } else {
                ", no system catalogs"
            },
            if P::allowed_tables().is_some() {
                " and tables"
            } else {
                ""
            },
        );
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": P::MAX_LEN,
            "description": description,
        })
    }
}

fn dialect_name(dialect: super::SqlDialect) -> &'static str {
    match dialect {
        super::SqlDialect::Sqlite => "SQLite",
        super::SqlDialect::Postgres => "PostgreSQL",
    }
}

impl<P: SqlPolicy> crate::tool::Bounded for ReadOnlySql<P> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::sql::{Postgres, SqlDialect};

    #[test]
    fn deserializes_through_parse() {
        let q: ReadOnlySql = serde_json::from_str(r#""SELECT id FROM deleted_items""#).unwrap();
        assert_eq!(q.as_str(), "SELECT id FROM deleted_items");
        assert_eq!(q.to_string(), "SELECT id FROM deleted_items");
        assert!(matches!(q.statement(), Statement::Query(_)));
        let q2 = q.clone();
        assert_eq!(q, q2);
        assert_eq!(
            serde_json::to_string(&q2).unwrap(),
            r#""SELECT id FROM deleted_items""#
        );

        let err = serde_json::from_str::<ReadOnlySql>(
            r#""SELECT 1; DELETE FROM users WHERE name = 'hunter2'""#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("SQL refused by rule `multiple_statements`"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(serde_json::from_str::<ReadOnlySql>("42").is_err());
    }

    #[test]
    fn schema_is_a_bounded_string() {
        let schema = schemars::schema_for!(ReadOnlySql<Postgres>);
        let v = schema.as_value();
        assert_eq!(v["type"], "string");
        assert_eq!(v["maxLength"], 1000);
        assert_eq!(v["minLength"], 1);
        let description = v["description"].as_str().unwrap();
        assert!(
            description.contains("single read-only PostgreSQL SELECT"),
            "{description}"
        );

        struct Long;
        impl SqlPolicy for Long {
            const DIALECT: SqlDialect = SqlDialect::Sqlite;
            const MAX_LEN: usize = 4000;
        }
        let schema = schemars::schema_for!(ReadOnlySql<Long>);
        assert_eq!(schema.as_value()["maxLength"], 4000);
    }

    #[test]
    fn debug_shows_dialect_and_text() {
        let q = ReadOnlySql::<Sqlite>::parse("SELECT 1").unwrap();
        assert_eq!(
            format!("{q:?}"),
            r#"ReadOnlySql { dialect: Sqlite, sql: "SELECT 1" }"#
        );
    }

    #[test]
    fn is_bounded() {
        fn bounded<T: crate::tool::Bounded>() {}
        bounded::<ReadOnlySql>();
        bounded::<ReadOnlySql<Postgres>>();
    }
}
