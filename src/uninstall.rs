//! The uninstall of a release: what paperclipctl created is deleted in reverse wave order (the app
//! before the database it uses, the ExternalSecrets before the store they read from), each deletion
//! waited for; data is kept unless purging. Only objects carrying the managed-by label are ever
//! touched, so a user's own objects in the namespace survive.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::runtime::wait::{await_condition, conditions};

use crate::cluster::api_error;
use crate::cluster::apply::api_resource;
use crate::error::{Error, Result};
use crate::render::{Object, Release, meta};
use crate::ui::progress::Event;

/// Label of the release records (see [`crate::release`]): purged, never deleted otherwise.
const RELEASE_LABEL: &str = "paperclipctl.io/release";

/// Namespaced kinds paperclipctl creates, searched by label so a half-installed release or one
/// rendered from another profile is still found.
const KINDS: [&str; 10] = [
    "Deployment",
    "StatefulSet",
    "Ingress",
    "Service",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "ExternalSecret",
    "SecretStore",
    "PersistentVolumeClaim",
];

/// One live object of the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: String,
    pub name: String,
    /// Cluster-scoped objects (a ClusterSecretStore) have none.
    pub namespace: Option<String>,
    /// Order of deletion: app first, then the database, the ExternalSecrets, the store, and what
    /// only a purge removes.
    phase: u8,
    /// Data: volumes, the database password and the release records survive unless purging.
    pub kept: bool,
    /// The object found: deleted only while it is still this one (not a namesake made since).
    pub uid: Option<String>,
}

impl Found {
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// What an uninstall would do in the release's namespace, in deletion order.
#[derive(Debug, Default)]
pub struct Inventory {
    pub objects: Vec<Found>,
    /// The namespace exists and carries the managed-by label (paperclipctl created it).
    pub own_namespace: bool,
}

impl Inventory {
    pub fn to_delete(&self, purge: bool) -> impl Iterator<Item = &Found> {
        self.objects.iter().filter(move |o| purge || !o.kept)
    }

    pub fn kept(&self) -> impl Iterator<Item = &Found> {
        self.objects.iter().filter(|o| o.kept)
    }
}

fn labelled(object: &DynamicObject) -> bool {
    object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(meta::MANAGED_BY.0))
        .is_some_and(|v| v == meta::MANAGED_BY.1)
}

fn phase(kind: &str, object: &DynamicObject) -> (u8, bool) {
    let labels = object.metadata.labels.as_ref();
    let annotations = object.metadata.annotations.as_ref();
    let keep = annotations.is_some_and(|a| a.contains_key(meta::KEEP));
    let record = labels.is_some_and(|l| l.contains_key(RELEASE_LABEL));
    let wave1 = labels
        .and_then(|l| l.get("paperclipctl.io/wave"))
        .is_some_and(|w| w == "1");
    match kind {
        // A claim of the StatefulSet's template is data whatever its annotations say.
        "PersistentVolumeClaim" => (4, true),
        _ if keep || record => (4, true),
        _ if wave1 => (0, false),
        "ExternalSecret" => (2, false),
        "SecretStore" | "ClusterSecretStore" => (3, false),
        _ => (1, false),
    }
}

/// Finds every labelled object of the release in `release.namespace`, plus a rendered
/// ClusterSecretStore (cluster-scoped: only the rendered name, never every labelled store).
pub async fn inventory(client: &kube::Client, release: &Release) -> Result<Inventory> {
    let namespace = release.namespace.as_str();
    let live_namespace = crate::cluster::apply::get(client, "Namespace", namespace, None).await?;
    let Some(live_namespace) = live_namespace else {
        return Ok(Inventory::default());
    };
    let mut objects = Vec::new();
    let selector = format!("{}={}", meta::MANAGED_BY.0, meta::MANAGED_BY.1);
    for kind in KINDS {
        let (resource, _) = api_resource(kind);
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            // No External Secrets CRDs: nothing of that kind can exist.
            Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
            Err(e) => return Err(api_error(e, "list", &resource.plural, Some(namespace))),
        };
        for object in list.iter().filter(|o| labelled(o)) {
            let (phase, kept) = phase(kind, object);
            objects.push(Found {
                kind: kind.to_string(),
                name: object.metadata.name.clone().unwrap_or_default(),
                namespace: Some(namespace.to_string()),
                phase,
                kept,
                uid: object.metadata.uid.clone(),
            });
        }
    }
    for object in release.objects() {
        if let Object::SecretStore(store) = object
            && store.kind == "ClusterSecretStore"
            && let Some(live) =
                crate::cluster::apply::get(client, &store.kind, object.name(), None).await?
            && labelled(&live)
        {
            objects.push(Found {
                kind: store.kind.clone(),
                name: object.name().to_string(),
                namespace: None,
                phase: 3,
                kept: false,
                uid: live.metadata.uid.clone(),
            });
        }
    }
    objects.sort_by_key(|o| o.phase);
    Ok(Inventory {
        objects,
        own_namespace: labelled(&live_namespace),
    })
}

/// What an uninstall of `release` would find if every rendered object were live: the preview
/// when no cluster answers. Release records are not rendered, so they are not in it.
pub fn planned(release: &Release) -> Result<Inventory> {
    let mut objects = Vec::new();
    for object in release.objects() {
        if matches!(object, Object::Namespace(_)) {
            continue;
        }
        let rendered: DynamicObject = serde_json::from_value(serde_json::to_value(object)?)?;
        let (phase, kept) = phase(object.kind(), &rendered);
        objects.push(Found {
            kind: object.kind().to_string(),
            name: object.name().to_string(),
            namespace: object.namespace().map(str::to_string),
            phase,
            kept,
            uid: None,
        });
    }
    // In the order a live inventory lists them: by phase, then kind as listed.
    objects.sort_by_key(|o| (o.phase, KINDS.iter().position(|k| *k == o.kind)));
    Ok(Inventory {
        objects,
        own_namespace: true,
    })
}

/// Deletes `objects` in order, waiting until each is gone (or `timeout` passes).
pub async fn delete(
    client: &kube::Client,
    objects: &[&Found],
    timeout: Duration,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<()> {
    for found in objects {
        crate::cluster::lock::ensure_held().await?;
        delete_one(
            client,
            &found.kind,
            &found.name,
            found.namespace.as_deref(),
            found.uid.as_deref(),
            timeout,
        )
        .await?;
        progress(Event::Note(&format!("{} deleted", found.id())));
    }
    Ok(())
}

/// Deletes one object (gone already is fine) and watches until it has disappeared. With `uid`,
/// only that very object: one of the same name made since (someone else's) stays.
async fn delete_one(
    client: &kube::Client,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    uid: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let (resource, namespaced) = api_resource(kind);
    let api = match (namespaced, namespace) {
        (true, Some(ns)) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
        _ => Api::<DynamicObject>::all_with(client.clone(), &resource),
    };
    let id = format!("{kind}/{name}");
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let uid = match api.delete(name, &params).await {
        Ok(either) => either.left().and_then(|o| o.metadata.uid),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        // Replaced since it was found: the namesake is not ours to delete.
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(e) => return Err(api_error(e, "delete", &id, namespace)),
    };
    let Some(uid) = uid else {
        // The API answered with a Status: the object is gone already.
        return Ok(());
    };
    let gone = await_condition(api, name, conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, gone).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::cluster(
            format!("cannot watch {id} while it is deleted: {e}"),
            "run the uninstall again: objects already gone are skipped",
        )),
        Err(_) => Err(Error::not_healthy(
            format!("{id} was not gone after {}s", timeout.as_secs()),
            format!(
                "a finalizer may hold it: kubectl get {} {name} -o yaml{}",
                kind.to_lowercase(),
                namespace.map(|n| format!(" -n {n}")).unwrap_or_default()
            ),
        )),
    }
}

/// Deletes the namespace when nothing of anybody else's is left in it, or says why it was kept.
/// Every listable kind the API serves is looked at (found by discovery), so a Job or a Role
/// someone added keeps the namespace alive; so does a kind that cannot be listed (forbidden, a
/// broken aggregated API), since what it holds is unknown.
pub async fn delete_namespace_if_empty(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<std::result::Result<(), String>> {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| api_error(e, "discover", "API resources", None))?;
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if capabilities.scope != kube::discovery::Scope::Namespaced
                || !capabilities.supports_operation(kube::discovery::verbs::LIST)
                || ["Event", "Lease"].contains(&resource.kind.as_str())
            {
                continue;
            }
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
            let list = match api.list(&ListParams::default()).await {
                Ok(list) => list,
                // Not served after all (a CRD removed meanwhile): nothing of it can be there.
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => {
                    return Ok(Err(format!(
                        "its {} could not be listed ({e}), so it may hold someone else's objects",
                        resource.plural
                    )));
                }
            };
            if let Some(other) = list
                .items
                .iter()
                .find(|o| !left_by_kubernetes(&resource.kind, o))
            {
                return Ok(Err(format!(
                    "it still holds {}/{}",
                    resource.kind,
                    other.metadata.name.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    delete_one(client, "Namespace", namespace, None, None, timeout).await?;
    Ok(Ok(()))
}

/// What Kubernetes puts in every namespace, or keeps for a while after its owner is gone: not a
/// reason to keep the namespace.
fn left_by_kubernetes(kind: &str, object: &DynamicObject) -> bool {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let owned = object
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| !o.is_empty());
    owned
        || (kind == "ConfigMap" && name == "kube-root-ca.crt")
        || (kind == "ServiceAccount" && name == "default")
        || matches!(kind, "Endpoints" | "EndpointSlice")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> DynamicObject {
        let map = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let (resource, _) = api_resource("Secret");
        let mut object = DynamicObject::new("x", &resource);
        object.metadata.labels = map(labels);
        object.metadata.annotations = map(annotations);
        object
    }

    #[test]
    fn offline_the_rendered_release_goes_app_first_and_its_data_is_kept() {
        let profile = crate::profile::load("frank", &[]).unwrap().profile;
        let planned = planned(&crate::render::render(&profile)).unwrap();
        let order: Vec<String> = planned.to_delete(false).map(Found::id).collect();
        assert_eq!(
            order.first().map(String::as_str),
            Some("Deployment/paperclip")
        );
        assert!(
            !order.iter().any(|id| id.starts_with("Namespace/")),
            "{order:?}"
        );
        let kept: Vec<String> = planned.kept().map(Found::id).collect();
        assert!(
            kept.contains(&"Secret/paperclip-db-postgresql".to_string()),
            "{kept:?}"
        );
        assert!(
            kept.contains(&"PersistentVolumeClaim/paperclip-data".to_string()),
            "{kept:?}"
        );
    }

    #[test]
    fn the_app_goes_first_the_store_last_and_data_is_kept() {
        let wave1 = live(&[("paperclipctl.io/wave", "1")], &[]);
        let wave0 = live(&[("paperclipctl.io/wave", "0")], &[]);
        assert_eq!(phase("Deployment", &wave1), (0, false));
        assert_eq!(phase("Secret", &wave1), (0, false));
        assert_eq!(phase("StatefulSet", &wave0), (1, false));
        assert_eq!(phase("ExternalSecret", &wave0), (2, false));
        assert_eq!(phase("SecretStore", &wave0), (3, false));
        assert_eq!(phase("PersistentVolumeClaim", &wave1), (4, true));
        let password = live(&[("paperclipctl.io/wave", "0")], &[(meta::KEEP, "true")]);
        assert_eq!(phase("Secret", &password), (4, true));
        let record = live(&[(RELEASE_LABEL, "paperclip")], &[]);
        assert_eq!(phase("Secret", &record), (4, true));
    }
}
