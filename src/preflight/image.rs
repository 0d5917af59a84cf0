//! Images: does the tag exist, and which platforms does it offer?
//!
//! Two failures this prevents only show up after an apply otherwise: a tag the registry no
//! longer serves (Bitnami's Docker Hub tags) and an image built for one architecture on nodes of
//! another ("no match for platform in manifest" after a successful schedule).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};

use super::placement::NodePlatform;
use crate::image::Platform;

/// Registry credentials by registry host, read from the Docker config file.
///
/// Debug output names the registries only: credentials must never reach a log or a report.
#[derive(Clone, Default)]
pub struct RegistryAuth {
    credentials: BTreeMap<String, (String, String)>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registries", &self.credentials.keys().collect::<Vec<_>>())
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
    /// keeps credentials; no file means anonymous access. Only inline `auths` entries are used
    /// (credential helpers are not run).
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

    /// Parses a Docker config document. Errors never quote the document: it holds secrets.
    pub fn parse(text: &str) -> Result<RegistryAuth, String> {
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(default)]
            auths: BTreeMap<String, Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
        }
        let config: Config = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a Docker config document (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let mut credentials = BTreeMap::new();
        for (server, entry) in config.auths {
            let pair = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .ok_or_else(|| format!("the auth entry for {server} is not base64"))?;
                    let (user, pass) = decoded.split_once(':').ok_or_else(|| {
                        format!("the auth entry for {server} is not user:password")
                    })?;
                    (user.to_string(), pass.to_string())
                }
                (_, Some(user), Some(pass)) => (user, pass),
                _ => continue,
            };
            credentials.insert(registry_key(&server), pair);
        }
        Ok(RegistryAuth { credentials })
    }

    fn for_registry(&self, registry: &str) -> OciAuth {
        match self.credentials.get(&registry_key(registry)) {
            Some((user, pass)) => OciAuth::Basic(user.clone(), pass.clone()),
            None => OciAuth::Anonymous,
        }
    }
}

/// The host of a Docker config key or image registry, with Docker Hub's many names made one:
/// `https://index.docker.io/v1/`, `registry-1.docker.io` and `docker.io` are the same registry.
fn registry_key(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    }
    .to_string()
}

/// Whether `registry` (`host[:port]`) is this machine: such registries speak plain HTTP.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why an image could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The registry answered that the tag (or repository) does not exist.
    NotFound { tags: Vec<String> },
    /// The registry wants credentials it did not get, or refused the ones it got.
    Unauthorized,
    /// Anything else: no answer, a server error, a document that is not a manifest.
    Other(String),
}

/// Reads manifests from registries, with the credentials and plain-HTTP exceptions of one run.
pub struct Registries<'a> {
    client: Client,
    auth: &'a RegistryAuth,
}

impl<'a> Registries<'a> {
    /// A client for `images`: loopback registries among them are reached over plain HTTP.
    pub fn new<'i>(
        images: impl IntoIterator<Item = &'i Reference>,
        auth: &'a RegistryAuth,
    ) -> Self {
        let mut plain_http: Vec<String> = images
            .into_iter()
            .map(|r| r.resolve_registry().to_string())
            .filter(|r| is_loopback(r))
            .collect();
        plain_http.sort();
        plain_http.dedup();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        Registries { client, auth }
    }

    /// The platforms `image` offers: the entries of its index, or for a single manifest the
    /// os/architecture of its config.
    pub async fn platforms(&self, image: &Reference) -> Result<Vec<Platform>, ImageError> {
        let auth = self.auth.for_registry(image.registry());
        let manifest = self.client.pull_manifest(image, &auth).await;
        let manifest = match manifest {
            Ok((manifest, _digest)) => manifest,
            Err(e) => return Err(self.classify(image, &auth, e).await),
        };
        match manifest {
            OciManifest::ImageIndex(index) => {
                let mut platforms: Vec<Platform> = index
                    .manifests
                    .iter()
                    .filter_map(|entry| entry.platform.as_ref())
                    .map(|p| {
                        let (os, arch) = (p.os.to_string(), p.architecture.to_string());
                        Platform::new(&os, &arch, p.variant.as_deref())
                    })
                    // Build attestations are listed as unknown/unknown: not a platform.
                    .filter(|p| p.os != "unknown")
                    .collect();
                platforms.sort();
                platforms.dedup();
                Ok(platforms)
            }
            OciManifest::Image(manifest) => {
                let mut config = Vec::new();
                self.client
                    .pull_blob(image, &manifest.config, &mut config)
                    .await
                    .map_err(|e| ImageError::Other(e.to_string()))?;
                #[derive(serde::Deserialize)]
                struct Config {
                    architecture: String,
                    os: String,
                    variant: Option<String>,
                }
                let config: Config = serde_json::from_slice(&config)
                    .map_err(|e| ImageError::Other(format!("its config names no platform: {e}")))?;
                Ok(vec![Platform::new(
                    &config.os,
                    &config.architecture,
                    config.variant.as_deref(),
                )])
            }
        }
    }

    async fn classify(
        &self,
        image: &Reference,
        auth: &OciAuth,
        e: OciDistributionError,
    ) -> ImageError {
        let code = |c: &OciErrorCode| match c {
            OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown => Some(404),
            OciErrorCode::Unauthorized | OciErrorCode::Denied => Some(401),
            _ => None,
        };
        let status = match &e {
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
            Some(404) => ImageError::NotFound {
                tags: self.some_tags(image, auth).await,
            },
            Some(401 | 403) => ImageError::Unauthorized,
            _ => ImageError::Other(e.to_string()),
        }
    }

    /// A few tags the repository does have, to suggest instead of a missing one (`latest`
    /// first when it exists); none when the repository itself is unknown.
    async fn some_tags(&self, image: &Reference, auth: &OciAuth) -> Vec<String> {
        let Ok(response) = self.client.list_tags(image, auth, Some(100), None).await else {
            return Vec::new();
        };
        let mut tags = response.tags;
        if let Some(i) = tags.iter().position(|t| t == "latest") {
            let latest = tags.remove(i);
            tags.insert(0, latest);
        }
        tags.truncate(3);
        tags
    }
}

/// Which of `nodes` the offered platforms leave out, as the sentence a user reads:
/// `image X offers linux/arm64 only; nodes gpu-1 (amd64) need linux/amd64`. `None` when every
/// node is served.
pub fn platform_gap(image: &str, offered: &[Platform], nodes: &[NodePlatform]) -> Option<String> {
    let mut missing: BTreeMap<String, Vec<&NodePlatform>> = BTreeMap::new();
    for node in nodes {
        if !offered.iter().any(|p| p.serves(&node.platform)) {
            missing
                .entry(node.platform.to_string())
                .or_default()
                .push(node);
        }
    }
    if missing.is_empty() {
        return None;
    }
    let needs: Vec<String> = missing
        .iter()
        .map(|(platform, nodes)| {
            let names: Vec<String> = nodes
                .iter()
                .map(|n| format!("{} ({})", n.name, n.platform.architecture))
                .collect();
            format!("nodes {} need {platform}", names.join(", "))
        })
        .collect();
    let offered: Vec<String> = offered.iter().map(Platform::to_string).collect();
    let offers = match offered.as_slice() {
        [] => "offers no platform".to_string(),
        [only] => format!("offers {only} only"),
        all => format!("offers {}", all.join(", ")),
    };
    Some(format!("image {image} {offers}; {}", needs.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, arch: &str) -> NodePlatform {
        NodePlatform {
            name: name.into(),
            platform: linux(arch),
        }
    }

    fn linux(arch: &str) -> Platform {
        Platform::new("linux", arch, None)
    }

    #[test]
    fn an_arm64_only_image_on_an_amd64_node_names_both() {
        let gap = platform_gap("x:1", &[linux("arm64")], &[node("gpu-1", "amd64")]);
        assert_eq!(
            gap.as_deref(),
            Some("image x:1 offers linux/arm64 only; nodes gpu-1 (amd64) need linux/amd64")
        );
    }

    #[test]
    fn a_multi_platform_image_serves_every_node() {
        // arm64/v8 is how buildx names arm64: the same platform.
        let offered = [linux("amd64"), Platform::new("linux", "arm64", Some("v8"))];
        let nodes = [node("mini-1", "amd64"), node("arm-1", "arm64")];
        assert_eq!(platform_gap("x:1", &offered, &nodes), None);
    }

    #[test]
    fn missing_platforms_are_grouped() {
        let nodes = [
            node("mini-1", "amd64"),
            node("mini-2", "amd64"),
            node("arm-1", "arm64"),
        ];
        let gap = platform_gap("x:1", &[linux("s390x")], &nodes).unwrap();
        assert!(
            gap.ends_with(
                "nodes mini-1 (amd64), mini-2 (amd64) need linux/amd64; nodes arm-1 (arm64) \
                 need linux/arm64"
            ),
            "{gap}"
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
            matches!(auth.for_registry("docker.io"), OciAuth::Basic(u, p) if u == "user" && p == "pass")
        );
        assert!(matches!(auth.for_registry("ghcr.io"), OciAuth::Basic(u, _) if u == "bot"));
        assert!(matches!(auth.for_registry("quay.io"), OciAuth::Anonymous));
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("pass") && !debug.contains("token"),
            "{debug}"
        );
    }

    #[test]
    fn docker_config_errors_do_not_quote_secrets() {
        let err = RegistryAuth::parse(r#"{"auths": {"r": {"auth": "c2VjcmV0"}}}"#).unwrap_err();
        assert!(
            !err.contains("secret") && !err.contains("c2VjcmV0"),
            "{err}"
        );
        let err = RegistryAuth::parse("{ not json hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
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
