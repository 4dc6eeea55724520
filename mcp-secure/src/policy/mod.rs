//! The policy model: permission classes, roles and the static per-tool specification that
//! `#[tool]` generates.

mod roles;
mod spec;

pub use roles::{RoleDecl, Roles};
pub use spec::{Approval, Kind, Rate, ToolSpec};
