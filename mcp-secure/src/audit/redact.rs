//! Redaction by type: every value whose schema is marked secret ([`Secret<T>`](crate::Secret)
//! sets `writeOnly: true`) is replaced by `"[REDACTED]"` before the arguments reach an audit
//! record, an approval summary or an elicitation message, wherever it sits: a top-level
//! parameter, an `Option`, an element of a list or an array, a value of a map, or a field of a
//! nested struct.
//!
//! The tool's input schema is compiled once, when the server is built, into a small tree that
//! only holds the paths that can lead to a secret; a tool without secrets gets an empty one
//! and redaction costs it nothing.

use std::collections::{HashMap, HashSet};

use rmcp::model::JsonObject;
use serde_json::Value;

/// What stands in for a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// How deep `$ref`s are followed: recursive types are cut here, conservatively (see
/// [`Node::Secret`] below for what a cut means).
const MAX_DEPTH: usize = 32;

/// The redaction plan of one tool's arguments.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    root: Option<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    /// The whole value is secret.
    Secret,
    /// An object: named properties, and the schema of any other key (maps).
    Object {
        properties: HashMap<String, Node>,
        other: Option<Box<Node>>,
        /// Every property the schema names, when it describes no other key
        /// (`additionalProperties` absent or `false`). Any other key is redacted: it may be a
        /// serde `alias` of a secret field, which deserializes into the field but is not in
        /// the schema.
        closed: Option<HashSet<String>>,
    },
    /// A list or array: every element.
    Items(Box<Node>),
    /// Alternatives (`anyOf`/`oneOf`/`allOf`): each applies where it fits.
    All(Vec<Node>),
}

impl Redactor {
    /// Compiles the plan from a tool's input schema.
    pub fn from_schema(schema: &JsonObject) -> Self {
        let defs = schema
            .get("$defs")
            .or_else(|| schema.get("definitions"))
            .and_then(Value::as_object);
        Redactor {
            root: compile(schema, defs, 0),
        }
    }

    /// True when some argument can hold a secret.
    pub fn has_secrets(&self) -> bool {
        self.root.is_some()
    }

    /// Replaces every secret value in `args` by `"[REDACTED]"`, calling `seen(path, value)` with
    /// each original first (a dotted path such as `tokens[1]` or `login.password`), so the caller
    /// can keep a keyed digest of it.
    pub fn redact(&self, args: &mut JsonObject, mut seen: impl FnMut(&str, &Value)) {
        let Some(root @ Node::Object { .. }) = &self.root else {
            if let Some(node) = &self.root {
                // A schema that is not an object at the top: redact the values one by one.
                for (k, v) in args.iter_mut() {
                    apply(node, v, k, &mut seen);
                }
            }
            return;
        };
        for (key, value) in args.iter_mut() {
            if let Some(node) = root.entry(key) {
                apply(node, value, key, &mut seen);
            }
        }
    }

    /// A redacted copy of `args`.
    pub fn redacted(&self, args: &JsonObject) -> JsonObject {
        let mut out = args.clone();
        self.redact(&mut out, |_, _| {});
        out
    }
}

/// What stands for a key of a closed object that its schema does not name.
static UNNAMED: Node = Node::Secret;

impl Node {
    /// The plan for the value at `key` of an object, if anything in it can be secret.
    fn entry(&self, key: &str) -> Option<&Node> {
        let Node::Object {
            properties,
            other,
            closed,
        } = self
        else {
            return None;
        };
        properties.get(key).or(other.as_deref()).or_else(|| {
            closed
                .as_ref()
                .is_some_and(|names| !names.contains(key))
                .then_some(&UNNAMED)
        })
    }
}

/// Gives every closed object among `parts` (alternatives of one value) the names of them all:
/// a key one alternative names is not unnamed for another.
fn share_names(parts: &mut [Node]) {
    fn collect(node: &Node, names: &mut HashSet<String>, open: &mut bool) {
        match node {
            Node::Object {
                closed: Some(n), ..
            } => names.extend(n.iter().cloned()),
            Node::Object { closed: None, .. } => *open = true,
            Node::All(nodes) => nodes.iter().for_each(|n| collect(n, names, open)),
            _ => {}
        }
    }
    fn set(node: &mut Node, names: &HashSet<String>, open: bool) {
        match node {
            Node::Object { closed, .. } => *closed = (!open).then(|| names.clone()),
            Node::All(nodes) => nodes.iter_mut().for_each(|n| set(n, names, open)),
            _ => {}
        }
    }
    let (mut names, mut open) = (HashSet::new(), false);
    parts.iter().for_each(|p| collect(p, &mut names, &mut open));
    parts.iter_mut().for_each(|p| set(p, &names, open));
}

fn apply(node: &Node, value: &mut Value, path: &str, seen: &mut impl FnMut(&str, &Value)) {
    match node {
        Node::Secret => {
            if !value.is_null() {
                seen(path, value);
                *value = Value::from(REDACTED);
            }
        }
        Node::Object { .. } => {
            if let Value::Object(map) = value {
                for (key, v) in map.iter_mut() {
                    if let Some(n) = node.entry(key) {
                        apply(n, v, &format!("{path}.{key}"), seen);
                    }
                }
            }
        }
        Node::Items(item) => {
            if let Value::Array(list) = value {
                for (i, v) in list.iter_mut().enumerate() {
                    apply(item, v, &format!("{path}[{i}]"), seen);
                }
            }
        }
        Node::All(nodes) => {
            for n in nodes {
                if matches!(value, Value::String(s) if s == REDACTED) {
                    break;
                }
                apply(n, value, path, seen);
            }
        }
    }
}

/// The plan for one schema, or `None` when nothing below it can be secret.
fn compile(schema: &JsonObject, defs: Option<&JsonObject>, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        // A recursive type nested this deep: whatever is below is not looked into. It cannot
        // hold a secret the top levels did not already show (a recursive type's secret fields
        // appear at its first level), so nothing is lost by stopping here.
        return None;
    }
    if schema.get("writeOnly") == Some(&Value::Bool(true)) {
        return Some(Node::Secret);
    }
    let sub = |v: &Value| v.as_object().and_then(|o| compile(o, defs, depth + 1));
    let mut parts = Vec::new();
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let name = target
            .strip_prefix("#/$defs/")
            .or_else(|| target.strip_prefix("#/definitions/"));
        if let Some(def) = name.and_then(|n| defs?.get(n)) {
            parts.extend(sub(def));
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            parts.extend(list.iter().filter_map(sub));
        }
    }
    let properties: HashMap<String, Node> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter_map(|(k, v)| Some((k.clone(), sub(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let additional = schema.get("additionalProperties");
    let other = additional.and_then(sub);
    if !properties.is_empty() || other.is_some() {
        // Closed when no other key is described: absent, or `false` (`deny_unknown_fields`).
        let closed = matches!(additional, None | Some(Value::Bool(false))).then(|| {
            schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default()
        });
        parts.push(Node::Object {
            properties,
            other: other.map(Box::new),
            closed,
        });
    }
    let items = schema
        .get("items")
        .and_then(|i| match i {
            // A tuple (`prefixItems` in newer drafts, `items: [..]` in older ones): any slot
            // that can be secret makes every slot redacted, conservatively.
            Value::Array(list) => list.iter().find_map(sub),
            other => sub(other),
        })
        .or_else(|| {
            schema
                .get("prefixItems")
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find_map(sub))
        });
    if let Some(item) = items {
        parts.push(Node::Items(Box::new(item)));
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => {
            share_names(&mut parts);
            Some(Node::All(parts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    struct Login {
        user: String,
        password: Secret<String>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Args {
        plain: String,
        top: Secret<String>,
        maybe: Option<Secret<String>>,
        list: Vec<Secret<String>>,
        fixed: [Secret<u32>; 2],
        map: BTreeMap<String, Secret<String>>,
        login: Login,
        logins: Vec<Login>,
        nested: Option<Vec<Option<Login>>>,
    }

    fn redactor<T: JsonSchema + 'static>() -> Redactor {
        Redactor::from_schema(&crate::__private::input_schema::<T>())
    }

    #[test]
    fn secrets_are_found_wherever_they_are() {
        let r = redactor::<Args>();
        assert!(r.has_secrets());
        let mut args = json!({
            "plain": "visible",
            "top": "s-top",
            "maybe": "s-maybe",
            "list": ["s-l0", "s-l1"],
            "fixed": [41, 42],
            "map": {"a": "s-ma", "b": "s-mb"},
            "login": {"user": "ann", "password": "s-login"},
            "logins": [{"user": "bob", "password": "s-logins"}],
            "nested": [null, {"user": "cy", "password": "s-nested"}],
        })
        .as_object()
        .cloned()
        .unwrap();
        let mut paths = Vec::new();
        r.redact(&mut args, |p, _| paths.push(p.to_owned()));
        let text = Value::Object(args.clone()).to_string();
        for secret in ["s-", "41", "42"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for visible in ["visible", "ann", "bob", "cy"] {
            assert!(text.contains(visible), "{visible} lost: {text}");
        }
        paths.sort();
        assert_eq!(
            paths,
            [
                "fixed[0]",
                "fixed[1]",
                "list[0]",
                "list[1]",
                "login.password",
                "logins[0].password",
                "map.a",
                "map.b",
                "maybe",
                "nested[1].password",
                "top"
            ]
        );
    }

    #[test]
    fn no_secrets_no_plan() {
        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Plain {
            a: String,
            b: Vec<u32>,
        }
        let r = redactor::<Plain>();
        assert!(!r.has_secrets());
        let args = json!({"a": "x", "b": [1]}).as_object().cloned().unwrap();
        assert_eq!(r.redacted(&args), args);
    }

    #[test]
    fn a_null_optional_secret_stays_null() {
        let r = redactor::<Args>();
        let args = json!({"maybe": null}).as_object().cloned().unwrap();
        assert_eq!(r.redacted(&args)["maybe"], Value::Null);
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Aliased {
        user: String,
        #[serde(alias = "pw")]
        password: Secret<String>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(untagged)]
    enum Either {
        Password {
            user: String,
            password: Secret<String>,
        },
        Token {
            name: String,
            token: Secret<String>,
        },
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    struct WithEither {
        auth: Either,
    }

    /// A key the schema does not name may be an alias of a secret field: it is redacted. A key
    /// that one alternative names is left to the others.
    #[test]
    fn unnamed_keys_of_objects_with_secrets_are_redacted() {
        let r = redactor::<Aliased>();
        let args = json!({"user": "a", "pw": "hunter2"});
        let out = r.redacted(args.as_object().unwrap());
        assert_eq!(out["pw"], REDACTED);
        assert_eq!(out["user"], "a");

        let r = redactor::<WithEither>();
        let args = json!({"auth": {"user": "a", "password": "p", "name": "n", "token": "t"}});
        let out = r.redacted(args.as_object().unwrap());
        assert_eq!(out["auth"]["user"], "a");
        assert_eq!(out["auth"]["name"], "n");
        assert_eq!(out["auth"]["password"], REDACTED);
        assert_eq!(out["auth"]["token"], REDACTED);
        assert_eq!(out["auth"].as_object().unwrap().len(), 4);
    }
}
