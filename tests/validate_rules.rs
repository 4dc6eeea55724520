//! `#[tool]` checks `length` and `range` rules with literal bounds itself (`CheckRules`), and
//! leaves every other rule to validator's derive. A caller must not be able to tell which did:
//! for every shape of bound and every outcome, the refusal (code, message, details) is the
//! one the derive's errors produce.

use mcp_secure::__private::{JsonObject, parse_args, parse_args_checked};
use mcp_secure::{Secret, ToolError, roles, tool};
use serde_json::{Value, json};

roles! { "r" }

/// Length rules of every shape.
#[tool(kind = "read", role = "r")]
#[allow(clippy::too_many_arguments)]
pub async fn lengths(
    #[validate(length(min = 2, max = 5))] text: String,
    #[validate(length(equal = 3))] code: String,
    #[validate(length(min = 1, max = 4))] tags: Vec<String>,
    #[validate(length(max = 0x8))] secret: Secret<String>,
    #[validate(length(min = 1, max = 3))] both: String,
    #[validate(length(min = 2, max = 3))] maybe: Option<String>,
    #[validate(length(max = 2, message = "two at most"))] short: String,
    n: u32,
) -> Result<String, ToolError> {
    let _ = (text, code, tags, secret, both, maybe, short, n);
    Ok(String::new())
}

/// The same fields and rules, through validator's derive.
#[derive(serde::Deserialize, validator::Validate)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DerivedLengths {
    #[validate(length(min = 2, max = 5))]
    text: String,
    #[validate(length(equal = 3))]
    code: String,
    #[validate(length(min = 1, max = 4))]
    tags: Vec<String>,
    #[validate(length(max = 0x8))]
    secret: Secret<String>,
    #[validate(length(min = 1, max = 3))]
    both: String,
    #[validate(length(min = 2, max = 3))]
    maybe: Option<String>,
    #[validate(length(max = 2, message = "two at most"))]
    short: String,
    n: u32,
}

/// Range rules of every shape.
#[tool(kind = "read", role = "r")]
#[allow(clippy::too_many_arguments)]
pub async fn ranges(
    #[validate(range(min = 1, max = 10))] qty: u32,
    #[validate(range(min = -5))] low: i32,
    #[validate(range(max = 2.5))] ratio: f64,
    #[validate(range(exclusive_min = 0.0, exclusive_max = 1.0))] share: f64,
    #[validate(range(min = 0, exclusive_max = 0x10))] nibble: u8,
    #[validate(range(exclusive_min = -1e3, max = 0.5))] maybe: Option<f64>,
    #[validate(range(max = 3, message = "three at most"))] few: u16,
    #[validate(range(min = 10, exclusive_max = 100))] two: i64,
) -> Result<String, ToolError> {
    let _ = (qty, low, ratio, share, nibble, maybe, few, two);
    Ok(String::new())
}

#[derive(serde::Deserialize, validator::Validate)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DerivedRanges {
    #[validate(range(min = 1, max = 10))]
    qty: u32,
    #[validate(range(min = -5))]
    low: i32,
    #[validate(range(max = 2.5))]
    ratio: f64,
    #[validate(range(exclusive_min = 0.0, exclusive_max = 1.0))]
    share: f64,
    #[validate(range(min = 0, exclusive_max = 0x10))]
    nibble: u8,
    #[validate(range(exclusive_min = -1e3, max = 0.5))]
    maybe: Option<f64>,
    #[validate(range(max = 3, message = "three at most"))]
    few: u16,
    #[validate(range(min = 10, exclusive_max = 100))]
    two: i64,
}

fn object(v: Value) -> JsonObject {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

/// Parses `args` both ways; returns the refusal, or `None` when both accept.
fn compare(
    own: fn(&JsonObject) -> Result<mcp_secure::ParsedArgs, ToolError>,
    derived: fn(&JsonObject) -> Result<mcp_secure::ParsedArgs, ToolError>,
    args: Value,
) -> Option<ToolError> {
    let args = object(args);
    match (own(&args), derived(&args)) {
        (Ok(_), Ok(_)) => None,
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "arguments {args:?}");
            Some(a)
        }
        (a, b) => panic!("{args:?}: own {:?}, derived {:?}", a.err(), b.err()),
    }
}

#[test]
fn length_checks_match_the_derive() {
    let own = parse_args_checked::<__mcs_args_lengths>;
    let derived = parse_args::<DerivedLengths>;
    let ok = json!({
        "text": "abc", "code": "xyz", "tags": ["a"], "secret": "s3cret", "both": "ab",
        "short": "ab", "n": 1
    });
    assert!(compare(own, derived, ok.clone()).is_none());
    let mut with_maybe = ok.clone();
    with_maybe["maybe"] = json!("abc");
    assert!(compare(own, derived, with_maybe).is_none());
    let cases = [
        (
            json!({"text": "a", "code": "xyz", "tags": ["a"], "secret": "s", "both": "ab", "short": "", "n": 1}),
            "`text`: length must be between 2 and 5",
        ),
        (
            json!({"text": "abcdef", "code": "xy", "tags": [], "secret": "123456789", "both": "abcd", "maybe": "a", "short": "abc", "n": 1}),
            "`both`: length must be between 1 and 3; `code`: length must be exactly 3; `maybe`: length must be between 2 and 3; `secret`: length must be at most 8; `short`: two at most; `tags`: length must be between 1 and 4; `text`: length must be between 2 and 5",
        ),
        (
            json!({"text": "", "code": "wxyz", "tags": [], "secret": "", "both": "", "maybe": "abcd", "short": "", "n": 0}),
            "`both`: length must be between 1 and 3; `code`: length must be exactly 3; `maybe`: length must be between 2 and 3; `tags`: length must be between 1 and 4; `text`: length must be between 2 and 5",
        ),
        // Characters, not bytes: five `é` pass `max = 5`, three CJK pass `equal = 3`.
        (
            json!({"text": "ééééé", "code": "日本語", "tags": ["a", "b"], "secret": "12345678", "both": "", "short": "éé", "n": 2}),
            "`both`: length must be between 1 and 3",
        ),
    ];
    for (args, expected) in cases {
        let err = compare(own, derived, args.clone()).unwrap_or_else(|| panic!("{args} passed"));
        assert_eq!(err.message(), expected, "{args}");
    }
}

#[test]
fn range_checks_match_the_derive() {
    let own = parse_args_checked::<__mcs_args_ranges>;
    let derived = parse_args::<DerivedRanges>;
    let ok = json!({
        "qty": 1, "low": -5, "ratio": 2.5, "share": 0.5, "nibble": 15, "few": 3, "two": 10
    });
    assert!(compare(own, derived, ok.clone()).is_none());
    let edges = [
        ("qty", json!(10)),
        ("low", json!(i32::MAX)),
        ("ratio", json!(-1e300)),
        ("share", json!(0.999)),
        ("nibble", json!(0)),
        ("maybe", json!(-999.5)),
        ("maybe", json!(0.5)),
        ("maybe", Value::Null),
        ("two", json!(99)),
    ];
    for (field, value) in edges {
        let mut args = ok.clone();
        args[field] = value;
        assert!(compare(own, derived, args.clone()).is_none(), "{args}");
    }
    let cases = [
        ("qty", json!(0), "`qty`: must be between 1 and 10"),
        ("qty", json!(11), "`qty`: must be between 1 and 10"),
        ("low", json!(-6), "`low`: must be at least -5"),
        ("ratio", json!(2.5000001), "`ratio`: must be at most 2.5"),
        (
            "share",
            json!(0.0),
            "`share`: must be greater than 0.0 and less than 1.0",
        ),
        (
            "share",
            json!(1.0),
            "`share`: must be greater than 0.0 and less than 1.0",
        ),
        (
            "nibble",
            json!(16),
            "`nibble`: must be at least 0 and less than 16",
        ),
        (
            "maybe",
            json!(-1000.0),
            "`maybe`: must be greater than -1000.0 and at most 0.5",
        ),
        (
            "maybe",
            json!(0.6),
            "`maybe`: must be greater than -1000.0 and at most 0.5",
        ),
        ("few", json!(4), "`few`: three at most"),
        (
            "two",
            json!(9),
            "`two`: must be at least 10 and less than 100",
        ),
        (
            "two",
            json!(100),
            "`two`: must be at least 10 and less than 100",
        ),
    ];
    for (field, value, expected) in cases {
        let mut args = ok.clone();
        args[field] = value;
        let err = compare(own, derived, args.clone()).unwrap_or_else(|| panic!("{args} passed"));
        assert_eq!(err.message(), expected, "{args}");
        let details = serde_json::to_value(err.details()).unwrap();
        assert_eq!(details["field"], field, "{args}");
    }
}

/// Several own rules on one field (which validator's derive refuses: one rule of a kind per
/// field) are each checked, and each reported.
#[tool(kind = "read", role = "r")]
pub async fn stacked(
    #[validate(range(exclusive_max = 100))]
    #[validate(range(min = 10, message = "ten or more"))]
    n: i64,
) -> Result<String, ToolError> {
    Ok(n.to_string())
}

#[test]
fn stacked_rules_each_apply() {
    let parse = parse_args_checked::<__mcs_args_stacked>;
    assert!(parse(&object(json!({"n": 10}))).is_ok());
    assert!(parse(&object(json!({"n": 99}))).is_ok());
    let err = parse(&object(json!({"n": 9}))).expect_err("9 passed");
    assert_eq!(err.message(), "`n`: ten or more");
    let err = parse(&object(json!({"n": 100}))).expect_err("100 passed");
    assert_eq!(err.message(), "`n`: must be less than 100");
    assert_eq!(err.code(), mcp_secure::ErrorCode::InvalidInput);
}
