//! Guard 8: cap the size of what a tool returns.

use std::sync::LazyLock;

use rmcp::model::{CallToolResult, ResultType};

use super::size::encoded_size;
use crate::audit::MeasuredContent;
use crate::error::ToolError;

/// `[]`: what an empty `content` takes in a result's JSON.
const EMPTY_CONTENT: usize = 2;

/// The shapes results take apart from their content (what `CallToolResult::success` and
/// `error` build, before and after rmcp clears `resultType` for an older peer), each with its
/// size: measured once, not per call. A result matches a shape by `CallToolResult`'s own
/// `PartialEq`, which compares every field, so a field rmcp adds one day only ever matches a
/// shape that has the same value in it, and is otherwise measured by the serializer.
static SHAPES: LazyLock<Vec<(CallToolResult, usize)>> = LazyLock::new(|| {
    let mut shapes = Vec::new();
    for result_type in [Some(ResultType::COMPLETE), None] {
        for is_error in [Some(false), Some(true), None] {
            let mut shape = CallToolResult::success(Vec::new());
            shape.result_type = result_type.clone();
            shape.is_error = is_error;
            if let Some(size) = encoded_size(&shape, usize::MAX) {
                shapes.push((shape, size));
            }
        }
    }
    shapes
});

/// The compact JSON size of a result without content, or `None` once it passes `max`.
fn rest_size(rest: &CallToolResult, max: usize) -> Option<usize> {
    debug_assert!(rest.content.is_empty());
    match SHAPES.iter().find(|(shape, _)| shape == rest) {
        Some(&(_, size)) => (size <= max).then_some(size),
        None => encoded_size(rest, max),
    }
}

/// Refuses with `too_large` when the result's compact JSON (as `serde_json` writes it) is
/// larger than `max` bytes.
///
/// A result without `structuredContent` is measured by its content
/// ([`MeasuredContent::within`]): plain text (what tools return) without being written, any
/// other content by writing its JSON text. What was learned is returned for the call's audit
/// record, which shows the content as its output, so the content is measured once for both.
/// (`result` is borrowed mutably only to measure the rest of it without its content; it is
/// left as it was.)
#[inline]
pub fn check(
    result: &mut CallToolResult,
    max: usize,
) -> Result<Option<MeasuredContent>, ToolError> {
    if result.structured_content.is_some() {
        return match encoded_size(&*result, max) {
            Some(_) => Ok(None),
            None => Err(too_large(max)),
        };
    }
    // Everything but the content, with the content as `[]` (a known shape's size, or by the
    // serializer itself, whatever fields rmcp adds); then the content, within what is left.
    let content = std::mem::take(&mut result.content);
    let rest = rest_size(result, max);
    result.content = content;
    rest.and_then(|rest| {
        let left = max.saturating_add(EMPTY_CONTENT).checked_sub(rest)?;
        MeasuredContent::within(&result.content, left)
    })
    .map(Some)
    .ok_or_else(|| too_large(max))
}

/// A body's error, or `too_large` in its place when its result (as
/// [`ToolError::to_call_result`] writes it) is larger than `max` bytes: a tool's error message
/// is output like its result, and must not carry past the cap what a result could not.
pub fn check_error(e: ToolError, max: usize) -> ToolError {
    // Most errors are short: the message, written twice with every byte escaped at worst
    // (`\u00XX`), and the rest of the result (under 256 bytes) fit well within the cap, and
    // nothing is written to tell.
    let bound = e.message().len().saturating_mul(12).saturating_add(256);
    if e.details().is_empty() && bound <= max {
        return e;
    }
    match encoded_size(&e.to_call_result(), max) {
        Some(_) => e,
        None => too_large(max),
    }
}

fn too_large(max: usize) -> ToolError {
    super::too_large("the tool's output is", max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::content_block as block;
    use crate::error::ErrorCode;
    use proptest::prelude::*;
    use rmcp::model::{ContentBlock, MetaObject};
    use serde_json::json;

    fn result() -> impl Strategy<Value = CallToolResult> {
        (
            proptest::collection::vec(block(), 0..4),
            prop_oneof![Just(None), Just(Some(false)), Just(Some(true))],
            prop_oneof![
                Just(None),
                Just(Some(ResultType::COMPLETE)),
                Just(Some(ResultType::INPUT_REQUIRED)),
            ],
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(content, is_error, result_type, structured, meta)| {
                let mut r = CallToolResult::success(content);
                r.is_error = is_error;
                r.result_type = result_type;
                if structured {
                    r.structured_content = Some(json!({"n": 1, "s": "é\n"}));
                }
                if meta {
                    let mut m = MetaObject::new();
                    m.insert("trace".into(), json!("t-1"));
                    r.meta = Some(m);
                }
                r
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The cap is exact: a result of exactly `max` bytes passes, one byte less refuses it.
        /// The content's text comes back (unless the record lends `structuredContent`), and
        /// the result is left as it was.
        #[test]
        fn the_cap_is_the_serialized_size(original in result()) {
            let size = serde_json::to_vec(&original).unwrap().len();
            let mut r = original.clone();
            let measured = check(&mut r, size).unwrap();
            prop_assert_eq!(&r, &original);
            if original.structured_content.is_some() {
                prop_assert_eq!(measured, None);
            } else {
                // Plain text is measured, anything else written; either way as the record
                // would measure it.
                prop_assert_eq!(measured, Some(MeasuredContent::of(&original.content)));
            }
            let refused = check(&mut r, size - 1).unwrap_err();
            prop_assert_eq!(&r, &original);
            prop_assert_eq!(refused.code(), ErrorCode::TooLarge);
            prop_assert_eq!(
                refused.message(),
                format!("the tool's output is larger than {} bytes", size - 1)
            );
        }
    }

    /// What tools return (`success` and `error`, with `resultType` or without it) is measured
    /// from a known shape, not serialized again; a result with anything else is not.
    #[test]
    fn common_results_are_known_shapes() {
        let known = |r: &CallToolResult| SHAPES.iter().any(|(shape, _)| shape == r);
        for mut r in [
            CallToolResult::success(vec![]),
            CallToolResult::error(vec![]),
        ] {
            assert!(known(&r));
            r.result_type = None;
            assert!(known(&r));
            r.meta = Some(MetaObject::new());
            assert!(!known(&r));
        }
        for (shape, size) in SHAPES.iter() {
            assert_eq!(serde_json::to_vec(shape).unwrap().len(), *size);
        }
    }

    /// A body's error is measured as the result it becomes; the bound that spares measuring
    /// short ones holds for every code, whatever the message holds.
    #[test]
    fn a_bodys_error_is_capped_like_a_result() {
        let codes = [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::RateLimited,
            ErrorCode::InvalidInput,
            ErrorCode::TooLarge,
            ErrorCode::ApprovalRequired,
            ErrorCode::ApprovalDenied,
            ErrorCode::Timeout,
            ErrorCode::Overloaded,
            ErrorCode::Internal,
            ErrorCode::NotFound,
            ErrorCode::Failed,
            ErrorCode::Cancelled,
        ];
        for code in codes {
            for message in [String::new(), "\u{1}".repeat(40), "é\"".repeat(7)] {
                let e = ToolError::new(code, message.clone());
                let size = serde_json::to_vec(&e.to_call_result()).unwrap().len();
                assert!(size <= message.len() * 12 + 256, "{code}: {size}");
                assert_eq!(check_error(e.clone(), size), e);
                if size > 0 {
                    let refused = check_error(e, size - 1);
                    assert_eq!(refused.code(), ErrorCode::TooLarge);
                }
            }
        }
        let detailed = ToolError::failed("x").with_detail("rows", "y".repeat(5_000));
        assert_eq!(check_error(detailed, 1_000).code(), ErrorCode::TooLarge);
    }

    #[test]
    fn a_cap_smaller_than_the_rest_of_the_result_refuses_it() {
        let mut r = CallToolResult::success(vec![]);
        r.is_error = Some(false);
        let size = serde_json::to_vec(&r).unwrap().len();
        assert!(check(&mut r, size).is_ok());
        for max in [0, 1, size - 1] {
            assert_eq!(check(&mut r, max).unwrap_err().code(), ErrorCode::TooLarge);
        }
        let mut big = CallToolResult::success(vec![ContentBlock::text("x".repeat(100_000))]);
        assert_eq!(
            check(&mut big, 1024).unwrap_err().code(),
            ErrorCode::TooLarge
        );
        assert!(check(&mut big, usize::MAX).unwrap().is_some());
    }
}
