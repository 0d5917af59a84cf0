//! `paperclipctl image build|push` through the library API, against the harness's Docker API
//! (podman) and registry. The contexts are tiny `FROM scratch` images: no base image can be
//! pulled here, and the real Dockerfile starts from one.

use std::time::{SystemTime, UNIX_EPOCH};

use bollard::Docker;
use oci_client::secrets::RegistryAuth;
use paperclipctl::image::{self, Context, ImageError, Platform, Registry};

use crate::harness::{Harness, registry};

pub(crate) fn docker(h: &Harness) -> Docker {
    Docker::connect_with_unix(h.var("DOCKER_HOST"), 300, bollard::API_DEFAULT_VERSION)
        .expect("connect to the Docker API")
}

/// A repository no earlier run has used, so the first build and push are real.
pub(crate) fn fresh_repository(h: &Harness, name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}/test/{name}-{:x}-{nanos:x}",
        h.var("HARNESS_REGISTRY"),
        std::process::id()
    )
}

fn context(dockerfile: &str) -> Context {
    Context::new([
        (
            "Dockerfile".to_string(),
            dockerfile.as_bytes().to_vec(),
            0o644,
        ),
        ("hello.txt".to_string(), b"hello\n".to_vec(), 0o644),
    ])
}

fn platform(s: &str) -> Platform {
    s.parse().unwrap()
}

#[tokio::test]
async fn build_push_and_verify_round_trip_then_both_are_no_ops() {
    let h = Harness::shared();
    let docker = docker(h);
    let repository = fresh_repository(h, "round-trip");
    let context = context("FROM scratch\nCOPY hello.txt /hello.txt\n");
    let amd64 = platform("linux/amd64");

    let mut lines = Vec::new();
    let built = image::build(&docker, &context, &amd64, &repository, &mut |l| {
        lines.push(l.to_string())
    })
    .await
    .expect("build");
    assert!(built.built);
    assert_eq!(built.reference, context.tag(&repository, &amd64));
    assert!(
        lines.iter().any(|l| l.contains("COPY hello.txt")),
        "the builder's output reaches the callback: {lines:?}"
    );

    let pushed = image::push(
        &docker,
        &built,
        &Registry::default(),
        std::slice::from_ref(&amd64),
        &mut |_| {},
    )
    .await
    .expect("push");
    assert!(pushed.pushed);
    assert_eq!(pushed.platforms, std::slice::from_ref(&amd64));

    // The registry serves exactly the image the engine built.
    let (manifest, digest, _) = registry::client(h.var("HARNESS_REGISTRY"))
        .pull_manifest_and_config(&built.reference.parse().unwrap(), &RegistryAuth::Anonymous)
        .await
        .expect("read the pushed image back");
    assert_eq!(manifest.config.digest, built.id);
    assert_eq!(digest, pushed.digest);

    let mut lines = Vec::new();
    let again = image::build(&docker, &context, &amd64, &repository, &mut |l| {
        lines.push(l.to_string())
    })
    .await
    .expect("second build");
    assert!(!again.built, "an unchanged context is not rebuilt");
    assert!(lines.is_empty(), "nothing ran: {lines:?}");
    assert_eq!(again.id, built.id);

    let mut lines = Vec::new();
    let repushed = image::push(&docker, &again, &Registry::default(), &[amd64], &mut |l| {
        lines.push(l.to_string())
    })
    .await
    .expect("second push");
    assert!(!repushed.pushed, "the registry had the image already");
    assert!(lines.is_empty(), "nothing was pushed: {lines:?}");
    assert_eq!(repushed.digest, pushed.digest);
}

#[tokio::test]
async fn an_arm64_only_image_is_refused_for_amd64_nodes() {
    let h = Harness::shared();
    let docker = docker(h);
    let repository = fresh_repository(h, "arm64-only");
    let context = context("FROM scratch\nCOPY hello.txt /hello.txt\n");

    let built = image::build(
        &docker,
        &context,
        &platform("linux/arm64"),
        &repository,
        &mut |_| {},
    )
    .await
    .expect("build for arm64 (no RUN step, so no emulation is needed)");
    let error = image::push(
        &docker,
        &built,
        &Registry::default(),
        &[platform("linux/amd64")],
        &mut |_| {},
    )
    .await
    .expect_err("an arm64 image must not pass for amd64 nodes");

    let ImageError::PlatformMismatch { found, needed, .. } = &error else {
        panic!("expected a platform mismatch, got {error:?}");
    };
    assert_eq!(found, &[platform("linux/arm64")]);
    assert_eq!(needed, &[platform("linux/amd64")]);
    let message = error.to_string();
    assert!(
        message.contains("offers linux/arm64 but the nodes need linux/amd64"),
        "{message}"
    );

    // The same content built for amd64 is an amd64 image (the engine's layer cache holds the
    // arm64 build of it) and passes.
    let amd64 = platform("linux/amd64");
    let rebuilt = image::build(&docker, &context, &amd64, &repository, &mut |_| {})
        .await
        .expect("build for amd64");
    let pushed = image::push(
        &docker,
        &rebuilt,
        &Registry::default(),
        std::slice::from_ref(&amd64),
        &mut |_| {},
    )
    .await
    .expect("an amd64 image passes for amd64 nodes");
    assert_eq!(pushed.platforms, std::slice::from_ref(&amd64));
}

#[tokio::test]
async fn a_failing_dockerfile_shows_the_builders_error_line() {
    let h = Harness::shared();
    let docker = docker(h);
    let repository = fresh_repository(h, "broken");
    let context = context("FROM scratch\nCOPY no-such-file.txt /x\n");

    let error = image::build(
        &docker,
        &context,
        &platform("linux/amd64"),
        &repository,
        &mut |_| {},
    )
    .await
    .expect_err("COPY of a missing file fails");
    let ImageError::Build { message, .. } = &error else {
        panic!("expected a build error, got {error:?}");
    };
    assert!(message.contains("no-such-file.txt"), "{message}");
    assert!(
        error
            .to_string()
            .contains(&context.tag(&repository, &platform("linux/amd64")))
    );
}
