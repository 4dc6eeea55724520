use std::fmt;

/// The deployment environment a key belongs to. A server accepts only keys of its own
/// environment, so a key from a developer's laptop can never act on production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development and tests.
    Test,
    /// Production.
    Live,
}

impl Environment {
    /// `test` or `live`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Live => "live",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "test" => Ok(Environment::Test),
            "live" => Ok(Environment::Live),
            other => Err(format!("environment `{other}` is not `test` or `live`")),
        }
    }
}

/// Who is calling: resolved by an [`Authenticator`](crate::auth::Authenticator) for every call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The user (or service) id.
    pub user: String,
    /// The roles held directly; inheritance is resolved by the server's [`Roles`](crate::Roles).
    pub roles: Vec<String>,
    /// The id of the key or token that authenticated the call (never the secret).
    pub key_id: Option<String>,
    /// The environment of the key.
    pub environment: Option<Environment>,
}

impl Principal {
    /// A principal with a user id and roles.
    pub fn new(
        user: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Principal {
            user: user.into(),
            roles: roles.into_iter().map(Into::into).collect(),
            key_id: None,
            environment: None,
        }
    }

    /// Sets the key id.
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// Sets the environment.
    pub fn with_environment(mut self, env: Environment) -> Self {
        self.environment = Some(env);
        self
    }
}
