//! Release records: one small labelled Secret per revision in the release's namespace (as Helm
//! keeps them), saying what was installed, from which profile, and how it ended.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cluster::api_error;
use crate::error::Result;
use crate::profile::Profile;
use crate::render::{Release, meta};

const RELEASE_LABEL: &str = "paperclipctl.io/release";
const REVISION_LABEL: &str = "paperclipctl.io/revision";
const STATUS_LABEL: &str = "paperclipctl.io/status";
const SECRET_TYPE: &str = "paperclipctl.io/release.v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub revision: u32,
    pub profile: String,
    /// sha256 of the resolved profile: equal digests mean the same install.
    pub profile_digest: String,
    /// Every object of the release, as `Kind/name`.
    pub inventory: Vec<String>,
    /// Image references as rendered, and the digests the pods really run when known.
    pub images: BTreeMap<String, String>,
    pub time: String,
    /// `deployed` or `failed: <reason>`.
    pub result: String,
    /// What made the revision: `install`, `upgrade` or `rollback to N`.
    #[serde(default = "install_action")]
    pub action: String,
    /// The resolved profile the revision applied, so a rollback renders the very same objects.
    /// A profile holds no secret values (those live in Infisical); absent in records written
    /// before profiles were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Profile>,
}

fn install_action() -> String {
    "install".to_string()
}

impl Record {
    pub fn deployed(&self) -> bool {
        self.result == "deployed"
    }
}

pub fn profile_digest(profile: &Profile) -> String {
    let json = serde_json::to_vec(profile).expect("a profile always serializes");
    let hex: String = Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The record for `release`, not yet numbered or stored.
pub fn record(
    profile: &Profile,
    release: &Release,
    images: BTreeMap<String, String>,
    action: &str,
    result: String,
) -> Record {
    Record {
        revision: 0,
        profile: profile.name.clone(),
        profile_digest: profile_digest(profile),
        inventory: release.objects().map(|o| o.id()).collect(),
        images,
        time: k8s_openapi::jiff::Timestamp::now().to_string(),
        result,
        action: action.to_string(),
        applied: Some(profile.clone()),
    }
}

/// Every stored revision, oldest first.
pub async fn history(client: &kube::Client, namespace: &str) -> Result<Vec<Record>> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let selector = format!("{RELEASE_LABEL}={}", meta::RELEASE);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, "list", "secrets", Some(namespace)))?;
    let mut records: Vec<Record> = list
        .items
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("release"))
        .filter_map(|bytes| serde_json::from_slice(&bytes.0).ok())
        .collect();
    records.sort_by_key(|r| r.revision);
    Ok(records)
}

/// Stores `record` as the next revision and returns its number.
pub async fn store(client: &kube::Client, namespace: &str, mut record: Record) -> Result<u32> {
    crate::cluster::lock::ensure_held().await?;
    let revision = history(client, namespace)
        .await?
        .last()
        .map_or(1, |r| r.revision + 1);
    record.revision = revision;
    let status = if record.deployed() {
        "deployed"
    } else {
        "failed"
    };
    let labels = BTreeMap::from([
        (RELEASE_LABEL.to_string(), meta::RELEASE.to_string()),
        (REVISION_LABEL.to_string(), revision.to_string()),
        (STATUS_LABEL.to_string(), status.to_string()),
        (
            meta::MANAGED_BY.0.to_string(),
            meta::MANAGED_BY.1.to_string(),
        ),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!(
                "paperclipctl.release.{}.v{revision}",
                meta::RELEASE
            )),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(BTreeMap::from([(
            "release".to_string(),
            ByteString(serde_json::to_vec(&record).expect("a record always serializes")),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| api_error(e, "create", "secrets", Some(namespace)))?;
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_the_profile_it_applied() {
        let loaded = crate::profile::load("frank", &[]).unwrap();
        let release = crate::render::render(&loaded.profile);
        let record = record(
            &loaded.profile,
            &release,
            BTreeMap::new(),
            "install",
            "deployed".into(),
        );
        let stored: Record = serde_json::from_slice(&serde_json::to_vec(&record).unwrap()).unwrap();
        let applied = stored.applied.expect("the profile is kept");
        assert_eq!(profile_digest(&applied), record.profile_digest);
    }

    #[test]
    fn records_written_before_profiles_were_kept_still_read() {
        let old = r#"{"revision":1,"profile":"frank","profileDigest":"sha256:00","inventory":[],
            "images":{},"time":"2026-01-02T03:04:05Z","result":"deployed"}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        assert_eq!(record.action, "install");
        assert!(record.applied.is_none());
    }
}
