//! Wave 0: the Infisical (Cluster)SecretStore and one ExternalSecret per profile entry.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Object;
use super::eso::{self, API_VERSION};
use super::meta::{self, Component};
use crate::profile::Profile;
use crate::profile::model::{ExternalSecret, StoreKind};

pub fn objects(profile: &Profile) -> Vec<Object> {
    let mut objects = vec![Object::SecretStore(store(profile))];
    objects.extend(
        profile
            .secrets
            .external_secrets
            .iter()
            .map(|es| Object::ExternalSecret(external_secret(profile, es))),
    );
    objects
}

fn store(profile: &Profile) -> eso::SecretStore {
    let s = &profile.secrets.store;
    let cluster = s.kind == StoreKind::ClusterSecretStore;
    let mut metadata = meta::object(profile, s.name.as_str(), Component::Secrets);
    if cluster {
        metadata.namespace = None;
    }
    // A ClusterSecretStore must say where its credentials live; a SecretStore reads its own
    // namespace, where a namespace field would be rejected.
    let credentials_namespace = cluster.then(|| {
        s.credentials
            .namespace
            .as_ref()
            .unwrap_or(&profile.namespace)
            .to_string()
    });
    let selector = |key: &str| eso::SecretKeySelector {
        name: s.credentials.secret_name.to_string(),
        key: key.to_string(),
        namespace: credentials_namespace.clone(),
    };
    eso::SecretStore {
        api_version: API_VERSION.into(),
        kind: format!("{:?}", s.kind),
        metadata,
        spec: eso::SecretStoreSpec {
            provider: eso::Provider {
                infisical: eso::InfisicalProvider {
                    host_api: s.host_api.to_string(),
                    auth: eso::InfisicalAuth {
                        universal_auth_credentials: eso::UniversalAuthCredentials {
                            client_id: selector(s.credentials.client_id_key.as_str()),
                            client_secret: selector(s.credentials.client_secret_key.as_str()),
                        },
                    },
                    secrets_scope: eso::SecretsScope {
                        project_slug: s.project_slug.clone(),
                        environment_slug: s.environment_slug.clone(),
                        secrets_path: s.secrets_path.clone(),
                    },
                },
            },
        },
    }
}

fn external_secret(profile: &Profile, es: &ExternalSecret) -> eso::ExternalSecret {
    let mut metadata: ObjectMeta = meta::object(profile, es.name.as_str(), Component::Secrets);
    if es.optional {
        metadata = meta::annotate(metadata, meta::OPTIONAL, "true");
    }
    let template = (!es.static_values.is_empty()).then(|| eso::Template {
        engine_version: "v2".into(),
        merge_policy: "Merge".into(),
        data: es
            .static_values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    });
    eso::ExternalSecret {
        api_version: API_VERSION.into(),
        kind: "ExternalSecret".into(),
        metadata,
        spec: eso::ExternalSecretSpec {
            refresh_interval: profile.secrets.refresh_interval.canonical(),
            secret_store_ref: eso::StoreRef {
                kind: format!("{:?}", profile.secrets.store.kind),
                name: profile.secrets.store.name.to_string(),
            },
            target: eso::Target {
                name: es.name.to_string(),
                creation_policy: "Owner".into(),
                template,
            },
            data: es
                .keys
                .iter()
                .map(|k| eso::DataItem {
                    secret_key: k.target().to_string(),
                    remote_ref: eso::RemoteRef {
                        key: k.remote.to_string(),
                    },
                })
                .collect(),
        },
    }
}
