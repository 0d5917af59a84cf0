//! Rendering the shipped profiles, and every lint firing on the mistake it exists for.

use paperclipctl::profile;
use paperclipctl::render::lint::{Finding, Severity};
use paperclipctl::render::{self, Object, Release};

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
        "memory: 512Mi",
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
