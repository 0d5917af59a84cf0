//! The checks that read the cluster, one function per planned check kind.
//!
//! Reads that several checks share (nodes) happen once per run. Every API error becomes the
//! failing outcome of the check that needed the read, so one denied permission does not hide
//! the results of the others.

use std::collections::BTreeSet;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Container, Node, PodSpec, Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, PostParams};
use oci_client::Reference;

use super::image::{ImageError, Registries, platform_gap};
use super::placement::{self, NodePlatform};
use super::report::{Outcome, Report, Row};
use super::{Check, CheckKind, Role, credentials_namespace};
use crate::image::RegistryAuth;
use crate::profile::Profile;
use crate::profile::model::StoreKind;
use crate::render::{Object, Release};

/// Why a read failed, already in the words of an outcome.
#[derive(Clone)]
pub(super) struct Problem {
    detail: String,
    fix: String,
}

impl From<Problem> for Outcome {
    fn from(p: Problem) -> Outcome {
        Outcome::fail(p.detail, p.fix)
    }
}

/// Turns an API error on `verb resource` into what the user reads; a 403 becomes
/// `forbidden: list nodes`.
pub(super) fn api_problem(verb: &str, resource: &str, error: &kube::Error) -> Problem {
    match error {
        kube::Error::Api(status) if status.is_forbidden() => Problem {
            detail: format!("forbidden: {verb} {resource}"),
            fix: format!(
                "grant the kubeconfig's user `{verb}` on `{resource}` (a Role or ClusterRole \
                 binding), or run with an identity that has it"
            ),
        },
        _ => Problem {
            detail: format!("cannot {verb} {resource}: {error}"),
            fix: "check that the cluster answers with the current kubeconfig and context".into(),
        },
    }
}

/// The shared state of one run: the clients and the reads more than one check needs.
pub(super) struct Run<'a> {
    pub(super) client: &'a kube::Client,
    pub(super) profile: &'a Profile,
    pub(super) release: &'a Release,
    registries: Registries<'a>,
    nodes: Option<Result<Vec<Node>, Problem>>,
}

pub(super) async fn run(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
    auth: &RegistryAuth,
    planned: Vec<Check>,
) -> Report {
    let references: Vec<_> = planned
        .iter()
        .filter_map(|c| match c.kind {
            CheckKind::Image(role) => image_of(profile, role).map(|i| i.reference()),
            _ => None,
        })
        .collect();
    let mut run = Run {
        client,
        profile,
        release,
        registries: Registries::new(&references, auth),
        nodes: None,
    };
    let mut rows = Vec::new();
    let mut unreachable: Option<String> = None;
    for check in planned {
        let outcome = match (&unreachable, &check.kind) {
            // Without an API, only the registry half of an image check could run, and its
            // platform half needs the nodes: report the one cause instead of many timeouts.
            (Some(cause), kind) if *kind != CheckKind::ApiAccess => Outcome::fail(
                format!("not checked: {cause}"),
                "fix the connection to the cluster first",
            ),
            _ => match &check.kind {
                CheckKind::ApiAccess => {
                    let (outcome, reachable) = run.api_access().await;
                    if !reachable {
                        unreachable = Some("the Kubernetes API did not answer".into());
                    }
                    outcome
                }
                CheckKind::Image(role) => run.image(*role).await,
                CheckKind::StorageClass => run.storage_class().await,
                CheckKind::ExternalSecrets => run.external_secrets().await,
                CheckKind::StoreCredentials => run.store_credentials().await,
                CheckKind::StoreOwner => run.store_owner().await,
                CheckKind::LoadBalancerIp { ip, field } => run.load_balancer_ip(ip, field).await,
                CheckKind::MemoryHeadroom => run.memory_headroom().await,
                CheckKind::IngressClass => run.ingress_class().await,
                CheckKind::ClusterIssuer(issuer) => run.cluster_issuer(issuer).await,
                CheckKind::TlsSecret(name) => run.tls_secret(name).await,
                CheckKind::NetworkPolicy => run.network_policy().await,
            },
        };
        rows.push(Row {
            id: check.id,
            title: check.title,
            outcome,
        });
    }
    Report { checks: rows }
}

fn image_of(profile: &Profile, role: Role) -> Option<&crate::profile::types::ImageRef> {
    match role {
        Role::App => Some(&profile.app.image),
        Role::Database => Some(&profile.database.image),
        Role::Metrics => profile.database.metrics.as_ref().map(|m| &m.image),
        Role::Shell => profile.shell.as_ref().map(|s| &s.image),
    }
}

/// The pod spec and container of `role` in the rendered release: the Deployment runs the app
/// and the shell, the StatefulSet the database and its exporter. The container is found by the
/// image the profile gives it, so the check inspects what the release will really run.
pub(super) fn workload<'r>(
    release: &'r Release,
    profile: &Profile,
    role: Role,
) -> Option<(&'r PodSpec, &'r Container)> {
    let image = image_of(profile, role)?.to_string();
    release.objects().find_map(|object| {
        let spec = match (object, role) {
            (Object::Deployment(d), Role::App | Role::Shell) => {
                d.spec.as_ref()?.template.spec.as_ref()
            }
            (Object::StatefulSet(s), Role::Database | Role::Metrics) => {
                s.spec.as_ref()?.template.spec.as_ref()
            }
            _ => None,
        }?;
        let container = spec
            .containers
            .iter()
            .find(|c| c.image.as_deref() == Some(image.as_str()))?;
        Some((spec, container))
    })
}

/// `create`/`patch` on every resource the release applies, as SelfSubjectAccessReview asks it.
fn needed_access(
    release: &Release,
) -> BTreeSet<(&'static str, &'static str, &'static str, Option<String>)> {
    let mut needed = BTreeSet::new();
    for object in release.objects() {
        let (group, resource) = match object.kind() {
            "Namespace" => ("", "namespaces"),
            "Secret" => ("", "secrets"),
            "ConfigMap" => ("", "configmaps"),
            "PersistentVolumeClaim" => ("", "persistentvolumeclaims"),
            "Service" => ("", "services"),
            "StatefulSet" => ("apps", "statefulsets"),
            "Deployment" => ("apps", "deployments"),
            "SecretStore" => ("external-secrets.io", "secretstores"),
            "ClusterSecretStore" => ("external-secrets.io", "clustersecretstores"),
            "ExternalSecret" => ("external-secrets.io", "externalsecrets"),
            "Ingress" => ("networking.k8s.io", "ingresses"),
            "NetworkPolicy" => ("networking.k8s.io", "networkpolicies"),
            _ => continue,
        };
        for verb in ["create", "patch"] {
            needed.insert((
                verb,
                group,
                resource,
                object.namespace().map(str::to_string),
            ));
        }
    }
    needed
}

fn resource_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl Run<'_> {
    /// The API's version, then whether this identity may create and patch everything the
    /// release applies. The flag says whether the API answered at all.
    async fn api_access(&self) -> (Outcome, bool) {
        let version = match self.client.apiserver_version().await {
            Ok(info) => info.git_version,
            Err(e) => {
                let problem = api_problem("get", "/version", &e);
                return (problem.into(), matches!(e, kube::Error::Api(_)));
            }
        };
        let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let mut denied = Vec::new();
        for (verb, group, resource, namespace) in needed_access(self.release) {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.into()),
                        group: Some(group.into()),
                        resource: Some(resource.into()),
                        namespace: namespace.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = match reviews.create(&PostParams::default(), &review).await {
                Ok(answer) => answer,
                Err(e) => {
                    return (
                        api_problem("create", "selfsubjectaccessreviews", &e).into(),
                        true,
                    );
                }
            };
            if !answer.status.is_some_and(|s| s.allowed) {
                let scope = namespace.map(|ns| format!(" in {ns}")).unwrap_or_default();
                denied.push(format!("{verb} {}{scope}", resource_name(group, resource)));
            }
        }
        let outcome = if denied.is_empty() {
            Outcome::pass(format!(
                "Kubernetes {version} answers; this identity may create and patch every object \
                 of the release"
            ))
        } else {
            Outcome::fail(
                format!("forbidden: {}", denied.join(", ")),
                "bind the kubeconfig's user to a Role/ClusterRole with these verbs, or use an \
                 identity that has them",
            )
        };
        (outcome, true)
    }

    pub(super) async fn nodes(&mut self) -> Result<&[Node], Problem> {
        if self.nodes.is_none() {
            let listed = Api::<Node>::all(self.client.clone())
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| api_problem("list", "nodes", &e));
            self.nodes = Some(listed);
        }
        match self.nodes.as_ref().expect("listed above") {
            Ok(nodes) => Ok(nodes),
            Err(problem) => Err(problem.clone()),
        }
    }

    async fn image(&mut self, role: Role) -> Outcome {
        let profile = self.profile;
        let release = self.release;
        let Some((pod, container)) = workload(release, profile, role) else {
            return Outcome::fail(
                format!("the release runs no {} container", role.as_str()),
                "report this: the plan and the rendered release disagree",
            );
        };
        let image = container.image.clone().unwrap_or_default();
        let reference: Reference = match image.parse() {
            Ok(reference) => reference,
            Err(e) => {
                return Outcome::fail(
                    format!("image {image} is not a valid reference: {e}"),
                    format!("fix {}", role.image_field()),
                );
            }
        };
        let offered = match self.registries.platforms(&reference).await {
            Ok(platforms) => platforms,
            Err(ImageError::NotFound { tags }) => {
                let example = if reference.repository().starts_with("bitnami/") {
                    format!(
                        "e.g. mirror.gcr.io/bitnamilegacy/{}:{}, which keeps Bitnami's old tags",
                        reference.repository().trim_start_matches("bitnami/"),
                        reference.tag().unwrap_or("latest")
                    )
                } else if tags.is_empty() {
                    format!("e.g. from a mirror of {}", reference.repository())
                } else {
                    format!(
                        "e.g. {}",
                        tags.iter()
                            .map(|t| format!(
                                "{}/{}:{t}",
                                reference.registry(),
                                reference.repository()
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Outcome::fail(
                    format!("image {image} does not exist: the registry answered 404"),
                    format!("set {} to a tag that exists, {example}", role.image_field()),
                );
            }
            Err(ImageError::Unauthorized) => {
                return Outcome::fail(
                    format!(
                        "image {image}: the registry {} refused to show it (unauthorized or \
                         private)",
                        reference.registry()
                    ),
                    format!(
                        "`docker login {}` (preflight reads ~/.docker/config.json), or make the \
                         image public",
                        reference.registry()
                    ),
                );
            }
            Err(ImageError::Other(e)) => {
                return Outcome::fail(
                    format!("image {image}: cannot read its manifest: {e}"),
                    format!("check that {} is reachable from here", reference.registry()),
                );
            }
        };
        let nodes = match self.nodes().await {
            Ok(nodes) => nodes,
            Err(p) => return p.into(),
        };
        let targets: Vec<NodePlatform> = placement::candidates(pod, nodes)
            .into_iter()
            .map(NodePlatform::of)
            .collect();
        if targets.is_empty() {
            return Outcome::fail(
                format!(
                    "image {image} exists, but no schedulable node matches its pod's placement"
                ),
                format!(
                    "change {} so that it selects a node that exists and is not cordoned",
                    role.placement_field()
                ),
            );
        }
        match platform_gap(&image, &offered, &targets) {
            None => {
                let names: Vec<&str> = targets.iter().map(|n| n.name.as_str()).collect();
                let offered: Vec<String> = offered.iter().map(ToString::to_string).collect();
                Outcome::pass(format!(
                    "image {image} offers {}; fits {}",
                    offered.join(", "),
                    names.join(", ")
                ))
            }
            Some(gap) => Outcome::fail(
                gap,
                format!(
                    "push the image for the nodes' platforms too (docker buildx build \
                     --platform linux/amd64,linux/arm64 --push), or change {} to nodes it serves",
                    role.placement_field()
                ),
            ),
        }
    }

    async fn storage_class(&self) -> Outcome {
        let classes = match Api::<StorageClass>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(e) => return api_problem("list", "storageclasses.storage.k8s.io", &e).into(),
        };
        let is_default = |c: &StorageClass| {
            c.metadata.annotations.as_ref().is_some_and(|a| {
                [
                    "storageclass.kubernetes.io/is-default-class",
                    "storageclass.beta.kubernetes.io/is-default-class",
                ]
                .iter()
                .any(|k| a.get(*k).is_some_and(|v| v == "true"))
            })
        };
        let name = |c: &StorageClass| c.metadata.name.clone().unwrap_or_default();
        let available: Vec<String> = classes
            .iter()
            .map(|c| {
                if is_default(c) {
                    format!("{} (default)", name(c))
                } else {
                    name(c)
                }
            })
            .collect();
        let available = if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        };
        match &self.profile.storage.class_name {
            Some(wanted) => match classes.iter().find(|c| name(c) == wanted.as_str()) {
                Some(class) => Outcome::pass(format!(
                    "storage class {wanted} exists (provisioner {})",
                    class.provisioner
                )),
                None => Outcome::fail(
                    format!("storage class {wanted} does not exist; the cluster has: {available}"),
                    "set storage.className to a class the cluster has, or remove it to use the \
                     default class",
                ),
            },
            None => match classes.iter().find(|c| is_default(c)) {
                Some(class) => Outcome::pass(format!("default storage class {}", name(class))),
                None => Outcome::fail(
                    format!("the cluster has no default storage class; it has: {available}"),
                    "set storage.className to one of the cluster's classes",
                ),
            },
        }
    }

    async fn external_secrets(&self) -> Outcome {
        const GROUP_VERSION: &str = "external-secrets.io/v1";
        let store_kind = format!("{:?}", self.profile.secrets.store.kind);
        match crate::cluster::served_kinds(self.client, GROUP_VERSION).await {
            Ok(Some(kinds)) => {
                let served: BTreeSet<&str> = kinds.iter().map(String::as_str).collect();
                let missing: Vec<&str> = [store_kind.as_str(), "ExternalSecret"]
                    .into_iter()
                    .filter(|k| !served.contains(k))
                    .collect();
                if missing.is_empty() {
                    Outcome::pass(format!(
                        "{GROUP_VERSION} serves {store_kind} and ExternalSecret"
                    ))
                } else {
                    Outcome::fail(
                        format!("{GROUP_VERSION} does not serve {}", missing.join(", ")),
                        "install the External Secrets Operator's CRDs of a release that serves \
                         external-secrets.io/v1",
                    )
                }
            }
            Ok(None) => {
                let others = self
                    .client
                    .list_api_groups()
                    .await
                    .ok()
                    .and_then(|groups| {
                        groups
                            .groups
                            .into_iter()
                            .find(|g| g.name == "external-secrets.io")
                    })
                    .map(|g| {
                        g.versions
                            .into_iter()
                            .map(|v| v.version)
                            .collect::<Vec<_>>()
                            .join(", ")
                    });
                let detail = match others {
                    Some(versions) => format!(
                        "External Secrets is installed but serves external-secrets.io {versions} \
                         only, not v1"
                    ),
                    None => "the cluster does not serve external-secrets.io/v1: External \
                             Secrets Operator is not installed"
                        .to_string(),
                };
                Outcome::fail(
                    detail,
                    "install or upgrade the External Secrets Operator to a release that serves \
                     external-secrets.io/v1",
                )
            }
            Err(e) => api_problem("get", "/apis/external-secrets.io/v1", &e).into(),
        }
    }

    /// A store of the profile's name that paperclipctl did not create is someone else's (a
    /// ClusterSecretStore is shared by every namespace): applying the release would rewrite its
    /// spec and label it as ours, and an uninstall would then delete it.
    async fn store_owner(&self) -> Outcome {
        let store = &self.profile.secrets.store;
        let kind = format!("{:?}", store.kind);
        let namespace =
            (store.kind == StoreKind::SecretStore).then_some(self.profile.namespace.as_str());
        let place = namespace.map(|ns| format!(" in {ns}")).unwrap_or_default();
        let live =
            match crate::cluster::apply::get(self.client, &kind, store.name.as_str(), namespace)
                .await
            {
                Ok(live) => live,
                Err(e) => {
                    return Outcome::fail(
                        format!("cannot read {kind} {}{place}: {e}", store.name),
                        format!("grant your user `get` on {kind}s"),
                    );
                }
            };
        match live {
            None => Outcome::pass(format!("no {kind} {}{place} exists yet", store.name)),
            Some(live) if crate::render::meta::is_managed(&live.metadata) => Outcome::pass(
                format!("{kind} {}{place} was created by paperclipctl", store.name),
            ),
            Some(_) => Outcome::fail(
                format!(
                    "{kind} {}{place} exists and was not created by paperclipctl (it lacks the \
                     label app.kubernetes.io/managed-by=paperclipctl): installing would rewrite \
                     it and an uninstall would delete it",
                    store.name
                ),
                "give the release a store of its own: set secrets.store.name to a name no \
                 store has",
            ),
        }
    }

    /// The store's credentials Secret must have both keys. Only key names are looked at; the
    /// values are dropped unread.
    async fn store_credentials(&self) -> Outcome {
        let credentials = &self.profile.secrets.store.credentials;
        let namespace = credentials_namespace(self.profile);
        let name = credentials.secret_name.as_str();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let create = format!(
            "kubectl -n {namespace} create secret generic {name} --from-literal={}=<client id> \
             --from-literal={}=<client secret>",
            credentials.client_id_key, credentials.client_secret_key
        );
        let keys: BTreeSet<String> = match secrets.get_opt(name).await {
            Ok(Some(secret)) => secret
                .data
                .map(|d| d.into_keys().collect())
                .unwrap_or_default(),
            Ok(None) => {
                return Outcome::fail(
                    format!("Secret {namespace}/{name} does not exist"),
                    format!("create it with the Infisical machine identity: {create}"),
                );
            }
            Err(e) => return api_problem("get", &format!("secrets in {namespace}"), &e).into(),
        };
        let missing: Vec<&str> = [
            credentials.client_id_key.as_str(),
            credentials.client_secret_key.as_str(),
        ]
        .into_iter()
        .filter(|k| !keys.contains(*k))
        .collect();
        if missing.is_empty() {
            Outcome::pass(format!(
                "Secret {namespace}/{name} has keys {} and {}",
                credentials.client_id_key, credentials.client_secret_key
            ))
        } else {
            Outcome::fail(
                format!(
                    "Secret {namespace}/{name} lacks key {}",
                    missing.join(" and key ")
                ),
                format!("recreate it with both keys: {create}"),
            )
        }
    }

    async fn load_balancer_ip(&self, ip: &str, field: &str) -> Outcome {
        let services = match Api::<Service>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(e) => return api_problem("list", "services", &e).into(),
        };
        let ours: BTreeSet<(Option<&str>, &str)> = self
            .release
            .objects()
            .filter(|o| matches!(o, Object::Service(_)))
            .map(|o| (o.namespace(), o.name()))
            .collect();
        let holders: Vec<String> = services
            .iter()
            .filter(|s| {
                !ours.contains(&(
                    s.metadata.namespace.as_deref(),
                    s.metadata.name.as_deref().unwrap_or_default(),
                ))
            })
            .filter_map(|s| {
                let how = service_claims(s)
                    .into_iter()
                    .find(|(claimed, _)| claimed == ip)?
                    .1;
                Some(format!(
                    "Service {}/{} ({how})",
                    s.metadata.namespace.as_deref().unwrap_or_default(),
                    s.metadata.name.as_deref().unwrap_or_default()
                ))
            })
            .collect();
        if holders.is_empty() {
            Outcome::pass(format!("no other Service holds {ip}"))
        } else {
            Outcome::fail(
                format!("{ip} is taken by {}", holders.join(", ")),
                format!("set {field} to a free address, or release it from that Service"),
            )
        }
    }
}

/// Every address a Service holds or asks for, with where it was found.
fn service_claims(service: &Service) -> Vec<(String, &'static str)> {
    let mut claims = Vec::new();
    if let Some(ip) = service
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.clone())
    {
        claims.push((ip, "spec.loadBalancerIP"));
    }
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for entry in ingress.into_iter().flatten() {
        if let Some(ip) = &entry.ip {
            claims.push((ip.clone(), "status.loadBalancer.ingress"));
        }
    }
    // Cilium LB-IPAM and MetalLB take fixed addresses from annotations (comma-separated lists).
    const ANNOTATIONS: [&str; 3] = [
        "lbipam.cilium.io/ips",
        "metallb.universe.tf/loadBalancerIPs",
        "metallb.io/loadBalancerIPs",
    ];
    if let Some(annotations) = &service.metadata.annotations {
        for key in ANNOTATIONS {
            for ip in annotations.get(key).into_iter().flat_map(|v| v.split(',')) {
                claims.push((ip.trim().to_string(), key));
            }
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn services_claim_addresses_in_spec_status_and_annotations() {
        let service = Service {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([
                    ("lbipam.cilium.io/ips".into(), "10.0.0.1, 10.0.0.2".into()),
                    (
                        "metallb.universe.tf/loadBalancerIPs".into(),
                        "10.0.0.3".into(),
                    ),
                ])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                load_balancer_ip: Some("10.0.0.4".into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some("10.0.0.5".into()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
        };
        let ips: BTreeSet<String> = service_claims(&service)
            .into_iter()
            .map(|(ip, _)| ip)
            .collect();
        assert_eq!(
            ips,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn a_forbidden_read_names_the_verb_and_resource() {
        let status = kube::core::Status::failure("nodes is forbidden", "Forbidden").with_code(403);
        let problem = api_problem("list", "nodes", &kube::Error::Api(Box::new(status)));
        assert_eq!(problem.detail, "forbidden: list nodes");
    }

    #[test]
    fn every_image_the_release_runs_has_a_planned_check() {
        let profile = crate::profile::load("frank", &[]).unwrap().profile;
        let release = crate::render::render(&profile);
        let planned: Vec<Role> = super::super::planned(&profile)
            .into_iter()
            .filter_map(|c| match c.kind {
                CheckKind::Image(role) => Some(role),
                _ => None,
            })
            .collect();
        let checked: BTreeSet<String> = planned
            .iter()
            .map(|role| {
                workload(&release, &profile, *role)
                    .unwrap()
                    .1
                    .image
                    .clone()
                    .unwrap()
            })
            .collect();
        let run: BTreeSet<String> = release
            .objects()
            .filter_map(|o| match o {
                Object::Deployment(d) => d.spec.as_ref()?.template.spec.clone(),
                Object::StatefulSet(s) => s.spec.as_ref()?.template.spec.clone(),
                _ => None,
            })
            .flat_map(|spec| {
                spec.containers
                    .into_iter()
                    .chain(spec.init_containers.into_iter().flatten())
            })
            .filter_map(|c| c.image)
            .collect();
        assert_eq!(checked, run);
    }
}
