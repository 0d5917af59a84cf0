//! The real services of the harness answer the way their clients expect: PostgreSQL, sshd, the
//! registry with podman's Docker API in front of it.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use futures_util::StreamExt;
use oci_client::Reference;
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use tokio::process::Command;
use tokio::time::{Instant, sleep};

use crate::harness::Harness;
use crate::harness::registry;

/// Retries `attempt` until it succeeds or `within` has passed, then fails with its last error.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Runs a command and returns its trimmed stdout, or its stderr as the error.
async fn output(mut command: Command) -> Result<String, String> {
    let out = command.output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[tokio::test]
async fn postgres_answers_queries_as_the_paperclip_superuser() {
    let h = Harness::shared();
    let answer = eventually(Duration::from_secs(30), "psql SELECT 1", || {
        let mut psql = Command::new("psql");
        psql.args(["-h", "127.0.0.1", "-p", h.var("HARNESS_PG_PORT")])
            .args([
                "-U",
                h.var("HARNESS_PG_USER"),
                "-d",
                h.var("HARNESS_PG_DATABASE"),
            ])
            .args(["-tAc", "SELECT 1, current_setting('is_superuser')"])
            .env("PGPASSWORD", h.var("HARNESS_PG_PASSWORD"));
        output(psql)
    })
    .await;
    assert_eq!(answer, "1|on");
}

#[tokio::test]
async fn sshd_lets_the_harness_key_in_as_uid_1000() {
    let h = Harness::shared();
    let uid = eventually(Duration::from_secs(30), "ssh id -u", || {
        let mut ssh = Command::new("ssh");
        ssh.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            h.var("HARNESS_SSH_KNOWN_HOSTS")
        ))
        .args([
            "-i",
            h.var("HARNESS_SSH_KEY"),
            "-p",
            h.var("HARNESS_SSHD_PORT"),
        ])
        .arg(format!("{}@127.0.0.1", h.var("HARNESS_SSH_USER")))
        .args(["id", "-u"]);
        output(ssh)
    })
    .await;
    assert_eq!(uid, "1000");
}

#[tokio::test]
async fn docker_api_builds_with_run_and_pushes_an_image_the_registry_serves() {
    let h = Harness::shared();
    let registry = h.var("HARNESS_REGISTRY");
    let docker = Docker::connect_with_unix(h.var("DOCKER_HOST"), 300, bollard::API_DEFAULT_VERSION)
        .expect("connect to the Docker API");

    // A nonce in the image and its tag makes this build's config unique (also among concurrent
    // runs), so reading it back proves the push.
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let nonce = format!("{}-{}", std::process::id(), since_epoch.as_nanos());
    let repository = format!("{registry}/smoke/build");
    let tag = format!("run-{nonce}");
    // RUN needs a shell inside the image; the harness's static busybox is the whole image.
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY hello.txt /hello.txt\n\
         ENV BUILD_NONCE={nonce}\nRUN [\"/bin/busybox\", \"cp\", \"/hello.txt\", \"/copied.txt\"]\n"
    );
    let busybox = std::fs::read(h.var("HARNESS_BUSYBOX")).expect("read the harness busybox");
    let context = build_context(&[
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("hello.txt", b"hello\n", 0o644),
        ("busybox", &busybox, 0o755),
    ]);

    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(&format!("{repository}:{tag}"))
        .rm(true)
        .build();
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        let step = step.expect("build through the Docker API");
        assert!(step.error_detail.is_none(), "build failed: {step:?}");
    }

    let options = PushImageOptionsBuilder::new().tag(&tag).build();
    let mut push = docker.push_image(&repository, Some(options), None);
    while let Some(step) = push.next().await {
        let step = step.expect("push through the Docker API");
        assert!(step.error_detail.is_none(), "push failed: {step:?}");
    }

    let reference: Reference = format!("{repository}:{tag}").parse().unwrap();
    let (_, _, config) = registry::client(registry)
        .pull_manifest_and_config(&reference, &RegistryAuth::Anonymous)
        .await
        .expect("read the pushed image back from the registry");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let env = config["config"]["Env"].as_array().expect("config.Env");
    assert!(
        env.iter()
            .any(|e| e.as_str() == Some(&format!("BUILD_NONCE={nonce}"))),
        "pushed config lacks this build's ENV: {config}"
    );
}

/// A build context (tar) holding the given files: name, content, mode.
fn build_context(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        builder.append_data(&mut header, name, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn fixture_indexes_list_exactly_their_platforms() {
    let registry = Harness::shared().var("HARNESS_REGISTRY");
    let images = registry::push_platform_images(registry).await;
    let client = registry::client(registry);

    for (reference, expected) in [
        (&images.multi_platform, vec!["linux/amd64", "linux/arm64"]),
        (&images.arm64_only, vec!["linux/arm64"]),
        (&images.amd64_only, vec!["linux/amd64"]),
    ] {
        let (manifest, _) = client
            .pull_manifest(&reference.parse().unwrap(), &RegistryAuth::Anonymous)
            .await
            .unwrap_or_else(|e| panic!("pull {reference}: {e}"));
        let OciManifest::ImageIndex(index) = manifest else {
            panic!("{reference} is not an index");
        };
        let mut platforms: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|entry| entry.platform.as_ref())
            .map(|p| format!("{}/{}", p.os, p.architecture))
            .collect();
        platforms.sort();
        assert_eq!(platforms, expected, "platforms of {reference}");
    }

    let (manifest, _) = client
        .pull_manifest(
            &images.single_manifest.parse().unwrap(),
            &RegistryAuth::Anonymous,
        )
        .await
        .expect("pull the single-manifest image");
    assert!(
        matches!(manifest, OciManifest::Image(_)),
        "{} is an index",
        images.single_manifest
    );
}
