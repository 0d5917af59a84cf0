//! Server-side apply with the `paperclipctl` field manager, skipping objects that would not
//! change: every object is first applied as a server-side dry run and compared with the live
//! object, so a re-install of an unchanged release sends no mutating request at all.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::api_error;
use crate::error::{Error, Result};
use crate::render::Object;

pub const FIELD_MANAGER: &str = "paperclipctl";

/// What applying one object did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    /// Changed, with the paths of the fields that differ.
    Configured(Vec<String>),
    Unchanged,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured(_) => "configured",
            Change::Unchanged => "unchanged",
        }
    }

    /// `configured (spec.replicas, …)`, for progress lines.
    pub fn describe(&self) -> String {
        match self {
            Change::Configured(paths) => {
                let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
                let more = paths.len().saturating_sub(shown.len());
                let more = if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                };
                format!("configured ({}{more})", shown.join(", "))
            }
            other => other.as_str().to_string(),
        }
    }
}

/// The API resource of one of our kinds, and whether it is namespaced.
pub fn api_resource(kind: &str) -> (ApiResource, bool) {
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "Secret" => ("", "v1", "secrets", true),
        "ConfigMap" => ("", "v1", "configmaps", true),
        "PersistentVolumeClaim" => ("", "v1", "persistentvolumeclaims", true),
        "Service" => ("", "v1", "services", true),
        "StatefulSet" => ("apps", "v1", "statefulsets", true),
        "Deployment" => ("apps", "v1", "deployments", true),
        "SecretStore" => ("external-secrets.io", "v1", "secretstores", true),
        "ClusterSecretStore" => ("external-secrets.io", "v1", "clustersecretstores", false),
        "ExternalSecret" => ("external-secrets.io", "v1", "externalsecrets", true),
        "Ingress" => ("networking.k8s.io", "v1", "ingresses", true),
        "NetworkPolicy" => ("networking.k8s.io", "v1", "networkpolicies", true),
        other => unreachable!("paperclipctl renders no {other}"),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    (ApiResource::from_gvk_with_plural(&gvk, plural), namespaced)
}

fn api(client: &kube::Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let (resource, namespaced) = api_resource(kind);
    match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// Applies `object` (already carrying any generated values) unless it would not change.
/// With `dry_run`, nothing is written and the answer says what a real apply would do.
pub async fn apply(
    client: &kube::Client,
    object: &Object,
    value: &Value,
    dry_run: bool,
) -> Result<Change> {
    if !dry_run {
        super::lock::ensure_held().await?;
    }
    let kind = object.kind();
    let name = object.name();
    let namespace = object.namespace();
    let api = api(client, kind, namespace);
    let resource = format!("{kind}/{name}");
    let live = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, "get", &resource, namespace))?;
    if let Some(live) = &live
        && !crate::render::meta::is_managed(&live.metadata)
    {
        // Someone else's: never rewritten, labelled as ours, or later deleted by an uninstall.
        // A namespace made beforehand simply stays theirs; anything else stops the run.
        if kind == "Namespace" {
            return Ok(Change::Unchanged);
        }
        return Err(Error::cluster(
            format!(
                "{resource}{} exists and was not created by paperclipctl (it lacks the label \
                 {}={}); it is left alone",
                namespace.map(|ns| format!(" in {ns}")).unwrap_or_default(),
                crate::render::meta::MANAGED_BY.0,
                crate::render::meta::MANAGED_BY.1
            ),
            "rename or remove that object, or install the release into another namespace",
        ));
    }
    let patch = Patch::Apply(value);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let would_be = api
        .patch(name, &params.clone().dry_run(), &patch)
        .await
        .map_err(|e| api_error(e, "apply (dry run)", &resource, namespace))?;
    let change = match &live {
        None => Change::Created,
        Some(live) => {
            let paths = changed_paths(&comparable(live), &comparable(&would_be));
            if paths.is_empty() {
                Change::Unchanged
            } else {
                Change::Configured(paths)
            }
        }
    };
    if change != Change::Unchanged && !dry_run {
        api.patch(name, &params, &patch)
            .await
            .map_err(|e| api_error(e, "apply", &resource, namespace))?;
    }
    Ok(change)
}

/// The fields (as paths such as `spec.replicas`) whose values differ between two objects. Only
/// paths, never values: a Secret's data must not reach the output.
fn changed_paths(a: &Value, b: &Value) -> Vec<String> {
    fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let next = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(
                        x.get(key).unwrap_or(&Value::Null),
                        y.get(key).unwrap_or(&Value::Null),
                        next,
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    walk(x, y, format!("{path}[{i}]"), out);
                }
            }
            _ if a != b => out.push(path),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(a, b, String::new(), &mut out);
    out
}

/// The object without what the server changes on every write (or never lets us set).
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            meta.remove(key);
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

/// Reads one live object, if it exists (for generated values that must never be regenerated).
pub async fn get(
    client: &kube::Client,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Result<Option<DynamicObject>> {
    api(client, kind, namespace)
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, "get", &format!("{kind}/{name}"), namespace))
}
