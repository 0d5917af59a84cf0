//! Rendering the shipped profiles, and every lint firing on the mistake it exists for.

use paperclipctl::profile;
use paperclipctl::render::lint::{Finding, Severity};
use paperclipctl::render::{self, Object, Release, eso};

fn release(name: &str, sets: &[&str]) -> Release {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    render::render(&profile::load(name, &sets).unwrap().profile)
}

fn findings(name: &str, sets: &[&str]) -> Vec<Finding> {
    release(name, sets).findings
}

#[test]
fn shipped_profiles_render_to_pinned_manifests() {
    for (name, _) in profile::BUILTIN {
        let yaml = release(name, &[]).to_yaml().unwrap();
        insta::assert_snapshot!(format!("manifests-{name}"), yaml);
    }
}

#[test]
fn frank_manifests_carry_every_value_of_the_write_up() {
    let yaml = release("frank", &[]).to_yaml().unwrap();
    for expected in [
        "namespace: paperclip-system",
        "storageClassName: longhorn",
        "loadBalancerIP: 192.168.55.212",
        "loadBalancerIP: 192.168.55.221",
        "kubernetes.io/hostname: gpu-1",
        "key: nvidia.com/gpu",
        "effect: NoSchedule",
        "memory: 1Gi",
        "cpu: 250m",
        "memory: 12Gi",
        "storage: 5Gi",
        "storage: 10Gi",
        "storage: 20Gi",
        "type: Recreate",
        "image: mirror.gcr.io/bitnamilegacy/postgresql:",
        "image: mirror.gcr.io/bitnamilegacy/postgres-exporter:",
        "OPENAI_BASE_URL: http://litellm.litellm.svc.cluster.local:4000",
        "mergePolicy: Merge",
        "fsGroup: 1000",
        "name: paperclip-shell",
    ] {
        assert!(yaml.contains(expected), "missing {expected:?}");
    }
    let release = release("frank", &[]);
    let remaps: Vec<(String, String, String)> = release
        .objects()
        .filter_map(|o| match o {
            Object::ExternalSecret(es) => Some(es),
            _ => None,
        })
        .flat_map(|es| {
            es.spec.data.iter().map(|d| {
                (
                    es.metadata.name.clone().unwrap(),
                    d.remote_ref.key.clone(),
                    d.secret_key.clone(),
                )
            })
        })
        .collect();
    let remap = |name: &str, remote: &str, local: &str| (name.into(), remote.into(), local.into());
    assert_eq!(
        remaps,
        [
            remap(
                "paperclip-llm-key",
                "PAPERCLIP_LITELLM_KEY",
                "OPENAI_API_KEY"
            ),
            remap("paperclip-auth", "BETTER_AUTH_SECRET", "BETTER_AUTH_SECRET"),
            remap(
                "paperclip-brave",
                "BRAVE_SEARCH_KEY_PAPERCLIP",
                "BRAVE_API_KEY"
            ),
            remap("paperclip-resend", "EMAIL_RESEND_API_KEY", "RESEND_API_KEY"),
            remap(
                "paperclip-shell-alerts",
                "TELEGRAM_BOT_TOKEN",
                "TELEGRAM_BOT_TOKEN"
            ),
            remap(
                "paperclip-shell-alerts",
                "TELEGRAM_CHAT_ID",
                "TELEGRAM_CHAT_ID"
            ),
        ]
    );
    let shell = release
        .objects()
        .find_map(|o| match o {
            Object::Service(s) if o.name() == "paperclip-shell" => Some(s),
            _ => None,
        })
        .unwrap();
    let ports = shell.spec.as_ref().unwrap().ports.as_ref().unwrap();
    let udp: Vec<i32> = ports
        .iter()
        .filter(|p| p.protocol.as_deref() == Some("UDP"))
        .map(|p| p.port)
        .collect();
    assert_eq!(udp, (60000..=60015).collect::<Vec<_>>());
    assert!(
        ports
            .iter()
            .any(|p| p.port == 22 && p.protocol.as_deref() == Some("TCP"))
    );
}

#[test]
fn secrets_render_without_values() {
    for (name, _) in profile::BUILTIN {
        for object in release(
            name,
            &[
                "shell.image=r.example/shell:1",
                "shell.authorizedKeys=[ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmKq you@laptop]",
            ],
        )
        .objects()
        {
            if let Object::Secret(secret) = object {
                assert!(
                    secret.data.is_none() && secret.string_data.is_none(),
                    "{}",
                    object.id()
                );
            }
        }
    }
    let yaml = release(
        "frank",
        &["shell.authorizedKeys=[ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmKq you@laptop]"],
    )
    .to_yaml()
    .unwrap();
    assert!(!yaml.contains("AAAAC3NzaC1lZDI1NTE5AAAAIGmKq"));
}

fn codes(findings: &[Finding], severity: Severity) -> Vec<&'static str> {
    findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.code)
        .collect()
}

#[test]
fn rolling_update_with_a_read_write_once_volume_is_an_error() {
    let f = findings("frank", &["app.strategy=RollingUpdate"]);
    // Both the data volume and the shell's home volume would deadlock.
    assert_eq!(
        codes(&f, Severity::Error),
        ["rwo-rolling-update", "rwo-rolling-update"]
    );
    assert!(f[0].message.contains("volume paperclip-data"), "{:?}", f[0]);
    assert!(
        f[1].message.contains("volume paperclip-shell-home"),
        "{:?}",
        f[1]
    );
    assert_eq!(f[0].help, "set app.strategy: Recreate");
    let shared = [
        "app.strategy=RollingUpdate",
        "app.persistence.accessMode=ReadWriteMany",
        "shell=null",
    ];
    assert!(codes(&findings("frank", &shared), Severity::Error).is_empty());
}

#[test]
fn requiring_an_optional_secret_is_an_error() {
    let f = findings(
        "frank",
        &["app.envFrom=[{secret: paperclip-auth}, {secret: paperclip-brave}]"],
    );
    assert_eq!(codes(&f, Severity::Error), ["required-optional-secret"]);
    assert!(f[0].message.contains("paperclip-brave"), "{:?}", f[0]);
    assert!(f[0].message.contains("CreateContainerConfigError"));
    let ok = findings(
        "frank",
        &["app.envFrom=[{secret: paperclip-brave, optional: true}]"],
    );
    assert!(codes(&ok, Severity::Error).is_empty());
}

#[test]
fn bare_http_probe_in_private_mode_is_an_error() {
    let f = findings(
        "frank",
        &["app.probes.readiness={type: http, path: /api/health}"],
    );
    assert_eq!(codes(&f, Severity::Error), ["private-http-probe"]);
    assert_eq!(
        f[0].help,
        "set app.probes.readiness.host: localhost, or type: tcp"
    );
    let public = findings(
        "frank",
        &[
            "app.probes.readiness={type: http, path: /api/health}",
            "app.exposure=public",
        ],
    );
    assert!(codes(&public, Severity::Error).is_empty());
}

#[test]
fn unpinned_images_are_warnings() {
    let latest = findings(
        "default",
        &["app.image=ghcr.io/paperclipai/paperclip:latest"],
    );
    assert_eq!(codes(&latest, Severity::Warning), ["unpinned-image"]);
    assert!(latest[0].message.contains("moving tag latest"));
    let bare = findings("default", &["database.image=postgres"]);
    assert_eq!(codes(&bare, Severity::Warning), ["unpinned-image"]);
    assert!(bare[0].message.contains("has no tag"));
    let digest = format!("database.image=postgres@sha256:{}", "a".repeat(64));
    assert!(findings("default", &[&digest]).is_empty());
}

#[test]
fn missing_memory_limits_are_warnings() {
    let f = findings("default", &["app.resources.limits={cpu: 1}"]);
    assert_eq!(codes(&f, Severity::Warning), ["no-memory-limit"]);
    assert!(
        f[0].help.starts_with("set app.resources.limits.memory"),
        "{:?}",
        f[0]
    );
}

const PULL_SECRET: &str =
    "shell.pullSecret={registry: ghcr.io, usernameKey: GHCR_USERNAME, passwordKey: GHCR_TOKEN}";

#[test]
fn a_pull_secret_becomes_a_docker_config_external_secret_the_pod_pulls_with() {
    let release = release("frank", &[PULL_SECRET]);
    let pull = release
        .objects()
        .find_map(|o| match o {
            Object::ExternalSecret(es) if o.name() == "paperclip-shell-pull" => Some(es),
            _ => None,
        })
        .expect("the pull secret's ExternalSecret");
    assert!(
        !eso::is_optional(pull),
        "the sidecar cannot start without it"
    );
    assert!(
        release.waves[0]
            .wait_for
            .contains(&"ExternalSecret/paperclip-shell-pull".into())
    );
    let template = pull.spec.target.template.as_ref().unwrap();
    assert_eq!(
        template.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    assert_eq!(template.engine_version, "v2");
    assert_eq!(
        template.merge_policy, None,
        "only the templated key is written"
    );
    let config = &template.data[".dockerconfigjson"];
    assert!(config.starts_with(r#"{"auths":{"ghcr.io":{"#), "{config}");
    for field in [".username | toJson", ".password | toJson", "b64enc"] {
        assert!(config.contains(field), "{field} in {config}");
    }
    let remotes: Vec<(&str, &str)> = pull
        .spec
        .data
        .iter()
        .map(|d| (d.remote_ref.key.as_str(), d.secret_key.as_str()))
        .collect();
    assert_eq!(
        remotes,
        [("GHCR_USERNAME", "username"), ("GHCR_TOKEN", "password")]
    );

    let Some(Object::Deployment(deployment)) =
        release.objects().find(|o| o.id() == "Deployment/paperclip")
    else {
        panic!("no Deployment");
    };
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let pull_secrets: Vec<&str> = pod
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(pull_secrets, ["paperclip-shell-pull"]);
    // A registry login is not env material: the default envFrom leaves it out.
    let env_from: Vec<&str> = pod.containers[0]
        .env_from
        .iter()
        .flatten()
        .filter_map(|e| e.secret_ref.as_ref().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(
        env_from,
        [
            "paperclip-llm-key",
            "paperclip-auth",
            "paperclip-brave",
            "paperclip-resend"
        ]
    );
    assert!(release.findings.is_empty(), "{:?}", release.findings);

    // Provisioning ensures its keys like any other required key.
    let loaded = profile::load("frank", &[PULL_SECRET.to_string()]).unwrap();
    let synced = render::synced_secrets(&loaded.profile);
    let pull = synced.external_secrets.last().unwrap();
    assert_eq!(pull.name.as_str(), "paperclip-shell-pull");
    assert!(!pull.optional);
    let keys: Vec<&str> = pull.keys.iter().map(|k| k.remote.as_str()).collect();
    assert_eq!(keys, ["GHCR_USERNAME", "GHCR_TOKEN"]);
    assert!(pull.keys.iter().all(|k| !k.generate));
}

#[test]
fn loading_the_pull_secret_as_env_is_an_error() {
    let f = findings(
        "frank",
        &[
            PULL_SECRET,
            "app.envFrom=[{secret: paperclip-auth}, {secret: paperclip-shell-pull, optional: true}]",
        ],
    );
    assert_eq!(codes(&f, Severity::Error), ["pull-secret-as-env"]);
    assert!(f[0].message.contains("paperclip-shell-pull"), "{:?}", f[0]);
    assert_eq!(f[0].help, "remove paperclip-shell-pull from app.envFrom");
}

#[test]
fn a_bare_shell_repository_is_not_unpinned_but_a_bare_app_image_is() {
    let f = findings("frank", &["shell.image=ghcr.io/me/paperclip-shell"]);
    assert!(f.is_empty(), "install pins the content tag's digest: {f:?}");
    let f = findings("frank", &["app.image=ghcr.io/paperclipai/paperclip"]);
    assert_eq!(codes(&f, Severity::Warning), ["unpinned-image"]);
}

/// The app container of a rendered release.
fn app_container(release: &Release) -> k8s_openapi::api::core::v1::Container {
    release
        .objects()
        .find_map(|o| match o {
            Object::Deployment(d) => d.spec.as_ref()?.template.spec.clone(),
            _ => None,
        })
        .and_then(|spec| spec.containers.into_iter().find(|c| c.name == "paperclip"))
        .expect("the release has an app container")
}

#[test]
fn every_start_keeps_the_auth_and_secrets_settings_of_the_first_one() {
    // Upstream's onboarding writes `auth.baseUrlMode: auto` and `secrets.strictMode: false` into
    // config.json; the environment wins over the file, so the pod names both.
    for exposure in ["private", "public"] {
        let set = format!("app.exposure={exposure}");
        let env: Vec<(String, Option<String>)> = app_container(&release("default", &[&set]))
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        for (name, value) in [
            ("PAPERCLIP_AUTH_BASE_URL_MODE", "explicit"),
            ("PAPERCLIP_PUBLIC_URL", "http://localhost:3100"),
            ("PAPERCLIP_SECRETS_STRICT_MODE", "true"),
            ("PAPERCLIP_DEPLOYMENT_EXPOSURE", exposure),
        ] {
            assert!(
                env.contains(&(name.to_string(), Some(value.to_string()))),
                "{exposure}: no {name}={value} in {env:?}"
            );
        }
    }
}

#[test]
fn a_slow_migration_is_not_killed_by_the_liveness_probe() {
    for (name, _) in profile::BUILTIN {
        let app = app_container(&release(name, &[]));
        let startup = app.startup_probe.expect("a startup probe");
        let budget = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
        assert!(budget >= 15 * 60, "{name}: {budget}s to open the port");
        assert!(
            startup.tcp_socket.is_some(),
            "{name}: the port opens only after migrations"
        );
        let liveness = app.liveness_probe.unwrap();
        assert_eq!(
            liveness.initial_delay_seconds, None,
            "{name}: the startup probe holds liveness back, not a fixed delay"
        );
    }
}

#[test]
fn everything_that_writes_the_app_volume_runs_as_the_apps_uid() {
    // Upstream refuses to start when instances/default/secrets is not owned by its own uid, so
    // the app, the sidecar and every exec into them (onboarding, restore) run as uid 1000.
    let release = release("frank", &[]);
    let spec = release
        .objects()
        .find_map(|o| match o {
            Object::Deployment(d) => d.spec.as_ref()?.template.spec.clone(),
            _ => None,
        })
        .unwrap();
    let pod = spec.security_context.unwrap();
    assert_eq!(
        (pod.run_as_user, pod.run_as_group),
        (Some(1000), Some(1000))
    );
    let writers: Vec<_> = spec
        .containers
        .iter()
        .filter(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == "data" && m.read_only != Some(true))
        })
        .collect();
    // The sidecar sees the volume read-only: the app is its only writer.
    let names: Vec<&str> = writers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["paperclip"]);
    for c in &spec.containers {
        let security = c.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_user, Some(1000), "{}", c.name);
        assert_eq!(security.run_as_non_root, Some(true), "{}", c.name);
    }
}

#[test]
fn http_admitted_from_the_ingress_controller_only_behind_a_load_balancer_is_a_warning() {
    let behind = "networkPolicy.ingressControllerNamespace=ingress-nginx";
    let f = findings("frank", &[behind]);
    assert_eq!(codes(&f, Severity::Warning), ["policy-hides-service"]);
    assert_eq!(f[0].object, "Service/paperclip");
    assert!(
        f[0].help.contains("app.service.type: ClusterIP"),
        "{:?}",
        f[0]
    );
    let internal = [
        "app.service.type=ClusterIP",
        "app.service.loadBalancerIp=null",
        behind,
    ];
    assert!(findings("frank", &internal).is_empty());
    // The shell's Service stays a LoadBalancer: its ports are open to everyone.
    assert!(findings("frank", &[]).is_empty());
}
