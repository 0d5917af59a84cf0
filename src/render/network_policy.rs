//! NetworkPolicies that limit who may connect to the release's pods (`networkPolicy.enabled`,
//! on by default). Only incoming traffic is limited: the app calls LLM providers, registries
//! and the like wherever the profile points it.
//!
//! - The database accepts PostgreSQL connections from the app pod only (and, with the metrics
//!   exporter, scrapes of its port from anywhere: Prometheus runs elsewhere).
//! - The app pod accepts its HTTP port from anywhere, or only from the ingress controller's
//!   namespace when the profile names it, and the shell's SSH and mosh ports from anywhere,
//!   as their Service publishes them.
//!
//! Port-forwards and execs (status, onboarding, backups) enter the pod through the kubelet and
//! are not subject to these policies.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::app::{APP_PORT, SSHD_PORT};
use super::database::{METRICS_PORT, PORT as DB_PORT};
use super::meta::{self, APP_NAME, Component, DB_NAME};
use crate::profile::Profile;

/// The label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The database's policy, if the profile renders policies.
pub fn database(profile: &Profile) -> Option<NetworkPolicy> {
    if !profile.network_policy.enabled {
        return None;
    }
    let mut rules = vec![NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(selector(Component::App)),
            ..Default::default()
        }]),
        ports: Some(vec![port("TCP", DB_PORT, None)]),
    }];
    if profile.database.metrics.is_some() {
        rules.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(vec![port("TCP", METRICS_PORT, None)]),
        });
    }
    Some(policy(profile, DB_NAME, Component::Database, rules))
}

/// The app pod's policy, if the profile renders policies.
pub fn app(profile: &Profile) -> Option<NetworkPolicy> {
    let settings = &profile.network_policy;
    if !settings.enabled {
        return None;
    }
    let http_from = settings.ingress_controller_namespace.as_ref().map(|ns| {
        vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    ns.to_string(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let mut rules = vec![NetworkPolicyIngressRule {
        from: http_from,
        ports: Some(vec![port("TCP", APP_PORT, None)]),
    }];
    if let Some(shell) = &profile.shell {
        let mut ports = vec![port("TCP", SSHD_PORT, None)];
        if let Some(range) = &shell.service.mosh_ports {
            let (first, last) = (*range.ports().start(), *range.ports().end());
            ports.push(port(
                "UDP",
                first.into(),
                (last > first).then_some(last.into()),
            ));
        }
        rules.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(ports),
        });
    }
    Some(policy(profile, APP_NAME, Component::App, rules))
}

fn selector(component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(meta::selector(component)),
        ..Default::default()
    }
}

fn port(protocol: &str, number: i32, end: Option<i32>) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        end_port: end,
    }
}

fn policy(
    profile: &Profile,
    name: &str,
    component: Component,
    rules: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta::object(profile, name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(component)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, sets: &[&str]) -> Profile {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::profile::load(name, &sets).unwrap().profile
    }

    /// `(protocol, port, endPort, from)` of every rule, `from` as the peers' label values.
    fn rules(policy: &NetworkPolicy) -> Vec<(String, i32, Option<i32>, Vec<String>)> {
        let spec = policy.spec.as_ref().unwrap();
        spec.ingress
            .iter()
            .flatten()
            .flat_map(|rule| {
                let from: Vec<String> = rule
                    .from
                    .iter()
                    .flatten()
                    .flat_map(|peer| {
                        let labels = peer
                            .pod_selector
                            .iter()
                            .chain(&peer.namespace_selector)
                            .flat_map(|s| s.match_labels.clone().unwrap_or_default());
                        labels.map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()
                    })
                    .collect();
                rule.ports.iter().flatten().map(move |p| {
                    let IntOrString::Int(number) = p.port.clone().unwrap() else {
                        panic!("named port")
                    };
                    (
                        p.protocol.clone().unwrap(),
                        number,
                        p.end_port,
                        from.clone(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn the_database_accepts_the_app_pod_only_and_scrapes_of_its_exporter() {
        let db = database(&profile("frank", &[])).unwrap();
        let app_pods: Vec<String> = meta::selector(Component::App)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            rules(&db),
            [
                ("TCP".into(), DB_PORT, None, app_pods),
                ("TCP".into(), METRICS_PORT, None, vec![])
            ]
        );
    }

    #[test]
    fn the_app_pod_accepts_its_published_ports_or_http_from_the_ingress_controller_only() {
        let open = app(&profile("frank", &[])).unwrap();
        assert_eq!(
            rules(&open),
            [
                ("TCP".into(), APP_PORT, None, vec![]),
                ("TCP".into(), SSHD_PORT, None, vec![]),
                ("UDP".into(), 60000, Some(60015), vec![]),
            ]
        );
        let behind = app(&profile(
            "frank",
            &["networkPolicy.ingressControllerNamespace=ingress-nginx"],
        ))
        .unwrap();
        assert_eq!(
            rules(&behind)[0],
            (
                "TCP".into(),
                APP_PORT,
                None,
                vec![format!("{NAMESPACE_NAME_LABEL}=ingress-nginx")]
            )
        );
        assert_eq!(rules(&behind)[1], rules(&open)[1]);
    }

    #[test]
    fn switched_off_renders_none() {
        let p = profile("frank", &["networkPolicy.enabled=false"]);
        assert!(database(&p).is_none() && app(&p).is_none());
    }
}
