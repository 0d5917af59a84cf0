//! Images: does the tag exist, and which platforms does it offer?
//!
//! Two failures this prevents only show up after an apply otherwise: a tag the registry no
//! longer serves (Bitnami's Docker Hub tags) and an image built for one architecture on nodes of
//! another ("no match for platform in manifest" after a successful schedule).

use std::collections::BTreeMap;

use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};

use super::placement::NodePlatform;
use crate::image::Platform;
use crate::image::registry::{self, Refusal, RegistryAuth};

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
        let client = registry::client(images.into_iter().map(Reference::resolve_registry), false);
        Registries { client, auth }
    }

    /// The platforms `image` offers: the entries of its index, or for a single manifest the
    /// os/architecture of its config.
    pub async fn platforms(&self, image: &Reference) -> Result<Vec<Platform>, ImageError> {
        let auth = self.auth.oci(image.resolve_registry());
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
        match registry::refusal(&e) {
            Refusal::NotFound => ImageError::NotFound {
                tags: self.some_tags(image, auth).await,
            },
            Refusal::Unauthorized => ImageError::Unauthorized,
            Refusal::Other => ImageError::Other(e.to_string()),
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
}
