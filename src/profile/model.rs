//! The profile: every choice an install makes, as one typed, validated document.
//!
//! Defaults here describe a generic cluster (ClusterIP services, the default storage class, no
//! node pinning); `profiles/*.yaml` override them. Unknown keys are rejected everywhere so a typo
//! is an error instead of a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{
    BackupRecipient, DnsLabel, DnsSubdomain, EnvName, GoDuration, HttpUrl, ImageRef, IpAddress,
    PortRange, Quantity, RegistryHost,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// A name for humans and the release record.
    pub name: String,
    #[serde(default = "defaults::namespace")]
    pub namespace: DnsLabel,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub app: App,
    #[serde(default)]
    pub database: Database,
    /// The SSH-able shell sidecar; absent means no sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Shell>,
    #[serde(default)]
    pub secrets: Secrets,
    #[serde(default)]
    pub network_policy: NetworkPolicy,
    #[serde(default, skip_serializing_if = "Backup::is_empty")]
    pub backup: Backup,
}

/// The backups paperclipctl takes by itself: the safety backups before a restore or an upgrade.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Backup {
    /// age recipients the safety backups are encrypted to (age1… keys, ssh-ed25519 or ssh-rsa
    /// public keys); none writes them unencrypted, and says so.
    pub recipients: Vec<BackupRecipient>,
}

impl Backup {
    fn is_empty(&self) -> bool {
        self.recipients.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Storage {
    /// The storage class of every volume; absent means the cluster's default class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_name: Option<DnsSubdomain>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct App {
    pub image: ImageRef,
    /// The URL users open; its host is allow-listed in private mode.
    pub public_url: HttpUrl,
    /// Extra host names private mode answers to (besides the public URL's host and localhost).
    pub allowed_hostnames: Vec<String>,
    pub deployment_mode: DeploymentMode,
    pub exposure: Exposure,
    pub strategy: Strategy,
    pub resources: Resources,
    pub persistence: Volume,
    pub service: Service,
    pub probes: Probes,
    pub placement: Placement,
    /// Secrets the app container loads with envFrom. Absent: every ExternalSecret of the profile,
    /// optional exactly when the ExternalSecret is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSecret>>,
    /// Plain (non-secret) environment variables added to the app container.
    pub env: BTreeMap<EnvName, String>,
    /// Mount the namespace's default service-account token into the app pod (and so into its
    /// shell sidecar, which shares the pod). Off by default: Paperclip does not talk to the
    /// Kubernetes API, and an SSH-reachable container must not hold a token nobody asked for.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub service_account_token: bool,
    /// Mount the app container's root filesystem read-only (with an empty, writable `/tmp`).
    /// On by default: the server and its CLI write only to `/paperclip` and `/tmp`. Turn it off
    /// for an image whose agents' tools write elsewhere in the root filesystem.
    pub read_only_root_filesystem: bool,
    /// An Ingress in front of the app's Service; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
}

/// An Ingress for the app. Its hosts are allow-listed in private mode, and the public URL
/// follows the first one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ingress {
    /// The IngressClass; absent means the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<DnsSubdomain>,
    /// Host names the Ingress routes to the app, the public URL's first.
    pub hosts: Vec<String>,
    /// TLS for every host; absent means plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
    /// Annotations for the ingress controller (timeouts, body size, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Where the Ingress's certificate comes from: an existing `kubernetes.io/tls` Secret, or
/// cert-manager's ClusterIssuer, which then writes the Secret (named `secretName`, or
/// `paperclip-tls`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<DnsSubdomain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_issuer: Option<DnsSubdomain>,
}

/// NetworkPolicies of the release: the database accepts only the app pod, the app pod only its
/// published ports. Enforced only by a network plugin that implements NetworkPolicy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkPolicy {
    pub enabled: bool,
    /// The ingress controller's namespace: the app's HTTP port then accepts only pods there
    /// (the shell's SSH and mosh ports stay open as their Service publishes them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_controller_namespace: Option<DnsLabel>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            enabled: true,
            ingress_controller_namespace: None,
        }
    }
}

impl Profile {
    /// Values that follow from others once the profile is valid: with an Ingress and no public
    /// URL of its own (the default `localhost` one), the public URL is the Ingress's.
    pub(super) fn resolve(mut self) -> Self {
        if self.app.public_url.host() == "localhost"
            && let Some(url) = self.app.ingress_url()
        {
            self.app.public_url = url.parse().expect("a host name checked as a DNS name");
        }
        self
    }
}

impl App {
    /// The public URL an Ingress implies: its first host, https when it has TLS.
    pub fn ingress_url(&self) -> Option<String> {
        let ingress = self.ingress.as_ref()?;
        let host = ingress.hosts.first()?;
        let scheme = if ingress.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Some(format!("{scheme}://{host}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentMode {
    Authenticated,
    LocalTrusted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    Private,
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    Recreate,
    RollingUpdate,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub size: Quantity,
    #[serde(default = "defaults::access_mode")]
    pub access_mode: AccessMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadWriteOncePod,
    ReadWriteMany,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Service {
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// A fixed address for a LoadBalancer Service (MetalLB / Cilium LB-IPAM honour it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<IpAddress>,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Probes {
    pub readiness: Probe,
    pub liveness: Probe,
}

/// A probe against the app's port. Private mode answers 403 to any Host it does not know, and the
/// kubelet sends the pod IP as Host, so an HTTP probe must name an allow-listed `host`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    #[serde(rename = "type")]
    pub kind: ProbeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeType {
    Http,
    Tcp,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Placement {
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    pub key: String,
    #[serde(default = "defaults::toleration_operator")]
    pub operator: TolerationOperator,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    Exists,
    Equal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFromSecret {
    pub secret: DnsSubdomain,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Database {
    pub flavor: DatabaseFlavor,
    pub image: ImageRef,
    pub user: DnsLabel,
    pub database: DnsLabel,
    pub persistence: Volume,
    pub resources: Resources,
    pub placement: Placement,
    /// A postgres-exporter sidecar; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// Which image family runs the database: they differ in environment names, data path and uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseFlavor {
    /// The official `postgres` image.
    Official,
    /// Bitnami's image (Docker Hub tags are gone; use a mirror such as bitnamilegacy).
    Bitnami,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// Take it from the same registry as the database: Bitnami's exporter tags are gone too.
    pub image: ImageRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shell {
    /// The sidecar image; there is no public default. A tag (`paperclipctl image push` prints
    /// one) or a bare repository, which means the content-tagged image `image push` builds from
    /// this binary's context for the nodes' platform. Install pins either to its digest.
    pub image: ImageRef,
    /// The login the kubelet needs for a private sidecar image; absent means a public image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<PullSecret>,
    #[serde(default = "defaults::shell_home")]
    pub home: Volume,
    #[serde(default = "defaults::shell_resources")]
    pub resources: Resources,
    #[serde(default)]
    pub service: ShellService,
    /// SSH public keys allowed to log in as `agent` (public keys: not secret, but kept in a
    /// Secret like the rest of the credentials).
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// The tools the sidecar converges its home volume to at every boot; absent means the
    /// image's default inventory.
    #[serde(default = "defaults::shell_inventory")]
    pub inventory: Inventory,
    /// Where the boot hook reports a failed reconcile; absent means the MOTD and log only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Alerts>,
    /// Plain (non-secret) environment variables of the sidecar, such as the `HTTPS_PROXY` its
    /// package managers download through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, String>,
    /// PEM certificates the sidecar's downloads trust instead of the image's own bundle, for a
    /// network whose proxy inspects TLS: a complete bundle, such as the `ca-certificates.crt` of a
    /// machine that trusts that proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Mount the sidecar's root filesystem read-only, with empty writable `/tmp`, `/var/tmp` and
    /// the boot hook's log and summary directories. On by default: the `agent` user can write
    /// nothing else outside its home volume anyway, so a read-only root costs the shell's users
    /// nothing and keeps a compromised login from changing the image's programs.
    #[serde(default = "defaults::read_only_root")]
    pub read_only_root_filesystem: bool,
}

/// Tools grouped by the manager that installs them, in the sidecar's inventory file format
/// (rendered as is into the inventory ConfigMap).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inventory {
    /// `name@version` for `mise use --global` (`python@3.12`, `node@20`).
    pub mise: Vec<String>,
    /// Packages for `npm i -g` (`@openai/codex`, `prettier@3`).
    #[serde(rename = "npm-global")]
    pub npm_global: Vec<String>,
    /// Packages for `pipx install` (`black`, `ruff==0.6.9`).
    pub pipx: Vec<String>,
    /// Crates for `cargo install --locked` (`ripgrep`, `eza`).
    pub cargo: Vec<String>,
    /// Tools uninstalled at boot when present, by manager.
    pub removed: Tools,
}

/// Tool lists by manager, without a `removed:` of their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mise: Vec<String>,
    #[serde(rename = "npm-global", skip_serializing_if = "Vec::is_empty")]
    pub npm_global: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipx: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cargo: Vec<String>,
}

impl Inventory {
    /// Every list with its profile path: what to install, then what to remove.
    pub fn lists(&self) -> [(&'static str, &[String]); 8] {
        let r = &self.removed;
        [
            ("mise", &self.mise),
            ("npm-global", &self.npm_global),
            ("pipx", &self.pipx),
            ("cargo", &self.cargo),
            ("removed.mise", &r.mise),
            ("removed.npm-global", &r.npm_global),
            ("removed.pipx", &r.pipx),
            ("removed.cargo", &r.cargo),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alerts {
    pub telegram: TelegramAlerts,
}

/// A Telegram bot that gets one message per failed reconcile. The profile names the two
/// Infisical keys; an optional ExternalSecret syncs them, so the sidecar starts without them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelegramAlerts {
    /// The Infisical key holding the bot token.
    pub bot_token_key: EnvName,
    /// The Infisical key holding the chat id.
    pub chat_id_key: EnvName,
}

/// A registry login kept in Infisical: the profile names the two keys, never their values, and
/// an ExternalSecret turns them into the `kubernetes.io/dockerconfigjson` Secret the pod pulls
/// the sidecar with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullSecret {
    /// The registry the login is for, as in the image reference (`ghcr.io`, `host:5000`).
    pub registry: RegistryHost,
    /// The Infisical key holding the user name.
    pub username_key: EnvName,
    /// The Infisical key holding the password or token.
    pub password_key: EnvName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ShellService {
    #[serde(rename = "type")]
    pub kind: ServiceType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<IpAddress>,
    pub ssh_port: u16,
    /// UDP ports published for mosh on the same Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mosh_ports: Option<PortRange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Secrets {
    pub store: SecretStore,
    pub refresh_interval: GoDuration,
    pub external_secrets: Vec<ExternalSecret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretStore {
    pub kind: StoreKind,
    pub name: DnsSubdomain,
    pub host_api: HttpUrl,
    pub project_slug: String,
    pub environment_slug: String,
    pub secrets_path: String,
    pub credentials: StoreCredentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreKind {
    SecretStore,
    ClusterSecretStore,
}

/// Where the store finds Infisical's universal-auth machine identity (a Secret we never print).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StoreCredentials {
    pub secret_name: DnsSubdomain,
    /// Namespace of that Secret; needed for a ClusterSecretStore, defaults to the release's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<DnsLabel>,
    pub client_id_key: EnvName,
    pub client_secret_key: EnvName,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalSecret {
    pub name: DnsSubdomain,
    /// An optional Secret may be absent: the app loads it with `optional: true`.
    #[serde(default)]
    pub optional: bool,
    pub keys: Vec<SecretKey>,
    /// Static, non-secret values merged into the same Secret (e.g. a base URL).
    #[serde(default, rename = "static", skip_serializing_if = "BTreeMap::is_empty")]
    pub static_values: BTreeMap<EnvName, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKey {
    /// The key's name in Infisical.
    pub remote: EnvName,
    /// The key's name in the Kubernetes Secret (the variable the app sees); defaults to `remote`.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub target: Option<EnvName>,
    /// paperclipctl generates a random value when Infisical has none (e.g. BETTER_AUTH_SECRET).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate: bool,
}

impl SecretKey {
    pub fn target(&self) -> &EnvName {
        self.target.as_ref().unwrap_or(&self.remote)
    }
}

impl Default for App {
    fn default() -> Self {
        App {
            image: defaults::image("ghcr.io/paperclipai/paperclip:sha-3494e84"),
            public_url: "http://localhost:3100".parse().expect("valid default"),
            allowed_hostnames: Vec::new(),
            deployment_mode: DeploymentMode::Authenticated,
            exposure: Exposure::Private,
            strategy: Strategy::Recreate,
            // Measured: ~515 MB RSS after start, ~885 MB after light use, a 1.25 GB peak during
            // onboarding (preflight's memory check holds profiles to the same numbers).
            resources: Resources {
                requests: defaults::resources("1Gi", "250m"),
                limits: defaults::resources("4Gi", "1"),
            },
            persistence: defaults::volume("10Gi"),
            service: Service::default(),
            probes: Probes::default(),
            placement: Placement::default(),
            env_from: None,
            env: BTreeMap::new(),
            service_account_token: false,
            read_only_root_filesystem: true,
            ingress: None,
        }
    }
}

impl Default for Service {
    fn default() -> Self {
        Service {
            kind: ServiceType::ClusterIP,
            load_balancer_ip: None,
            port: 3100,
        }
    }
}

impl Default for Probes {
    fn default() -> Self {
        Probes {
            readiness: Probe {
                kind: ProbeType::Http,
                path: Some("/api/health".into()),
                host: Some("localhost".into()),
            },
            liveness: Probe {
                kind: ProbeType::Tcp,
                path: None,
                host: None,
            },
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Database {
            flavor: DatabaseFlavor::Official,
            image: defaults::image("docker.io/library/postgres:16.4"),
            user: "paperclip".parse().expect("valid default"),
            database: "paperclip".parse().expect("valid default"),
            persistence: defaults::volume("5Gi"),
            resources: Resources {
                requests: defaults::resources("256Mi", "100m"),
                limits: defaults::resources("1Gi", "1"),
            },
            placement: Placement::default(),
            metrics: None,
        }
    }
}

impl Default for ShellService {
    fn default() -> Self {
        ShellService {
            kind: ServiceType::ClusterIP,
            load_balancer_ip: None,
            ssh_port: 22,
            mosh_ports: None,
        }
    }
}

impl Default for Secrets {
    fn default() -> Self {
        let key = |remote: &str, target: Option<&str>, generate| SecretKey {
            remote: remote.parse().expect("valid default"),
            target: target.map(|t| t.parse().expect("valid default")),
            generate,
        };
        Secrets {
            store: SecretStore::default(),
            refresh_interval: "1h".parse().expect("valid default"),
            external_secrets: vec![
                ExternalSecret {
                    name: "paperclip-llm-key".parse().expect("valid default"),
                    optional: true,
                    keys: vec![key("PAPERCLIP_LLM_KEY", Some("OPENAI_API_KEY"), false)],
                    static_values: BTreeMap::new(),
                },
                ExternalSecret {
                    name: "paperclip-auth".parse().expect("valid default"),
                    optional: false,
                    keys: vec![key("BETTER_AUTH_SECRET", None, true)],
                    static_values: BTreeMap::new(),
                },
            ],
        }
    }
}

impl Default for SecretStore {
    fn default() -> Self {
        SecretStore {
            kind: StoreKind::SecretStore,
            name: "paperclip-infisical".parse().expect("valid default"),
            host_api: "https://app.infisical.com".parse().expect("valid default"),
            project_slug: "paperclip".into(),
            environment_slug: "prod".into(),
            secrets_path: "/".into(),
            credentials: StoreCredentials::default(),
        }
    }
}

impl Default for StoreCredentials {
    fn default() -> Self {
        StoreCredentials {
            secret_name: "infisical-universal-auth".parse().expect("valid default"),
            namespace: None,
            client_id_key: "clientId".parse().expect("valid default"),
            client_secret_key: "clientSecret".parse().expect("valid default"),
        }
    }
}

mod defaults {
    use super::*;

    pub fn namespace() -> DnsLabel {
        "paperclip".parse().expect("valid default")
    }

    pub fn access_mode() -> AccessMode {
        AccessMode::ReadWriteOnce
    }

    pub fn toleration_operator() -> TolerationOperator {
        TolerationOperator::Exists
    }

    pub fn image(reference: &str) -> ImageRef {
        reference.parse().expect("valid default")
    }

    pub fn volume(size: &str) -> Volume {
        Volume {
            size: size.parse().expect("valid default"),
            access_mode: AccessMode::ReadWriteOnce,
        }
    }

    pub fn read_only_root() -> bool {
        true
    }

    pub fn shell_home() -> Volume {
        volume("20Gi")
    }

    /// The image's own default inventory, so a profile without one gets what the image has.
    pub fn shell_inventory() -> Inventory {
        serde_yaml_ng::from_str(include_str!("../../embedded/shell-image/inventory.yaml"))
            .expect("the image's inventory is a valid profile inventory")
    }

    pub fn shell_resources() -> Resources {
        Resources {
            requests: resources("128Mi", "50m"),
            limits: resources("2Gi", "1"),
        }
    }

    pub fn resources(memory: &str, cpu: &str) -> ResourceList {
        ResourceList {
            memory: Some(memory.parse().expect("valid default")),
            cpu: Some(cpu.parse().expect("valid default")),
        }
    }
}
