//! Rendering: a profile becomes typed Kubernetes objects grouped into ordered waves.
//!
//! Wave 0 holds what the app needs to start (the database and the secrets), wave 1 the app and
//! its shell sidecar; an install applies wave 1 only once wave 0 is healthy. Rendering is pure:
//! no cluster, no secret values. Values that are generated (the database password) are never in
//! a rendered object: the install step creates them once, server-side, and never rotates them.

mod app;
mod database;
pub mod eso;
mod hardening;
pub mod ingress;
pub mod lint;
pub mod meta;
mod network_policy;
mod pod;
mod secrets;

pub use app::{APP_PORT, SSHD_PORT};
pub use database::PORT as DB_PORT;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, PodSpec, Secret, Service,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use serde::Serialize;

use crate::profile::Profile;

pub use secrets::synced as synced_secrets;

/// One object of the release, typed so lints and later steps can inspect it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    Secret(Secret),
    ConfigMap(ConfigMap),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    SecretStore(eso::SecretStore),
    ExternalSecret(eso::ExternalSecret),
    Ingress(Ingress),
    NetworkPolicy(NetworkPolicy),
}

impl Object {
    pub fn kind(&self) -> &str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::Secret(_) => "Secret",
            Object::ConfigMap(_) => "ConfigMap",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Service(_) => "Service",
            Object::StatefulSet(_) => "StatefulSet",
            Object::Deployment(_) => "Deployment",
            Object::SecretStore(s) => &s.kind,
            Object::ExternalSecret(_) => "ExternalSecret",
            Object::Ingress(_) => "Ingress",
            Object::NetworkPolicy(_) => "NetworkPolicy",
        }
    }

    pub fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::SecretStore(o) => &o.metadata,
            Object::ExternalSecret(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The pod template of a workload.
    pub fn pod_spec(&self) -> Option<&PodSpec> {
        match self {
            Object::Deployment(d) => d.spec.as_ref()?.template.spec.as_ref(),
            Object::StatefulSet(s) => s.spec.as_ref()?.template.spec.as_ref(),
            _ => None,
        }
    }

    /// `Kind/name`, as kubectl prints it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }
}

/// A group of objects applied together; the next wave starts when `wait_for` is healthy.
#[derive(Debug, Clone)]
pub struct Wave {
    pub number: u8,
    pub title: &'static str,
    pub objects: Vec<Object>,
    /// Objects whose health gates the next wave, as `Kind/name`.
    pub wait_for: Vec<String>,
}

/// Everything one render produces: the waves and what the lints found in them.
#[derive(Debug, Clone)]
pub struct Release {
    pub namespace: String,
    pub waves: Vec<Wave>,
    pub findings: Vec<lint::Finding>,
}

impl Release {
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.waves.iter().flat_map(|w| w.objects.iter())
    }

    /// The manifests as one multi-document YAML stream, wave by wave, as
    /// `kubectl apply --server-side -f -` takes it.
    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        let mut out = String::new();
        for object in self.objects() {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(object)?);
        }
        Ok(out)
    }

    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == lint::Severity::Error)
    }
}

/// Renders the release for `profile` and runs every lint over it.
pub fn render(profile: &Profile) -> Release {
    let mut wave0 = vec![Object::Namespace(meta::namespace(profile))];
    wave0.extend(database::objects(profile));
    wave0.extend(secrets::objects(profile));
    wave0.extend(network_policy::database(profile).map(Object::NetworkPolicy));
    let wave0_waits = wave0
        .iter()
        .filter(|o| match o {
            Object::StatefulSet(_) => true,
            Object::ExternalSecret(es) => !eso::is_optional(es),
            _ => false,
        })
        .map(Object::id)
        .collect();
    let mut wave1 = app::objects(profile);
    wave1.extend(network_policy::app(profile).map(Object::NetworkPolicy));
    wave1.extend(ingress::object(profile).map(Object::Ingress));
    let wave1_waits = wave1
        .iter()
        .filter(|o| matches!(o, Object::Deployment(_)))
        .map(Object::id)
        .collect();
    let mut waves = vec![
        Wave {
            number: 0,
            title: "database and secrets",
            objects: wave0,
            wait_for: wave0_waits,
        },
        Wave {
            number: 1,
            title: "app and shell sidecar",
            objects: wave1,
            wait_for: wave1_waits,
        },
    ];
    waves
        .iter_mut()
        .flat_map(|w| w.objects.iter_mut())
        .for_each(hardening::apply);
    let findings = lint::run(&waves);
    Release {
        namespace: profile.namespace.to_string(),
        waves,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile;

    #[test]
    fn database_is_in_the_first_wave_and_the_app_in_the_second() {
        let release = render(&profile::load("frank", &[]).unwrap().profile);
        let kinds = |w: usize| {
            release.waves[w]
                .objects
                .iter()
                .map(Object::id)
                .collect::<Vec<_>>()
        };
        assert!(kinds(0).contains(&"StatefulSet/paperclip-db-postgresql".to_string()));
        assert!(kinds(1).contains(&"Deployment/paperclip".to_string()));
        assert!(!kinds(0).iter().any(|k| k.starts_with("Deployment/")));
        assert_eq!(
            release.waves[0].wait_for,
            [
                "StatefulSet/paperclip-db-postgresql",
                "ExternalSecret/paperclip-llm-key",
                "ExternalSecret/paperclip-auth"
            ]
        );
    }

    #[test]
    fn shipped_profiles_render_without_findings() {
        for (name, _) in profile::BUILTIN {
            let release = render(&profile::load(name, &[]).unwrap().profile);
            assert!(
                release.findings.is_empty(),
                "{name}: {:?}",
                release.findings
            );
        }
    }
}
