//! A call's output as its audit record shows it, lent to the sink like the rest of the record.
//!
//! The record's `output` is the tool result's `structuredContent` when it has one (lent as it
//! is), else its `content` as JSON. Content that is all plain text (what tools return) is lent
//! as it is and written with the record; other content is written once, as text
//! ([`ContentJson`]). Neither is converted to a [`Value`] tree that would be serialized and
//! freed right after: both give the same bytes that value would serialize to.

use rmcp::model::{ContentBlock, TextContent};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::guard::size::str_size;

/// The compact JSON text of a tool result's `content`: byte for byte what `serde_json` writes
/// for the content converted to a [`Value`] (so with every object's keys sorted), made without
/// building that value. Only [`ContentJson::new`] makes one, so the text is always valid JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentJson(String);

/// A text block with nothing but its text, in key order, around its text's JSON string.
const PLAIN_TEXT_OPEN: &[u8] = br#"{"text":"#;
const PLAIN_TEXT_CLOSE: &[u8] = br#","type":"text"}"#;
const PLAIN_TEXT_FRAME: usize = PLAIN_TEXT_OPEN.len() + PLAIN_TEXT_CLOSE.len();

/// A result's content as the output cap measured it ([`check`](crate::guard::output::check)),
/// handed to the call's audit record so that the content is measured once for both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeasuredContent {
    /// Every block is plain text (a text block with nothing beside its text, what tools
    /// return): the size of the content's JSON text. Nothing was written; the record writes
    /// the content from the result itself ([`AuditOutput`] lends it).
    PlainText(usize),
    /// Any other content, written as JSON text to measure it.
    Written(ContentJson),
}

impl MeasuredContent {
    /// Measures `content` whatever its size (the record's way when the cap did not).
    pub fn of(content: &[ContentBlock]) -> Self {
        match plain_text_size(content, usize::MAX) {
            Some(size) => MeasuredContent::PlainText(size),
            None => MeasuredContent::Written(ContentJson::new(content)),
        }
    }

    /// Measures `content` up to `max` bytes of JSON: `None` once it passes `max`, or when a
    /// block cannot be serialized.
    pub fn within(content: &[ContentBlock], max: usize) -> Option<Self> {
        if content.iter().all(|block| plain_text(block).is_some()) {
            plain_text_size(content, max).map(MeasuredContent::PlainText)
        } else {
            ContentJson::measured(content, max).map(MeasuredContent::Written)
        }
    }
}

/// The size of the JSON text of content whose every block is plain text (the text
/// [`ContentJson::new`] writes for it, and its size on the wire), without writing it; `None`
/// if a block is not plain text or the size passes `max`.
fn plain_text_size(content: &[ContentBlock], max: usize) -> Option<usize> {
    // The brackets and the commas between blocks.
    let mut size = 2 + content.len().saturating_sub(1);
    for block in content {
        size += plain_block_size(plain_text(block)?, max.checked_sub(size)?)?;
    }
    (size <= max).then_some(size)
}

/// The size of a plain text block with `text` (its frame and its text's JSON string), or
/// `None` once it passes `max`.
fn plain_block_size(text: &str, max: usize) -> Option<usize> {
    Some(PLAIN_TEXT_FRAME + str_size(text, max.checked_sub(PLAIN_TEXT_FRAME)?)?)
}

/// Appends a plain text block: its text's JSON string in the block's frame.
fn write_plain_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(PLAIN_TEXT_OPEN);
    // Writing a string to memory cannot fail.
    let _ = super::event::json_str(out, text);
    out.extend_from_slice(PLAIN_TEXT_CLOSE);
}

impl ContentJson {
    /// The content's JSON text, as its audit record shows it.
    pub fn new(content: &[ContentBlock]) -> Self {
        Self::measured(content, usize::MAX).unwrap_or_else(|| {
            // A block serde_json cannot write (none of rmcp's): every block through its
            // `Value`, which gives the same text for the others.
            let mut out = open(content);
            for (i, block) in content.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                by_value(&mut out, block);
            }
            close(out)
        })
    }

    /// The content's JSON text (as [`ContentJson::new`] writes it), if the content's size as
    /// `serde_json` writes it in a tool's result (the bytes it takes on the wire, where its
    /// keys are in the blocks' own order) is at most `max`. `None` once that size passes `max`
    /// (writing stops there), or when a block cannot be serialized.
    pub fn measured(content: &[ContentBlock], max: usize) -> Option<Self> {
        // The brackets and the commas between blocks.
        let mut size = 2 + content.len().saturating_sub(1);
        if size > max {
            return None;
        }
        let mut out = open(content);
        for (i, block) in content.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let left = max - size;
            match plain_text(block) {
                // A plain text block among others (content that is all plain text is measured
                // without being written: `MeasuredContent`). On the wire
                // `{"type":"text","text":"…"}`, here the same bytes in key order, written
                // straight around the text's JSON string (what `serde_json` writes for it): not
                // through serde's tagged-enum machinery, which costs several times the text's
                // own writing.
                Some(text) => {
                    size += plain_block_size(text, left)?;
                    write_plain_text(&mut out, text);
                }
                // Any other block is written as serialized to learn its size on the wire, then
                // again through a `Value` (which orders every key).
                None => {
                    let start = out.len();
                    serde_json::to_writer(
                        Bounded {
                            out: &mut out,
                            left,
                        },
                        block,
                    )
                    .ok()?;
                    size += out.len() - start;
                    out.truncate(start);
                    by_value(&mut out, block);
                }
            }
        }
        Some(close(out))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The buffer a content's text is written into, with its opening bracket.
fn open(content: &[ContentBlock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + content.len() * 48);
    out.push(b'[');
    out
}

/// Appends a block through its `Value`, which orders every key.
fn by_value(out: &mut Vec<u8>, block: &ContentBlock) {
    let value = serde_json::to_value(block)
        .unwrap_or_else(|e| Value::String(format!("(content that cannot be serialized: {e})")));
    // Written by the record's own writer, as every value in a record is; writing to memory
    // cannot fail (a `Value`'s keys are strings).
    let _ = super::event::json_value(out, &value);
}

/// Closes the text.
fn close(mut out: Vec<u8>) -> ContentJson {
    out.push(b']');
    // serde_json writes UTF-8, and only whole JSON tokens were moved; were that ever not so,
    // the text would keep every character it could, not be dropped.
    ContentJson(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Appends to a buffer until `left` bytes are used up, then fails: a content over the output
/// cap is not written whole to learn that it is.
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
    left: usize,
}

impl std::io::Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    // serde_json writes each token with `write_all`: one check and one copy, not the default
    // loop around `write`.
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.left = self
            .left
            .checked_sub(buf.len())
            .ok_or_else(|| std::io::Error::other("over the cap"))?;
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The text of a text block with nothing beside it (no `_meta`, no annotations).
fn plain_text(block: &ContentBlock) -> Option<&str> {
    match block {
        ContentBlock::Text(TextContent {
            text,
            meta: None,
            annotations: None,
            ..
        }) => Some(text),
        _ => None,
    }
}

/// A record's output as lent to a sink: a JSON value, a result's content as JSON text
/// ([`ContentJson`]), or a result's plain text content itself. All serialize to the same JSON
/// as the content converted to a value: [`AuditOutput::to_value`] gives the value either way.
#[derive(Clone, Copy, Debug)]
pub struct AuditOutput<'a>(Repr<'a>);

#[derive(Clone, Copy, Debug)]
enum Repr<'a> {
    Value(&'a Value),
    Content(&'a ContentJson),
    /// Content whose every block is plain text, written when the record is.
    PlainText(&'a [ContentBlock]),
}

impl<'a> AuditOutput<'a> {
    /// Lends a result's content whose every block is plain text
    /// ([`MeasuredContent::PlainText`]); any other block in it is written through its value,
    /// as [`ContentJson::new`] writes it.
    pub(crate) fn plain_text(content: &'a [ContentBlock]) -> Self {
        debug_assert!(content.iter().all(|block| plain_text(block).is_some()));
        AuditOutput(Repr::PlainText(content))
    }

    /// The output as a JSON value (a copy, or the content's text parsed).
    pub fn to_value(self) -> Value {
        let parsed = |text: &[u8]| {
            serde_json::from_slice(text)
                .unwrap_or_else(|e| Value::String(format!("(content that cannot be parsed: {e})")))
        };
        match self.0 {
            Repr::Value(v) => v.clone(),
            Repr::Content(c) => parsed(c.as_str().as_bytes()),
            Repr::PlainText(_) => {
                let mut out = Vec::new();
                let _ = self.write(&mut out);
                parsed(&out)
            }
        }
    }

    /// The value, when the output is lent as one.
    pub fn as_value(self) -> Option<&'a Value> {
        match self.0 {
            Repr::Value(v) => Some(v),
            Repr::Content(_) | Repr::PlainText(_) => None,
        }
    }

    /// Appends the output as compact JSON (the content's text is copied as it is; plain text
    /// content is written as [`ContentJson::new`] would write it).
    pub(crate) fn write(self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self.0 {
            Repr::Value(v) => super::event::json_value(out, v),
            Repr::Content(c) => {
                out.extend_from_slice(c.as_str().as_bytes());
                Ok(())
            }
            Repr::PlainText(content) => {
                out.push(b'[');
                for (i, block) in content.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match plain_text(block) {
                        Some(text) => write_plain_text(out, text),
                        None => by_value(out, block),
                    }
                }
                out.push(b']');
                Ok(())
            }
        }
    }
}

impl<'a> From<&'a Value> for AuditOutput<'a> {
    fn from(value: &'a Value) -> Self {
        AuditOutput(Repr::Value(value))
    }
}

impl<'a> From<&'a ContentJson> for AuditOutput<'a> {
    fn from(content: &'a ContentJson) -> Self {
        AuditOutput(Repr::Content(content))
    }
}

impl Serialize for AuditOutput<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Repr::Value(v) => v.serialize(serializer),
            // Through the value, so that every format (not only JSON) sees the same data.
            Repr::Content(_) | Repr::PlainText(_) => self.to_value().serialize(serializer),
        }
    }
}

/// Two outputs are equal when they are the same JSON.
impl PartialEq for AuditOutput<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.0, other.0) {
            (Repr::Value(a), Repr::Value(b)) => a == b,
            (Repr::Content(a), Repr::Content(b)) => a == b,
            (Repr::PlainText(a), Repr::PlainText(b)) => a == b,
            _ => self.to_value() == other.to_value(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::audit::event::tests::text;
    use proptest::prelude::*;
    use rmcp::model::{Annotations, Role};
    use serde_json::json;

    /// What the record showed before: the content converted to a value, then written.
    fn via_value(content: &[ContentBlock]) -> String {
        serde_json::to_string(&json!(content)).unwrap()
    }

    /// Content blocks of every kind the record treats apart (shared with the output cap's
    /// tests).
    pub(crate) fn block() -> impl Strategy<Value = ContentBlock> {
        prop_oneof![
            4 => text().prop_map(ContentBlock::text),
            1 => (text(), any::<bool>(), 0.0f32..1.0).prop_map(|(t, user, priority)| {
                let audience = vec![if user { Role::User } else { Role::Assistant }];
                ContentBlock::Text(
                    rmcp::model::TextContent::new(t).with_annotations(
                        Annotations::default()
                            .with_audience(audience)
                            .with_priority(priority),
                    ),
                )
            }),
            1 => (text(), text()).prop_map(|(t, k)| {
                let mut meta = rmcp::model::MetaObject::new();
                meta.insert(k, json!(1));
                ContentBlock::Text(rmcp::model::TextContent::new(t).with_meta(meta))
            }),
            1 => (text(), text()).prop_map(|(data, mime)| ContentBlock::image(data, mime)),
            1 => (text(), text())
                .prop_map(|(uri, t)| ContentBlock::embedded_text(uri, t)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn content_json_is_the_value_written(content in proptest::collection::vec(block(), 0..4)) {
            let made = ContentJson::new(&content);
            prop_assert_eq!(made.as_str(), via_value(&content));
            let output = AuditOutput::from(&made);
            prop_assert_eq!(output.to_value(), json!(content));
            prop_assert_eq!(serde_json::to_string(&output).unwrap(), via_value(&content));
            let mut written = Vec::new();
            output.write(&mut written).unwrap();
            prop_assert_eq!(written, via_value(&content).into_bytes());
        }

        /// Plain text content is measured without being written, to the byte, and lent to the
        /// record as it is, which writes the same text `ContentJson` would; any other content
        /// is written to be measured.
        #[test]
        fn plain_text_is_measured_unwritten_and_lent(
            texts in proptest::collection::vec(text(), 0..4),
            other in block(),
        ) {
            let content: Vec<ContentBlock> = texts.into_iter().map(ContentBlock::text).collect();
            let made = ContentJson::new(&content);
            let size = made.as_str().len();
            prop_assert_eq!(size, serde_json::to_vec(&content).unwrap().len());
            prop_assert_eq!(MeasuredContent::of(&content), MeasuredContent::PlainText(size));
            prop_assert_eq!(
                MeasuredContent::within(&content, size),
                Some(MeasuredContent::PlainText(size))
            );
            prop_assert_eq!(MeasuredContent::within(&content, size - 1), None);
            let lent = AuditOutput::plain_text(&content);
            let mut written = Vec::new();
            lent.write(&mut written).unwrap();
            prop_assert_eq!(written, via_value(&content).into_bytes());
            prop_assert_eq!(lent.to_value(), json!(content));
            prop_assert_eq!(serde_json::to_string(&lent).unwrap(), via_value(&content));
            prop_assert_eq!(lent, AuditOutput::from(&made));
            prop_assert_eq!(lent.as_value(), None);

            let mut mixed = content.clone();
            mixed.push(other.clone());
            let expected = if plain_text(&other).is_some() {
                MeasuredContent::PlainText(ContentJson::new(&mixed).as_str().len())
            } else {
                MeasuredContent::Written(ContentJson::new(&mixed))
            };
            prop_assert_eq!(MeasuredContent::of(&mixed), expected.clone());
            let wire = serde_json::to_vec(&mixed).unwrap().len();
            prop_assert_eq!(MeasuredContent::within(&mixed, wire), Some(expected));
            prop_assert_eq!(MeasuredContent::within(&mixed, wire - 1), None);
        }
    }

    #[test]
    fn plain_text_is_written_in_key_order_and_measured_as_on_the_wire() {
        let plain = [ContentBlock::text("a \"quoted\" }\\ \u{1}é")];
        let made = ContentJson::new(&plain);
        assert_eq!(
            made.as_str(),
            r#"[{"text":"a \"quoted\" }\\ \u0001é","type":"text"}]"#
        );
        assert_eq!(made.as_str(), via_value(&plain));
        // The size is the wire's, where the keys are in the block's own order: the same bytes.
        let wire = serde_json::to_vec(&plain).unwrap().len();
        assert_eq!(made.as_str().len(), wire);
        assert_eq!(ContentJson::measured(&plain, wire), Some(made));
        assert_eq!(ContentJson::measured(&plain, wire - 1), None);
        // Not plain: a text block with `_meta` or annotations, and any other kind.
        let mut meta = rmcp::model::MetaObject::new();
        meta.insert("k".into(), json!(1));
        for block in [
            ContentBlock::Text(TextContent::new("x").with_meta(meta)),
            ContentBlock::Text(
                TextContent::new("x").with_annotations(Annotations::default().with_priority(0.5)),
            ),
            ContentBlock::image("x", "image/png"),
        ] {
            assert_eq!(plain_text(&block), None, "{block:?}");
            let content = [block];
            let made = ContentJson::new(&content);
            assert_eq!(made.as_str(), via_value(&content));
            let wire = serde_json::to_vec(&content).unwrap().len();
            assert_eq!(ContentJson::measured(&content, wire), Some(made));
            assert_eq!(ContentJson::measured(&content, wire - 1), None);
        }
    }

    #[test]
    fn measuring_stops_writing_at_the_cap() {
        let huge = ContentBlock::text("x".repeat(1_000_000));
        let mut out = Vec::new();
        let written = serde_json::to_writer(
            Bounded {
                out: &mut out,
                left: 100,
            },
            &huge,
        );
        assert!(written.is_err());
        assert!(out.len() <= 100, "{}", out.len());
        assert_eq!(ContentJson::measured(&[huge], 1_000_000), None);
        // Even the brackets and commas count.
        assert_eq!(ContentJson::measured(&[], 1), None);
        let two = [ContentBlock::text("a"), ContentBlock::text("b")];
        let size = serde_json::to_vec(&two).unwrap().len();
        assert_eq!(
            ContentJson::measured(&two, size),
            Some(ContentJson::new(&two))
        );
        assert_eq!(ContentJson::measured(&two, size - 1), None);
    }

    #[test]
    fn value_and_content_outputs_compare_as_json() {
        let content = [ContentBlock::text("hi")];
        let made = ContentJson::new(&content);
        let value = json!(content);
        assert_eq!(AuditOutput::from(&made), AuditOutput::from(&value));
        assert_ne!(AuditOutput::from(&made), AuditOutput::from(&json!([])));
        assert_eq!(AuditOutput::from(&value).as_value(), Some(&value));
        assert_eq!(AuditOutput::from(&made).as_value(), None);
    }
}
