//! The External Secrets Operator objects we render (`external-secrets.io/v1`; `v1beta1` is no
//! longer served). Only the fields paperclipctl sets are modelled.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "external-secrets.io/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStore {
    pub api_version: String,
    /// `SecretStore` or `ClusterSecretStore`.
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: SecretStoreSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretStoreSpec {
    pub provider: Provider,
    /// Which namespaces may use a ClusterSecretStore (External Secrets lets every namespace use
    /// one without it); a SecretStore serves its own namespace only and has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<StoreCondition>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreCondition {
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provider {
    pub infisical: InfisicalProvider,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfisicalProvider {
    #[serde(rename = "hostAPI")]
    pub host_api: String,
    pub auth: InfisicalAuth,
    pub secrets_scope: SecretsScope,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfisicalAuth {
    pub universal_auth_credentials: UniversalAuthCredentials,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UniversalAuthCredentials {
    pub client_id: SecretKeySelector,
    pub client_secret: SecretKeySelector,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretsScope {
    pub project_slug: String,
    pub environment_slug: String,
    pub secrets_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecret {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ExternalSecretSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    pub refresh_interval: String,
    pub secret_store_ref: StoreRef,
    pub target: Target,
    pub data: Vec<DataItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreRef {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub name: String,
    pub creation_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

/// How the synced Secret is built: static values merged with the synced keys (`mergePolicy:
/// Merge`), or a Secret of another `type` whose `data` are templates over the synced keys
/// (without a merge policy only the templated keys are written).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub engine_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_policy: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataItem {
    pub secret_key: String,
    pub remote_ref: RemoteRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteRef {
    pub key: String,
}

/// The Secret type of image pull credentials.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";

/// Whether this ExternalSecret makes image pull credentials (never env material).
pub fn is_pull_secret(es: &ExternalSecret) -> bool {
    es.spec
        .target
        .template
        .as_ref()
        .and_then(|t| t.type_.as_deref())
        == Some(DOCKER_CONFIG_JSON)
}

/// Whether the app may start without this ExternalSecret's Secret.
pub fn is_optional(es: &ExternalSecret) -> bool {
    es.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(super::meta::OPTIONAL))
        .is_some_and(|v| v == "true")
}
