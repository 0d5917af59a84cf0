//! Waiting for a wave to become healthy, with watches rather than polling, failing fast on the
//! conditions that never heal by themselves and naming what blocks on a timeout.

use std::time::Duration;

use futures_util::{StreamExt, future::try_join_all};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use super::api_error;
use super::apply::api_resource;
use crate::error::{Error, Result};
use crate::render::{Object, Wave};
use crate::ui::progress::Event as Progress;

/// Waits until every object the wave gates on is healthy, or fails naming the first that is not;
/// `progress` hears each object's readiness as it changes, so a person sees what a wait is on.
pub async fn wave(
    client: &kube::Client,
    namespace: &str,
    wave: &Wave,
    timeout: Duration,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let waits = wave.wait_for.iter().map(|id| {
        let object = wave
            .objects
            .iter()
            .find(|o| &o.id() == id)
            .expect("waits name objects of the wave");
        async move {
            let status = |why: &str| progress(Progress::NotReady { object: id, why });
            one(client, namespace, object, deadline, &status).await?;
            progress(Progress::Healthy(id));
            Ok::<(), Error>(())
        }
    });
    try_join_all(waits).await.map(|_| ())
}

async fn one(
    client: &kube::Client,
    namespace: &str,
    object: &Object,
    deadline: Instant,
    status: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let name = object.name();
    let result = match object {
        Object::StatefulSet(_) => {
            let api = Api::<StatefulSet>::namespaced(client.clone(), namespace);
            let ready = readiness(api, name, statefulset_ready);
            let problems = workload_problems(client, namespace, object);
            until_ready(ready, problems, deadline, status).await
        }
        Object::Deployment(_) => {
            let api = Api::<Deployment>::namespaced(client.clone(), namespace);
            let ready = readiness(api, name, deployment_ready);
            let problems = workload_problems(client, namespace, object);
            until_ready(ready, problems, deadline, status).await
        }
        Object::ExternalSecret(_) => {
            let (resource, _) = api_resource("ExternalSecret");
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
            // A sync error may heal (the value gets added in Infisical): only a timeout ends it.
            let problems = futures_util::stream::pending().boxed();
            until_ready(
                readiness(api, name, external_secret_ready),
                problems,
                deadline,
                status,
            )
            .await
        }
        other => unreachable!("{} is not waited on", other.id()),
    };
    match result {
        Outcome::Ready => Ok(()),
        Outcome::Failed(error) if matches!(object, Object::Deployment(_)) => {
            Err(database_failure(client, namespace, object)
                .await
                .unwrap_or(error))
        }
        Outcome::Failed(error) => Err(error),
        Outcome::TimedOut(last) => Err(timed_out(client, namespace, object, last).await),
    }
}

enum Outcome {
    Ready,
    Failed(Error),
    /// The deadline passed; the last status seen, if any.
    TimedOut(Option<String>),
}

type ReadyStream =
    futures_util::stream::BoxStream<'static, std::result::Result<Readiness, watcher::Error>>;

/// The readiness of the object `name`, each time the watch sees it change.
fn readiness<K>(api: Api<K>, name: &str, ready: fn(&K) -> Readiness) -> ReadyStream
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, by_name)
        .default_backoff()
        .applied_objects()
        .map(move |r| r.map(|object| ready(&object)))
        .boxed()
}

/// Whether an object is ready, and if not, in a few words why.
pub enum Readiness {
    Ready,
    NotYet(String),
}

/// Conditions that will not heal by waiting longer, as the errors to stop with.
type Problems<'a> = futures_util::stream::BoxStream<'a, Error>;

/// Waits until `ready` says ready (reporting each reason it is not yet through `status`), or
/// fails at once with the first of `problems`, or times out at `deadline`.
async fn until_ready(
    mut ready: ReadyStream,
    mut problems: Problems<'_>,
    deadline: Instant,
    status: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let mut last = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Outcome::TimedOut(last),
            next = ready.next() => match next {
                Some(Ok(Readiness::Ready)) => return Outcome::Ready,
                Some(Ok(Readiness::NotYet(why))) => {
                    status(&why);
                    last = Some(why);
                }
                Some(Err(e)) => last = Some(format!("watch error: {e}")),
                None => return Outcome::TimedOut(last),
            },
            Some(problem) = problems.next() => return Outcome::Failed(problem),
        }
    }
}

/// The app's server exits at start when it cannot reach PostgreSQL, which the kubelet reports as
/// a crash loop: when a pod of `object` that has restarted says so in its log, that is the
/// error to stop with, naming the database host.
async fn database_failure(
    client: &kube::Client,
    namespace: &str,
    object: &Object,
) -> Option<Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&selector(object)))
        .await
        .ok()?;
    for pod in listed.items.iter().filter(|p| runs_template(p, object)) {
        let restarted = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .any(|c| {
                c.restart_count > 0
                    || c.last_state
                        .as_ref()
                        .is_some_and(|s| s.terminated.is_some())
            });
        let name = pod.metadata.name.as_deref()?;
        if restarted && let Some(failure) = crate::health::database_failure_of(&pods, name).await {
            return Some(crate::health::unreachable_database(
                &format!("pod {name} exited at start: {failure}"),
                namespace,
            ));
        }
    }
    None
}

/// What makes a workload fail fast: a problem of one of its pods, or a FailedAttachVolume event
/// about one of them.
fn workload_problems<'a>(
    client: &kube::Client,
    namespace: &str,
    object: &'a Object,
) -> Problems<'a> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let pods = watcher(pods, watcher::Config::default().labels(&selector(object)))
        .default_backoff()
        .applied_objects()
        .filter_map(move |pod| async move {
            let pod = pod.ok()?;
            runs_template(&pod, object).then(|| pod_problem(&pod, object))?
        });
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    let events = watcher(events, watcher::Config::default().fields("type=Warning"))
        .default_backoff()
        .applied_objects()
        .filter_map(move |event| async move { attach_problem(&event.ok()?, object) });
    futures_util::stream::select(pods, events).boxed()
}

/// Whether `pod` runs what was just applied: not on its way out, and with the images of the
/// object's pod template. A rollout replaces the pods of the revision before (a crash-looping
/// one included, when going back from a failed upgrade); their problems are not this wait's.
fn runs_template(pod: &Pod, object: &Object) -> bool {
    let Some(template) = object.pod_spec() else {
        return true;
    };
    let running = pod.spec.as_ref().map(|s| &s.containers);
    pod.metadata.deletion_timestamp.is_none()
        && template.containers.iter().all(|want| {
            running
                .into_iter()
                .flatten()
                .any(|c| c.name == want.name && c.image == want.image)
        })
}

fn attach_problem(event: &Event, object: &Object) -> Option<Error> {
    let involved = event.involved_object.name.as_deref().unwrap_or_default();
    let ours = involved.starts_with(&format!("{}-", object.name()));
    (event.reason.as_deref() == Some("FailedAttachVolume") && ours).then(|| {
        Error::not_healthy(
            format!(
                "{}: pod {involved} cannot attach its volume: {}",
                object.id(),
                event.message.as_deref().unwrap_or_default()
            ),
            "a ReadWriteOnce volume is still attached to another node or pod; the Recreate \
             strategy avoids this, or delete the old pod",
        )
    })
}

fn selector(object: &Object) -> String {
    let labels = match object {
        Object::StatefulSet(s) => s
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone()),
        Object::Deployment(d) => d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone()),
        _ => None,
    };
    labels
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn statefulset_ready(s: &StatefulSet) -> Readiness {
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &s.status else {
        return Readiness::NotYet("no status yet".into());
    };
    let current = status.observed_generation >= s.metadata.generation;
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if current && ready >= want && updated >= want {
        Readiness::Ready
    } else {
        Readiness::NotYet(format!("{ready}/{want} ready, {updated}/{want} updated"))
    }
}

/// Whether a Deployment is ready: the one definition the waits and `status` share, so a release
/// an install waited for is one `status` calls healthy. Ready is every wanted replica updated to
/// the current template and available, no old pod left over, at the generation the controller
/// has seen, and at least one replica wanted.
pub fn deployment_ready(d: &Deployment) -> Readiness {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    // Never ready at 0 replicas: the app serves nothing, and a watch that starts from the API
    // server's cache can first show the Deployment as it was while scaled down for a restart.
    if want == 0 {
        return Readiness::NotYet("scaled to 0 replicas".into());
    }
    let Some(status) = &d.status else {
        return Readiness::NotYet("no status yet".into());
    };
    let current = status.observed_generation >= d.metadata.generation;
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if current && updated >= want && available >= want && total <= want {
        Readiness::Ready
    } else {
        Readiness::NotYet(format!(
            "{available}/{want} available, {updated}/{want} updated, {total} pod(s)"
        ))
    }
}

fn external_secret_ready(es: &DynamicObject) -> Readiness {
    match external_secret_synced(&es.data) {
        Synced::Yes { .. } => Readiness::Ready,
        Synced::No { reason, message } => {
            Readiness::NotYet(format!("{}: {message}", reason.unwrap_or("not ready")))
        }
        Synced::Unknown => {
            Readiness::NotYet("not synced yet (is the External Secrets controller running?)".into())
        }
    }
}

/// Whether an ExternalSecret (its JSON) synced, by its Ready condition: the one definition the
/// waits and `status` share.
pub enum Synced<'a> {
    /// Synced; the condition's message says what.
    Yes { message: &'a str },
    No {
        reason: Option<&'a str>,
        message: &'a str,
    },
    /// No Ready condition yet: the controller has not looked at it.
    Unknown,
}

pub fn external_secret_synced(data: &serde_json::Value) -> Synced<'_> {
    let ready = data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) if c["status"] == "True" => Synced::Yes {
            message: c["message"].as_str().unwrap_or_default(),
        },
        Some(c) => Synced::No {
            reason: c["reason"].as_str(),
            message: c["message"].as_str().unwrap_or_default(),
        },
        None => Synced::Unknown,
    }
}

/// A condition of `pod` that waiting will not fix, as the error to stop with.
pub fn pod_problem(pod: &Pod, owner: &Object) -> Option<Error> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref()?;
    for status in pod.status.as_ref()?.container_statuses.iter().flatten() {
        let container = &status.name;
        let limit = spec
            .containers
            .iter()
            .find(|c| &c.name == container)
            .and_then(|c| {
                c.resources
                    .as_ref()?
                    .limits
                    .as_ref()?
                    .get("memory")
                    .map(|q| q.0.clone())
            });
        let oom = [status.state.as_ref(), status.last_state.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.terminated.as_ref())
            .any(|t| t.reason.as_deref() == Some("OOMKilled"));
        if oom {
            let limit = limit.unwrap_or_else(|| "no limit".into());
            return Some(Error::not_healthy(
                format!(
                    "{}: container {container} of pod {name} was OOMKilled at its memory limit ({limit})",
                    owner.id()
                ),
                format!(
                    "raise {}resources.limits.memory (limits are measurements, not guesses: Paperclip under agent load needed 12Gi on Frank)",
                    crate::render::lint::profile_section(container)
                ),
            ));
        }
        let Some(waiting) = status.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let message = waiting.message.clone().unwrap_or_default();
        let (what, help) = match waiting.reason.as_deref() {
            Some("CrashLoopBackOff") => (
                format!("is crash-looping ({} restarts)", status.restart_count),
                format!("read its logs: kubectl logs -n {} {name} -c {container} --previous", pod.metadata.namespace.as_deref().unwrap_or_default()),
            ),
            Some(reason @ ("ImagePullBackOff" | "ErrImagePull" | "InvalidImageName")) => (
                format!("cannot pull image {} ({reason}): {message}", status.image),
                "check that the tag exists for the nodes' platform (`paperclipctl plan` lists the preflight checks) and the pull credentials".to_string(),
            ),
            Some("CreateContainerConfigError") => (
                format!("cannot be configured: {message}"),
                "a Secret or key it needs is missing: check its ExternalSecret is synced, or mark it optional in app.envFrom".to_string(),
            ),
            _ => continue,
        };
        return Some(Error::not_healthy(
            format!("{}: container {container} of pod {name} {what}", owner.id()),
            help,
        ));
    }
    None
}

/// The error for a wait that ran out of time: the last status and the latest Warning events.
async fn timed_out(
    client: &kube::Client,
    namespace: &str,
    object: &Object,
    last: Option<String>,
) -> Error {
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    let listed = events
        .list(&ListParams::default().fields("type=Warning"))
        .await;
    let name = object.name();
    let mut warnings: Vec<Event> = match listed {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|e| {
                let involved = e.involved_object.name.as_deref().unwrap_or_default();
                involved == name || involved.starts_with(&format!("{name}-"))
            })
            .collect(),
        Err(e) => return api_error(e, "list", "events", Some(namespace)),
    };
    warnings.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    let lines: Vec<String> = warnings
        .iter()
        .rev()
        .take(5)
        .map(|e| {
            format!(
                "{} {}: {}",
                e.involved_object.name.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let status = last.unwrap_or_else(|| "no status seen".into());
    let events = if lines.is_empty() {
        "no Warning events".to_string()
    } else {
        format!("latest Warning events:\n  {}", lines.join("\n  "))
    };
    Error::not_healthy(
        format!(
            "{} did not become healthy in time ({status}); {events}",
            object.id()
        ),
        "fix what the events say and run the command again; it continues where it stopped",
    )
}

/// How long each wave may take to become healthy unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile;
    use crate::render;

    fn deployment() -> Object {
        let release = render::render(&profile::load("frank", &[]).unwrap().profile);
        release
            .objects()
            .find(|o| matches!(o, Object::Deployment(_)))
            .unwrap()
            .clone()
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paperclip-abc", "namespace": "paperclip-system"},
            "spec": {"containers": [{"name": "paperclip", "image": "x", "resources": {"limits": {"memory": "2Gi"}}}]},
            "status": {"containerStatuses": [status]},
        }))
        .unwrap()
    }

    fn problem(status: serde_json::Value) -> Option<String> {
        pod_problem(&pod(status), &deployment()).map(|e| match e {
            Error::NotHealthy { message, help } => {
                format!("{message} | {}", help.unwrap_or_default())
            }
            other => panic!("{other}"),
        })
    }

    fn status(state: serde_json::Value, last: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": "paperclip", "image": "x", "imageID": "", "ready": false,
                           "restartCount": 4, "state": state, "lastState": last})
    }

    #[test]
    fn a_deployment_scaled_to_zero_is_never_ready() {
        // What a watch that starts from the API server's cache can show right after a restart
        // scaled the app 0 → 1: the old object, settled at 0 replicas.
        let settled_at_zero: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paperclip", "generation": 4},
            "spec": {"replicas": 0, "selector": {}, "template": {}},
            "status": {"observedGeneration": 4, "replicas": 0}
        }))
        .unwrap();
        assert!(matches!(
            deployment_ready(&settled_at_zero),
            Readiness::NotYet(why) if why == "scaled to 0 replicas"
        ));
    }

    #[test]
    fn oom_kills_name_the_limit_and_the_field_to_raise() {
        let oom = status(
            serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            serde_json::json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
        );
        let message = problem(oom).unwrap();
        assert!(
            message.contains("was OOMKilled at its memory limit (2Gi)"),
            "{message}"
        );
        assert!(
            message.contains("raise app.resources.limits.memory"),
            "{message}"
        );
    }

    #[test]
    fn conditions_that_never_heal_fail_fast() {
        let waiting = |reason: &str, message: &str| {
            problem(status(
                serde_json::json!({"waiting": {"reason": reason, "message": message}}),
                serde_json::json!({}),
            ))
        };
        let crash = waiting("CrashLoopBackOff", "back-off 5m0s").unwrap();
        assert!(
            crash.contains("is crash-looping (4 restarts)") && crash.contains("--previous"),
            "{crash}"
        );
        let pull = waiting("ImagePullBackOff", "manifest unknown").unwrap();
        assert!(
            pull.contains("cannot pull image x (ImagePullBackOff): manifest unknown"),
            "{pull}"
        );
        let config = waiting(
            "CreateContainerConfigError",
            "secret \"paperclip-auth\" not found",
        )
        .unwrap();
        assert!(
            config.contains("secret \"paperclip-auth\" not found"),
            "{config}"
        );
        assert!(
            config.contains("mark it optional in app.envFrom"),
            "{config}"
        );
        assert_eq!(waiting("ContainerCreating", ""), None);
    }
}
