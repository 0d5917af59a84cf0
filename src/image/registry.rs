//! Talking to registries: logins from the Docker config and its credential helpers, plain HTTP for registries on this
//! machine, and what a registry's errors mean. Pushing, preflight's image checks and install's
//! digest pinning all read registries through this one module, so they agree on credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_credential::DockerCredential;
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth as OciAuth;

/// A registry login. The password is never shown: Debug prints it redacted.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The password, for the requests that log in with it.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    pub(crate) fn oci(&self) -> OciAuth {
        OciAuth::Basic(self.username.clone(), self.password.clone())
    }
}

/// Registry logins: whatever the Docker config file has for a registry, as Docker itself finds
/// it (a `credHelpers` entry, an inline `auths` login, or the `credsStore` helper), else a login
/// added from elsewhere for registries the config has none for (the shell's pull secret, read
/// from Infisical).
///
/// Debug output says only whether there is a config and which registries have added logins:
/// credentials must never reach a log.
#[derive(Clone, Default)]
pub struct RegistryAuth {
    /// The Docker config document (it may hold inline passwords: never shown).
    docker_config: Option<String>,
    /// Logins by registry key (see `registry_key`), each with where it came from.
    added: BTreeMap<String, (Credentials, String)>,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("docker_config", &self.docker_config.is_some())
            .field("added", &self.added.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The Docker config file exists but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read registry credentials from {path}: {reason}")]
pub struct DockerConfigError {
    pub path: PathBuf,
    pub reason: String,
}

impl RegistryAuth {
    /// No credentials: every registry is read anonymously.
    pub fn anonymous() -> RegistryAuth {
        RegistryAuth::default()
    }

    /// Reads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, where `docker login`
    /// keeps credentials (or the name of the helper that keeps them); no file means anonymous
    /// access.
    pub fn from_docker_config() -> Result<RegistryAuth, DockerConfigError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME") {
                Some(home) => Path::new(&home).join(".docker"),
                None => return Ok(RegistryAuth::anonymous()),
            },
        };
        let path = dir.join("config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => RegistryAuth::parse(&text).map_err(|reason| DockerConfigError {
                path: path.clone(),
                reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryAuth::anonymous()),
            Err(e) => Err(DockerConfigError {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Takes a Docker config document. It must be a JSON object; its entries are read per
    /// registry when one is asked for. Errors never quote the document: it holds secrets.
    pub fn parse(text: &str) -> Result<RegistryAuth, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a Docker config document (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if !value.is_object() {
            return Err("not a Docker config document (not a JSON object)".into());
        }
        Ok(RegistryAuth {
            docker_config: Some(text.to_string()),
            added: BTreeMap::new(),
        })
    }

    /// The login for `registry` (a host, or a Docker config key), if there is one: the Docker
    /// config's first, else one added with [`RegistryAuth::with_login`]. A credential helper
    /// that fails or is missing counts as no login: the registry's refusal then says what is
    /// wrong, where a helper's own output could carry a secret.
    pub fn get(&self, registry: &str) -> Option<Credentials> {
        self.docker_login(registry).or_else(|| {
            self.added
                .get(&registry_key(registry))
                .map(|(credentials, _)| credentials.clone())
        })
    }

    /// Whether the Docker config (or one of its helpers) has a login for `registry`.
    pub fn has_docker_login(&self, registry: &str) -> bool {
        self.docker_login(registry).is_some()
    }

    /// Adds a login for `registry`, used where the Docker config has none. `source` says where
    /// it comes from (never what it is), for the error when the registry refuses it.
    pub fn with_login(mut self, registry: &str, credentials: Credentials, source: String) -> Self {
        self.added
            .insert(registry_key(registry), (credentials, source));
        self
    }

    /// Where the login used for `registry` comes from, when it is an added one.
    pub fn source(&self, registry: &str) -> Option<&str> {
        if self.docker_login(registry).is_some() {
            return None;
        }
        self.added
            .get(&registry_key(registry))
            .map(|(_, source)| source.as_str())
    }

    fn docker_login(&self, registry: &str) -> Option<Credentials> {
        let config = self.docker_config.as_deref()?;
        let server = match registry_key(registry).as_str() {
            // The key `docker login` and the credential helpers use for Docker Hub.
            "docker.io" => "https://index.docker.io/v1/".to_string(),
            host => host.to_string(),
        };
        match docker_credential::get_credential_from_reader(config.as_bytes(), &server) {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                Some(Credentials::new(user, password))
            }
            // An identity token is an OAuth refresh token for Docker's own token flow, which
            // registry clients other than Docker's do not speak.
            Ok(DockerCredential::IdentityToken(_)) | Err(_) => None,
        }
    }

    /// How oci-client authenticates to `registry`.
    pub(crate) fn oci(&self, registry: &str) -> OciAuth {
        self.get(registry)
            .as_ref()
            .map_or(OciAuth::Anonymous, Credentials::oci)
    }
}

/// The host of a Docker config key or image registry, with Docker Hub's many names made one:
/// `https://index.docker.io/v1/`, `registry-1.docker.io` and `docker.io` are the same registry.
fn registry_key(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// Whether `registry` (`host[:port]`) is this machine: such registries speak plain HTTP, as
/// Docker assumes too.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client for `registries` (`host[:port]`, as `Reference::resolve_registry` gives them):
/// loopback ones, and all of them with `plain_http`, are reached over plain HTTP.
pub(crate) fn client<'r>(
    registries: impl IntoIterator<Item = &'r str>,
    plain_http: bool,
) -> Client {
    let mut http: Vec<String> = registries
        .into_iter()
        .filter(|r| plain_http || is_loopback(r))
        .map(str::to_string)
        .collect();
    http.sort();
    http.dedup();
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(http),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    })
}

/// What a registry's error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The tag (or the repository) does not exist.
    NotFound,
    /// Credentials are missing or were refused.
    Unauthorized,
    /// Anything else: no answer, a server error, a document that is not a manifest.
    Other,
}

pub(crate) fn refusal(e: &OciDistributionError) -> Refusal {
    let code = |c: &OciErrorCode| match c {
        OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown => Some(404),
        OciErrorCode::Unauthorized | OciErrorCode::Denied => Some(401),
        _ => None,
    };
    let status = match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|err| code(&err.code))
        }
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        _ => None,
    };
    match status {
        Some(404) => Refusal::NotFound,
        Some(401 | 403) => Refusal::Unauthorized,
        _ => Refusal::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_keys_match_by_host() {
        assert_eq!(registry_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_key("docker.io"), "docker.io");
        assert_eq!(registry_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_key("GHCR.io"), "ghcr.io");
    }

    #[test]
    fn credentials_never_show_the_password() {
        let shown = format!("{:?}", Credentials::new("me", "hunter2"));
        assert!(
            shown.contains("me") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn docker_config_auths_by_registry() {
        let config = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "ghcr.io": {"username": "bot", "password": "token"},
            "quay.io": {}
        }}"#;
        let auth = RegistryAuth::parse(config).unwrap();
        assert!(
            matches!(auth.oci("docker.io"), OciAuth::Basic(u, p) if u == "user" && p == "pass")
        );
        assert!(matches!(auth.oci("ghcr.io"), OciAuth::Basic(u, _) if u == "bot"));
        assert!(matches!(auth.oci("quay.io"), OciAuth::Anonymous));
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("pass") && !debug.contains("token"),
            "{debug}"
        );
    }

    #[test]
    fn docker_config_errors_do_not_quote_secrets() {
        let err = RegistryAuth::parse("{ not json hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        // A login that cannot be decoded is no login, and nothing says what it held.
        let auth = RegistryAuth::parse(r#"{"auths": {"r": {"auth": "c2VjcmV0"}}}"#).unwrap();
        assert!(auth.get("r").is_none());
    }

    #[test]
    fn an_added_login_serves_only_where_the_docker_config_has_none() {
        let config = r#"{"auths": {"ghcr.io": {"username": "docker", "password": "p1"}}}"#;
        let auth = RegistryAuth::parse(config)
            .unwrap()
            .with_login(
                "ghcr.io",
                Credentials::new("added", "p2"),
                "keys A, B".into(),
            )
            .with_login(
                "127.0.0.1:5000",
                Credentials::new("added", "p3"),
                "keys C, D".into(),
            );
        assert_eq!(auth.get("ghcr.io").unwrap().username, "docker");
        assert_eq!(auth.source("ghcr.io"), None);
        assert_eq!(auth.get("127.0.0.1:5000").unwrap().username, "added");
        assert_eq!(auth.source("http://127.0.0.1:5000"), Some("keys C, D"));
        assert!(auth.get("quay.io").is_none());
        let debug = format!("{auth:?}");
        assert!(
            debug.contains("127.0.0.1:5000") && !debug.contains("p3"),
            "{debug}"
        );
    }

    #[test]
    fn loopback_registries_speak_plain_http() {
        for yes in [
            "127.0.0.1:55000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["ghcr.io", "192.168.1.10:5000", "index.docker.io"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
