//! Wave 0: the Infisical (Cluster)SecretStore and one ExternalSecret per profile entry.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Object;
use super::eso::{self, API_VERSION};
use super::meta::{self, Component};
use crate::profile::Profile;
use crate::profile::model::{ExternalSecret, PullSecret, SecretKey, Secrets, StoreKind};
use crate::profile::types::EnvName;

pub fn objects(profile: &Profile) -> Vec<Object> {
    let mut objects = vec![Object::SecretStore(store(profile))];
    objects.extend(
        profile
            .secrets
            .external_secrets
            .iter()
            .map(|es| Object::ExternalSecret(external_secret(profile, es, static_values(es)))),
    );
    if let Some(pull) = pull_secret(profile) {
        let template = docker_config(pull.registry.as_str());
        let es = pull_external_secret(pull);
        objects.push(Object::ExternalSecret(external_secret(
            profile,
            &es,
            Some(template),
        )));
    }
    if let Some(es) = alerts_external_secret(profile) {
        objects.push(Object::ExternalSecret(external_secret(profile, &es, None)));
    }
    objects
}

/// Every ExternalSecret the release syncs, in the profile's terms: the app's env Secrets, the
/// shell's optional alert settings, then its image pull secret, whose keys Infisical must hold
/// like any other required key.
pub fn synced(profile: &Profile) -> Secrets {
    let mut secrets = profile.secrets.clone();
    secrets
        .external_secrets
        .extend(alerts_external_secret(profile));
    secrets
        .external_secrets
        .extend(pull_secret(profile).map(pull_external_secret));
    secrets
}

/// The Telegram bot's two Infisical keys, synced under the names the sidecar's reconciler reads.
/// Optional: a shell without alerts still starts, and says in its log why nothing was sent.
fn alerts_external_secret(profile: &Profile) -> Option<ExternalSecret> {
    let telegram = &profile.shell.as_ref()?.alerts.as_ref()?.telegram;
    let key = |remote: &EnvName, target: &str| SecretKey {
        remote: remote.clone(),
        target: Some(target.parse().expect("a valid key name")),
        generate: false,
    };
    Some(ExternalSecret {
        name: meta::SHELL_ALERTS_SECRET.parse().expect("a valid name"),
        optional: true,
        keys: vec![
            key(&telegram.bot_token_key, "TELEGRAM_BOT_TOKEN"),
            key(&telegram.chat_id_key, "TELEGRAM_CHAT_ID"),
        ],
        static_values: BTreeMap::new(),
    })
}

fn pull_secret(profile: &Profile) -> Option<&PullSecret> {
    profile.shell.as_ref()?.pull_secret.as_ref()
}

/// The pull secret's two Infisical keys, synced as `username` and `password` for the template.
fn pull_external_secret(pull: &PullSecret) -> ExternalSecret {
    let key = |remote: &EnvName, target: &str| SecretKey {
        remote: remote.clone(),
        target: Some(target.parse().expect("a valid key name")),
        generate: false,
    };
    ExternalSecret {
        name: meta::SHELL_PULL_SECRET.parse().expect("a valid name"),
        // The sidecar cannot be pulled without it.
        optional: false,
        keys: vec![
            key(&pull.username_key, "username"),
            key(&pull.password_key, "password"),
        ],
        static_values: BTreeMap::new(),
    }
}

/// A `kubernetes.io/dockerconfigjson` Secret holding one login for `registry`. The values go
/// through `toJson` so any character in a token stays valid JSON; `auth` is what older
/// runtimes read instead of the two fields.
fn docker_config(registry: &str) -> eso::Template {
    let host = serde_json::Value::String(registry.to_string()).to_string();
    let config = [
        r#"{"auths":{"#,
        &host,
        r#":{"username":{{ .username | toJson }},"password":{{ .password | toJson }},"#,
        r#""auth":{{ printf "%s:%s" .username .password | b64enc | toJson }}}}}"#,
    ]
    .concat();
    eso::Template {
        engine_version: "v2".into(),
        merge_policy: None,
        type_: Some(eso::DOCKER_CONFIG_JSON.into()),
        data: BTreeMap::from([(".dockerconfigjson".to_string(), config)]),
    }
}

/// Static, non-secret values merged into the synced keys (e.g. a base URL).
fn static_values(es: &ExternalSecret) -> Option<eso::Template> {
    (!es.static_values.is_empty()).then(|| eso::Template {
        engine_version: "v2".into(),
        merge_policy: Some("Merge".into()),
        type_: None,
        data: es
            .static_values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    })
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
            // The store reads the release's folder: only the release's namespace may use it.
            conditions: cluster.then(|| {
                vec![eso::StoreCondition {
                    namespaces: vec![profile.namespace.to_string()],
                }]
            }),
        },
    }
}

fn external_secret(
    profile: &Profile,
    es: &ExternalSecret,
    template: Option<eso::Template>,
) -> eso::ExternalSecret {
    let mut metadata: ObjectMeta = meta::object(profile, es.name.as_str(), Component::Secrets);
    if es.optional {
        metadata = meta::annotate(metadata, meta::OPTIONAL, "true");
    }
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
