#![doc = include_str!("../../README.md")]
// No `unsafe` code, except with feature `spool` in one module (`audit/mapped.rs`, which says
// why): a memory-mapped file cannot be had without it, nor a prefetch of its next bytes.
#![cfg_attr(not(feature = "spool"), forbid(unsafe_code))]
#![cfg_attr(feature = "spool", deny(unsafe_code))]
#![warn(missing_docs)]

pub mod approval;
pub mod audit;
pub mod auth;
mod clock;
mod ctx;
mod error;
pub mod guard;
pub mod policy;
mod random;
pub mod sandbox;
pub mod server;
mod tool;
pub mod types;

#[doc(hidden)]
pub mod __private;

pub use clock::{Clock, Stamp};
pub use ctx::Ctx;
pub use error::{ErrorCode, ToolError};
pub use policy::{Approval, Kind, Rate, RoleDecl, Roles, ToolSpec};
pub use server::{SecureServer, ServerBuilder};
pub use tool::{Bounded, IntoToolOutput, Json, ParsedArgs, ToolHandler, ToolReturn, Tools};
#[cfg(feature = "sqlite")]
pub use types::ReadOnlySql;
pub use types::Secret;

/// Declares an MCP tool. See the crate documentation for the keys and the errors.
pub use mcp_secure_macros::tool;

/// Declares the crate's roles, once, at the crate root:
/// `roles! { "read-only", "editor": "read-only", "admin": * }`.
pub use mcp_secure_macros::roles;

/// Lists tools for a server: `tools![get_customer, update_order]`.
pub use mcp_secure_macros::tools;

/// `zeroize`, for `#[derive(Zeroize)]` on your own types inside a [`Secret`].
pub use zeroize;

/// The rmcp version this crate is built on, re-exported so users need not depend on it
/// separately.
pub use rmcp;

/// A map filled at start-up (from the builder, the key file, the role declarations) and read
/// on every call with a key a caller sent. A caller can look up any key but insert none, so it
/// cannot flood a bucket: a fast seeded hash (`foldhash`) is enough, where SipHash cost a few
/// hundred instructions per call. A map whose keys come from callers (the rate limiter's)
/// keeps a keyed SipHash.
pub(crate) type LookupMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
