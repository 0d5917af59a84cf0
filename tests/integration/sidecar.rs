//! The shell sidecar's image on the harness: install pins it to the digest the registry serves,
//! a bare repository means the content-tagged image `image push` builds, and a private image's
//! login comes from Infisical through an ExternalSecret.
//!
//! These run on KWOK's nodes with the harness's least app (`harness::apps`): they check the
//! image references and pull secrets the Deployment is given, and KWOK pulls nothing, so a tiny
//! image pushed by the test stands for the sidecar. The real sidecar image runs on the real node
//! in `install.rs`'s fresh install.

use base64::Engine as _;
use bollard::query_parameters::TagImageOptionsBuilder;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, LocalObjectReference, Secret};
use kube::api::Api;
use paperclipctl::image::{self, Context, Image, Platform, Registry};

use crate::harness::Harness;
use crate::harness::apps::Health;
use crate::install::{LLM_KEY, install, setup, text, versions};
use crate::shell_image::image::{docker, fresh_repository};

fn amd64() -> Platform {
    "linux/amd64".parse().unwrap()
}

/// Builds a tiny image (`FROM scratch`: no base image can be pulled here) for the harness
/// nodes' platform and pushes it as `reference` (`repository:tag`); returns the pushed digest.
async fn push_tiny_image(h: &Harness, repository: &str, reference: &str) -> String {
    let docker = docker(h);
    let context = Context::new([(
        "Dockerfile".to_string(),
        format!("FROM scratch\nLABEL reference={reference}\n").into_bytes(),
        0o644,
    )]);
    let built = image::build(&docker, &context, &amd64(), repository, &mut |_| {})
        .await
        .expect("build the tiny image");
    let (name, tag) = reference.rsplit_once(':').unwrap();
    if reference != built.reference {
        docker
            .tag_image(
                &built.reference,
                Some(TagImageOptionsBuilder::new().repo(name).tag(tag).build()),
            )
            .await
            .expect("tag the tiny image");
    }
    let tagged = Image {
        reference: reference.to_string(),
        ..built
    };
    image::push(
        &docker,
        &tagged,
        &Registry::default(),
        &[amd64()],
        &mut |_| {},
    )
    .await
    .expect("push the tiny image")
    .digest
}

async fn deployment(namespace: &str) -> Deployment {
    let client = Harness::shared().client().await;
    Api::<Deployment>::namespaced(client, namespace)
        .get("paperclip")
        .await
        .unwrap()
}

fn container<'d>(deployment: &'d Deployment, name: &str) -> &'d Container {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.iter().find(|c| c.name == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[tokio::test]
async fn install_pins_a_tagged_sidecar_to_the_pushed_digest() {
    let h = Harness::shared();
    let repository = fresh_repository(h, "tagged");
    let tagged = format!("{repository}:v1");
    let digest = push_tiny_image(h, &repository, &tagged).await;

    let setup = setup("pin", None).await;
    let _app = h.kwok_app(&setup.namespace, Health::Ok).await;
    let shell = format!("shell.image={tagged}");
    let run = install(
        &setup,
        &["--timeout", "60s", "--set", &shell],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "install failed:\n{stderr}");
    let pinned = format!("{tagged}@{digest}");
    assert!(
        stderr.contains(&format!("shell image {tagged} pinned to {digest}")),
        "{stderr}"
    );

    let deployment = deployment(&setup.namespace).await;
    assert_eq!(
        container(&deployment, "paperclip-shell").image.as_deref(),
        Some(pinned.as_str())
    );
    // The release record names the image every node runs.
    let records = Api::<Secret>::namespaced(h.client().await, &setup.namespace)
        .list(&kube::api::ListParams::default().labels("paperclipctl.io/release=paperclip"))
        .await
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&records.items[0].data.as_ref().unwrap()["release"].0).unwrap();
    assert_eq!(record["images"][&pinned], digest.as_str(), "{record}");
}

#[tokio::test]
async fn a_bare_repository_without_its_content_tag_names_image_push() {
    let h = Harness::shared();
    let repository = fresh_repository(h, "never-pushed");
    let setup = setup("unpushed", None).await;
    let shell = format!("shell.image={repository}");
    let run = install(
        &setup,
        &["--set", &shell],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let content_tag = Context::shell_image().tag(&repository, &amd64());
    assert!(
        stderr.contains(&format!("the registry has no {content_tag}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("paperclipctl image push --profile frank"),
        "{stderr}"
    );
    // Only the store's credentials (which the test created) and the namespace's CA exist.
    let objects = versions(&setup.namespace).await;
    assert!(
        objects
            .keys()
            .all(|k| k == "Secret/infisical-universal-auth" || k == "ConfigMap/kube-root-ca.crt"),
        "nothing may be applied: {objects:?}"
    );
}

#[tokio::test]
async fn a_private_sidecar_pulls_with_a_login_synced_from_infisical() {
    const USERNAME: &str = "shell-puller";
    const TOKEN: &str = "pull-token-for-sidecar-tests";
    let h = Harness::shared();
    let registry = h.var("HARNESS_REGISTRY");
    // A bare repository: the content tag `image push` would push for the nodes' platform.
    let repository = fresh_repository(h, "private");
    let content_tag = Context::shell_image().tag(&repository, &amd64());
    let digest = push_tiny_image(h, &repository, &content_tag).await;

    let setup = setup("pull", None).await;
    let _app = h.kwok_app(&setup.namespace, Health::Ok).await;
    let shell = format!("shell.image={repository}");
    let pull = format!(
        "shell.pullSecret={{registry: \"{registry}\", usernameKey: SHELL_PULL_USERNAME, \
         passwordKey: SHELL_PULL_TOKEN}}"
    );
    let run = install(
        &setup,
        &["--timeout", "60s", "--set", &shell, "--set", &pull],
        &[
            ("PAPERCLIP_LITELLM_KEY", LLM_KEY),
            ("SHELL_PULL_USERNAME", USERNAME),
            ("SHELL_PULL_TOKEN", TOKEN),
        ],
    )
    .await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "install failed:\n{stderr}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    assert!(
        stderr.contains("SHELL_PULL_TOKEN (paperclip-shell-pull)"),
        "provisioned like any required key: {stderr}"
    );

    // External Secrets built the registry login from the two Infisical keys.
    let secret = Api::<Secret>::namespaced(h.client().await, &setup.namespace)
        .get("paperclip-shell-pull")
        .await
        .unwrap();
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let data = secret.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), [".dockerconfigjson"]);
    let config: serde_json::Value = serde_json::from_slice(&data[".dockerconfigjson"].0).unwrap();
    let login = &config["auths"][registry];
    assert_eq!(login["username"], USERNAME, "{config}");
    assert_eq!(login["password"], TOKEN);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{TOKEN}"));
    assert_eq!(login["auth"], auth.as_str());

    // The pod pulls with it; the app does not load it as env; the sidecar runs the pushed digest.
    let deployment = deployment(&setup.namespace).await;
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    assert_eq!(
        pod.and_then(|p| p.image_pull_secrets.clone()),
        Some(vec![LocalObjectReference {
            name: "paperclip-shell-pull".into()
        }])
    );
    let app_env = serde_json::to_string(&container(&deployment, "paperclip").env_from).unwrap();
    assert!(!app_env.contains("paperclip-shell-pull"), "{app_env}");
    assert_eq!(
        container(&deployment, "paperclip-shell").image.as_deref(),
        Some(format!("{content_tag}@{digest}").as_str())
    );
}

#[test]
fn plan_shows_the_shell_image_as_given_and_says_install_pins_it() {
    let plan = |image: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
            .args(["plan", "--profile", "frank", "--set"])
            .arg(format!("shell.image={image}"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let tagged = plan("ghcr.io/me/paperclip-shell:v1");
    assert!(
        tagged.contains(
            "Deployment/paperclip (shell image ghcr.io/me/paperclip-shell:v1 is pinned to its \
             registry digest at install)"
        ),
        "{tagged}"
    );
    let bare = plan("ghcr.io/me/paperclip-shell");
    assert!(
        bare.contains(
            "shell image ghcr.io/me/paperclip-shell: the content tag `image push` builds for the \
             nodes' platform, pinned to its registry digest at install"
        ),
        "{bare}"
    );
    assert!(!bare.contains("@sha256:"), "plan stays offline: {bare}");
}
