//! Preflight: what must hold on the cluster before anything is written. The plan lists these
//! checks from the profile alone, so `plan` shows exactly what a real run verifies.

use serde::Serialize;

use crate::profile::Profile;
use crate::profile::model::{Placement, ServiceType, StoreKind};

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier, for `--output json` consumers.
    pub id: String,
    pub title: String,
}

fn check(id: impl Into<String>, title: impl Into<String>) -> Check {
    Check {
        id: id.into(),
        title: title.into(),
    }
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

pub fn planned(profile: &Profile) -> Vec<Check> {
    let mut checks = vec![check(
        "api-access",
        format!(
            "the Kubernetes API answers and allows server-side apply in namespace {}",
            profile.namespace
        ),
    )];
    let app_nodes = target_nodes(&profile.app.placement);
    let db_nodes = target_nodes(&profile.database.placement);
    let mut images = vec![("app", profile.app.image.to_string(), &app_nodes)];
    images.push(("database", profile.database.image.to_string(), &db_nodes));
    if let Some(metrics) = &profile.database.metrics {
        images.push(("metrics", metrics.image.to_string(), &db_nodes));
    }
    if let Some(shell) = &profile.shell {
        images.push(("shell", shell.image.to_string(), &app_nodes));
    }
    for (role, image, nodes) in images {
        checks.push(check(
            format!("image-{role}"),
            format!("image {image} exists and offers the platform of {nodes}"),
        ));
    }
    checks.push(match &profile.storage.class_name {
        Some(class) => check("storage-class", format!("storage class {class} exists")),
        None => check("storage-class", "the cluster has a default storage class"),
    });
    let store = &profile.secrets.store;
    checks.push(check(
        "external-secrets",
        "External Secrets CRDs serve external-secrets.io/v1 (SecretStore, ExternalSecret)",
    ));
    let credentials_ns = match store.kind {
        StoreKind::ClusterSecretStore => store
            .credentials
            .namespace
            .as_ref()
            .unwrap_or(&profile.namespace),
        StoreKind::SecretStore => &profile.namespace,
    };
    checks.push(check(
        "store-credentials",
        format!(
            "Secret {credentials_ns}/{} holds keys {} and {} for Infisical universal auth",
            store.credentials.secret_name,
            store.credentials.client_id_key,
            store.credentials.client_secret_key
        ),
    ));
    let fixed_ips = [
        (
            profile.app.service.kind,
            profile.app.service.load_balancer_ip.as_ref(),
        ),
        (
            profile
                .shell
                .as_ref()
                .map_or(ServiceType::ClusterIP, |s| s.service.kind),
            profile
                .shell
                .as_ref()
                .and_then(|s| s.service.load_balancer_ip.as_ref()),
        ),
    ];
    for (_, ip) in fixed_ips
        .iter()
        .filter(|(kind, _)| *kind == ServiceType::LoadBalancer)
    {
        if let Some(ip) = ip {
            checks.push(check(
                format!("lb-ip-{ip}"),
                format!("LoadBalancer IP {ip} is not taken by another Service"),
            ));
        }
    }
    if let Some(limit) = &profile.app.resources.limits.memory {
        checks.push(check(
            "memory-headroom",
            format!(
                "{app_nodes} have allocatable memory for the app's {limit} limit, and no earlier \
                 OOMKilled run used more"
            ),
        ));
    }
    checks
}
