//! Pinning the shell sidecar to the digest the registry serves, at install time.
//!
//! A tag can move between the push that verified it and the moment a node pulls it, and nodes
//! pulling at different times could run different images. Install therefore applies the sidecar
//! as `repository:tag@sha256:…`: the kubelet pulls by digest (the tag stays for people reading
//! the spec), so every node runs exactly what was pushed and checked. Offline `plan` never gets
//! here: it shows the image as the profile gives it.

use std::collections::BTreeMap;

use oci_client::Reference;

use super::registry::{self, Refusal, RegistryAuth};
use super::{Context, ImageError, placement_platforms};
use crate::profile::types::ImageRef;

/// The shell image as install applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// `repository:tag@sha256:…` (or the profile's own digest reference).
    pub reference: ImageRef,
    /// `sha256:…`.
    pub digest: String,
}

/// Pins the profile's `shell.image` to a digest. A reference with a digest is kept as it is; a
/// tag is looked up; a bare repository means the image `paperclipctl image push` builds from the
/// compiled-in context, whose content tag depends on the platform of the nodes `node_selector`
/// picks, so those are read from the cluster. `push_command` is how the user pushes that image
/// (named when the registry does not have it).
pub async fn pin_shell_image(
    cluster: &kube::Client,
    image: &ImageRef,
    node_selector: &BTreeMap<String, String>,
    auth: &RegistryAuth,
    push_command: &str,
) -> Result<Pinned, ImageError> {
    if let Some(digest) = image.digest() {
        return Ok(Pinned {
            reference: image.clone(),
            digest,
        });
    }
    let (tagged, built_for) = match image.tag() {
        Some(_) => (image.to_string(), None),
        None => {
            let platforms = placement_platforms(cluster, node_selector).await?;
            let [platform] = platforms.as_slice() else {
                let list: Vec<String> = platforms.iter().map(ToString::to_string).collect();
                return Err(ImageError::Input {
                    message: format!(
                        "shell.image {image} names no tag, and the app's nodes run {}: one \
                         content-tagged image serves one platform",
                        list.join(" and ")
                    ),
                    help: Some(
                        "pin the app to one architecture (app.placement.nodeSelector \
                         kubernetes.io/arch), or set shell.image to a multi-platform tag"
                            .into(),
                    ),
                });
            };
            let parsed = image.reference();
            let repository = format!("{}/{}", parsed.registry(), parsed.repository());
            (
                Context::shell_image().tag(&repository, platform),
                Some(platform.clone()),
            )
        }
    };
    let reference: Reference = tagged.parse().map_err(|e| ImageError::Input {
        message: format!("invalid image reference {tagged}: {e}"),
        help: Some("fix shell.image".into()),
    })?;
    let host = reference.resolve_registry();
    let client = registry::client([host], false);
    let digest = match client
        .fetch_manifest_digest(&reference, &auth.oci(host))
        .await
    {
        Ok(digest) => digest,
        Err(e) => {
            let (message, help) = match (registry::refusal(&e), built_for) {
                (Refusal::NotFound, Some(platform)) => (
                    format!(
                        "the registry has no {tagged}: the shell image this paperclipctl builds \
                         for {platform} has not been pushed"
                    ),
                    format!("run `{push_command}` first, or set shell.image to a tag"),
                ),
                (Refusal::NotFound, None) => (
                    "the registry has no such tag".to_string(),
                    format!(
                        "set shell.image to a tag that exists, or to the bare repository and \
                         run `{push_command}`"
                    ),
                ),
                (Refusal::Unauthorized, _) => match auth.source(host) {
                    Some(source) => (
                        format!("{} refused the login from {source}", reference.registry()),
                        format!(
                            "check those values: a user name and a password or token that {} \
                             accepts for this repository",
                            reference.registry()
                        ),
                    ),
                    None => (
                        "the registry refused to show it (unauthorized or private)".to_string(),
                        format!(
                            "`docker login {}` (install reads the Docker config and its \
                             credential helpers to pin the digest), or set shell.pullSecret",
                            reference.registry()
                        ),
                    ),
                },
                (Refusal::Other, _) => (
                    e.to_string(),
                    format!("check that {} is reachable from here", reference.registry()),
                ),
            };
            return Err(ImageError::Pin {
                reference: tagged,
                message,
                help,
            });
        }
    };
    pinned(&tagged, digest)
}

/// Pins any image to the digest its registry serves now (`repository:tag@sha256:…`); a reference
/// that names a digest already is kept. `field` is the profile field the image comes from, for
/// the error. Run after preflight, which explains a missing tag or platform better.
pub async fn pin(image: &ImageRef, auth: &RegistryAuth, field: &str) -> Result<Pinned, ImageError> {
    if let Some(digest) = image.digest() {
        return Ok(Pinned {
            reference: image.clone(),
            digest,
        });
    }
    let reference = image.reference();
    let host = reference.resolve_registry();
    let digest = registry::client([host], false)
        .fetch_manifest_digest(&reference, &auth.oci(host))
        .await
        .map_err(|e| ImageError::Pin {
            reference: image.to_string(),
            message: e.to_string(),
            help: format!("check that {} serves {field} {image}", reference.registry()),
        })?;
    pinned(image.as_str(), digest)
}

/// `tagged@digest` as the pinned reference.
fn pinned(tagged: &str, digest: String) -> Result<Pinned, ImageError> {
    Ok(Pinned {
        reference: format!("{tagged}@{digest}")
            .parse()
            .map_err(|e| ImageError::Registry {
                reference: tagged.to_string(),
                message: format!("it answered digest {digest:?}, which is not one: {e}"),
            })?,
        digest,
    })
}
