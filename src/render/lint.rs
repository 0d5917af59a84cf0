//! Lints over the rendered objects: each one a lesson from running Paperclip by hand.
//!
//! They inspect the typed objects rather than the profile, so they also catch what a profile
//! field combination produces indirectly. Every finding names the profile field that fixes it.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, SecretEnvSource};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::{Object, Wave, eso};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier, for `--output json` consumers.
    pub code: &'static str,
    /// `Kind/name` of the object it is about.
    pub object: String,
    pub message: String,
    pub help: String,
}

pub fn run(waves: &[Wave]) -> Vec<Finding> {
    let objects: Vec<&Object> = waves.iter().flat_map(|w| &w.objects).collect();
    let mut findings = Vec::new();
    for object in &objects {
        match object {
            Object::Deployment(d) => {
                rwo_rolling_update(d, &objects, &mut findings);
                optional_secrets(d, &objects, &mut findings);
                pull_secrets_as_env(d, &objects, &mut findings);
                private_http_probes(d, &mut findings);
            }
            Object::StatefulSet(_) => {}
            Object::NetworkPolicy(policy) => {
                unreachable_service(policy, &objects, &mut findings);
                continue;
            }
            _ => continue,
        }
        for container in containers(object) {
            image_pinned(object, container, &mut findings);
            limits_set(object, container, &mut findings);
        }
    }
    findings
}

fn containers(object: &Object) -> impl Iterator<Item = &Container> {
    object.pod_spec().into_iter().flat_map(|p| &p.containers)
}

/// A ReadWriteOnce volume can be attached to one node at a time: a rolling update starts the new
/// pod before the old one lets go, and both wait forever on Multi-Attach.
fn rwo_rolling_update(d: &Deployment, objects: &[&Object], findings: &mut Vec<Finding>) {
    let Some(spec) = &d.spec else { return };
    let strategy = spec.strategy.as_ref().and_then(|s| s.type_.as_deref());
    // Kubernetes defaults an unset strategy to RollingUpdate.
    if strategy.is_some_and(|s| s == "Recreate") {
        return;
    }
    let claims: BTreeSet<&str> = spec
        .template
        .spec
        .iter()
        .flat_map(|p| p.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    for object in objects {
        let Object::PersistentVolumeClaim(pvc) = object else {
            continue;
        };
        if claims.contains(object.name()) && single_node(pvc) {
            findings.push(Finding {
                severity: Severity::Error,
                code: "rwo-rolling-update",
                object: format!(
                    "Deployment/{}",
                    d.metadata.name.as_deref().unwrap_or_default()
                ),
                message: format!(
                    "rolling update with ReadWriteOnce volume {}: the new pod waits for the old \
                     one's volume (Multi-Attach) and the rollout deadlocks",
                    object.name()
                ),
                help: "set app.strategy: Recreate".into(),
            });
        }
    }
}

/// A policy that admits a port from chosen peers only, in front of a Service that publishes
/// that port outside the cluster: the LoadBalancer's or NodePort's clients are not among the
/// peers, so nothing outside reaches it.
fn unreachable_service(policy: &NetworkPolicy, objects: &[&Object], findings: &mut Vec<Finding>) {
    let Some(spec) = &policy.spec else { return };
    let limited: BTreeSet<i32> = spec
        .ingress
        .iter()
        .flatten()
        .filter(|rule| rule.from.as_ref().is_some_and(|from| !from.is_empty()))
        .flat_map(|rule| rule.ports.iter().flatten())
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(port)) => Some(port),
            _ => None,
        })
        .collect();
    let selected = spec
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref());
    for object in objects {
        let Object::Service(service) = object else {
            continue;
        };
        let Some(service_spec) = &service.spec else {
            continue;
        };
        let outside = matches!(
            service_spec.type_.as_deref(),
            Some("LoadBalancer" | "NodePort")
        );
        if !outside || service_spec.selector.as_ref() != selected {
            continue;
        }
        let target = |p: &&k8s_openapi::api::core::v1::ServicePort| match &p.target_port {
            Some(IntOrString::Int(port)) => limited.contains(port),
            // Our Services name the app's port `http`, which the policy admits as a number.
            Some(IntOrString::String(name)) => name == "http" && limited.contains(&super::APP_PORT),
            None => limited.contains(&p.port),
        };
        if service_spec.ports.iter().flatten().any(|p| target(&p)) {
            findings.push(Finding {
                severity: Severity::Warning,
                code: "policy-hides-service",
                object: object.id(),
                message: format!(
                    "{} {} publishes a port that NetworkPolicy {} admits only from the ingress \
                     controller's namespace: its clients outside the cluster are refused",
                    service_spec.type_.as_deref().unwrap_or_default(),
                    object.id(),
                    policy.metadata.name.as_deref().unwrap_or_default()
                ),
                help: "set app.service.type: ClusterIP (the Ingress reaches it), or remove \
                       networkPolicy.ingressControllerNamespace"
                    .into(),
            });
        }
    }
}

fn single_node(pvc: &PersistentVolumeClaim) -> bool {
    pvc.spec
        .iter()
        .flat_map(|s| s.access_modes.iter().flatten())
        .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod")
}

/// The Secrets that ExternalSecrets matching `which` create.
fn synced_secrets<'o>(
    objects: &[&'o Object],
    which: fn(&eso::ExternalSecret) -> bool,
) -> BTreeSet<&'o str> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::ExternalSecret(es) if which(es) => Some(es.spec.target.name.as_str()),
            _ => None,
        })
        .collect()
}

/// Every Secret a container of `d` loads with envFrom, with the container.
fn env_from_secrets(d: &Deployment) -> impl Iterator<Item = (&Container, &SecretEnvSource)> {
    let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    spec.into_iter()
        .flat_map(|p| &p.containers)
        .flat_map(|container| {
            container
                .env_from
                .iter()
                .flatten()
                .filter_map(move |e| Some((container, e.secret_ref.as_ref()?)))
        })
}

/// A Secret that may be absent must be loaded with `optional: true`, or the pod cannot be
/// created (CreateContainerConfigError) and the rollout stalls with the old pod alive.
fn optional_secrets(d: &Deployment, objects: &[&Object], findings: &mut Vec<Finding>) {
    let optional = synced_secrets(objects, eso::is_optional);
    let name = d.metadata.name.as_deref().unwrap_or_default();
    for (container, secret) in env_from_secrets(d) {
        if optional.contains(secret.name.as_str()) && secret.optional != Some(true) {
            findings.push(Finding {
                severity: Severity::Error,
                code: "required-optional-secret",
                object: format!("Deployment/{name}"),
                message: format!(
                    "container {} requires Secret {}, but its ExternalSecret is optional: \
                     while it is missing the pod cannot start (CreateContainerConfigError)",
                    container.name, secret.name
                ),
                help: format!("set optional: true on {} in app.envFrom", secret.name),
            });
        }
    }
}

/// A registry login is for the kubelet: loaded with envFrom it hands the app the credential
/// under the invalid variable name `.dockerconfigjson`.
fn pull_secrets_as_env(d: &Deployment, objects: &[&Object], findings: &mut Vec<Finding>) {
    let pull = synced_secrets(objects, eso::is_pull_secret);
    let name = d.metadata.name.as_deref().unwrap_or_default();
    for (container, secret) in env_from_secrets(d) {
        if pull.contains(secret.name.as_str()) {
            findings.push(Finding {
                severity: Severity::Error,
                code: "pull-secret-as-env",
                object: format!("Deployment/{name}"),
                message: format!(
                    "container {} loads image pull Secret {} with envFrom: a registry login is \
                     not env material",
                    container.name, secret.name
                ),
                help: format!("remove {} from app.envFrom", secret.name),
            });
        }
    }
}

/// In private exposure the app answers 403 to a Host it does not know, and the kubelet sends the
/// pod IP as Host: an httpGet probe without a Host header never succeeds.
fn private_http_probes(d: &Deployment, findings: &mut Vec<Finding>) {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    for container in spec.into_iter().flat_map(|p| &p.containers) {
        let private = container.env.iter().flatten().any(|e| {
            e.name == "PAPERCLIP_DEPLOYMENT_EXPOSURE" && e.value.as_deref() == Some("private")
        });
        if !private {
            continue;
        }
        let probes = [
            ("readiness", &container.readiness_probe),
            ("liveness", &container.liveness_probe),
            ("startup", &container.startup_probe),
        ];
        for (kind, probe) in probes {
            let Some(http) = probe.as_ref().and_then(|p| p.http_get.as_ref()) else {
                continue;
            };
            let has_host = http
                .http_headers
                .iter()
                .flatten()
                .any(|h| h.name.eq_ignore_ascii_case("host"));
            if !has_host {
                findings.push(Finding {
                    severity: Severity::Error,
                    code: "private-http-probe",
                    object: format!("Deployment/{name}"),
                    message: format!(
                        "{kind} probe of {} is a bare httpGet: in private mode the app answers \
                         403 to the kubelet's Host header and the pod never becomes Ready",
                        container.name
                    ),
                    help: format!("set app.probes.{kind}.host: localhost, or type: tcp"),
                });
            }
        }
    }
}

/// An image without a tag, or `latest`, changes under you and cannot be checked for platforms.
/// The shell sidecar's bare repository is the exception: it names the content-tagged image
/// `paperclipctl image push` builds, and install pins that tag's digest.
fn image_pinned(object: &Object, container: &Container, findings: &mut Vec<Finding>) {
    let Some(image) = container.image.as_deref() else {
        return;
    };
    let Ok(reference) = image.parse::<crate::profile::types::ImageRef>() else {
        return;
    };
    let problem = match (reference.tag(), reference.digest()) {
        (_, Some(_)) => return,
        (None, None) if container.name == super::meta::SHELL_NAME => return,
        (None, None) => "has no tag",
        (Some(tag), None) if tag == "latest" => "uses the moving tag latest",
        (Some(_), None) => return,
    };
    findings.push(Finding {
        severity: Severity::Warning,
        code: "unpinned-image",
        object: object.id(),
        message: format!("image {image} of container {} {problem}", container.name),
        help: "pin a tag such as sha-3494e84 (or a digest) so every node runs the same build"
            .into(),
    });
}

/// The profile section that sizes a container, as a field-path prefix.
pub fn profile_section(container: &str) -> &'static str {
    match container {
        super::meta::APP_NAME => "app.",
        super::meta::SHELL_NAME => "shell.",
        "postgresql" => "database.",
        _ => "",
    }
}

/// Without a memory limit the scheduler cannot protect the node, and guessed limits OOM: both
/// deserve a look.
fn limits_set(object: &Object, container: &Container, findings: &mut Vec<Finding>) {
    let has_memory_limit = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|l| l.contains_key("memory"));
    if !has_memory_limit {
        findings.push(Finding {
            severity: Severity::Warning,
            code: "no-memory-limit",
            object: object.id(),
            message: format!("container {} has no memory limit", container.name),
            help: format!(
                "set {}resources.limits.memory from what the workload really uses \
                 (Paperclip under agent load needed 12Gi on Frank)",
                profile_section(&container.name)
            ),
        });
    }
}
