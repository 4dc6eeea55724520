//! Guard 1: refuse arguments over the tool's `max_input` before anything parses them.
//!
//! rmcp hands the server already-decoded JSON, so the size is that of the arguments'
//! compact JSON encoding, counted without allocating and abandoned as soon as it passes the cap.

use std::io;

use rmcp::model::JsonObject;

use crate::error::{ErrorCode, ToolError};

struct Counter {
    n: usize,
    max: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.n += buf.len();
        if self.n > self.max {
            return Err(io::Error::other("over the cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compact JSON size of `value`, or `None` once it passes `max`.
pub fn encoded_size<T: serde::Serialize + ?Sized>(value: &T, max: usize) -> Option<usize> {
    let mut c = Counter { n: 0, max };
    serde_json::to_writer(&mut c, value).ok().map(|()| c.n)
}

/// Refuses with `too_large` when the encoded arguments exceed `max` bytes.
pub fn check(args: &JsonObject, max: usize) -> Result<(), ToolError> {
    match encoded_size(args, max) {
        Some(_) => Ok(()),
        None => Err(ToolError::new(
            ErrorCode::TooLarge,
            format!("the arguments are larger than {max} bytes"),
        )
        .with_detail("max_bytes", max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_and_stops_at_the_cap() {
        let args = json!({"a": "x".repeat(100)}).as_object().unwrap().clone();
        let exact = serde_json::to_vec(&args).unwrap().len();
        assert_eq!(encoded_size(&args, exact), Some(exact));
        assert!(check(&args, exact).is_ok());
        let e = check(&args, exact - 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::TooLarge);
    }
}
