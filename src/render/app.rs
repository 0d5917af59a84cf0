//! Wave 1: the Paperclip Deployment (app container plus the optional shell sidecar), its
//! volumes, Services and the sidecar's ConfigMap and key Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, HTTPGetAction, HTTPHeader, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret,
    SecretEnvSource, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Object;
use super::database::PORT as DB_PORT;
use super::meta::{
    self, APP_NAME, Component, DATA_PVC, DB_NAME, DB_PASSWORD_KEY, SHELL_ALERTS_SECRET,
    SHELL_HOME_PVC, SHELL_INVENTORY, SHELL_KEYS_SECRET, SHELL_NAME, SHELL_PULL_SECRET,
};
use super::pod;
use crate::profile::Profile;
use crate::profile::model::{self, DeploymentMode, Exposure, ProbeType, ServiceType, Shell};

/// The port the Paperclip server listens on inside the pod.
pub const APP_PORT: i32 = 3100;
/// sshd in the sidecar runs unprivileged, so it cannot bind 22; the Service maps 22 to it.
pub const SSHD_PORT: i32 = 2222;
/// The uid:gid of the upstream image's `node` user and of the sidecar's `agent` user.
const UID: i64 = 1000;
const DATA_PATH: &str = "/paperclip";
/// The app's writable `/tmp` when its root filesystem is read-only.
const TMP_VOLUME: &str = "tmp";
/// Where Paperclip keeps its agents' workspaces, relative to the data volume (upstream:
/// `$PAPERCLIP_HOME/instances/<instance>/workspaces/<agent>`, instance `default`). It is the only
/// part of the volume the shell sidecar sees: the rest holds the instance's master key, its
/// `.env` and its backups.
const WORKSPACES: &str = "instances/default/workspaces";
/// Pod template annotation with the digest of the sidecar's ConfigMap (its inventory and CA
/// bundle): a change changes the template, so the Deployment rolls the pod and the new
/// sidecar's boot hook converges to it.
pub const SHELL_CONFIG_CHECKSUM: &str = "paperclipctl.io/shell-config-sha256";
/// Where the sidecar finds the profile's CA bundle (a key of its ConfigMap).
const CA_BUNDLE: &str = "ca-bundle.crt";
/// The variables through which the sidecar's downloaders take a CA bundle: OpenSSL and rustls
/// users (curl, rustup, mise), Node (npm), pip (pipx) and cargo.
const CA_BUNDLE_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CARGO_HTTP_CAINFO",
];
/// Said at the top of the rendered inventory, for whoever reads the ConfigMap.
const INVENTORY_HEADER: &str = "# Rendered from the profile's shell.inventory; \
the sidecar converges its home volume to it at every boot.\n";

/// Settings upstream reads from `config.json` unless the environment names them (server
/// `config.js`: the environment wins). The first start has no `config.json` and derives them
/// from the deployment mode and public URL; `onboard` then writes `auth.baseUrlMode: "auto"` and
/// `secrets.strictMode: false`, which the next start would silently pick up. Public exposure even
/// refuses to start with `auto` ("authenticated public exposure requires
/// auth.baseUrlMode=explicit"). Pinned here, every start runs with what the first one had: the
/// auth base URL is the profile's public URL (`PAPERCLIP_PUBLIC_URL`), and secret values must
/// be stored as secrets, upstream's own default for an authenticated instance.
pub const PINNED_SETTINGS: &[(&str, &str)] = &[
    ("PAPERCLIP_AUTH_BASE_URL_MODE", "explicit"),
    ("PAPERCLIP_SECRETS_STRICT_MODE", "true"),
];

/// How long the app may take to open its port: it opens only after the database migrations
/// ran (19 s on an empty database here, minutes for an upgrade of a large one). The startup
/// probe holds the liveness probe back until then, so a long migration is never killed midway.
pub const STARTUP_BUDGET_SECONDS: i32 = 15 * 60;
/// How often the startup probe looks.
const STARTUP_PERIOD_SECONDS: i32 = 5;

pub fn objects(profile: &Profile) -> Vec<Object> {
    let mut objects = vec![Object::PersistentVolumeClaim(pod::claim(
        profile,
        kept(meta::object(profile, DATA_PVC, Component::App)),
        &profile.app.persistence,
    ))];
    if let Some(shell) = &profile.shell {
        objects.push(Object::PersistentVolumeClaim(pod::claim(
            profile,
            kept(meta::object(profile, SHELL_HOME_PVC, Component::App)),
            &shell.home,
        )));
        objects.push(Object::ConfigMap(inventory(profile, shell)));
        objects.push(Object::Secret(authorized_keys(profile)));
    }
    objects.push(Object::Deployment(deployment(profile)));
    objects.push(Object::Service(app_service(profile)));
    if let Some(shell) = &profile.shell {
        objects.push(Object::Service(shell_service(profile, shell)));
    }
    objects
}

fn kept(metadata: ObjectMeta) -> ObjectMeta {
    meta::annotate(metadata, meta::KEEP, "true")
}

fn inventory(profile: &Profile, shell: &Shell) -> ConfigMap {
    ConfigMap {
        metadata: meta::object(profile, SHELL_INVENTORY, Component::App),
        data: Some(shell_config(shell)),
        ..Default::default()
    }
}

/// The files of the sidecar's ConfigMap: the inventory, and the CA bundle when there is one.
fn shell_config(shell: &Shell) -> BTreeMap<String, String> {
    let mut data = BTreeMap::from([("inventory.yaml".to_string(), inventory_yaml(shell))]);
    if let Some(bundle) = &shell.ca_bundle {
        data.insert(CA_BUNDLE.to_string(), bundle.clone());
    }
    data
}

/// The inventory file the sidecar's reconciler reads, in its own format.
fn inventory_yaml(shell: &Shell) -> String {
    let body = serde_yaml_ng::to_string(&shell.inventory).expect("lists of strings serialize");
    format!("{INVENTORY_HEADER}{body}")
}

fn shell_config_checksum(shell: &Shell) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (name, content) in shell_config(shell) {
        hasher.update(format!("{name}\0{}\0", content.len()));
        hasher.update(content);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sidecar's authorized_keys, rendered without its content like every Secret: install
/// writes the profile's public keys into it.
fn authorized_keys(profile: &Profile) -> Secret {
    let metadata = meta::object(profile, SHELL_KEYS_SECRET, Component::App);
    Secret {
        metadata: meta::annotate(metadata, meta::GENERATED_KEYS, "authorized_keys"),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Host names private mode answers to: the public URL's host, the profile's extras, the
/// Ingress's hosts, and localhost (which the readiness probe and onboarding use).
fn allowed_hostnames(profile: &Profile) -> String {
    let mut hosts = vec![profile.app.public_url.host().to_string()];
    hosts.extend(profile.app.allowed_hostnames.iter().cloned());
    hosts.extend(
        profile
            .app
            .ingress
            .iter()
            .flat_map(|i| i.hosts.iter().cloned()),
    );
    hosts.push("localhost".into());
    let mut seen = std::collections::BTreeSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    hosts.join(",")
}

fn app_container(profile: &Profile) -> Container {
    let app = &profile.app;
    let db = &profile.database;
    let mode = match app.deployment_mode {
        DeploymentMode::Authenticated => "authenticated",
        DeploymentMode::LocalTrusted => "local_trusted",
    };
    let exposure = match app.exposure {
        Exposure::Private => "private",
        Exposure::Public => "public",
    };
    let mut env = vec![
        pod::env_from_secret("PG_PASSWORD", DB_NAME, DB_PASSWORD_KEY),
        // $(PG_PASSWORD) is expanded by the kubelet; the password is alphanumeric so it
        // needs no URL escaping.
        pod::env(
            "DATABASE_URL",
            format!(
                "postgres://{}:$(PG_PASSWORD)@{DB_NAME}.{}.svc:{DB_PORT}/{}",
                db.user, profile.namespace, db.database
            ),
        ),
        pod::env("PAPERCLIP_DEPLOYMENT_MODE", mode),
        pod::env("PAPERCLIP_DEPLOYMENT_EXPOSURE", exposure),
        pod::env("PAPERCLIP_PUBLIC_URL", app.public_url.to_string()),
        pod::env("PAPERCLIP_ALLOWED_HOSTNAMES", allowed_hostnames(profile)),
        pod::env("PAPERCLIP_HOME", DATA_PATH),
        pod::env("HOST", "0.0.0.0"),
        pod::env("PORT", APP_PORT.to_string()),
    ];
    env.extend(
        PINNED_SETTINGS
            .iter()
            .map(|(name, value)| pod::env(name, *value)),
    );
    env.extend(app.env.iter().map(|(k, v)| pod::env(k.as_str(), v.clone())));
    Container {
        name: APP_NAME.into(),
        image: Some(app.image.to_string()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: APP_PORT,
            ..Default::default()
        }]),
        env: Some(env),
        env_from: Some(env_from(profile)),
        startup_probe: Some(Probe {
            failure_threshold: Some(STARTUP_BUDGET_SECONDS / STARTUP_PERIOD_SECONDS),
            ..probe(&app.probes.liveness, STARTUP_PERIOD_SECONDS)
        }),
        readiness_probe: Some(probe(&app.probes.readiness, 10)),
        liveness_probe: Some(probe(&app.probes.liveness, 15)),
        resources: Some(pod::resources(&app.resources)),
        security_context: Some(SecurityContext {
            run_as_user: Some(UID),
            run_as_group: Some(UID),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: app.read_only_root_filesystem.then_some(true),
            ..Default::default()
        }),
        volume_mounts: Some(app_mounts(profile)),
        ..Default::default()
    }
}

/// The data volume, and with a read-only root the empty `/tmp` the server and its CLI write
/// their temporary files to (measured on the real server: nothing else outside `/paperclip`).
fn app_mounts(profile: &Profile) -> Vec<VolumeMount> {
    let mut mounts = vec![mount("data", DATA_PATH, false)];
    if profile.app.read_only_root_filesystem {
        mounts.push(mount(TMP_VOLUME, "/tmp", false));
    }
    mounts
}

/// The Secrets loaded with envFrom: the profile's explicit list, or every ExternalSecret of
/// `secrets.externalSecrets`, optional exactly when the ExternalSecret is (a missing
/// non-optional Secret blocks the pod with CreateContainerConfigError). The shell's image pull
/// secret is not among them: a registry login is not env material for the app.
fn env_from(profile: &Profile) -> Vec<EnvFromSource> {
    let refs: Vec<(String, bool)> = match &profile.app.env_from {
        Some(list) => list
            .iter()
            .map(|e| (e.secret.to_string(), e.optional))
            .collect(),
        None => profile
            .secrets
            .external_secrets
            .iter()
            .map(|es| (es.name.to_string(), es.optional))
            .collect(),
    };
    refs.into_iter()
        .map(|(name, optional)| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name,
                optional: Some(optional),
            }),
            ..Default::default()
        })
        .collect()
}

fn probe(p: &model::Probe, period: i32) -> Probe {
    let port = IntOrString::String("http".into());
    let base = Probe {
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(6),
        ..Default::default()
    };
    match p.kind {
        ProbeType::Tcp => Probe {
            tcp_socket: Some(TCPSocketAction { port, host: None }),
            ..base
        },
        ProbeType::Http => Probe {
            http_get: Some(HTTPGetAction {
                path: p.path.clone(),
                port,
                http_headers: p.host.as_ref().map(|host| {
                    vec![HTTPHeader {
                        name: "Host".into(),
                        value: host.clone(),
                    }]
                }),
                ..Default::default()
            }),
            ..base
        },
    }
}

/// The shell sidecar. It has no readiness probe on purpose: its boot hook may spend minutes
/// installing tools before sshd starts, and an unready sidecar would take the whole pod (and so
/// the app's Service endpoints) out of rotation meanwhile.
fn shell_container(shell: &Shell) -> Container {
    let mut ports = vec![ContainerPort {
        name: Some("ssh".into()),
        container_port: SSHD_PORT,
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    ports.extend(
        shell
            .service
            .mosh_ports
            .iter()
            .flat_map(|r| r.ports())
            .map(|p| ContainerPort {
                name: Some(format!("mosh-{p}")),
                container_port: p.into(),
                protocol: Some("UDP".into()),
                ..Default::default()
            }),
    );
    Container {
        name: SHELL_NAME.into(),
        image: Some(shell.image.to_string()),
        ports: Some(ports),
        env: shell_env(shell),
        // The alert settings reach the boot hooks only: the entrypoint drops them from the
        // environment before it execs sshd. Optional, so the shell starts without them.
        env_from: shell.alerts.as_ref().map(|_| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: SHELL_ALERTS_SECRET.into(),
                    optional: Some(true),
                }),
                ..Default::default()
            }]
        }),
        resources: Some(pod::resources(&shell.resources)),
        security_context: Some(SecurityContext {
            run_as_user: Some(UID),
            run_as_group: Some(UID),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            read_only_root_filesystem: shell.read_only_root_filesystem.then_some(true),
            ..Default::default()
        }),
        volume_mounts: Some(shell_mounts(shell)),
        ..Default::default()
    }
}

/// The directories a read-only sidecar still writes outside its home: scratch space, the boot
/// hook's log (`/var/log/cont-init.d`) and its summary behind `/etc/motd`
/// (`/var/lib/paperclip-shell`). The summary is rewritten at every boot, so an emptyDir that
/// lives as long as the pod is enough.
const SHELL_SCRATCH: [(&str, &str); 4] = [
    ("shell-tmp", "/tmp"),
    ("shell-var-tmp", "/var/tmp"),
    ("shell-log", "/var/log/cont-init.d"),
    ("shell-state", "/var/lib/paperclip-shell"),
];

fn shell_mounts(shell: &Shell) -> Vec<VolumeMount> {
    let mut mounts = vec![
        mount("shell-home", "/home/agent", false),
        // The agents' workspaces only, read-only: a shell reachable over SSH must neither
        // read the instance's key and settings nor change its files.
        VolumeMount {
            sub_path: Some(WORKSPACES.into()),
            ..mount("data", &format!("{DATA_PATH}/{WORKSPACES}"), true)
        },
        mount("ssh-keys", "/etc/ssh-keys", true),
        mount("inventory", "/etc/paperclip-shell", true),
    ];
    if shell.read_only_root_filesystem {
        mounts.extend(SHELL_SCRATCH.map(|(name, path)| mount(name, path, false)));
    }
    mounts
}

/// The sidecar's plain variables: the profile's, and where the CA bundle is when there is one.
fn shell_env(shell: &Shell) -> Option<Vec<EnvVar>> {
    let bundle = format!("/etc/paperclip-shell/{CA_BUNDLE}");
    let ca = shell.ca_bundle.iter().flat_map(|_| CA_BUNDLE_ENV);
    let env: Vec<EnvVar> = ca
        .map(|name| pod::env(name, bundle.clone()))
        .chain(
            shell
                .env
                .iter()
                .map(|(k, v)| pod::env(k.as_str(), v.clone())),
        )
        .collect();
    (!env.is_empty()).then_some(env)
}

/// Creates the workspaces directory as the app's user before the sidecar mounts it: the kubelet
/// would otherwise create a missing subPath, and its parents, owned by root. It runs the app's
/// image, which the pod pulls first anyway, so the app does not wait for the sidecar's pull.
fn workspaces_init(profile: &Profile) -> Container {
    Container {
        name: "shell-workspaces".into(),
        image: Some(profile.app.image.to_string()),
        command: Some(vec![
            "mkdir".into(),
            "-p".into(),
            format!("{DATA_PATH}/{WORKSPACES}"),
        ]),
        resources: Some(pod::fixed_resources(
            &[("cpu", "10m"), ("memory", "16Mi")],
            &[("cpu", "100m"), ("memory", "64Mi")],
        )),
        security_context: Some(SecurityContext {
            run_as_user: Some(UID),
            run_as_group: Some(UID),
            read_only_root_filesystem: profile.app.read_only_root_filesystem.then_some(true),
            ..Default::default()
        }),
        volume_mounts: Some(vec![mount("data", DATA_PATH, false)]),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn claim_volume(name: &str, claim: &str) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

fn deployment(profile: &Profile) -> Deployment {
    let app = &profile.app;
    let mut containers = vec![app_container(profile)];
    let mut init_containers = Vec::new();
    let mut template_annotations = BTreeMap::new();
    let mut volumes = vec![claim_volume("data", DATA_PVC)];
    if app.read_only_root_filesystem {
        volumes.push(Volume {
            name: TMP_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    if let Some(shell) = &profile.shell {
        containers.push(shell_container(shell));
        init_containers.push(workspaces_init(profile));
        template_annotations.insert(
            SHELL_CONFIG_CHECKSUM.to_string(),
            shell_config_checksum(shell),
        );
        volumes.push(claim_volume("shell-home", SHELL_HOME_PVC));
        if shell.read_only_root_filesystem {
            volumes.extend(SHELL_SCRATCH.map(|(name, _)| Volume {
                name: name.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }));
        }
        volumes.push(Volume {
            name: "ssh-keys".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(SHELL_KEYS_SECRET.into()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "inventory".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: SHELL_INVENTORY.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Deployment {
        metadata: meta::object(profile, APP_NAME, Component::App),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some(format!("{:?}", app.strategy)),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(meta::selector(Component::App)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta::labels(Component::App)),
                    annotations: (!template_annotations.is_empty()).then_some(template_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    init_containers: (!init_containers.is_empty()).then_some(init_containers),
                    // Hardening turns the token off unless the profile asks for it.
                    automount_service_account_token: app.service_account_token.then_some(true),
                    // Volumes mount root-owned; fsGroup makes them writable for uid 1000 in both
                    // containers, and files created by exec stay owned by that user.
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(UID),
                        fs_group_change_policy: Some("OnRootMismatch".into()),
                        run_as_user: Some(UID),
                        run_as_group: Some(UID),
                        ..Default::default()
                    }),
                    volumes: Some(volumes),
                    image_pull_secrets: profile
                        .shell
                        .as_ref()
                        .and_then(|s| s.pull_secret.as_ref())
                        .map(|_| {
                            vec![LocalObjectReference {
                                name: SHELL_PULL_SECRET.into(),
                            }]
                        }),
                    node_selector: pod::node_selector(&app.placement),
                    tolerations: pod::tolerations(&app.placement),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn app_service(profile: &Profile) -> Service {
    let s = &profile.app.service;
    let port = ServicePort {
        name: Some("http".into()),
        port: s.port.into(),
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    service(
        profile,
        APP_NAME,
        s.kind,
        s.load_balancer_ip.as_ref(),
        vec![port],
    )
}

/// One Service for SSH (TCP) and mosh (UDP) so both share the operator's address.
fn shell_service(profile: &Profile, shell: &Shell) -> Service {
    let s = &shell.service;
    let mut ports = vec![ServicePort {
        name: Some("ssh".into()),
        port: s.ssh_port.into(),
        target_port: Some(IntOrString::String("ssh".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    ports.extend(
        s.mosh_ports
            .iter()
            .flat_map(|r| r.ports())
            .map(|p| ServicePort {
                name: Some(format!("mosh-{p}")),
                port: p.into(),
                target_port: Some(IntOrString::Int(p.into())),
                protocol: Some("UDP".into()),
                ..Default::default()
            }),
    );
    service(
        profile,
        SHELL_NAME,
        s.kind,
        s.load_balancer_ip.as_ref(),
        ports,
    )
}

/// A Service of the app pod. A fixed LoadBalancer IP goes into `spec.loadBalancerIP` and the
/// annotations Cilium LB-IPAM and MetalLB read (the field alone is deprecated upstream).
fn service(
    profile: &Profile,
    name: &str,
    kind: ServiceType,
    ip: Option<&crate::profile::types::IpAddress>,
    ports: Vec<ServicePort>,
) -> Service {
    let mut metadata = meta::object(profile, name, Component::App);
    if let Some(ip) = ip {
        metadata = meta::annotate(metadata, "lbipam.cilium.io/ips", ip.to_string());
        metadata = meta::annotate(
            metadata,
            "metallb.universe.tf/loadBalancerIPs",
            ip.to_string(),
        );
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(format!("{kind:?}")),
            load_balancer_ip: ip.map(ToString::to_string),
            selector: Some(meta::selector(Component::App)),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(sets: &[&str]) -> Profile {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::profile::load("frank", &sets).unwrap().profile
    }

    fn env(container: &Container, name: &str) -> String {
        let vars = container.env.iter().flatten();
        vars.filter(|e| e.name == name)
            .find_map(|e| e.value.clone())
            .unwrap()
    }

    #[test]
    fn the_app_root_is_read_only_with_a_writable_tmp_unless_switched_off() {
        let on = deployment(&profile(&[]));
        let spec = on.spec.unwrap().template.spec.unwrap();
        for container in spec
            .containers
            .iter()
            .take(1)
            .chain(spec.init_containers.iter().flatten())
        {
            let context = container.security_context.as_ref().unwrap();
            assert_eq!(
                context.read_only_root_filesystem,
                Some(true),
                "{}",
                container.name
            );
        }
        let mounts = spec.containers[0].volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == TMP_VOLUME && m.mount_path == "/tmp")
        );
        let volumes = spec.volumes.unwrap();
        let tmp = volumes.iter().find(|v| v.name == TMP_VOLUME).unwrap();
        assert!(tmp.empty_dir.is_some());

        let off = deployment(&profile(&["app.readOnlyRootFilesystem=false"]));
        let spec = off.spec.unwrap().template.spec.unwrap();
        let context = spec.containers[0].security_context.as_ref().unwrap();
        assert_eq!(context.read_only_root_filesystem, None);
        assert!(!spec.volumes.unwrap().iter().any(|v| v.name == TMP_VOLUME));
    }

    #[test]
    fn the_shell_root_is_read_only_with_its_scratch_directories_unless_switched_off() {
        let shell = |spec: &PodSpec| {
            spec.containers
                .iter()
                .find(|c| c.name == SHELL_NAME)
                .cloned()
                .unwrap()
        };
        let on = deployment(&profile(&[]))
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let sidecar = shell(&on);
        let context = sidecar.security_context.as_ref().unwrap();
        assert_eq!(context.read_only_root_filesystem, Some(true));
        let mounts = sidecar.volume_mounts.unwrap();
        let volumes = on.volumes.unwrap();
        for (name, path) in SHELL_SCRATCH {
            assert!(
                mounts
                    .iter()
                    .any(|m| m.name == name && m.mount_path == path && m.read_only != Some(true)),
                "{path} is writable"
            );
            let volume = volumes.iter().find(|v| v.name == name).unwrap();
            assert!(volume.empty_dir.is_some(), "{name} is an emptyDir");
        }

        let off = deployment(&profile(&["shell.readOnlyRootFilesystem=false"]));
        let off = off.spec.unwrap().template.spec.unwrap();
        let context = shell(&off).security_context.unwrap();
        assert_eq!(context.read_only_root_filesystem, None);
        let names: Vec<_> = off.volumes.unwrap().into_iter().map(|v| v.name).collect();
        assert!(
            SHELL_SCRATCH
                .iter()
                .all(|(name, _)| !names.contains(&name.to_string()))
        );
    }

    #[test]
    fn ingress_hosts_are_allowed_and_the_public_url_follows_the_first() {
        let app = app_container(&profile(&[
            "app.publicUrl=http://localhost:3100",
            "app.ingress={hosts: [a.example.com, b.example.com]}",
        ]));
        assert_eq!(env(&app, "PAPERCLIP_PUBLIC_URL"), "http://a.example.com");
        assert_eq!(
            env(&app, "PAPERCLIP_ALLOWED_HOSTNAMES"),
            "a.example.com,b.example.com,localhost"
        );
    }
}
