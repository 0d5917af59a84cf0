//! Pushing a built image through the engine, skipping what the registry already has, then
//! reading the pushed manifest back to prove it serves the nodes' platform.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{Image, ImageError, Platform};

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

    /// The login for `registry` in the Docker config (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`), from its `auths` section: what `docker login` writes when no
    /// credential helper is configured. None when the file or the entry does not exist.
    pub fn from_docker_config(registry: &str) -> Result<Option<Credentials>, ImageError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => match std::env::var_os("HOME") {
                Some(home) => std::path::Path::new(&home).join(".docker"),
                None => return Ok(None),
            },
        };
        let path = dir.join("config.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(config_error(&path, &e.to_string())),
        };
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| config_error(&path, &e.to_string()))?;
        let wanted = registry_key(registry);
        let Some(entry) = config["auths"]
            .as_object()
            .and_then(|auths| auths.iter().find(|(key, _)| registry_key(key) == wanted))
            .map(|(_, entry)| entry)
        else {
            return Ok(None);
        };
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            return match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((user, password)) => Ok(Some(Credentials::new(user, password))),
                None => Err(config_error(
                    &path,
                    &format!("the `auth` of {registry} is not base64 of user:password"),
                )),
            };
        }
        match (entry["username"].as_str(), entry["password"].as_str()) {
            (Some(user), Some(password)) => Ok(Some(Credentials::new(user, password))),
            _ => Ok(None),
        }
    }
}

fn config_error(path: &std::path::Path, message: &str) -> ImageError {
    ImageError::Input {
        message: format!(
            "cannot read the Docker config {}: {message}",
            path.display()
        ),
        help: Some("fix the file, or pass --username and --password-stdin".into()),
    }
}

/// A registry address as Docker config keys name it, reduced to its host: keys may carry a
/// scheme and a path (`https://index.docker.io/v1/`), and Docker Hub has several names.
fn registry_key(address: &str) -> String {
    let host = address
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// How to reach the registry an image goes to.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// None: anonymous.
    pub credentials: Option<Credentials>,
    /// Speak plain HTTP to the registry. Loopback registries always get it, as Docker does.
    pub plain_http: bool,
}

impl Registry {
    fn client(&self, reference: &Reference) -> Client {
        let host = reference.resolve_registry().to_string();
        let name = host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name);
        let loopback = name == "localhost"
            || name == "[::1]"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        let protocol = if self.plain_http || loopback {
            ClientProtocol::HttpsExcept(vec![host])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            ..Default::default()
        })
    }

    fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// An image in the registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `<repository>:ctx-<12 hex>`.
    pub reference: String,
    /// The digest of the manifest the tag points at.
    pub digest: String,
    /// The platforms the registry serves under the tag.
    pub platforms: Vec<Platform>,
    /// False when the registry already had the tag with this image and nothing was pushed.
    pub pushed: bool,
}

/// Pushes `image` unless the registry has its tag with the same image already, then reads the
/// tag back and refuses (PlatformMismatch) unless it serves every platform in `needed`.
pub async fn push(
    docker: &Docker,
    image: &Image,
    registry: &Registry,
    needed: &[Platform],
    progress: &mut dyn FnMut(&str),
) -> Result<Pushed, ImageError> {
    let reference = Reference::from_str(&image.reference).map_err(|e| ImageError::Input {
        message: format!("invalid image reference {}: {e}", image.reference),
        help: None,
    })?;
    let client = registry.client(&reference);
    let auth = registry.auth();

    let remote = remote_image_id(&client, &reference, &auth, &image.platform).await?;
    let pushed = remote.as_deref() != Some(image.id.as_str());
    if pushed {
        engine_push(docker, image, &reference, registry, progress).await?;
    }

    let (platforms, digest) = registry_platforms(&client, &reference, &auth).await?;
    if !needed
        .iter()
        .all(|node| platforms.iter().any(|p| p.serves(node)))
    {
        return Err(ImageError::PlatformMismatch {
            reference: image.reference.clone(),
            found: platforms,
            needed: needed.to_vec(),
        });
    }
    Ok(Pushed {
        reference: image.reference.clone(),
        digest,
        platforms,
        pushed,
    })
}

async fn engine_push(
    docker: &Docker,
    image: &Image,
    reference: &Reference,
    registry: &Registry,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let tag = reference.tag().unwrap_or("latest");
    let name = image
        .reference
        .strip_suffix(&format!(":{tag}"))
        .unwrap_or(&image.reference);
    let credentials = registry.credentials.as_ref().map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(reference.registry().to_string()),
        ..Default::default()
    });
    let options = PushImageOptionsBuilder::new().tag(tag).build();
    let mut stream = docker.push_image(name, Some(options), credentials);
    let mut failure = None;
    while let Some(item) = stream.next().await {
        let message = match item {
            Ok(info) => {
                // Byte counters are noise in a log; the status changes are kept.
                let counting = info
                    .progress_detail
                    .as_ref()
                    .is_some_and(|p| p.current.is_some());
                if let Some(status) = info.status.as_deref().filter(|_| !counting) {
                    for line in status.lines().filter(|l| !l.trim().is_empty()) {
                        progress(line.trim_end());
                    }
                }
                info.error_detail.and_then(|d| d.message)
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => Some(error),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = message {
            failure.get_or_insert(message);
        }
    }
    match failure {
        Some(message) => Err(ImageError::Push {
            reference: image.reference.clone(),
            message: message.trim().to_string(),
        }),
        None => Ok(()),
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

fn registry_error(reference: &Reference, e: OciDistributionError) -> ImageError {
    ImageError::Registry {
        reference: reference.whole(),
        message: e.to_string(),
    }
}

/// The config digest (the engine's image id) of the image the registry serves under the tag
/// for `platform`, or None when the tag does not exist (or lacks that platform).
async fn remote_image_id(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    platform: &Platform,
) -> Result<Option<String>, ImageError> {
    let manifest = match client.pull_manifest(reference, auth).await {
        Ok((manifest, _)) => manifest,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(registry_error(reference, e)),
    };
    match manifest {
        OciManifest::Image(image) => Ok(Some(image.config.digest)),
        OciManifest::ImageIndex(index) => {
            let Some(entry) = index.manifests.iter().find(|entry| {
                entry.platform.as_ref().is_some_and(|p| {
                    Platform::new(
                        &p.os.to_string(),
                        &p.architecture.to_string(),
                        p.variant.as_deref(),
                    )
                    .serves(platform)
                })
            }) else {
                return Ok(None);
            };
            let by_digest = reference.clone_with_digest(entry.digest.clone());
            let (image, _) = client
                .pull_image_manifest(&by_digest, auth)
                .await
                .map_err(|e| registry_error(reference, e))?;
            Ok(Some(image.config.digest))
        }
    }
}

/// The platforms the registry serves under the tag, and the digest of the tag's manifest: the
/// entries of an index (attestation entries, `unknown/unknown`, left out), or the os and
/// architecture of a single image's config.
async fn registry_platforms(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
) -> Result<(Vec<Platform>, String), ImageError> {
    let (manifest, digest) = client
        .pull_manifest(reference, auth)
        .await
        .map_err(|e| registry_error(reference, e))?;
    let mut platforms = match manifest {
        OciManifest::ImageIndex(index) => index
            .manifests
            .iter()
            .filter_map(|entry| entry.platform.as_ref())
            .map(|p| {
                Platform::new(
                    &p.os.to_string(),
                    &p.architecture.to_string(),
                    p.variant.as_deref(),
                )
            })
            .filter(|p| p.os != "unknown")
            .collect(),
        OciManifest::Image(_) => {
            let (_, _, config) = client
                .pull_manifest_and_config(reference, auth)
                .await
                .map_err(|e| registry_error(reference, e))?;
            let config: serde_json::Value =
                serde_json::from_str(&config).map_err(|e| ImageError::Registry {
                    reference: reference.whole(),
                    message: format!("the image config is not JSON: {e}"),
                })?;
            vec![Platform::new(
                config["os"].as_str().unwrap_or("unknown"),
                config["architecture"].as_str().unwrap_or("unknown"),
                config["variant"].as_str(),
            )]
        }
    };
    platforms.sort();
    platforms.dedup();
    Ok((platforms, digest))
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
}
