//! The checks of how users reach the app: the Ingress's class, its certificate's source, and
//! whether the NetworkPolicies will be enforced at all.

use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::api::networking::v1::IngressClass;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::checks::{Run, api_problem};
use super::report::Outcome;

/// The annotation that makes an IngressClass the cluster's default.
const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
const CERT_MANAGER: &str = "cert-manager.io/v1";

impl Run<'_> {
    /// The profile's IngressClass exists, or the cluster has a default one when it names none.
    pub(super) async fn ingress_class(&self) -> Outcome {
        let Some(ingress) = &self.profile.app.ingress else {
            return Outcome::pass("no Ingress");
        };
        let classes = match Api::<IngressClass>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(e) => return api_problem("list", "ingressclasses.networking.k8s.io", &e).into(),
        };
        let name = |c: &IngressClass| c.metadata.name.clone().unwrap_or_default();
        let controller = |c: &IngressClass| {
            c.spec
                .as_ref()
                .and_then(|s| s.controller.clone())
                .unwrap_or_else(|| "no controller named".into())
        };
        let is_default = |c: &IngressClass| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS))
                .is_some_and(|v| v == "true")
        };
        let available = if classes.is_empty() {
            "none".to_string()
        } else {
            classes.iter().map(name).collect::<Vec<_>>().join(", ")
        };
        match &ingress.class_name {
            Some(wanted) => match classes.iter().find(|c| name(c) == wanted.as_str()) {
                Some(class) => Outcome::pass(format!(
                    "IngressClass {wanted} exists ({})",
                    controller(class)
                )),
                None => Outcome::fail(
                    format!("IngressClass {wanted} does not exist; the cluster has: {available}"),
                    "set app.ingress.className to a class the cluster has, or install the \
                     ingress controller that provides it",
                ),
            },
            None => match classes.iter().find(|c| is_default(c)) {
                Some(class) => Outcome::pass(format!(
                    "default IngressClass {} ({})",
                    name(class),
                    controller(class)
                )),
                None => Outcome::fail(
                    format!(
                        "app.ingress names no className and the cluster has no default \
                         IngressClass; it has: {available}"
                    ),
                    "set app.ingress.className to one of the cluster's classes",
                ),
            },
        }
    }

    /// cert-manager serves its API and has the ClusterIssuer the profile names.
    pub(super) async fn cluster_issuer(&self, issuer: &str) -> Outcome {
        let served = match crate::cluster::served_kinds(self.client, CERT_MANAGER).await {
            Ok(kinds) => kinds.is_some_and(|k| k.iter().any(|k| k == "ClusterIssuer")),
            Err(e) => return api_problem("get", &format!("/apis/{CERT_MANAGER}"), &e).into(),
        };
        if !served {
            return Outcome::fail(
                format!(
                    "the cluster does not serve {CERT_MANAGER} ClusterIssuer: cert-manager is \
                     not installed, so nothing would issue the certificate of ClusterIssuer \
                     {issuer}"
                ),
                "install cert-manager, or set app.ingress.tls.secretName to an existing \
                 kubernetes.io/tls Secret and remove clusterIssuer",
            );
        }
        let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "ClusterIssuer");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "clusterissuers");
        let issuers = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        match issuers.get_opt(issuer).await {
            Ok(Some(found)) => {
                let ready = found.data.pointer("/status/conditions").and_then(|c| {
                    c.as_array()?
                        .iter()
                        .find(|c| c["type"] == "Ready")
                        .map(|c| {
                            (
                                c["status"] == "True",
                                c["message"].as_str().map(str::to_string),
                            )
                        })
                });
                match ready {
                    Some((true, _)) => Outcome::pass(format!("ClusterIssuer {issuer} is Ready")),
                    Some((false, message)) => Outcome::warn(
                        format!(
                            "ClusterIssuer {issuer} is not Ready: {}",
                            message.unwrap_or_default()
                        ),
                        format!("kubectl describe clusterissuer {issuer}"),
                    ),
                    None => Outcome::warn(
                        format!("ClusterIssuer {issuer} exists but reports no Ready condition"),
                        format!("kubectl describe clusterissuer {issuer}"),
                    ),
                }
            }
            Ok(None) => Outcome::fail(
                format!("ClusterIssuer {issuer} does not exist"),
                "set app.ingress.tls.clusterIssuer to one of `kubectl get clusterissuers`",
            ),
            Err(e) => api_problem("get", "clusterissuers.cert-manager.io", &e).into(),
        }
    }

    /// The certificate Secret the profile names exists in the release's namespace. Only its
    /// type is read; the key is dropped unread.
    pub(super) async fn tls_secret(&self, name: &str) -> Outcome {
        let namespace = self.profile.namespace.as_str();
        let create = format!(
            "kubectl -n {namespace} create secret tls {name} --cert=<certificate file> \
             --key=<key file>"
        );
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match secrets.get_opt(name).await {
            Ok(Some(secret)) if secret.type_.as_deref() == Some("kubernetes.io/tls") => {
                Outcome::pass(format!("Secret {namespace}/{name} holds a TLS certificate"))
            }
            Ok(Some(secret)) => Outcome::fail(
                format!(
                    "Secret {namespace}/{name} is of type {}, not kubernetes.io/tls",
                    secret.type_.as_deref().unwrap_or("Opaque")
                ),
                format!("recreate it: {create}"),
            ),
            Ok(None) => Outcome::fail(
                format!(
                    "Secret {namespace}/{name} does not exist: the Ingress would serve the \
                     controller's default certificate"
                ),
                format!("create it: {create}; or name a cert-manager clusterIssuer instead"),
            ),
            Err(e) => api_problem("get", &format!("secrets in {namespace}"), &e).into(),
        }
    }

    /// NetworkPolicies are only as good as the network plugin: a cluster whose nodes show a
    /// plugin that enforces them passes, any other gets a warning saying so.
    pub(super) async fn network_policy(&mut self) -> Outcome {
        let nodes = match self.nodes().await {
            Ok(nodes) => nodes,
            Err(p) => return p.into(),
        };
        match network_plugin(nodes) {
            Some(Plugin::Enforcing(name)) => Outcome::pass(format!(
                "the nodes run {name}, which enforces NetworkPolicy"
            )),
            Some(Plugin::Ignoring(name)) => Outcome::warn(
                format!(
                    "the nodes run {name}, which does not enforce NetworkPolicy: the release's \
                     policies would be accepted and ignored"
                ),
                "use a network plugin that enforces NetworkPolicy (Calico, Cilium), or set \
                 networkPolicy.enabled: false",
            ),
            None => Outcome::warn(
                "NetworkPolicies are enforced only by a network plugin that implements them, \
                 and the nodes do not show which plugin runs",
                "make sure the cluster's network plugin enforces NetworkPolicy (Calico, Cilium \
                 do; flannel alone does not), or set networkPolicy.enabled: false",
            ),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Plugin {
    Enforcing(&'static str),
    Ignoring(&'static str),
}

/// The network plugin the nodes' annotations show: Cilium and Calico annotate every node they
/// manage, and so does flannel (which enforces no policy).
fn network_plugin(nodes: &[Node]) -> Option<Plugin> {
    let keys: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n.metadata.annotations.as_ref())
        .flat_map(|a| a.keys().map(String::as_str))
        .collect();
    let has = |prefix: &str| keys.iter().any(|k| k.starts_with(prefix));
    if has("io.cilium.") {
        Some(Plugin::Enforcing("Cilium"))
    } else if has("projectcalico.org/") {
        Some(Plugin::Enforcing("Calico"))
    } else if has("flannel.alpha.coreos.com/") {
        Some(Plugin::Ignoring("flannel"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(annotation: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(annotation.into(), "x".into())])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_plugin_is_read_from_the_nodes_annotations() {
        let plugin = |a: &str| network_plugin(&[node("node.alpha.kubernetes.io/ttl"), node(a)]);
        assert_eq!(
            plugin("io.cilium.network.ipv4-pod-cidr"),
            Some(Plugin::Enforcing("Cilium"))
        );
        assert_eq!(
            plugin("projectcalico.org/IPv4Address"),
            Some(Plugin::Enforcing("Calico"))
        );
        assert_eq!(
            plugin("flannel.alpha.coreos.com/backend-type"),
            Some(Plugin::Ignoring("flannel"))
        );
        assert_eq!(plugin("kwok.x-k8s.io/node"), None);
    }
}
