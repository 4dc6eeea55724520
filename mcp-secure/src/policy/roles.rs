use std::collections::{BTreeSet, HashMap};

/// One role as written in `roles! { ... }`: its name, the roles it inherits directly, and
/// whether it is privileged (`"admin": *` inherits every role and may call admin tools).
#[derive(Debug, Clone, Copy)]
pub struct RoleDecl {
    /// The role's name.
    pub name: &'static str,
    /// Roles inherited directly.
    pub inherits: &'static [&'static str],
    /// Inherits every role; the only kind of role that may call `kind = "admin"` tools.
    pub privileged: bool,
}

/// The crate's role hierarchy with inheritance resolved (transitively) once.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    /// For each role, every role it reaches (itself included).
    reach: crate::LookupMap<&'static str, BTreeSet<&'static str>>,
    privileged: BTreeSet<&'static str>,
}

impl Roles {
    /// Resolves a declaration. Fails on an unknown parent, a duplicate or a cycle.
    pub fn new(decls: &[RoleDecl]) -> Result<Self, String> {
        let mut direct: HashMap<&'static str, &RoleDecl> = HashMap::new();
        for d in decls {
            if direct.insert(d.name, d).is_some() {
                return Err(format!("role `{}` is declared twice", d.name));
            }
        }
        let all: BTreeSet<&'static str> = direct.keys().copied().collect();
        let mut reach = crate::LookupMap::default();
        for d in decls {
            let mut seen = BTreeSet::new();
            let mut stack = vec![(d.name, vec![d.name])];
            while let Some((name, path)) = stack.pop() {
                if !seen.insert(name) {
                    continue;
                }
                let decl = direct.get(name).ok_or_else(|| {
                    format!(
                        "role `{}` inherits `{name}`, which is not declared",
                        path[path.len() - 2]
                    )
                })?;
                if decl.privileged {
                    seen.extend(all.iter().copied());
                }
                for parent in decl.inherits {
                    if path.contains(parent) {
                        return Err(format!(
                            "roles inherit in a cycle: {} -> {parent}",
                            path.join(" -> ")
                        ));
                    }
                    let mut p = path.clone();
                    p.push(parent);
                    stack.push((parent, p));
                }
            }
            reach.insert(d.name, seen);
        }
        let privileged = decls
            .iter()
            .filter(|d| d.privileged)
            .map(|d| d.name)
            .collect();
        Ok(Roles { reach, privileged })
    }

    /// True when a principal holding `held` reaches `required`. Unknown held roles reach nothing.
    pub fn reaches<S: AsRef<str>>(&self, held: &[S], required: &str) -> bool {
        held.iter().any(|h| {
            self.reach
                .get(h.as_ref())
                .is_some_and(|set| set.contains(required))
        })
    }

    /// True when any held role is privileged.
    pub fn is_privileged<S: AsRef<str>>(&self, held: &[S]) -> bool {
        held.iter().any(|h| self.privileged.contains(h.as_ref()))
    }

    /// True when the role is declared.
    pub fn contains(&self, role: &str) -> bool {
        self.reach.contains_key(role)
    }

    /// Every declared role, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        let mut v: Vec<_> = self.reach.keys().copied().collect();
        v.sort_unstable();
        v.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLS: &[RoleDecl] = &[
        RoleDecl {
            name: "read-only",
            inherits: &[],
            privileged: false,
        },
        RoleDecl {
            name: "editor",
            inherits: &["read-only"],
            privileged: false,
        },
        RoleDecl {
            name: "lead",
            inherits: &["editor"],
            privileged: false,
        },
        RoleDecl {
            name: "admin",
            inherits: &[],
            privileged: true,
        },
    ];

    #[test]
    fn inheritance_is_transitive() {
        let r = Roles::new(DECLS).unwrap();
        assert!(r.reaches(&["lead"], "read-only"));
        assert!(r.reaches(&["editor"], "editor"));
        assert!(!r.reaches(&["read-only"], "editor"));
        assert!(r.reaches(&["admin"], "lead"));
        assert!(!r.reaches(&["ghost"], "read-only"));
        assert!(r.is_privileged(&["admin"]) && !r.is_privileged(&["lead"]));
    }

    #[test]
    fn bad_declarations_are_refused() {
        let cyc = [
            RoleDecl {
                name: "a",
                inherits: &["b"],
                privileged: false,
            },
            RoleDecl {
                name: "b",
                inherits: &["a"],
                privileged: false,
            },
        ];
        assert!(Roles::new(&cyc).unwrap_err().contains("cycle"));
        let missing = [RoleDecl {
            name: "a",
            inherits: &["zz"],
            privileged: false,
        }];
        assert!(Roles::new(&missing).unwrap_err().contains("`zz`"));
    }
}
