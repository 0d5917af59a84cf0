//! Preflight: what must hold on the cluster before anything is written.
//!
//! `planned` lists the checks from the profile alone, so `plan` shows exactly what a real run
//! verifies; `run` evaluates that same list against the cluster and returns a [`Report`].
//! Nothing here writes to the cluster or prints a secret value.

mod checks;
mod image;
mod memory;
mod placement;
mod quantity;
mod reach;
mod report;

use serde::Serialize;

pub use report::{Outcome, Report, Row, Status};

use crate::image::RegistryAuth;
use crate::profile::Profile;
use crate::profile::model::{Placement, ServiceType, StoreKind};
use crate::render::Release;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier, for `--output json` consumers.
    pub id: String,
    pub title: String,
    /// What `run` evaluates; kept out of the JSON plan, which the id already identifies.
    #[serde(skip)]
    kind: CheckKind,
}

/// The container an image check is about; its profile field is what a fix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    App,
    Database,
    Metrics,
    Shell,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Database => "database",
            Role::Metrics => "metrics",
            Role::Shell => "shell",
        }
    }

    /// The profile field that sets this container's image.
    fn image_field(self) -> &'static str {
        match self {
            Role::App => "app.image",
            Role::Database => "database.image",
            Role::Metrics => "database.metrics.image",
            Role::Shell => "shell.image",
        }
    }

    /// The profile field that places this container's pod.
    fn placement_field(self) -> &'static str {
        match self {
            Role::App | Role::Shell => "app.placement",
            Role::Database | Role::Metrics => "database.placement",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckKind {
    ApiAccess,
    Image(Role),
    StorageClass,
    ExternalSecrets,
    StoreCredentials,
    /// No store of the profile's name exists that paperclipctl did not create.
    StoreOwner,
    /// A fixed LoadBalancer address and the profile field that asks for it.
    LoadBalancerIp {
        ip: String,
        field: &'static str,
    },
    MemoryHeadroom,
    /// The Ingress's class exists (or a default one does).
    IngressClass,
    /// cert-manager serves its API and has the named ClusterIssuer.
    ClusterIssuer(String),
    /// The named certificate Secret exists in the release's namespace.
    TlsSecret(String),
    /// The network plugin enforces the release's NetworkPolicies.
    NetworkPolicy,
}

fn check(kind: CheckKind, id: impl Into<String>, title: impl Into<String>) -> Check {
    Check {
        id: id.into(),
        title: title.into(),
        kind,
    }
}

/// Runs every planned check against the cluster, in plan order.
///
/// Reads only: nodes, pods, services, storage classes, API discovery, the store's credentials
/// Secret (for its key names) and the app Deployment of an earlier install. A denied read fails
/// the check that needed it, naming the verb and resource.
pub async fn run(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
    registry_auth: &RegistryAuth,
) -> Report {
    checks::run(client, profile, release, registry_auth, planned(profile)).await
}

/// Which nodes a pod with this placement may land on, in words.
fn target_nodes(placement: &Placement) -> String {
    let mut words = if placement.node_selector.is_empty() {
        "every schedulable node".to_string()
    } else {
        let selector: Vec<String> = placement
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("nodes with {}", selector.join(","))
    };
    if !placement.tolerations.is_empty() {
        let taints: Vec<String> = placement
            .tolerations
            .iter()
            .map(|t| match (&t.value, t.effect) {
                (Some(v), Some(e)) => format!("{}={v}:{e:?}", t.key),
                (None, Some(e)) => format!("{}:{e:?}", t.key),
                (Some(v), None) => format!("{}={v}", t.key),
                (None, None) => t.key.clone(),
            })
            .collect();
        words.push_str(&format!(" (tolerating {})", taints.join(", ")));
    }
    words
}

/// The checks a run performs, in order, decided from the profile alone: `plan` prints this list
/// and `run` evaluates exactly it, so the two never disagree.
pub fn planned(profile: &Profile) -> Vec<Check> {
    let mut checks = vec![check(
        CheckKind::ApiAccess,
        "api-access",
        format!(
            "the Kubernetes API answers and allows server-side apply in namespace {}",
            profile.namespace
        ),
    )];
    let app_nodes = target_nodes(&profile.app.placement);
    let db_nodes = target_nodes(&profile.database.placement);
    let mut images = vec![(Role::App, profile.app.image.to_string(), &app_nodes)];
    images.push((
        Role::Database,
        profile.database.image.to_string(),
        &db_nodes,
    ));
    if let Some(metrics) = &profile.database.metrics {
        images.push((Role::Metrics, metrics.image.to_string(), &db_nodes));
    }
    if let Some(shell) = &profile.shell {
        images.push((Role::Shell, shell.image.to_string(), &app_nodes));
    }
    for (role, image, nodes) in images {
        checks.push(check(
            CheckKind::Image(role),
            format!("image-{}", role.as_str()),
            format!("image {image} exists and offers the platform of {nodes}"),
        ));
    }
    checks.push(match &profile.storage.class_name {
        Some(class) => check(
            CheckKind::StorageClass,
            "storage-class",
            format!("storage class {class} exists"),
        ),
        None => check(
            CheckKind::StorageClass,
            "storage-class",
            "the cluster has a default storage class",
        ),
    });
    let store = &profile.secrets.store;
    checks.push(check(
        CheckKind::ExternalSecrets,
        "external-secrets",
        "External Secrets CRDs serve external-secrets.io/v1 (SecretStore, ExternalSecret)",
    ));
    let credentials_ns = credentials_namespace(profile);
    checks.push(check(
        CheckKind::StoreCredentials,
        "store-credentials",
        format!(
            "Secret {credentials_ns}/{} holds keys {} and {} for Infisical universal auth",
            store.credentials.secret_name,
            store.credentials.client_id_key,
            store.credentials.client_secret_key
        ),
    ));
    checks.push(check(
        CheckKind::StoreOwner,
        "store-owner",
        format!(
            "no {:?} named {} exists that paperclipctl did not create",
            store.kind, store.name
        ),
    ));
    let app_ip = (profile.app.service.kind == ServiceType::LoadBalancer)
        .then_some(profile.app.service.load_balancer_ip.as_ref())
        .flatten()
        .map(|ip| (ip, "app.service.loadBalancerIp"));
    let shell_ip = profile
        .shell
        .as_ref()
        .filter(|s| s.service.kind == ServiceType::LoadBalancer)
        .and_then(|s| s.service.load_balancer_ip.as_ref())
        .map(|ip| (ip, "shell.service.loadBalancerIp"));
    for (ip, field) in app_ip.into_iter().chain(shell_ip) {
        checks.push(check(
            CheckKind::LoadBalancerIp {
                ip: ip.to_string(),
                field,
            },
            format!("lb-ip-{ip}"),
            format!("LoadBalancer IP {ip} is not taken by another Service"),
        ));
    }
    checks.extend(reach(profile));
    if let Some(limit) = &profile.app.resources.limits.memory {
        checks.push(check(
            CheckKind::MemoryHeadroom,
            "memory-headroom",
            format!(
                "{app_nodes} have allocatable memory for the app's {limit} limit, and no earlier \
                 OOMKilled run used more"
            ),
        ));
    }
    checks
}

/// The checks of the Ingress and the NetworkPolicies the profile asks for.
fn reach(profile: &Profile) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(ingress) = &profile.app.ingress {
        let class = match &ingress.class_name {
            Some(class) => format!("IngressClass {class} exists"),
            None => "the cluster has a default IngressClass".to_string(),
        };
        checks.push(check(CheckKind::IngressClass, "ingress-class", class));
        match ingress
            .tls
            .as_ref()
            .map(|t| (&t.cluster_issuer, &t.secret_name))
        {
            Some((Some(issuer), _)) => checks.push(check(
                CheckKind::ClusterIssuer(issuer.to_string()),
                "cluster-issuer",
                format!("cert-manager serves ClusterIssuer {issuer}"),
            )),
            Some((None, Some(secret))) => checks.push(check(
                CheckKind::TlsSecret(secret.to_string()),
                "tls-secret",
                format!(
                    "Secret {}/{secret} holds the Ingress's certificate",
                    profile.namespace
                ),
            )),
            _ => {}
        }
    }
    if profile.network_policy.enabled {
        checks.push(check(
            CheckKind::NetworkPolicy,
            "network-policy",
            "the cluster's network plugin enforces the release's NetworkPolicies",
        ));
    }
    checks
}

/// The namespace of the store's credentials Secret: a ClusterSecretStore names it, a
/// SecretStore reads its own (the release's) namespace.
fn credentials_namespace(profile: &Profile) -> &str {
    let store = &profile.secrets.store;
    match store.kind {
        StoreKind::ClusterSecretStore => store
            .credentials
            .namespace
            .as_ref()
            .unwrap_or(&profile.namespace)
            .as_str(),
        StoreKind::SecretStore => profile.namespace.as_str(),
    }
}
