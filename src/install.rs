//! The install of a rendered release: waves applied in order with server-side apply, each one
//! waited for before the next starts, then onboarding. The steps here are shared by every verb
//! that deploys (install, upgrade, rollback); the release transaction ([`crate::transaction`])
//! runs them under the lock and records the outcome. The command layer adds preflight, secrets
//! and printing around it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::cluster::apply::{self, Change};
use crate::cluster::{api_error, wait};
use crate::error::{Error, Result};
use crate::health::{self, Health};
use crate::onboarding;
use crate::profile::Profile;
use crate::release::{self, Record};
use crate::render::{Object, Release, meta};
use crate::transaction::{self, Action};
use crate::ui::progress::Event;

/// What an install did.
#[derive(Debug)]
pub struct Summary {
    /// Every object with what applying it did, in apply order.
    pub changes: Vec<(String, Change)>,
    /// The revision recorded, or `None` when the release was already up to date.
    pub revision: Option<u32>,
    pub onboarding: Option<onboarding::Outcome>,
    /// What the running app says of itself (`/api/health`), read after onboarding.
    pub health: Health,
}

impl Summary {
    /// The summary of a deploy recorded as `revision`.
    pub(crate) fn deployed(
        changes: Vec<(String, Change)>,
        revision: u32,
        (onboarding, health): (onboarding::Outcome, Health),
    ) -> Summary {
        Summary {
            changes,
            revision: Some(revision),
            onboarding: Some(onboarding),
            health,
        }
    }

    pub fn up_to_date(&self) -> bool {
        self.revision.is_none()
    }
}

/// What an install would do, decided with reads and server-side dry runs only: what its
/// `--dry-run` shows, and what the run then does.
#[derive(Debug)]
pub struct Prepared {
    /// What applying each object would do, in apply order.
    pub changes: Vec<(String, Change)>,
    /// The newest revision, if the release was ever recorded.
    pub last: Option<Record>,
    /// The newest revision deployed this very profile and no object would change: a run writes
    /// nothing, not even the lock.
    pub up_to_date: bool,
}

/// Prepares the install of `release` (rendered from `profile`) without writing anything.
pub async fn prepare(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
) -> Result<Prepared> {
    let last = release::history(client, &release.namespace).await?.pop();
    let namespace = apply::get(client, "Namespace", &release.namespace, None).await?;
    let changes = match namespace {
        // Nothing can be dry-run into a namespace that does not exist yet: all of it is new.
        None => release
            .objects()
            .map(|o| (o.id(), Change::Created))
            .collect(),
        Some(_) => {
            let values = values(client, profile, release, Generated::Placeholder).await?;
            changes(client, release, &values).await?
        }
    };
    let up_to_date = up_to_date(profile, last.as_ref(), &changes);
    Ok(Prepared {
        changes,
        last,
        up_to_date,
    })
}

/// Runs an install [`prepare`]d from `profile` and `release`, and waits for it; `progress`
/// hears each step.
pub async fn run(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
    prepared: &Prepared,
    timeout: Duration,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Summary> {
    if prepared.up_to_date {
        return unchanged(client, release).await;
    }
    transaction::run_release(client, release, progress, async |tx| {
        tx.deploy(profile, release, Action::Install, timeout, progress)
            .await?
            .into_result()
    })
    .await
}

/// The summary of a run that found the release up to date and wrote nothing.
pub(crate) async fn unchanged(client: &kube::Client, release: &Release) -> Result<Summary> {
    Ok(Summary {
        changes: release
            .objects()
            .map(|o| (o.id(), Change::Unchanged))
            .collect(),
        revision: None,
        onboarding: None,
        // Nothing is written, but the app may have lost its database since the last run.
        health: health::check(client, &release.namespace).await?,
    })
}

/// Applies the waves in order (each waited for), onboards the instance when it is not yet, and
/// reads `/api/health`. `changes` collects what each apply did, also when a later step fails.
pub(crate) async fn deploy(
    client: &kube::Client,
    release: &Release,
    values: &[Value],
    timeout: Duration,
    progress: &(dyn Fn(Event<'_>) + Sync),
    changes: &mut Vec<(String, Change)>,
) -> Result<(onboarding::Outcome, Health)> {
    let namespace = release.namespace.as_str();
    apply_waves(client, release, values, timeout, progress, changes).await?;
    progress(Event::Step("onboarding"));
    let onboarded = onboarding::run(client, namespace).await?;
    if matches!(onboarded, onboarding::Outcome::Onboarded { .. }) {
        progress(Event::Step(
            "restarting the app: it reads what onboarding wrote only at start",
        ));
        onboarding::restart_app(client, release, timeout, progress).await?;
    }
    // An app that cannot reach its database makes the revision a failed one, so the next run
    // does the whole install again instead of calling it up to date.
    progress(Event::Step("reading /api/health"));
    let health = health::check(client, namespace).await?;
    Ok((onboarded, health))
}

async fn apply_waves(
    client: &kube::Client,
    release: &Release,
    values: &[Value],
    timeout: Duration,
    progress: &(dyn Fn(Event<'_>) + Sync),
    changes: &mut Vec<(String, Change)>,
) -> Result<()> {
    let mut values = values.iter();
    for wave in &release.waves {
        progress(Event::Step(&format!(
            "wave {}: {}",
            wave.number, wave.title
        )));
        for (object, value) in wave.objects.iter().zip(values.by_ref()) {
            if matches!(object, Object::Namespace(_)) {
                continue;
            }
            let change = apply::apply(client, object, value, false).await?;
            progress(Event::Applied {
                object: &object.id(),
                change: &change.describe(),
            });
            changes.push((object.id(), change));
        }
        progress(Event::Waiting(&wave.wait_for));
        wait::wave(client, &release.namespace, wave, timeout, progress).await?;
    }
    Ok(())
}

/// Nothing to do: `last`, the newest revision, deployed this very profile and `changes` (found
/// with server-side dry runs) change no object. Decided with reads and dry runs only, so a no-op
/// run of any verb that deploys writes nothing, not even the lock.
pub(crate) fn up_to_date(
    profile: &Profile,
    last: Option<&Record>,
    changes: &[(String, Change)],
) -> bool {
    last.is_some_and(|r| r.deployed() && r.profile_digest == release::profile_digest(profile))
        && changes
            .iter()
            .all(|(_, change)| *change == Change::Unchanged)
}

/// What applying each object would do, found with server-side dry runs: nothing is written.
pub(crate) async fn changes(
    client: &kube::Client,
    release: &Release,
    values: &[Value],
) -> Result<Vec<(String, Change)>> {
    let mut changes = Vec::new();
    for (object, value) in release.objects().zip(values) {
        changes.push((
            object.id(),
            apply::apply(client, object, value, true).await?,
        ));
    }
    Ok(changes)
}

/// Whether [`values`] may make the values paperclipctl generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generated {
    /// Outside the release lock (previews, the up-to-date check): a value not made yet is a
    /// placeholder, only ever sent in server-side dry runs.
    Placeholder,
    /// Under the release lock: a value not made yet is made now, and then applied.
    Made,
}

/// What a dry run sends where a generated value does not exist yet.
const PLACEHOLDER: &str = "made-under-the-release-lock";

/// Each object as it is applied: the rendered object plus, for Secrets paperclipctl fills, their
/// values — looked up from the live Secret when present, never regenerated.
pub(crate) async fn values(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
    generated: Generated,
) -> Result<Vec<Value>> {
    let mut values = Vec::new();
    for object in release.objects() {
        let mut value = serde_json::to_value(object)?;
        if let Object::Secret(secret) = object
            && let Some(keys) = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(meta::GENERATED_KEYS))
        {
            let live = apply::get(client, "Secret", object.name(), object.namespace()).await?;
            let live_data = live
                .as_ref()
                .and_then(|l| l.data.get("data"))
                .cloned()
                .unwrap_or(Value::Null);
            let mut data = serde_json::Map::new();
            for key in keys.split(',') {
                let encoded = match (object.name(), key) {
                    (meta::SHELL_KEYS_SECRET, _) => encode(&authorized_keys(profile)),
                    _ => match live_data.get(key).and_then(Value::as_str) {
                        Some(existing) => existing.to_string(),
                        None if generated == Generated::Placeholder => encode(PLACEHOLDER),
                        None => encode(&generate_password()?),
                    },
                };
                data.insert(key.to_string(), json!(encoded));
            }
            value["data"] = Value::Object(data);
        }
        values.push(value);
    }
    Ok(values)
}

pub(crate) fn authorized_keys(profile: &Profile) -> String {
    let keys = profile
        .shell
        .as_ref()
        .map(|s| s.authorized_keys.join("\n"))
        .unwrap_or_default();
    if keys.is_empty() { keys } else { keys + "\n" }
}

fn encode(value: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// 32 random bytes as hex: URL-safe, so it goes into DATABASE_URL without escaping.
fn generate_password() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::cluster(format!("no randomness for a password: {e}"), "run again"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The images the release's pods really run (`image@digest` where the kubelet reported one).
pub(crate) async fn images(
    client: &kube::Client,
    release: &Release,
) -> Result<BTreeMap<String, String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), &release.namespace);
    let selector = format!("{}={}", meta::MANAGED_BY.0, meta::MANAGED_BY.1);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, "list", "pods", Some(&release.namespace)))?;
    // A pinned reference (the shell sidecar's) names its digest itself: the one every node runs.
    let mut images: BTreeMap<String, String> = release
        .objects()
        .filter_map(Object::pod_spec)
        .flat_map(|p| &p.containers)
        .filter_map(|c| c.image.as_deref())
        .filter_map(|i| {
            i.split_once('@')
                .map(|(_, d)| (i.to_string(), d.to_string()))
        })
        .collect();
    for pod in list.items {
        for status in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            let known = images.entry(status.image.clone()).or_default();
            if let Some((_, digest)) = status.image_id.split_once('@') {
                *known = digest.to_string();
            }
        }
    }
    Ok(images)
}
