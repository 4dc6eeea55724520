//! Validated parameter types: values that are safe by construction.

pub mod path;
mod secret;
pub mod sql;
pub mod url;

pub use path::{SafePath, SafeRoot};
pub use secret::Secret;
pub use sql::{ReadOnlySql, SqlPolicy};
pub use url::PublicUrl;
