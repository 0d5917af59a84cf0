//! Tiny synthetic images in the harness registry, for tests that ask "does image X offer
//! platform Y": a two-platform OCI index, two single-platform indexes and a plain manifest, and
//! a two-platform image KWOK runs as a crash-looping container.
//!
//! Each platform image is one config blob and one uncompressed layer holding a file named
//! `platform`. All content is deterministic, so pushing again (also from concurrent tests) only
//! rewrites identical blobs and tags.

use std::sync::OnceLock;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Harness;

/// The repository in the harness registry that holds the fixture images.
pub const REPOSITORY: &str = "fixtures/platforms";
/// The repository whose images the harness's KWOK stages run as crash-looping containers
/// (tests/harness/stages/pod-failures.yaml).
pub const CRASH_LOOPING: &str = "fixtures/fail-crashloop";

/// References (`registry/repository:tag`) of the pushed fixture images.
#[derive(Debug, Clone)]
pub struct PlatformImages {
    /// An OCI image index offering linux/amd64 and linux/arm64.
    pub multi_platform: String,
    /// An OCI image index offering linux/arm64 only.
    pub arm64_only: String,
    /// An OCI image index offering linux/amd64 only.
    pub amd64_only: String,
    /// A single image manifest (no index) whose config says linux/amd64.
    pub single_manifest: String,
    /// A two-platform index that exists (preflight passes) but crash-loops once running.
    pub crash_looping: String,
}

/// An oci-client for the harness registry, which speaks plain HTTP.
pub fn client(registry: &str) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![registry.to_string()]),
        ..Default::default()
    })
}

/// Pushes the fixture images to `registry` (the harness's `HARNESS_REGISTRY`).
pub async fn push_platform_images(registry: &str) -> PlatformImages {
    let client = client(registry);
    let amd64 = push_platform_manifest(&client, registry, REPOSITORY, "amd64").await;
    let arm64 = push_platform_manifest(&client, registry, REPOSITORY, "arm64").await;

    let images = PlatformImages {
        multi_platform: format!("{registry}/{REPOSITORY}:multi"),
        arm64_only: format!("{registry}/{REPOSITORY}:arm64-only"),
        amd64_only: format!("{registry}/{REPOSITORY}:amd64-only"),
        single_manifest: format!("{registry}/{REPOSITORY}:single"),
        crash_looping: format!("{registry}/{CRASH_LOOPING}:multi"),
    };
    push_index(&client, &images.multi_platform, &[&amd64, &arm64]).await;
    push_index(&client, &images.arm64_only, &[&arm64]).await;
    push_index(&client, &images.amd64_only, &[&amd64]).await;
    push_manifest(
        &client,
        &images.single_manifest,
        &amd64.manifest,
        OCI_IMAGE_MEDIA_TYPE,
    )
    .await;
    // Index entries name manifests of their own repository.
    let crash_amd64 = push_platform_manifest(&client, registry, CRASH_LOOPING, "amd64").await;
    let crash_arm64 = push_platform_manifest(&client, registry, CRASH_LOOPING, "arm64").await;
    push_index(
        &client,
        &images.crash_looping,
        &[&crash_amd64, &crash_arm64],
    )
    .await;
    images
}

/// A platform image manifest as pushed: its bytes, digest and architecture.
struct PlatformManifest {
    architecture: &'static str,
    manifest: Vec<u8>,
    digest: String,
}

async fn push_platform_manifest(
    client: &Client,
    registry: &str,
    repository: &str,
    architecture: &'static str,
) -> PlatformManifest {
    let layer = platform_layer(architecture);
    let layer_digest = sha256(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": architecture,
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))
    .unwrap();
    let config_digest = sha256(&config);

    let target: Reference = format!("{registry}/{repository}").parse().unwrap();
    for (blob, digest) in [(&layer, &layer_digest), (&config, &config_digest)] {
        client
            .push_blob(&target, blob.clone(), digest)
            .await
            .unwrap_or_else(|e| panic!("push blob {digest} to {registry}: {e}"));
    }

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": descriptor(IMAGE_CONFIG_MEDIA_TYPE, &config),
        "layers": [descriptor(IMAGE_LAYER_MEDIA_TYPE, &layer)],
    }))
    .unwrap();
    let digest = sha256(&manifest);
    // Index entries point at manifests by digest, so each must exist under its digest.
    let by_digest = format!("{registry}/{repository}@{digest}");
    push_manifest(client, &by_digest, &manifest, OCI_IMAGE_MEDIA_TYPE).await;
    PlatformManifest {
        architecture,
        manifest,
        digest,
    }
}

async fn push_index(client: &Client, reference: &str, platforms: &[&PlatformManifest]) {
    let entries: Vec<_> = platforms
        .iter()
        .map(|p| {
            json!({
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "digest": p.digest,
                "size": p.manifest.len(),
                "platform": { "architecture": p.architecture, "os": "linux" },
            })
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": entries,
    }))
    .unwrap();
    push_manifest(client, reference, &index, OCI_IMAGE_INDEX_MEDIA_TYPE).await;
}

async fn push_manifest(client: &Client, reference: &str, body: &[u8], media_type: &str) {
    let parsed: Reference = reference.parse().unwrap();
    client
        .push_manifest_raw(&parsed, body.to_vec(), media_type.parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("push manifest {reference}: {e}"));
}

/// An uncompressed tar layer with one file, `platform`, naming the platform.
fn platform_layer(architecture: &str) -> Vec<u8> {
    let content = format!("linux/{architecture}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, "platform", content.as_bytes())
        .unwrap();
    builder.into_inner().unwrap()
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": sha256(blob), "size": blob.len() })
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The fixture images, pushed to the harness registry once per test process: every test here
/// pushing the same blobs at the same moment only adds load and upload races.
pub async fn fixture_images() -> PlatformImages {
    static IMAGES: OnceLock<PlatformImages> = OnceLock::new();
    let registry = Harness::shared().var("HARNESS_REGISTRY");
    IMAGES
        .get_or_init(|| {
            // Each test has a runtime of its own, so the one push runs on a runtime of its own
            // too; the tests waiting for it have nothing else to do meanwhile.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("a runtime for the fixture push")
                            .block_on(push_platform_images(registry))
                    })
                    .join()
                    .expect("push the fixture images")
            })
        })
        .clone()
}
