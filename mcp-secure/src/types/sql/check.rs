//! The parser layer: parse with `sqlparser`, then walk the whole tree.
//!
//! The walk is sqlparser's [`Visitor`], which reaches every statement, query, `SELECT`, table
//! factor, relation and expression however deeply nested (subqueries in expressions, derived
//! tables, CTE bodies, set operations, function arguments, window specifications). Every
//! [`Query`] node it reaches is checked explicitly (`WITH`, body, locking clause, dialect
//! extensions), so a rule cannot be dodged by nesting.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectFlavor, SetExpr,
    Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use super::policy::{SqlDialect, SqlPolicy, is_system_relation};
use super::rejection::{SqlRejection, SqlRule, quote_name};

/// Parses `sql` and applies every rule of `P`. Returns the single accepted statement.
pub(crate) fn check<P: SqlPolicy>(sql: &str) -> Result<Statement, SqlRejection> {
    // Length first, without walking more of a huge input than needed.
    if sql.chars().nth(P::MAX_LEN).is_some() {
        return Err(SqlRejection::new(
            SqlRule::TooLong,
            format!("the query is longer than {} characters", P::MAX_LEN),
        ));
    }
    // SQLite stops reading a statement at a NUL; the parser does not. Refuse the difference.
    if sql.contains('\0') {
        return Err(SqlRejection::new(
            SqlRule::ParseError,
            "the query contains a NUL character",
        ));
    }
    if sql.trim().is_empty() {
        return Err(empty());
    }

    let dialect = dialect_of(P::DIALECT);
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize()
        .map_err(|e| parse_error(&ParserError::TokenizerError(e.to_string())))?;
    // Stacked statements are refused from the tokens, before the parser gets to choke on
    // whatever follows the `;`, so `SELECT 1; PRAGMA ...` says what it is.
    let mut after_semicolon = false;
    let mut significant = false;
    for token in &tokens {
        match token {
            Token::Whitespace(_) | Token::EOF => {}
            Token::SemiColon => after_semicolon = significant,
            _ if after_semicolon => {
                return Err(SqlRejection::new(
                    SqlRule::MultipleStatements,
                    "only one statement is accepted; remove everything after the first `;`",
                ));
            }
            _ => significant = true,
        }
    }
    if !significant {
        return Err(empty());
    }

    let mut statements = Parser::new(dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parse_error(&e))?;
    let statement = match statements.len() {
        0 => return Err(empty()),
        1 => statements.remove(0),
        _ => {
            return Err(SqlRejection::new(
                SqlRule::MultipleStatements,
                "only one statement is accepted",
            ));
        }
    };
    if !matches!(statement, Statement::Query(_)) {
        return Err(SqlRejection::new(
            SqlRule::NotAQuery,
            format!(
                "{} is not a query; only a read-only SELECT (or VALUES, or WITH ... SELECT) is accepted",
                statement_kind(&statement)
            ),
        ));
    }

    let mut walker = Walker::<P>::new();
    if let ControlFlow::Break(rejection) = statement.visit(&mut walker) {
        return Err(rejection);
    }
    Ok(statement)
}

/// The names of every CTE in the statement, normalized (used by the SQLite authorizer to tell a
/// CTE from a view of the same name).
pub(crate) fn cte_names(statement: &Statement, dialect: SqlDialect) -> Vec<String> {
    struct Names(Vec<String>, SqlDialect);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.push(normalize(&cte.alias.name, self.1));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(Vec::new(), dialect);
    let _ = statement.visit(&mut names);
    names.0
}

fn dialect_of(dialect: SqlDialect) -> &'static dyn Dialect {
    match dialect {
        SqlDialect::Sqlite => &SQLiteDialect {},
        SqlDialect::Postgres => &PostgreSqlDialect {},
    }
}

fn empty() -> SqlRejection {
    SqlRejection::new(
        SqlRule::Empty,
        "the query is empty (only whitespace or comments)",
    )
}

/// A parse error without the parser's quotation of the query (`found: <token>`): only what the
/// grammar expected and where.
fn parse_error(e: &ParserError) -> SqlRejection {
    fn split_location(message: &str) -> (&str, String) {
        match message.rfind(" at Line: ") {
            Some(at) => {
                let location = message[at + " at Line: ".len()..]
                    .split_once(", Column: ")
                    .and_then(|(l, c)| {
                        Some((l.trim().parse::<u64>().ok()?, c.trim().parse::<u64>().ok()?))
                    })
                    .map(|(l, c)| format!(" (line {l}, column {c})"))
                    .unwrap_or_default();
                (&message[..at], location)
            }
            None => (message, String::new()),
        }
    }
    fn short(text: &str) -> Option<&str> {
        let text = text.trim().trim_end_matches('.');
        (!text.is_empty() && text.chars().count() <= 100 && !text.chars().any(char::is_control))
            .then_some(text)
    }
    let detail = match e {
        ParserError::RecursionLimitExceeded => "the query is nested too deeply".to_owned(),
        ParserError::TokenizerError(message) => {
            let (message, location) = split_location(message);
            match short(message) {
                Some(m) => format!("the query could not be tokenized: {m}{location}"),
                None => format!("the query could not be tokenized{location}"),
            }
        }
        ParserError::ParserError(message) => {
            let (message, location) = split_location(message);
            let expected = message
                .strip_prefix("Expected: ")
                .map(|rest| rest.split(", found:").next().unwrap_or(rest))
                .and_then(short);
            match expected {
                Some(x) => format!("the query could not be parsed: expected {x}{location}"),
                None => format!("the query could not be parsed{location}"),
            }
        }
    };
    SqlRejection::new(SqlRule::ParseError, detail)
}

/// A short, fixed name for a statement kind (never its text).
fn statement_kind(statement: &Statement) -> &'static str {
    match statement {
        Statement::Query(_) => "a query",
        Statement::Insert { .. } => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete { .. } => "DELETE",
        Statement::Merge { .. } => "MERGE",
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::Drop { .. } => "DROP",
        Statement::CreateTable { .. } => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::CreateIndex { .. } => "CREATE INDEX",
        Statement::CreateVirtualTable { .. } => "CREATE VIRTUAL TABLE",
        Statement::CreateFunction { .. } => "CREATE FUNCTION",
        Statement::CreateTrigger { .. } => "CREATE TRIGGER",
        Statement::CreateExtension { .. } => "CREATE EXTENSION",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::AttachDatabase { .. } => "ATTACH",
        Statement::Pragma { .. } => "PRAGMA",
        Statement::Copy { .. } => "COPY",
        Statement::Explain { .. } | Statement::ExplainTable { .. } => "EXPLAIN",
        Statement::Set { .. } | Statement::Reset { .. } => "SET",
        Statement::StartTransaction { .. } => "BEGIN",
        Statement::Commit { .. } => "COMMIT",
        Statement::Rollback { .. } => "ROLLBACK",
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => "SAVEPOINT",
        Statement::Grant { .. } => "GRANT",
        Statement::Revoke { .. } => "REVOKE",
        Statement::Call { .. } => "CALL",
        Statement::Execute { .. } => "EXECUTE",
        Statement::Prepare { .. } => "PREPARE",
        Statement::Declare { .. } => "DECLARE",
        Statement::Vacuum { .. } => "VACUUM",
        Statement::Analyze { .. } => "ANALYZE",
        Statement::Lock { .. } | Statement::LockTables { .. } => "LOCK",
        Statement::NOTIFY { .. } | Statement::LISTEN { .. } | Statement::UNLISTEN { .. } => {
            "NOTIFY/LISTEN"
        }
        _ => "this statement",
    }
}

/// An identifier as the database resolves it: SQLite folds ASCII case always; PostgreSQL folds
/// unquoted identifiers to lowercase and keeps quoted ones exactly.
fn normalize(ident: &Ident, dialect: SqlDialect) -> String {
    match dialect {
        SqlDialect::Postgres if ident.quote_style.is_some() => ident.value.clone(),
        _ => ident.value.to_ascii_lowercase(),
    }
}

/// A policy list entry, normalized the way an unquoted identifier would be in SQLite, and as
/// written in PostgreSQL (where an unquoted identifier is lowercase already).
fn normalize_entry(entry: &str, dialect: SqlDialect) -> String {
    match dialect {
        SqlDialect::Sqlite => entry.to_ascii_lowercase(),
        _ => entry.to_owned(),
    }
}

/// PostgreSQL's reserved key words (including those that "can be function or type"). Unquoted,
/// none of them can name a table in PostgreSQL, yet sqlparser 0.63 accepts most of them there:
/// it reads `FROM ONLY pg_user` as the table `only` with the alias `pg_user`, where PostgreSQL
/// reads `pg_user`. Refusing them removes that whole class of disagreement.
#[rustfmt::skip]
const PG_RESERVED: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "binary", "both", "case", "cast", "check", "collate", "collation", "column", "concurrently",
    "constraint", "create", "cross", "current_catalog", "current_date", "current_role",
    "current_schema", "current_time", "current_timestamp", "current_user", "default", "deferrable",
    "desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign",
    "freeze", "from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner",
    "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit",
    "localtime", "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only",
    "or", "order", "outer", "overlaps", "placing", "primary", "references", "returning", "right",
    "select", "session_user", "similar", "some", "symmetric", "system_user", "table",
    "tablesample", "then", "to", "trailing", "true", "union", "unique", "user", "using",
    "variadic", "verbose", "when", "where", "window", "with",
];

/// PostgreSQL key words that are function calls without parentheses (`SELECT current_role`).
/// sqlparser reads some of them as column names; they are checked as functions instead.
const PG_VALUE_KEYWORDS: &[&str] = &[
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "localtime",
    "localtimestamp",
    "session_user",
    "system_user",
    "user",
];

/// An unquoted PostgreSQL reserved word (lowercase), if `ident` is one.
fn pg_reserved(ident: &Ident, dialect: SqlDialect) -> Option<String> {
    if dialect != SqlDialect::Postgres || ident.quote_style.is_some() {
        return None;
    }
    let word = ident.value.to_ascii_lowercase();
    PG_RESERVED.contains(&word.as_str()).then_some(word)
}

/// Whether a function name (normalized) is in the list.
pub(crate) fn function_listed(name: &str, list: &[&str], dialect: SqlDialect) -> bool {
    list.iter().any(|f| normalize_entry(f, dialect) == name)
}

/// Whether a table name (normalized parts) is in the list.
pub(crate) fn table_listed(parts: &[String], list: &[&str], dialect: SqlDialect) -> bool {
    let strip = |parts: Vec<String>| -> Vec<String> {
        if parts.len() == 2 && parts[0] == dialect.default_schema() {
            parts[1..].to_vec()
        } else {
            parts
        }
    };
    let wanted = strip(parts.to_vec());
    list.iter().any(|entry| {
        let entry: Vec<String> = entry
            .split('.')
            .map(|p| normalize_entry(p, dialect))
            .collect();
        strip(entry) == wanted
    })
}

fn display_name(name: &ObjectName) -> String {
    let joined = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.as_str(),
            ObjectNamePart::Function(_) => "(...)",
        })
        .collect::<Vec<_>>()
        .join(".");
    quote_name(&joined)
}

/// The CTE names one query introduces, and which CTE body the walk is in.
struct Scope {
    query: *const Query,
    names: Vec<String>,
    ctes: Vec<*const Query>,
    /// `Some(i)` while walking the body of CTE `i`: only CTEs `0..=i` are visible there.
    active: Option<usize>,
}

struct Walker<P> {
    statements: usize,
    scopes: Vec<Scope>,
    /// The name of a table-valued function, already checked as a function, which the visitor
    /// is about to report as a relation.
    skip_relation: Option<*const ObjectName>,
    policy: std::marker::PhantomData<P>,
}

type Flow = ControlFlow<SqlRejection>;

fn refuse(rule: SqlRule, detail: impl Into<String>) -> Flow {
    ControlFlow::Break(SqlRejection::new(rule, detail))
}

impl<P: SqlPolicy> Walker<P> {
    fn new() -> Self {
        Walker {
            statements: 0,
            scopes: Vec::new(),
            skip_relation: None,
            policy: std::marker::PhantomData,
        }
    }

    fn normalize(&self, ident: &Ident) -> String {
        normalize(ident, P::DIALECT)
    }

    /// The normalized parts of a name, or a refusal if a part is not a plain identifier.
    fn parts(&self, name: &ObjectName) -> Result<Vec<String>, SqlRejection> {
        name.0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Ok(self.normalize(i)),
                ObjectNamePart::Function(_) => Err(SqlRejection::new(
                    SqlRule::UnsupportedSyntax,
                    "computed object names are not supported",
                )),
            })
            .collect()
    }

    fn check_function(&self, name: &ObjectName, what: &str) -> Flow {
        let parts = match self.parts(name) {
            Ok(p) => p,
            Err(e) => return ControlFlow::Break(e),
        };
        if parts.len() != 1 {
            return refuse(
                SqlRule::FunctionNotAllowed,
                format!(
                    "schema-qualified {what} {} is not allowed",
                    display_name(name)
                ),
            );
        }
        if !function_listed(&parts[0], P::allowed_functions(), P::DIALECT) {
            return refuse(
                SqlRule::FunctionNotAllowed,
                format!("{what} {} is not allowed", display_name(name)),
            );
        }
        ControlFlow::Continue(())
    }

    fn check_table_function(&self, name: &ObjectName) -> Flow {
        let parts = match self.parts(name) {
            Ok(p) => p,
            Err(e) => return ControlFlow::Break(e),
        };
        // `pragma_table_info(...)`, `dbstat`, `pg_catalog.x(...)` read the catalog; an unqualified
        // `pg_*` function is refused as a function.
        let unqualified_pg = parts.len() == 1 && parts[0].to_ascii_lowercase().starts_with("pg_");
        if !P::ALLOW_SYSTEM_CATALOGS && is_system_relation(&parts) && !unqualified_pg {
            return refuse(
                SqlRule::SystemCatalog,
                format!("system catalog {} is not readable", display_name(name)),
            );
        }
        self.check_function(name, "table-valued function")
    }

    /// Whether an unqualified name refers to a CTE visible here.
    fn is_visible_cte(&self, name: &str) -> bool {
        self.scopes.iter().rev().any(|scope| {
            let visible = match scope.active {
                Some(i) => &scope.names[..=i],
                None => &scope.names[..],
            };
            visible.iter().any(|n| n == name)
        })
    }

    fn check_relation(&self, parts: &[String], shown: &str) -> Flow {
        if !P::ALLOW_SYSTEM_CATALOGS && is_system_relation(parts) {
            return refuse(
                SqlRule::SystemCatalog,
                format!("system catalog {shown} is not readable"),
            );
        }
        if parts.len() == 1 && self.is_visible_cte(&parts[0]) {
            return ControlFlow::Continue(());
        }
        if let Some(list) = P::allowed_tables()
            && !table_listed(parts, list, P::DIALECT)
        {
            return refuse(
                SqlRule::TableNotAllowed,
                format!("table {shown} is not in the allow-list"),
            );
        }
        ControlFlow::Continue(())
    }

    /// `TABLE name` (PostgreSQL) names a relation without an `ObjectName`.
    fn check_set_expr_tables(&self, body: &SetExpr) -> Flow {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.check_set_expr_tables(left)?;
                self.check_set_expr_tables(right)
            }
            SetExpr::Table(table) => {
                let Some(name) = &table.table_name else {
                    return refuse(SqlRule::UnsupportedSyntax, "`TABLE` without a name");
                };
                let mut shown = Vec::new();
                if let Some(schema) = &table.schema_name {
                    shown.push(schema.clone());
                }
                shown.push(name.clone());
                let parts: Vec<String> = shown
                    .iter()
                    .map(|p| normalize_entry(p, P::DIALECT))
                    .collect();
                self.check_relation(&parts, &quote_name(&shown.join(".")))
            }
            _ => ControlFlow::Continue(()),
        }
    }

    fn check_query(&self, query: &Query, top_level: bool, cte_body: bool) -> Flow {
        if let Some(kind) = dml_kind(&query.body) {
            return if top_level {
                refuse(
                    SqlRule::NotAQuery,
                    format!("{kind} is not a query; only a read-only SELECT is accepted"),
                )
            } else if cte_body {
                refuse(
                    SqlRule::DataModifyingCte,
                    format!("a common table expression runs {kind}"),
                )
            } else {
                refuse(
                    SqlRule::NestedStatement,
                    format!("{kind} is nested inside the query"),
                )
            };
        }
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                if let Some(kind) = dml_kind(&cte.query.body) {
                    return refuse(
                        SqlRule::DataModifyingCte,
                        format!(
                            "common table expression {} runs {kind}",
                            quote_name(&cte.alias.name.value)
                        ),
                    );
                }
            }
            if !P::ALLOW_RECURSIVE {
                if with.recursive {
                    return refuse(SqlRule::RecursiveCte, "`WITH RECURSIVE` is not allowed");
                }
                // SQLite makes a CTE recursive when it names itself, keyword or not.
                let names: Vec<String> = with
                    .cte_tables
                    .iter()
                    .map(|c| self.normalize(&c.alias.name))
                    .collect();
                for (i, cte) in with.cte_tables.iter().enumerate() {
                    if let Some(name) = references_any(&cte.query, &names[i..], P::DIALECT) {
                        return refuse(
                            SqlRule::RecursiveCte,
                            format!(
                                "common table expression {} refers to {} (recursion is not allowed)",
                                quote_name(&cte.alias.name.value),
                                quote_name(&name)
                            ),
                        );
                    }
                }
            }
        }
        if !query.locks.is_empty() {
            return refuse(
                SqlRule::LockingClause,
                "`FOR UPDATE` / `FOR SHARE` locking clauses are not allowed",
            );
        }
        if query.for_clause.is_some() {
            return refuse(
                SqlRule::UnsupportedSyntax,
                "`FOR XML` / `FOR JSON` is not supported",
            );
        }
        if query.settings.is_some() || query.format_clause.is_some() {
            return refuse(
                SqlRule::UnsupportedSyntax,
                "`SETTINGS` / `FORMAT` is not supported",
            );
        }
        if !query.pipe_operators.is_empty() {
            return refuse(
                SqlRule::UnsupportedSyntax,
                "pipe operators are not supported",
            );
        }
        self.check_set_expr_tables(&query.body)
    }
}

/// The kind of data-modifying statement a query body is, if it is one.
fn dml_kind(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        SetExpr::SetOperation { left, right, .. } => dml_kind(left).or_else(|| dml_kind(right)),
        SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) | SetExpr::Table(_) => None,
    }
}

/// The first unqualified relation in `query` (at any depth) with one of `names`.
fn references_any(query: &Query, names: &[String], dialect: SqlDialect) -> Option<String> {
    struct Finder<'a> {
        names: &'a [String],
        dialect: SqlDialect,
    }
    impl Finder<'_> {
        fn hit(&self, name: &str) -> ControlFlow<String> {
            match self.names.iter().find(|n| *n == name) {
                Some(n) => ControlFlow::Break(n.clone()),
                None => ControlFlow::Continue(()),
            }
        }
        fn in_body(&self, body: &SetExpr) -> ControlFlow<String> {
            match body {
                SetExpr::SetOperation { left, right, .. } => {
                    self.in_body(left)?;
                    self.in_body(right)
                }
                SetExpr::Table(t) if t.schema_name.is_none() => match &t.table_name {
                    Some(name) => self.hit(&normalize_entry(name, self.dialect)),
                    None => ControlFlow::Continue(()),
                },
                _ => ControlFlow::Continue(()),
            }
        }
    }
    impl Visitor for Finder<'_> {
        type Break = String;
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
            self.in_body(&query.body)
        }
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
            match relation.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => self.hit(&normalize(ident, self.dialect)),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match query.visit(&mut Finder { names, dialect }) {
        ControlFlow::Break(name) => Some(name),
        ControlFlow::Continue(()) => None,
    }
}

impl<P: SqlPolicy> Visitor for Walker<P> {
    type Break = SqlRejection;

    fn pre_visit_statement(&mut self, statement: &Statement) -> Flow {
        self.statements += 1;
        if self.statements > 1 {
            return refuse(
                SqlRule::NestedStatement,
                format!("{} is nested inside the query", statement_kind(statement)),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> Flow {
        let top_level = self.scopes.is_empty();
        let mut cte_body = false;
        if let Some(scope) = self.scopes.last_mut()
            && let Some(i) = scope.ctes.iter().position(|p| std::ptr::eq(*p, query))
        {
            scope.active = Some(i);
            cte_body = true;
        }
        self.check_query(query, top_level, cte_body)?;
        let (names, ctes) = match &query.with {
            Some(with) => (
                with.cte_tables
                    .iter()
                    .map(|c| self.normalize(&c.alias.name))
                    .collect(),
                with.cte_tables
                    .iter()
                    .map(|c| &*c.query as *const Query)
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        self.scopes.push(Scope {
            query,
            names,
            ctes,
            active: None,
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> Flow {
        if self
            .scopes
            .last()
            .is_some_and(|s| std::ptr::eq(s.query, query))
        {
            self.scopes.pop();
        }
        if let Some(scope) = self.scopes.last_mut()
            && scope.ctes.iter().any(|p| std::ptr::eq(*p, query))
        {
            scope.active = None;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> Flow {
        if select.into.is_some() {
            return refuse(
                SqlRule::SelectInto,
                "`SELECT ... INTO` creates a table and is not allowed",
            );
        }
        let unsupported = select.top.is_some()
            || !select.optimizer_hints.is_empty()
            || select
                .select_modifiers
                .as_ref()
                .is_some_and(|m| m.is_any_set())
            || !select.lateral_views.is_empty()
            || select.prewhere.is_some()
            || !select.connect_by.is_empty()
            || !select.cluster_by.is_empty()
            || !select.distribute_by.is_empty()
            || !select.sort_by.is_empty()
            || select.value_table_mode.is_some()
            || select.flavor != SelectFlavor::Standard;
        if unsupported {
            return refuse(
                SqlRule::UnsupportedSyntax,
                "the SELECT uses a dialect extension that is not supported",
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, table_factor: &TableFactor) -> Flow {
        match table_factor {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                partitions,
                json_path,
                index_hints,
                ..
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || !index_hints.is_empty()
                {
                    return refuse(
                        SqlRule::UnsupportedSyntax,
                        "table hints, versions and partitions are not supported",
                    );
                }
                if args.is_some() {
                    self.check_table_function(name)?;
                    self.skip_relation = Some(name);
                }
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => self.check_table_function(name),
            TableFactor::UNNEST { .. } => {
                self.check_table_function(&ObjectName::from(vec![Ident::new("unnest")]))
            }
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::TableFunction { .. } => ControlFlow::Continue(()),
            _ => refuse(
                SqlRule::UnsupportedSyntax,
                "this kind of table expression is not supported",
            ),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> Flow {
        for part in &relation.0 {
            if let ObjectNamePart::Identifier(ident) = part
                && let Some(word) = pg_reserved(ident, P::DIALECT)
            {
                return refuse(
                    SqlRule::UnsupportedSyntax,
                    format!(
                        "`{}` is a reserved word in PostgreSQL (`FROM ONLY` is not supported); quote it if it names a table",
                        word.to_ascii_uppercase()
                    ),
                );
            }
        }
        if self
            .skip_relation
            .take()
            .is_some_and(|p| std::ptr::eq(p, relation))
        {
            return ControlFlow::Continue(());
        }
        let parts = match self.parts(relation) {
            Ok(p) => p,
            Err(e) => return ControlFlow::Break(e),
        };
        self.check_relation(&parts, &display_name(relation))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> Flow {
        match expr {
            Expr::Function(function) => self.check_function(&function.name, "function"),
            Expr::Identifier(ident) => match pg_reserved(ident, P::DIALECT) {
                Some(word) if PG_VALUE_KEYWORDS.contains(&word.as_str()) => {
                    self.check_function(&ObjectName::from(vec![ident.clone()]), "function")
                }
                Some(word) => refuse(
                    SqlRule::UnsupportedSyntax,
                    format!(
                        "`{}` is a reserved word in PostgreSQL; quote it if it names a column",
                        word.to_ascii_uppercase()
                    ),
                ),
                None => ControlFlow::Continue(()),
            },
            Expr::BinaryOp {
                op: BinaryOperator::PGCustomBinaryOperator(_),
                ..
            } => refuse(
                SqlRule::UnsupportedSyntax,
                "`OPERATOR(...)` is not supported",
            ),
            _ => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::sql::{Postgres, Sqlite};

    fn rule<P: SqlPolicy>(sql: &str) -> Option<&'static str> {
        check::<P>(sql).err().map(|e| e.rule().as_str())
    }

    struct Shop;
    impl SqlPolicy for Shop {
        const DIALECT: SqlDialect = SqlDialect::Sqlite;
        fn allowed_tables() -> Option<&'static [&'static str]> {
            Some(&["users", "orders"])
        }
    }

    struct ShopPg;
    impl SqlPolicy for ShopPg {
        const DIALECT: SqlDialect = SqlDialect::Postgres;
        const ALLOW_RECURSIVE: bool = true;
        fn allowed_tables() -> Option<&'static [&'static str]> {
            Some(&["users", "reporting.sales"])
        }
    }

    struct Catalogs;
    impl SqlPolicy for Catalogs {
        const DIALECT: SqlDialect = SqlDialect::Sqlite;
        const ALLOW_SYSTEM_CATALOGS: bool = true;
    }

    #[test]
    fn table_allow_list_respects_cte_scope() {
        assert_eq!(
            rule::<Shop>("SELECT * FROM users JOIN orders ON orders.user_id = users.id"),
            None
        );
        assert_eq!(rule::<Shop>("SELECT * FROM main.users"), None);
        assert_eq!(rule::<Shop>("SELECT * FROM USERS"), None);
        assert_eq!(
            rule::<Shop>("SELECT * FROM secrets"),
            Some("table_not_allowed")
        );
        assert_eq!(
            rule::<Shop>("SELECT * FROM other.users"),
            Some("table_not_allowed")
        );
        // A CTE name is not a table.
        assert_eq!(
            rule::<Shop>("WITH s AS (SELECT * FROM users) SELECT * FROM s"),
            None
        );
        assert_eq!(
            rule::<Shop>("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b"),
            None
        );
        // ... but only in its scope.
        assert_eq!(
            rule::<Shop>(
                "SELECT * FROM (WITH secrets AS (SELECT 1) SELECT * FROM secrets) x, secrets"
            ),
            Some("table_not_allowed")
        );
        // A later CTE is not visible to an earlier one (PostgreSQL reads the real table).
        assert_eq!(
            rule::<ShopPg>(
                "WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1) SELECT * FROM a"
            ),
            Some("table_not_allowed")
        );
        assert_eq!(
            rule::<ShopPg>(
                "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r"
            ),
            None
        );
        assert_eq!(rule::<ShopPg>("SELECT * FROM reporting.sales"), None);
        assert_eq!(rule::<ShopPg>("SELECT * FROM public.users"), None);
        assert_eq!(
            rule::<ShopPg>("SELECT * FROM \"Users\""),
            Some("table_not_allowed")
        );
        assert_eq!(
            rule::<ShopPg>("SELECT * FROM sales"),
            Some("table_not_allowed")
        );
    }

    #[test]
    fn self_reference_is_recursion_without_the_keyword() {
        let sql = "WITH c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
        assert_eq!(rule::<Sqlite>(sql), Some("recursive_cte"));
        let sql =
            "WITH c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM (SELECT * FROM C)) SELECT x FROM c";
        assert_eq!(rule::<Sqlite>(sql), Some("recursive_cte"));
        let sql = "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM a";
        assert_eq!(rule::<Sqlite>(sql), Some("recursive_cte"));
    }

    #[test]
    fn system_catalogs_only_when_allowed() {
        assert_eq!(
            rule::<Sqlite>("SELECT name FROM sqlite_master"),
            Some("system_catalog")
        );
        assert_eq!(rule::<Catalogs>("SELECT name FROM sqlite_master"), None);
        assert_eq!(
            rule::<Sqlite>("SELECT * FROM pragma_table_info('users')"),
            Some("system_catalog")
        );
        assert_eq!(
            rule::<Catalogs>("SELECT * FROM pragma_table_info('users')"),
            Some("function_not_allowed")
        );
    }

    #[test]
    fn messages_never_quote_the_query() {
        let secret = "hunter2_secret_value";
        let cases = [
            format!("SELECT x FROM t WHERE y = 'a' {secret}"),
            format!("SELECT '{secret}"),
            format!("SELECT * FROM t; DELETE FROM t WHERE x = '{secret}'"),
            format!("DELETE FROM t WHERE x = '{secret}'"),
            format!("SELECT pg_sleep(1), '{secret}'"),
            format!("SELECT 1 FROM t WHERE a = '{secret}' FOR UPDATE"),
            format!("SELECT * FROM t WHERE x = '{secret}' {secret} {secret}"),
            format!("{secret} {secret}"),
        ];
        for sql in &cases {
            for msg in [
                check::<Sqlite>(sql).unwrap_err().to_string(),
                check::<Postgres>(sql).unwrap_err().to_string(),
            ] {
                assert!(!msg.contains(secret), "{msg}");
                assert!(!msg.contains(" at line "), "{msg}");
                assert!(!msg.starts_with("invalid value: ") && !msg.starts_with("invalid type: "));
            }
        }
        let e = check::<Sqlite>("SELECT x FROM t WHERE y = 'a' zz").unwrap_err();
        assert_eq!(
            e.detail(),
            "the query could not be parsed: expected end of statement (line 1, column 31)"
        );
    }

    #[test]
    fn postgres_reserved_words_cannot_hide_a_table() {
        // sqlparser reads this as the table `only`; PostgreSQL reads `pg_user`.
        assert_eq!(
            rule::<Postgres>("SELECT * FROM ONLY pg_user"),
            Some("unsupported_syntax")
        );
        assert_eq!(
            rule::<ShopPg>("SELECT * FROM only secrets"),
            Some("unsupported_syntax")
        );
        assert_eq!(rule::<Postgres>("SELECT * FROM \"only\""), None);
        assert_eq!(rule::<Sqlite>("SELECT * FROM only x"), None);
        // Key words that are calls in PostgreSQL are checked as calls.
        assert_eq!(
            rule::<Postgres>("SELECT current_role"),
            Some("function_not_allowed")
        );
        assert_eq!(
            rule::<Postgres>("SELECT CURRENT_SCHEMA FROM t"),
            Some("function_not_allowed")
        );
        assert_eq!(
            rule::<Postgres>("SELECT localtimestamp, current_date"),
            None
        );
        assert_eq!(rule::<Postgres>("SELECT \"user\" FROM t"), None);
        assert_eq!(rule::<Postgres>("SELECT t.user FROM t"), None);
        assert_eq!(
            rule::<Postgres>("SELECT 1 OPERATOR(pg_catalog.+) 1"),
            Some("unsupported_syntax")
        );
    }

    #[test]
    fn cte_names_are_collected() {
        let s = check::<Sqlite>("WITH a AS (SELECT 1), B AS (SELECT * FROM (WITH c AS (SELECT 2) SELECT * FROM c)) SELECT * FROM a, b").unwrap();
        assert_eq!(cte_names(&s, SqlDialect::Sqlite), ["a", "b", "c"]);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(400), ")".repeat(400));
        assert_eq!(rule::<Sqlite>(&sql), Some("parse_error"));
        for unit in [
            "- ",
            "NOT ",
            "~",
            "+",
            "(SELECT ",
            "ARRAY[",
            "CASE WHEN 1 THEN ",
            "EXISTS (SELECT ",
        ] {
            let sql = format!("SELECT {}1", unit.repeat(900 / unit.len()));
            let _ = check::<Postgres>(&sql);
            let _ = check::<Sqlite>(&sql);
        }
        let sql = format!(
            "SELECT 1 FROM t WHERE x IN {}",
            "(SELECT x FROM t WHERE x IN ".repeat(60)
        );
        let _ = check::<Sqlite>(&sql);
    }
}
