//! Who paperclipctl logs in to Infisical as, and where: a machine identity's universal-auth
//! client, and the API host.

use crate::profile::model::SecretStore;

use super::error::SecretsError;
use super::value::SecretValue;

/// The variables Infisical's own CLI and SDKs read, so one export serves every tool.
pub const ENV_CLIENT_ID: &str = "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET";
/// Overrides the profile's `secrets.store.hostApi`: the cluster reaches Infisical by a name this
/// machine may not resolve (e.g. `*.svc.cluster.local`), so the installer may need another URL.
pub const ENV_API_URL: &str = "INFISICAL_API_URL";

/// Universal-auth credentials and the site URL (without `/api`). `Debug` shows the host and the
/// client id, never the client secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    host: String,
    client_id: String,
    client_secret: SecretValue,
}

impl Credentials {
    pub fn new(
        host: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretValue,
    ) -> Credentials {
        Credentials {
            host: host.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret,
        }
    }

    /// Credentials from explicit values where given, else from `env` (pass
    /// `|name| std::env::var(name).ok()`); the host from `INFISICAL_API_URL` when set, else the
    /// store's `hostApi`. Empty variables count as unset.
    pub fn resolve(
        store: &SecretStore,
        client_id: Option<String>,
        client_secret: Option<SecretValue>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, SecretsError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let client_id = client_id
            .filter(|v| !v.trim().is_empty())
            .or_else(|| env(ENV_CLIENT_ID));
        let client_secret = client_secret
            .filter(|v| !v.is_empty())
            .or_else(|| env(ENV_CLIENT_SECRET).map(SecretValue::new));
        let host = match env(ENV_API_URL) {
            Some(url) => {
                let url = url.trim().to_string();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SecretsError::BadApiUrl { value: url });
                }
                url
            }
            None => store.host_api.to_string(),
        };
        match (client_id, client_secret) {
            (Some(id), Some(secret)) => Ok(Credentials::new(host, id, secret)),
            (id, secret) => {
                let missing: Vec<&str> = [
                    id.is_none().then_some(ENV_CLIENT_ID),
                    secret.is_none().then_some(ENV_CLIENT_SECRET),
                ]
                .into_iter()
                .flatten()
                .collect();
                Err(SecretsError::NoCredentials {
                    missing: missing.join(" and "),
                })
            }
        }
    }

    /// The site URL requests go to (`<host>/api/...`).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn client_secret(&self) -> &SecretValue {
        &self.client_secret
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn explicit_values_win_over_the_environment_and_the_host_comes_from_the_profile() {
        let store = SecretStore::default();
        let credentials = Credentials::resolve(
            &store,
            Some("explicit-id".into()),
            Some(SecretValue::new("explicit-secret")),
            env(&[(ENV_CLIENT_ID, "env-id"), (ENV_CLIENT_SECRET, "env-secret")]),
        )
        .unwrap();
        assert_eq!(credentials.client_id(), "explicit-id");
        assert_eq!(credentials.client_secret().expose(), "explicit-secret");
        assert_eq!(credentials.host(), "https://app.infisical.com");
    }

    #[test]
    fn the_environment_fills_in_and_may_override_the_host() {
        let store = SecretStore::default();
        let credentials = Credentials::resolve(
            &store,
            None,
            None,
            env(&[
                (ENV_CLIENT_ID, "env-id"),
                (ENV_CLIENT_SECRET, "env-secret"),
                (ENV_API_URL, "http://127.0.0.1:8080/"),
            ]),
        )
        .unwrap();
        assert_eq!(credentials.client_id(), "env-id");
        assert_eq!(credentials.host(), "http://127.0.0.1:8080");
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("env-secret"), "{debug}");
        assert!(debug.contains("env-id"), "{debug}");
    }

    #[test]
    fn missing_or_empty_credentials_name_the_variables_to_set() {
        let store = SecretStore::default();
        let error = Credentials::resolve(&store, None, None, env(&[(ENV_CLIENT_ID, " ")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains(ENV_CLIENT_ID), "{error}");
        assert!(error.contains(ENV_CLIENT_SECRET), "{error}");
        let error = Credentials::resolve(&store, None, None, env(&[(ENV_API_URL, "ftp://x")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains(ENV_API_URL), "{error}");
    }
}
