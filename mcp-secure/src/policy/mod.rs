//! The policy model: permission classes, roles and the static per-tool specification that
//! `#[tool]` generates.

mod roles;
mod sandbox;
mod spec;

pub use roles::{RoleDecl, Roles};
pub use sandbox::{FsGrant, FsTarget, Network, SandboxSpec};
pub use spec::{Approval, Kind, Rate, ToolSpec};
