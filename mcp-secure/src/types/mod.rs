//! Validated parameter types: values that are safe by construction.

mod secret;
pub mod sql;

pub use secret::Secret;
pub use sql::{ReadOnlySql, SqlPolicy};
