//! Names and labels shared by every rendered object.
//!
//! Names follow the hand-made install this tool replaces (`paperclip-db-postgresql`,
//! `paperclip-data`, …) so an existing release can be adopted without renaming anything.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::profile::Profile;

pub const RELEASE: &str = "paperclip";
pub const DB_NAME: &str = "paperclip-db-postgresql";
pub const DB_HEADLESS: &str = "paperclip-db-postgresql-hl";
pub const DB_PASSWORD_KEY: &str = "password";
pub const APP_NAME: &str = "paperclip";
pub const DATA_PVC: &str = "paperclip-data";
pub const SHELL_NAME: &str = "paperclip-shell";
pub const SHELL_HOME_PVC: &str = "paperclip-shell-home";
pub const SHELL_KEYS_SECRET: &str = "paperclip-shell-ssh-keys";
pub const SHELL_INVENTORY: &str = "paperclip-shell-inventory";
/// The `kubernetes.io/dockerconfigjson` Secret the pod pulls a private sidecar image with.
pub const SHELL_PULL_SECRET: &str = "paperclip-shell-pull";
/// The Secret with the sidecar's alert settings (`TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`).
pub const SHELL_ALERTS_SECRET: &str = "paperclip-shell-alerts";

/// Label every object carries, so status/uninstall find exactly what paperclipctl made.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "paperclipctl");
/// Whether an object carries the managed-by label: paperclipctl created it.
pub fn is_managed(metadata: &ObjectMeta) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// Annotation on PVCs and generated Secrets that uninstall keeps unless `--purge`.
pub const KEEP: &str = "paperclipctl.io/keep";
/// Annotation naming the keys of a Secret whose values paperclipctl generates at install.
pub const GENERATED_KEYS: &str = "paperclipctl.io/generated-keys";
/// Annotation on ExternalSecrets the app can start without.
pub const OPTIONAL: &str = "paperclipctl.io/optional";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Database,
    Secrets,
    App,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Component::Database => "database",
            Component::Secrets => "secrets",
            Component::App => "app",
        }
    }

    fn wave(self) -> &'static str {
        match self {
            Component::Database | Component::Secrets => "0",
            Component::App => "1",
        }
    }
}

/// The labels a workload's selector matches on (stable across upgrades).
pub fn selector(component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "paperclip".into()),
        ("app.kubernetes.io/instance".into(), RELEASE.into()),
        (
            "app.kubernetes.io/component".into(),
            component.as_str().into(),
        ),
    ])
}

pub fn labels(component: Component) -> BTreeMap<String, String> {
    let mut labels = selector(component);
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert("paperclipctl.io/wave".into(), component.wave().into());
    labels
}

/// Metadata for a namespaced object of `component`.
pub fn object(profile: &Profile, name: &str, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(profile.namespace.to_string()),
        labels: Some(labels(component)),
        ..Default::default()
    }
}

/// Adds one annotation to `meta`.
pub fn annotate(mut meta: ObjectMeta, key: &str, value: impl Into<String>) -> ObjectMeta {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), value.into());
    meta
}

pub fn namespace(profile: &Profile) -> Namespace {
    let mut labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
    labels.insert("app.kubernetes.io/part-of".into(), "paperclip".into());
    Namespace {
        metadata: ObjectMeta {
            name: Some(profile.namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}
