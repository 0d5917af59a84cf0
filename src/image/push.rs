//! Pushing a built image through the engine, skipping what the registry already has, then
//! reading the pushed manifest back to prove it serves the nodes' platform.

use std::str::FromStr;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::registry::{self, Credentials, Refusal};
use super::{Image, ImageError, Platform};

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
        registry::client([reference.resolve_registry()], self.plain_http)
    }

    fn auth(&self) -> RegistryAuth {
        self.credentials
            .as_ref()
            .map_or(RegistryAuth::Anonymous, Credentials::oci)
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
        help: Some("fix the registry or repository given (--registry, or shell.image)".into()),
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
        password: Some(c.password().to_string()),
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
        Err(e) if registry::refusal(&e) == Refusal::NotFound => return Ok(None),
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
