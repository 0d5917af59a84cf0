//! Release records: one small labelled Secret per revision in the release's namespace (as Helm
//! keeps them), saying what was installed, from which profile, and how it ended.
//!
//! Anyone who may create Secrets in the namespace could plant a record, and a rollback deploys
//! what a record says (images, keys, the secret store's address). So each record's sha256 is
//! also kept where namespaced rights do not reach: an annotation of the cluster-scoped
//! Namespace. A record is deployed again only when its digest matches ([`verify`]).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cluster::api_error;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::render::{Release, meta};
use crate::ui::progress::Event;

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
    /// How the revision ended; stored as `deployed` or `failed: <reason>`.
    pub result: Status,
    /// What made the revision: `install`, `upgrade` or `rollback to N`.
    #[serde(default = "install_action")]
    pub action: String,
    /// The resolved profile the revision applied, so a rollback renders the very same objects.
    /// A profile holds no secret values (those live in Infisical); absent in records written
    /// before profiles were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Profile>,
    /// sha256 of the record as stored, computed when read (never stored in the record itself).
    #[serde(skip)]
    pub stored_digest: String,
}

fn install_action() -> String {
    "install".to_string()
}

/// How a revision ended. Stored as text (`deployed`, `failed: <reason>`), the form records have
/// always had, so older records read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Status {
    /// The release came up: every wave ready, onboarding done, `/api/health` read.
    Deployed,
    /// The deploy stopped; the reason as the user read it.
    Failed(String),
}

impl Status {
    /// The status of a deploy that ended with `outcome`.
    pub fn of<T>(outcome: &Result<T>) -> Status {
        match outcome {
            Ok(_) => Status::Deployed,
            Err(e) => Status::Failed(e.to_string()),
        }
    }

    /// The word kept in the record's status label.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Deployed => "deployed",
            Status::Failed(_) => "failed",
        }
    }
}

impl From<String> for Status {
    fn from(text: String) -> Status {
        match text.as_str() {
            "deployed" => Status::Deployed,
            _ => Status::Failed(text.strip_prefix("failed: ").unwrap_or(&text).to_string()),
        }
    }
}

impl From<&str> for Status {
    fn from(text: &str) -> Status {
        Status::from(text.to_string())
    }
}

impl From<Status> for String {
    fn from(status: Status) -> String {
        status.to_string()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Deployed => f.write_str("deployed"),
            Status::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

impl Record {
    pub fn deployed(&self) -> bool {
        self.result == Status::Deployed
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
    result: Status,
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
        stored_digest: String::new(),
    }
}

/// The Namespace annotation holding the digest of revision `revision`'s record.
fn digest_annotation(revision: u32) -> String {
    format!("release.paperclipctl.io/v{revision}")
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Fails unless `record` is one paperclipctl stored: its digest matches the one kept on the
/// Namespace. Called before a record's profile is deployed again.
pub async fn verify(client: &kube::Client, namespace: &str, record: &Record) -> Result<()> {
    let kept = Api::<Namespace>::all(client.clone())
        .get(namespace)
        .await
        .map_err(|e| api_error(e, "get", "namespaces", None))?
        .metadata
        .annotations
        .and_then(|a| a.get(&digest_annotation(record.revision)).cloned());
    if kept.as_deref() == Some(record.stored_digest.as_str()) {
        return Ok(());
    }
    let why = match kept {
        None => "no digest of it is kept on the Namespace (it was not written by paperclipctl, \
                 or before digests were kept)"
            .to_string(),
        Some(_) => {
            "it differs from the one paperclipctl stored (it was changed or replaced)".to_string()
        }
    };
    Err(Error::usage(
        format!(
            "revision {}'s record is not trusted, so it is not deployed: {why}",
            record.revision
        ),
        format!(
            "look at it with `paperclipctl history -n {namespace}` and `kubectl get secret -n \
             {namespace} -l {RELEASE_LABEL}`; to go back to that configuration, install its \
             profile with `paperclipctl install --profile FILE`"
        ),
    ))
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
        .filter_map(|bytes| {
            let record: Record = serde_json::from_slice(&bytes.0).ok()?;
            Some(Record {
                stored_digest: sha256(&bytes.0),
                ..record
            })
        })
        .collect();
    records.sort_by_key(|r| r.revision);
    Ok(records)
}

/// Stores `record` as the next revision and returns its number; `progress` hears what the user
/// should know of how it was kept. Only the release transaction ([`crate::transaction`]) stores
/// records, under the lock.
pub(crate) async fn store(
    client: &kube::Client,
    namespace: &str,
    mut record: Record,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<u32> {
    crate::cluster::lock::ensure_held().await?;
    let revision = history(client, namespace)
        .await?
        .last()
        .map_or(1, |r| r.revision + 1);
    record.revision = revision;
    let status = record.result.label();
    let labels = BTreeMap::from([
        (RELEASE_LABEL.to_string(), meta::RELEASE.to_string()),
        (REVISION_LABEL.to_string(), revision.to_string()),
        (STATUS_LABEL.to_string(), status.to_string()),
        (
            meta::MANAGED_BY.0.to_string(),
            meta::MANAGED_BY.1.to_string(),
        ),
    ]);
    let json = serde_json::to_vec(&record).expect("a record always serializes");
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
            ByteString(json.clone()),
        )])),
        ..Default::default()
    };
    // The digest first, so a stored record always has one, unless the user may not change
    // the Namespace: then the revision is still recorded (the deploy happened), and a rollback
    // to it is refused like one to any record without a digest.
    let annotation = json!({"metadata": {"annotations": {
        digest_annotation(revision): sha256(&json),
    }}});
    let kept = Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &PatchParams {
                field_manager: Some("paperclipctl-records".into()),
                ..Default::default()
            },
            &Patch::Merge(&annotation),
        )
        .await;
    match kept {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 403 => progress(Event::Warning(&format!(
            "revision {revision}'s digest could not be kept on Namespace {namespace} \
             (forbidden: patch namespaces); a rollback to it will be refused"
        ))),
        Err(e) => return Err(api_error(e, "patch", "namespaces", None)),
    }
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
            Status::Deployed,
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

    #[test]
    fn a_status_is_stored_as_the_text_records_always_had() {
        let failed = Status::Failed("wave 1 timed out".into());
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            "failed: wave 1 timed out"
        );
        let read: Status = serde_json::from_value("failed: wave 1 timed out".into()).unwrap();
        assert_eq!(read, failed);
        let deployed: Status = serde_json::from_value("deployed".into()).unwrap();
        assert_eq!(deployed, Status::Deployed);
    }
}
