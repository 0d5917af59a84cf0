//! Wave 1: the optional Ingress in front of the app's Service.
//!
//! Every host routes `/` to the Service's port. The same hosts are allow-listed in private mode
//! (see `app::allowed_hostnames`): the server answers 403 to a Host it does not know, and an
//! ingress controller passes the client's Host on.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::meta::{self, APP_NAME, Component};
use crate::profile::Profile;
use crate::profile::model;

/// The Secret cert-manager writes the certificate into when the profile names an issuer only.
pub const ISSUED_TLS_SECRET: &str = "paperclip-tls";
/// The annotation cert-manager's ingress-shim reads to issue a certificate for an Ingress.
pub const CLUSTER_ISSUER_ANNOTATION: &str = "cert-manager.io/cluster-issuer";

/// The Ingress of `profile`, if it asks for one.
pub fn object(profile: &Profile) -> Option<Ingress> {
    let ingress = profile.app.ingress.as_ref()?;
    let mut annotations = ingress.annotations.clone();
    if let Some(issuer) = ingress.tls.as_ref().and_then(|t| t.cluster_issuer.as_ref()) {
        annotations.insert(CLUSTER_ISSUER_ANNOTATION.into(), issuer.to_string());
    }
    let mut metadata = meta::object(profile, APP_NAME, Component::App);
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ingress.class_name.as_ref().map(ToString::to_string),
            rules: Some(
                ingress
                    .hosts
                    .iter()
                    .map(|host| rule(host, profile.app.service.port))
                    .collect(),
            ),
            tls: ingress.tls.as_ref().map(|tls| {
                vec![IngressTLS {
                    hosts: Some(ingress.hosts.clone()),
                    secret_name: Some(tls_secret(tls).to_string()),
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The Secret the Ingress's certificate is in: the one named, or the one cert-manager writes.
pub fn tls_secret(tls: &model::IngressTls) -> &str {
    tls.secret_name
        .as_ref()
        .map_or(ISSUED_TLS_SECRET, |name| name.as_str())
}

fn rule(host: &str, port: u16) -> IngressRule {
    IngressRule {
        host: Some(host.into()),
        http: Some(HTTPIngressRuleValue {
            paths: vec![HTTPIngressPath {
                path: Some("/".into()),
                path_type: "Prefix".into(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: APP_NAME.into(),
                        port: Some(ServiceBackendPort {
                            number: Some(port.into()),
                            name: None,
                        }),
                    }),
                    resource: None,
                },
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn profile(sets: &[&str]) -> Profile {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::profile::load("default", &sets).unwrap().profile
    }

    #[test]
    fn no_ingress_unless_the_profile_asks() {
        assert!(object(&profile(&[])).is_none());
    }

    #[test]
    fn every_host_routes_to_the_service_port_with_the_issuer_annotation() {
        let p = profile(&[
            "app.ingress={className: nginx, hosts: [a.example.com, b.example.com], \
             tls: {clusterIssuer: letsencrypt}, annotations: {x/y: z}}",
            "app.service.port=8080",
        ]);
        let ingress = object(&p).unwrap();
        let spec = ingress.spec.as_ref().unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let routes: Vec<(String, i32)> = spec
            .rules
            .iter()
            .flatten()
            .map(|r| {
                let backend = &r.http.as_ref().unwrap().paths[0].backend;
                let service = backend.service.as_ref().unwrap();
                (
                    r.host.clone().unwrap(),
                    service.port.as_ref().unwrap().number.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                ("a.example.com".into(), 8080),
                ("b.example.com".into(), 8080)
            ]
        );
        let tls = &spec.tls.as_ref().unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some(ISSUED_TLS_SECRET));
        assert_eq!(tls.hosts.as_ref().unwrap().len(), 2);
        assert_eq!(
            ingress.metadata.annotations.clone().unwrap(),
            BTreeMap::from([
                (CLUSTER_ISSUER_ANNOTATION.into(), "letsencrypt".into()),
                ("x/y".into(), "z".into())
            ])
        );
        // The public URL follows the first host, over https.
        assert_eq!(p.app.public_url.as_str(), "https://a.example.com");
    }
}
