//! Preflight against the harness cluster: each test makes one check fail for real (a dead tag,
//! an arm64-only image on an amd64 node, a missing storage class, a taken LoadBalancer IP, a
//! node too small, an earlier OOMKilled run, missing store credentials, a denied read, an API
//! that does not answer) and reads the message a user would see.
//!
//! Every profile runs in a namespace of its own, with all images taken from the harness
//! registry and the store's credentials Secret expected in that namespace, so tests sharing the
//! cluster never see each other's objects.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Secret, Service, ServiceSpec};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use paperclipctl::image::RegistryAuth;
use paperclipctl::preflight::{self, Report, Row, Status};
use paperclipctl::render::{self, Object};
use serde_json::json;

use crate::harness::Harness;
use crate::harness::registry::{self, PlatformImages};

/// Generous for a loaded two-core machine; every wait below normally ends within a second.
const DEADLINE: Duration = Duration::from_secs(60);

/// Frank's profile in `namespace`, with every image the multi-platform fixture, the store's
/// credentials expected in `namespace`, fresh LoadBalancer IPs, then `sets`.
fn frank(
    namespace: &str,
    images: &PlatformImages,
    sets: &[String],
) -> paperclipctl::profile::Profile {
    let multi = &images.multi_platform;
    let mut all = vec![
        format!("namespace={namespace}"),
        format!("app.image={multi}"),
        format!("database.image={multi}"),
        format!("database.metrics.image={multi}"),
        format!("shell.image={multi}"),
        format!("secrets.store.credentials.namespace={namespace}"),
        format!("app.service.loadBalancerIp={}", crate::harness::unique_ip()),
        format!(
            "shell.service.loadBalancerIp={}",
            crate::harness::unique_ip()
        ),
    ];
    all.extend_from_slice(sets);
    paperclipctl::profile::load("frank", &all)
        .unwrap_or_else(|e| panic!("load frank with {all:?}: {e:?}"))
        .profile
}

async fn run(client: &kube::Client, profile: &paperclipctl::profile::Profile) -> Report {
    let release = render::render(profile);
    preflight::run(client, profile, &release, &RegistryAuth::anonymous()).await
}

/// The row of check `id`, with the whole table in the message when it is missing.
fn row<'r>(report: &'r Report, id: &str) -> &'r Row {
    report
        .get(id)
        .unwrap_or_else(|| panic!("no check {id} in\n{}", report.to_text()))
}

fn assert_status(report: &Report, id: &str, status: Status) {
    assert_eq!(
        row(report, id).outcome.status,
        status,
        "check {id}:\n{}",
        report.to_text()
    );
}

#[tokio::test]
async fn a_tag_the_registry_does_not_have_fails_naming_the_image_and_tags_that_exist() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let namespace = harness.namespace("preflight-tag").await;
    let registry = harness.var("HARNESS_REGISTRY");
    let dead = format!("{registry}/{}:sha-0000000", registry::REPOSITORY);
    let profile = frank(&namespace, &images, &[format!("app.image={dead}")]);

    let report = run(&harness.client().await, &profile).await;

    assert_status(&report, "image-app", Status::Fail);
    let outcome = &row(&report, "image-app").outcome;
    assert_eq!(
        outcome.detail,
        format!("image {dead} does not exist: the registry answered 404")
    );
    let fix = outcome.fix.as_deref().unwrap();
    assert!(
        fix.starts_with("set app.image to a tag that exists, e.g. ")
            && fix.contains(&format!("{registry}/{}:multi", registry::REPOSITORY)),
        "{fix}"
    );
    assert!(report.failed());
    // The other images exist: one dead tag fails its own row only.
    assert_status(&report, "image-database", Status::Pass);
}

#[tokio::test]
async fn an_arm64_only_image_pinned_to_the_amd64_gpu_node_fails_listing_its_platforms() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let namespace = harness.namespace("preflight-arm").await;
    let profile = frank(
        &namespace,
        &images,
        &[format!("app.image={}", images.arm64_only)],
    );

    let report = run(&harness.client().await, &profile).await;

    assert_status(&report, "image-app", Status::Fail);
    assert_eq!(
        row(&report, "image-app").outcome.detail,
        format!(
            "image {} offers linux/arm64 only; nodes gpu-1 (amd64) need linux/amd64",
            images.arm64_only
        )
    );
    let text = report.to_text();
    assert!(text.contains("FAIL    image-app"), "{text}");
}

#[tokio::test]
async fn a_multi_platform_image_and_a_single_manifest_pass_where_they_fit() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let namespace = harness.namespace("preflight-multi").await;
    let client = harness.client().await;
    let profile = frank(
        &namespace,
        &images,
        &[format!("database.image={}", images.single_manifest)],
    );

    let report = run(&client, &profile).await;

    assert_status(&report, "api-access", Status::Pass);
    assert_status(&report, "image-app", Status::Pass);
    assert_eq!(
        row(&report, "image-app").outcome.detail,
        format!(
            "image {} offers linux/amd64, linux/arm64; fits gpu-1",
            images.multi_platform
        )
    );
    assert_status(&report, "external-secrets", Status::Pass);
    assert_status(&report, "storage-class", Status::Pass);
    // The database may land on any untainted node, arm-1 included: an amd64-only manifest
    // leaves that one out, read from the manifest's config.
    assert_status(&report, "image-database", Status::Fail);
    assert_eq!(
        row(&report, "image-database").outcome.detail,
        format!(
            "image {} offers linux/amd64 only; nodes arm-1 (arm64) need linux/arm64",
            images.single_manifest
        )
    );
    // Pinned to amd64 nodes, the same single manifest fits.
    let pinned = frank(
        &namespace,
        &images,
        &[
            format!("database.image={}", images.single_manifest),
            r#"database.placement.nodeSelector={"kubernetes.io/arch": amd64}"#.into(),
        ],
    );
    let report = run(&client, &pinned).await;
    assert_status(&report, "image-database", Status::Pass);
}

#[tokio::test]
async fn a_storage_class_the_cluster_lacks_fails_listing_the_classes_it_has() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let namespace = harness.namespace("preflight-sc").await;
    let profile = frank(&namespace, &images, &["storage.className=fast-nvme".into()]);

    let report = run(&harness.client().await, &profile).await;

    assert_status(&report, "storage-class", Status::Fail);
    let detail = &row(&report, "storage-class").outcome.detail;
    assert!(
        detail.starts_with("storage class fast-nvme does not exist; the cluster has: ")
            && detail.contains("longhorn")
            && detail.contains("standard (default)"),
        "{detail}"
    );
}

fn load_balancer(namespace: &str, name: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            load_balancer_ip: Some(ip.into()),
            ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                port: 3100,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_load_balancer_ip_held_by_a_service_elsewhere_fails_and_our_own_does_not() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let client = harness.client().await;
    let namespace = harness.namespace("preflight-lb").await;
    let other = harness.namespace("preflight-lb-other").await;
    let ip = crate::harness::unique_ip();
    let profile = frank(
        &namespace,
        &images,
        &[format!("app.service.loadBalancerIp={ip}")],
    );
    let id = format!("lb-ip-{ip}");

    // The release's own app Service already holding the address is an upgrade, not a clash.
    let own = render::render(&profile)
        .objects()
        .find_map(|o| match o {
            Object::Service(s) if s.spec.as_ref()?.type_.as_deref() == Some("LoadBalancer") => {
                s.metadata.name.clone()
            }
            _ => None,
        })
        .unwrap();
    Api::<Service>::namespaced(client.clone(), &namespace)
        .create(
            &PostParams::default(),
            &load_balancer(&namespace, &own, &ip),
        )
        .await
        .unwrap();
    let report = run(&client, &profile).await;
    assert_status(&report, &id, Status::Pass);

    Api::<Service>::namespaced(client.clone(), &other)
        .create(
            &PostParams::default(),
            &load_balancer(&other, "squatter", &ip),
        )
        .await
        .unwrap();
    let report = run(&client, &profile).await;
    assert_status(&report, &id, Status::Fail);
    let outcome = &row(&report, &id).outcome;
    assert_eq!(
        outcome.detail,
        format!("{ip} is taken by Service {other}/squatter (spec.loadBalancerIP)")
    );
    assert!(
        outcome
            .fix
            .as_deref()
            .unwrap()
            .starts_with("set app.service.loadBalancerIp to a free address"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_memory_limit_larger_than_the_pinned_node_fails_naming_the_node() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let namespace = harness.namespace("preflight-mem").await;
    let profile = frank(
        &namespace,
        &images,
        &[
            r#"app.placement.nodeSelector={"kubernetes.io/hostname": arm-1}"#.into(),
            "app.resources.limits.memory=64Gi".into(),
        ],
    );

    let report = run(&harness.client().await, &profile).await;

    assert_status(&report, "memory-headroom", Status::Fail);
    let detail = &row(&report, "memory-headroom").outcome.detail;
    assert!(
        detail.starts_with(
            "the app pod's memory limits add up to 66Gi (paperclip 64Gi + paperclip-shell 2Gi); \
             no candidate node has that free: arm-1 has 16Gi allocatable"
        ),
        "{detail}"
    );
}

/// Polls `check` until it returns `Some`, failing with `what` at the deadline.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_earlier_oom_killed_app_warns_to_raise_the_limit() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let client = harness.client().await;
    let namespace = harness.namespace("preflight-oom").await;
    let profile = frank(
        &namespace,
        &images,
        &["app.resources.limits.memory=2Gi".into()],
    );
    let release = render::render(&profile);
    let selector = release
        .objects()
        .find_map(|o| match o {
            Object::Deployment(d) => d.spec.as_ref()?.selector.match_labels.clone(),
            _ => None,
        })
        .unwrap();

    // An app pod of an earlier install that no node may take: KWOK only drives pods bound to
    // its nodes, so the status written below stays as written.
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("paperclip-earlier".into()),
            labels: Some(selector),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_selector: Some(BTreeMap::from([(
                "kubernetes.io/hostname".into(),
                "no-such-node".into(),
            )])),
            containers: vec![Container {
                name: "paperclip".into(),
                image: Some(images.multi_platform.clone()),
                resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
                    limits: Some(BTreeMap::from([(
                        "memory".into(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"containerStatuses": [{
        "name": "paperclip",
        "image": images.multi_platform,
        "imageID": "",
        "ready": false,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    }]}});
    // The scheduler writes this pod's status too; write ours until it reads back.
    eventually("the OOMKilled status to stick", || {
        let pods = pods.clone();
        let status = status.clone();
        async move {
            pods.patch_status(
                "paperclip-earlier",
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .ok()?;
            let read = pods.get_status("paperclip-earlier").await.ok()?;
            let statuses = read.status?.container_statuses?;
            let terminated = statuses.first()?.last_state.as_ref()?.terminated.as_ref()?;
            (terminated.reason.as_deref() == Some("OOMKilled")).then_some(())
        }
    })
    .await;

    let report = preflight::run(&client, &profile, &release, &RegistryAuth::anonymous()).await;

    assert_status(&report, "memory-headroom", Status::Warn);
    let outcome = &row(&report, "memory-headroom").outcome;
    assert_eq!(
        outcome.detail,
        "the app was OOMKilled at limit 2Gi; the profile asks for 2Gi"
    );
    assert_eq!(
        outcome.fix.as_deref(),
        Some("raise app.resources.limits.memory above 2Gi")
    );
    let raised = frank(
        &namespace,
        &images,
        &["app.resources.limits.memory=12Gi".into()],
    );
    let report = run(&client, &raised).await;
    assert_status(&report, "memory-headroom", Status::Pass);
}

#[tokio::test]
async fn store_credentials_must_exist_with_both_keys_and_are_never_printed() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let client = harness.client().await;
    let namespace = harness.namespace("preflight-creds").await;
    let profile = frank(&namespace, &images, &[]);

    let report = run(&client, &profile).await;
    assert_status(&report, "store-credentials", Status::Fail);
    let outcome = &row(&report, "store-credentials").outcome;
    assert_eq!(
        outcome.detail,
        format!("Secret {namespace}/infisical-universal-auth does not exist")
    );
    assert!(
        outcome.fix.as_deref().unwrap().contains(&format!(
            "kubectl -n {namespace} create secret generic infisical-universal-auth"
        )),
        "{outcome:?}"
    );

    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let secret = |keys: &[(&str, &str)]| Secret {
        metadata: ObjectMeta {
            name: Some("infisical-universal-auth".into()),
            ..Default::default()
        },
        data: Some(
            keys.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret(&[("clientId", "id-value-1")]),
        )
        .await
        .unwrap();
    let report = run(&client, &profile).await;
    assert_status(&report, "store-credentials", Status::Fail);
    assert_eq!(
        row(&report, "store-credentials").outcome.detail,
        format!("Secret {namespace}/infisical-universal-auth lacks key clientSecret")
    );

    secrets
        .replace(
            "infisical-universal-auth",
            &PostParams::default(),
            &secret(&[
                ("clientId", "id-value-1"),
                ("clientSecret", "secret-value-2"),
            ]),
        )
        .await
        .unwrap();
    let report = run(&client, &profile).await;
    assert_status(&report, "store-credentials", Status::Pass);
    let json = serde_json::to_string(&report).unwrap();
    for value in ["id-value-1", "secret-value-2"] {
        assert!(!json.contains(value) && !report.to_text().contains(value));
    }
}

#[tokio::test]
async fn a_denied_read_fails_naming_the_verb_and_resource() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let namespace = harness.namespace("preflight-rbac").await;
    let profile = frank(&namespace, &images, &[]);
    // The harness admin acting as a user nobody granted anything.
    let path = harness.var("KUBECONFIG");
    let mut config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(path).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some("preflight-nobody".into());
    let nobody = kube::Client::try_from(config).unwrap();

    let report = run(&nobody, &profile).await;

    assert!(report.failed());
    assert_status(&report, "image-app", Status::Fail);
    assert_eq!(
        row(&report, "image-app").outcome.detail,
        "forbidden: list nodes"
    );
    assert_eq!(
        row(&report, "storage-class").outcome.detail,
        "forbidden: list storageclasses.storage.k8s.io"
    );
    let access = &row(&report, "api-access").outcome;
    assert_eq!(access.status, Status::Fail);
    assert!(
        access
            .detail
            .contains(&format!("create deployments.apps in {namespace}")),
        "{}",
        access.detail
    );
}

#[tokio::test]
async fn an_api_that_does_not_answer_fails_once_and_skips_the_other_checks() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Nothing listens on the discard port of this machine: the connection is refused at once.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let profile = paperclipctl::profile::load("frank", &[]).unwrap().profile;

    let report = run(&client, &profile).await;

    let access = &row(&report, "api-access").outcome;
    assert_eq!(access.status, Status::Fail);
    assert!(
        access.detail.starts_with("cannot get /version: "),
        "{}",
        access.detail
    );
    for skipped in report.checks.iter().filter(|r| r.id != "api-access") {
        assert_eq!(skipped.outcome.status, Status::Fail, "{}", skipped.id);
        assert_eq!(
            skipped.outcome.detail,
            "not checked: the Kubernetes API did not answer"
        );
    }
}

#[tokio::test]
async fn the_ingress_class_certificate_source_and_network_plugin_are_checked() {
    let harness = Harness::shared();
    let images = registry::fixture_images().await;
    let client = harness.client().await;
    let namespace = harness.namespace("preflight-reach").await;
    let class = format!("{namespace}-class");
    let ingress = |tls: &str| {
        vec![
            format!("app.ingress={{className: {class}, hosts: [p.reach.test], tls: {tls}}}"),
            "app.publicUrl=https://p.reach.test".to_string(),
        ]
    };

    // No such class, and no cert-manager on this cluster to serve the issuer.
    let issued = frank(
        &namespace,
        &images,
        &ingress("{clusterIssuer: letsencrypt}"),
    );
    let report = run(&client, &issued).await;
    assert_status(&report, "ingress-class", Status::Fail);
    let detail = &row(&report, "ingress-class").outcome.detail;
    assert!(
        detail.starts_with(&format!(
            "IngressClass {class} does not exist; the cluster has: "
        )),
        "{detail}"
    );
    assert_status(&report, "cluster-issuer", Status::Fail);
    let outcome = &row(&report, "cluster-issuer").outcome;
    assert!(
        outcome.detail.contains("cert-manager is not installed")
            && outcome.fix.as_deref().unwrap().contains("tls.secretName"),
        "{outcome:?}"
    );
    // Nothing on these nodes shows a plugin that enforces NetworkPolicy: a warning, not a
    // failure, and none when the profile renders no policies.
    assert_status(&report, "network-policy", Status::Warn);
    assert!(
        row(&report, "network-policy")
            .outcome
            .fix
            .as_deref()
            .unwrap()
            .contains("networkPolicy.enabled: false")
    );
    let without = frank(&namespace, &images, &["networkPolicy.enabled=false".into()]);
    assert!(run(&client, &without).await.get("network-policy").is_none());

    // With the class, and the certificate in a Secret of the release's namespace.
    let classes = crate::harness::ingress_class(&class).await;
    let from_secret = frank(
        &namespace,
        &images,
        &ingress("{secretName: paperclip-cert}"),
    );
    let report = run(&client, &from_secret).await;
    assert_status(&report, "ingress-class", Status::Pass);
    assert!(report.get("cluster-issuer").is_none());
    assert_status(&report, "tls-secret", Status::Fail);
    assert_eq!(
        row(&report, "tls-secret").outcome.detail,
        format!(
            "Secret {namespace}/paperclip-cert does not exist: the Ingress would serve the \
             controller's default certificate"
        )
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let cert = |type_: &str| Secret {
        metadata: ObjectMeta {
            name: Some("paperclip-cert".into()),
            ..Default::default()
        },
        type_: Some(type_.into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(b"certificate".to_vec())),
            ("tls.key".to_string(), ByteString(b"key-value-3".to_vec())),
        ])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &cert("Opaque"))
        .await
        .unwrap();
    let report = run(&client, &from_secret).await;
    assert_status(&report, "tls-secret", Status::Fail);
    secrets
        .delete("paperclip-cert", &Default::default())
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &cert("kubernetes.io/tls"))
        .await
        .unwrap();
    let report = run(&client, &from_secret).await;
    classes.delete(&class, &Default::default()).await.unwrap();
    assert_status(&report, "tls-secret", Status::Pass);
    assert!(
        !serde_json::to_string(&report)
            .unwrap()
            .contains("key-value-3")
    );
}

/// An API group nobody serves answers a bare 404, which is not a `NotFound` Status: preflight
/// must read it as "not installed" (External Secrets, cert-manager), not as a failed request.
#[tokio::test]
async fn a_group_the_cluster_does_not_serve_is_absent_not_an_error() {
    let client = Harness::shared().client().await;
    let absent = paperclipctl::cluster::served_kinds(&client, "nothing.paperclipctl.test/v1")
        .await
        .expect("a group nobody serves is an answer, not an error");
    assert_eq!(absent, None);
    let served = paperclipctl::cluster::served_kinds(&client, "external-secrets.io/v1")
        .await
        .unwrap()
        .expect("the harness runs External Secrets");
    assert!(served.iter().any(|k| k == "ExternalSecret"), "{served:?}");
}
