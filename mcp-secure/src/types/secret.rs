use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

use crate::tool::Bounded;

/// A secret tool parameter (a password, a token to forward, a card number).
///
/// It is a [`secrecy::SecretBox`]: the value lives on the heap and is zeroized when dropped.
/// It never appears in `Debug`/`Display`, in serialized output, in audit records or in error
/// messages: its schema is marked `writeOnly`, the audit layer and approval prompts write
/// `"[REDACTED]"` in its place wherever it sits in the arguments (a parameter, an `Option`, a
/// list, a map or a nested struct), and a keyed digest is kept so a record can still be matched.
/// Read it with [`Secret::expose`], only where it is used.
///
/// `T` must be [`Zeroize`] (`String`, numbers, byte arrays and vectors are;
/// derive it for your own types with `#[derive(mcp_secure::zeroize::Zeroize)]`).
pub struct Secret<T: Zeroize>(SecretBox<T>);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(SecretBox::new(Box::new(value)))
    }

    /// The secret value. Keep what you do with it out of logs and results.
    pub fn expose(&self) -> &T {
        self.0.expose_secret()
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Secret::new(self.expose().clone())
    }
}

/// Compares the values (not in constant time: for tests and bookkeeping, not for checking
/// credentials).
impl<T: Zeroize + PartialEq> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl<T: Zeroize + Eq> Eq for Secret<T> {}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret::new)
    }
}

/// Serializes as `"[REDACTED]"`: whatever serializes a secret (an error's parameters, a log
/// line, an audit record) never sees its value.
impl<T: Zeroize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

impl<T: Zeroize + JsonSchema> JsonSchema for Secret<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = T::json_schema(generator);
        schema.insert("writeOnly".into(), true.into());
        schema
    }
}

impl<T: Zeroize + Bounded> Bounded for Secret<T> {}

impl<T: Zeroize + crate::guard::validate::Length> crate::guard::validate::Length for Secret<T> {
    fn length(&self) -> Option<u64> {
        self.expose().length()
    }
}

#[cfg(feature = "validator")]
impl<T: Zeroize + validator::ValidateLength<u64>> validator::ValidateLength<u64> for Secret<T> {
    fn length(&self) -> Option<u64> {
        self.expose().length()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s: Secret<String> = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(format!("{s:?} {s}"), "Secret([REDACTED]) [REDACTED]");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.clone(), s);
        let n: Secret<u32> = serde_json::from_str("42").unwrap();
        assert_eq!(*n.expose(), 42);
    }
}
