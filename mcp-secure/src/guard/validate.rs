//! Guard 5: turn raw JSON arguments into the tool's typed arguments, or refuse with a clear
//! message that never repeats the offending value (it may be a secret).

use rmcp::model::JsonObject;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::ToolError;
use crate::tool::ParsedArgs;

/// Deserializes (unknown fields refused by the generated struct) and runs the `validator`
/// rules.
pub fn parse<T: DeserializeOwned + Validate + Send + 'static>(
    args: &JsonObject,
) -> Result<ParsedArgs, ToolError> {
    let parsed: T = serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let msg = describe_serde_error(&e.into_inner().to_string());
        if path.is_empty() || path == "." {
            ToolError::invalid_input(msg)
        } else {
            ToolError::invalid_input(format!("`{path}`: {msg}")).with_detail("field", path)
        }
    })?;
    parsed.validate().map_err(|e| describe_validation(&e))?;
    Ok(Box::new(parsed))
}

/// serde's messages quote the unexpected value (`invalid type: string "hunter2", expected
/// u32`). Keep only what was expected, and the kind of what came.
fn describe_serde_error(raw: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            let expected = rest
                .rsplit_once(", expected ")
                .map(|(_, e)| e)
                .unwrap_or("another value");
            let got = rest.split([' ', ',']).next().unwrap_or("value");
            let got = match got {
                "string" | "integer" | "floating" | "boolean" | "map" | "sequence" | "null"
                | "unit" => got,
                _ => "value",
            };
            let expected = expected.split(" at line ").next().unwrap_or(expected);
            return format!("{} {got}, expected {expected}", prefix.trim_end());
        }
    }
    let raw = raw.split(" at line ").next().unwrap_or(raw);
    // `unknown variant `<what the caller sent>`, expected one of ...`: the variant is the
    // caller's value, which may be anything; say only what was expected.
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("unknown variant, expected {expected}");
    }
    // Other serde messages name fields (`unknown field`, `missing field`), never values.
    raw.to_owned()
}

fn describe_validation(errors: &ValidationErrors) -> ToolError {
    let mut parts = Vec::new();
    collect(errors, String::new(), &mut parts);
    parts.sort();
    let first_field = parts.first().map(|(f, _)| f.clone()).unwrap_or_default();
    let message = parts
        .iter()
        .map(|(f, m)| format!("`{f}`: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    ToolError::invalid_input(message).with_detail("field", first_field)
}

fn collect(errors: &ValidationErrors, prefix: String, out: &mut Vec<(String, String)>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    out.push((path.clone(), describe_rule(e)));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, path, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(inner, format!("{path}[{i}]"), out);
                }
            }
        }
    }
}

fn describe_rule(e: &validator::ValidationError) -> String {
    if let Some(m) = &e.message {
        return m.to_string();
    }
    let p = |k: &str| e.params.get(k).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (p("min"), p("max"), p("equal")) {
            (_, _, Some(eq)) => format!("length must be exactly {eq}"),
            (Some(min), Some(max), _) => format!("length must be between {min} and {max}"),
            (Some(min), None, _) => format!("length must be at least {min}"),
            (None, Some(max), _) => format!("length must be at most {max}"),
            _ => "length is out of range".into(),
        },
        "range" => match (p("min"), p("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".into(),
        },
        "email" => "must be an email address".into(),
        "url" => "must be a URL".into(),
        "regex" => "does not match the required pattern".into(),
        other => format!("failed the `{other}` rule"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_never_repeat_values() {
        let m = describe_serde_error(
            "invalid type: string \"hunter2\", expected u32 at line 1 column 9",
        );
        assert_eq!(m, "invalid type: string, expected u32");
        let m = describe_serde_error("invalid value: integer `77`, expected one of `a`, `b`");
        assert!(!m.contains("77"), "{m}");
        let m = describe_serde_error("unknown field `evil`, expected `a` or `b`");
        assert_eq!(m, "unknown field `evil`, expected `a` or `b`");
    }
}
