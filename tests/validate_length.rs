//! `#[tool]` writes the `Validate` impl of arguments whose only rules are
//! `#[validate(length(..))]` itself instead of running validator's derive: the errors must be
//! exactly the derive's, for every bound and outcome.

use mcp_secure::{Secret, ToolError, roles, tool};
use serde_json::{Value, json};
use validator::{Validate, ValidationErrors};

roles! { "r" }

/// Length rules of every shape.
#[tool(kind = "read", role = "r")]
pub async fn lengths(
    #[validate(length(min = 2, max = 5))] text: String,
    #[validate(length(equal = 3))] code: String,
    #[validate(length(min = 1, max = 4))] tags: Vec<String>,
    #[validate(length(max = 0x8))] secret: Secret<String>,
    #[validate(length(min = 1, max = 3))] both: String,
    n: u32,
) -> Result<String, ToolError> {
    let _ = (text, code, tags, secret, both, n);
    Ok(String::new())
}

/// The same fields and rules, through validator's derive.
#[derive(serde::Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Derived {
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
    n: u32,
}

fn both(args: Value) -> (Result<(), ValidationErrors>, Result<(), ValidationErrors>) {
    let generated: __mcs_args_lengths = serde_json::from_value(args.clone()).expect("generated");
    let derived: Derived = serde_json::from_value(args).expect("derived");
    (generated.validate(), derived.validate())
}

#[test]
fn generated_length_checks_match_the_derive() {
    let valid = json!({
        "text": "abc", "code": "xyz", "tags": ["a"], "secret": "s3cret", "both": "ab", "n": 1
    });
    let cases = [
        valid.clone(),
        json!({"text": "a", "code": "xyz", "tags": ["a"], "secret": "s", "both": "ab", "n": 1}),
        json!({"text": "abcdef", "code": "xy", "tags": [], "secret": "123456789", "both": "abcd", "n": 1}),
        json!({"text": "", "code": "wxyz", "tags": [], "secret": "", "both": "", "n": 0}),
        json!({"text": "ééééé", "code": "日本語", "tags": ["a", "b"], "secret": "12345678", "both": "", "n": 2}),
    ];
    let mut failures = 0;
    for args in cases {
        let (generated, derived) = both(args.clone());
        assert_eq!(generated, derived, "arguments {args}");
        failures += usize::from(derived.is_err());
    }
    // The cases exercise failures, not only passes.
    assert_eq!(failures, 4);
    assert_eq!(both(valid).0, Ok(()));
}
