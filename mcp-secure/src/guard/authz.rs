//! Guard 3: role-based access control.

use crate::auth::Principal;
use crate::error::{ErrorCode, ToolError};
use crate::policy::{Kind, Roles, ToolSpec};

/// True when the principal may use the tool: a held role reaches the tool's role, and for
/// admin tools a held role is privileged.
pub fn allowed(roles: &Roles, principal: &Principal, spec: &ToolSpec) -> bool {
    roles.reaches(&principal.roles, spec.role)
        && (spec.kind != Kind::Admin || roles.is_privileged(&principal.roles))
}

/// Refuses with `forbidden` when the principal may not use the tool.
#[inline]
pub fn check(roles: &Roles, principal: &Principal, spec: &ToolSpec) -> Result<(), ToolError> {
    if allowed(roles, principal, spec) {
        Ok(())
    } else {
        Err(forbidden(spec))
    }
}

#[cold]
fn forbidden(spec: &ToolSpec) -> ToolError {
    ToolError::new(
        ErrorCode::Forbidden,
        format!("this tool needs the `{}` role", spec.role),
    )
}
