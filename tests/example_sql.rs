//! The example's `execute_query` tool, driven over stdio by a real rmcp client: every SQLite
//! attack of the corpus (`mcp-secure/tests/sql_corpus/attacks.txt`) is refused with
//! `invalid_input` naming its rule, the database file is byte-identical afterwards, a runaway
//! query is stopped by the deadline with `timeout`, and a third one in flight is `overloaded`.

mod common;

use std::path::Path;

use common::{Client, call, code, keygen, text};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

/// `execute_query` allows 30 calls a minute per principal: the attacks are spread over
/// several editors so the rate limit never answers in place of the SQL checks.
const CALLS_PER_KEY: usize = 25;

async fn start(data: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(common::example_bin("customer_service"));
    cmd.args(["serve", "--data"])
        .arg(data)
        .env_remove("MCP_SECURE_TOKEN")
        .env("RUST_LOG", "warn");
    let transport = TokioChildProcess::new(cmd).expect("spawn the example");
    ().serve(transport).await.expect("initialize")
}

/// The SQLite lines of the attack corpus: (line number, expected rule, SQL).
fn sqlite_attacks() -> Vec<(usize, String, String)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp-secure/tests/sql_corpus/attacks.txt");
    let corpus = std::fs::read_to_string(&path).expect("the attack corpus");
    corpus
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|(i, l)| {
            let mut f = l.splitn(3, '\t');
            match (f.next(), f.next(), f.next()) {
                (Some("sqlite"), Some(rule), Some(sql)) => {
                    Some((i + 1, rule.to_owned(), sql.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

/// The database and its WAL, as bytes.
fn database_bytes(data: &Path) -> Vec<Vec<u8>> {
    ["customers.db", "customers.db-wal"]
        .iter()
        .map(|f| std::fs::read(data.join(f)).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn execute_query_refuses_every_attack_and_leaves_the_database_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let attacks = sqlite_attacks();
    assert!(attacks.len() >= 40, "only {} SQLite attacks", attacks.len());
    let keys: Vec<String> = (0..attacks.len().div_ceil(CALLS_PER_KEY) + 1)
        .map(|i| keygen(data, &format!("ed{i}"), "editor", "test"))
        .collect();
    let client = start(data).await;

    // The server has seeded the database; a first honest query proves the tool works.
    let r = call(
        &client,
        Some(&keys[0]),
        "execute_query",
        json!({"query": "SELECT count(*) AS n FROM customers"}),
    )
    .await;
    assert_eq!(code(&r), "ok", "{}", text(&r));
    let before = database_bytes(data);
    assert!(!before[0].is_empty(), "the database exists");

    for (n, (line, rule, sql)) in attacks.iter().enumerate() {
        let token = &keys[1 + n / CALLS_PER_KEY];
        let r = call(
            &client,
            Some(token),
            "execute_query",
            json!({ "query": sql }),
        )
        .await;
        assert_eq!(
            code(&r),
            "invalid_input",
            "attacks.txt:{line} ({rule}) was not refused: {}",
            text(&r)
        );
        let message = text(&r);
        assert!(
            message.contains(rule.as_str()),
            "attacks.txt:{line}: the refusal does not name `{rule}`: {message}"
        );
    }

    // The runaway query is valid SQL (7^12 rows to count): it runs until the deadline (2 s)
    // stops it.
    let runaway = "SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e, \
                   orders f, orders g, orders h, orders i, orders j, orders k, orders l";
    let r = call(
        &client,
        Some(&keys[0]),
        "execute_query",
        json!({ "query": runaway }),
    )
    .await;
    assert_eq!(code(&r), "timeout", "{}", text(&r));

    // Two runaway queries may run at once (`concurrency = 2`); a third is refused at once.
    let (a, b, c) = tokio::join!(
        call(
            &client,
            Some(&keys[0]),
            "execute_query",
            json!({ "query": runaway })
        ),
        call(
            &client,
            Some(&keys[1]),
            "execute_query",
            json!({ "query": runaway })
        ),
        call(
            &client,
            Some(&keys[2]),
            "execute_query",
            json!({ "query": runaway })
        )
    );
    let mut codes: Vec<String> = [a, b, c].iter().map(code).collect();
    codes.sort();
    assert_eq!(codes, ["overloaded", "timeout", "timeout"]);

    // Compared while the server still runs: on exit SQLite folds its WAL into the file.
    assert_eq!(
        database_bytes(data),
        before,
        "the database changed under refused queries"
    );
    client.cancel().await.unwrap();
}
