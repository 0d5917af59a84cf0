//! Memory headroom: the app pod's limits (app container plus the shell sidecar) must fit in
//! what a candidate node has left, and an earlier install that was OOMKilled should not be
//! repeated at the same limit.
//!
//! Limits, not requests, are compared with free memory on purpose: the app's real working set
//! grows towards its limit under agent load, and a node that can only hold its request is the
//! node where it gets OOMKilled or evicts its neighbours.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};

use super::checks::{Problem, Run, api_problem, workload};
use super::placement;
use super::quantity::Bytes;
use super::report::{Outcome, Status};
use super::{Role, target_nodes};
use crate::render::Object;

/// What the real Paperclip was measured to hold here: about 885 MB of RSS after light use, which
/// the request covers so the scheduler places it where that much is free…
pub const MEASURED_STEADY: Bytes = Bytes(1 << 30);
/// …and the pod's cgroup peaked at 1.25 GB during onboarding (the CLI next to the server), which
/// the limit must leave room for or the first install is OOMKilled.
pub const MEASURED_PEAK: Bytes = Bytes(1536 << 20);

impl Run<'_> {
    pub(super) async fn memory_headroom(&mut self) -> Outcome {
        let profile = self.profile;
        let release = self.release;
        let Some((pod, app)) = workload(release, profile, Role::App) else {
            return Outcome::fail(
                "the release runs no app container",
                "report this: the plan and the rendered release disagree",
            );
        };
        let app_name = app.name.clone();
        let planned_limit = memory_limit(app).unwrap_or_default();
        let measured = measured_fit(container_request(app), planned_limit);
        let needed: Vec<(String, Bytes)> = pod
            .containers
            .iter()
            .map(|c| (c.name.clone(), memory_limit(c).unwrap_or_default()))
            .collect();
        let namespace = release.namespace.clone();
        let selector = release.objects().find_map(|o| match o {
            Object::Deployment(d) => d.spec.as_ref()?.selector.match_labels.clone(),
            _ => None,
        });

        let nodes = match self.nodes().await {
            Ok(nodes) => nodes.to_vec(),
            Err(p) => return p.into(),
        };
        let pods = match Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(e) => return api_problem("list", "pods", &e).into(),
        };
        let is_ours = |p: &Pod| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && selector.as_ref().is_some_and(|sel| {
                    let labels = p.metadata.labels.as_ref();
                    sel.iter()
                        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                })
        };
        // Requests of every running pod per node, except the app's own earlier pods: the new
        // one replaces them (Recreate).
        let mut requested: BTreeMap<String, Bytes> = BTreeMap::new();
        for p in pods.iter().filter(|p| !is_ours(p) && is_active(p)) {
            if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                let entry = requested.entry(node).or_default();
                *entry = *entry + pod_request(p.spec.as_ref().expect("checked above"));
            }
        }
        let candidates: Vec<NodeRoom> = placement::candidates(pod, &nodes)
            .into_iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                NodeRoom {
                    allocatable: allocatable_memory(n),
                    requested: requested.get(&name).copied().unwrap_or_default(),
                    name,
                }
            })
            .collect();
        let fit = headroom(&needed, &candidates, &target_nodes(&profile.app.placement));

        let history: Vec<Pod> = pods.into_iter().filter(|p| is_ours(p)).collect();
        let running_limit = match self.running_limit(&namespace, &app_name).await {
            Ok(limit) => limit,
            Err(p) => return p.into(),
        };
        let earlier = earlier_runs(&history, &app_name, running_limit, planned_limit);
        [Some(fit), measured, earlier]
            .into_iter()
            .flatten()
            // The first of equally bad outcomes: the node fit before the measured memory.
            .rev()
            .max_by_key(|o| match o.status {
                Status::Fail => 2,
                Status::Warn => 1,
                _ => 0,
            })
            .expect("the fit is always there")
    }

    /// The app container's memory limit in the Deployment an earlier install left, if any.
    async fn running_limit(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<Option<Bytes>, Problem> {
        let Some(name) = self.release.objects().find_map(|o| match o {
            Object::Deployment(d) => d.metadata.name.clone(),
            _ => None,
        }) else {
            return Ok(None);
        };
        let deployment = Api::<Deployment>::namespaced(self.client.clone(), namespace)
            .get_opt(&name)
            .await
            .map_err(|e| api_problem("get", &format!("deployments.apps in {namespace}"), &e))?;
        let spec = deployment.and_then(|d| d.spec?.template.spec);
        Ok(spec.and_then(|spec| {
            spec.containers
                .iter()
                .find(|c| c.name == container)
                .and_then(memory_limit)
        }))
    }
}

fn memory_of(list: Option<&BTreeMap<String, Quantity>>) -> Option<Bytes> {
    list?.get("memory").and_then(|q| Bytes::parse(&q.0))
}

/// A container's memory limit, or its request when it has no limit (what it may hold at most
/// as far as the profile says).
fn memory_limit(container: &Container) -> Option<Bytes> {
    let resources = container.resources.as_ref()?;
    memory_of(resources.limits.as_ref()).or_else(|| memory_of(resources.requests.as_ref()))
}

fn container_request(container: &Container) -> Bytes {
    let resources = container.resources.as_ref();
    memory_of(resources.and_then(|r| r.requests.as_ref()))
        // The API server defaults a missing request to the limit.
        .or_else(|| memory_of(resources.and_then(|r| r.limits.as_ref())))
        .unwrap_or_default()
}

/// What the scheduler counts for a pod: its containers' requests, or its largest init
/// container's when that is more, plus the pod overhead.
fn pod_request(spec: &PodSpec) -> Bytes {
    let containers: Bytes = spec.containers.iter().map(container_request).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(container_request)
        .max()
        .unwrap_or_default();
    containers.max(init) + memory_of(spec.overhead.as_ref()).unwrap_or_default()
}

/// A pod that still holds its node's memory (not Succeeded or Failed).
fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

fn allocatable_memory(node: &Node) -> Bytes {
    memory_of(node.status.as_ref().and_then(|s| s.allocatable.as_ref())).unwrap_or_default()
}

/// A candidate node's memory: allocatable, and what other pods already request.
#[derive(Debug, Clone)]
struct NodeRoom {
    name: String,
    allocatable: Bytes,
    requested: Bytes,
}

impl NodeRoom {
    fn free(&self) -> Bytes {
        Bytes(self.allocatable.0.saturating_sub(self.requested.0))
    }
}

/// Whether the pod's containers, at their limits, fit on some candidate node.
fn headroom(containers: &[(String, Bytes)], nodes: &[NodeRoom], placement: &str) -> Outcome {
    let total: Bytes = containers.iter().map(|(_, b)| *b).sum();
    let parts: Vec<String> = containers.iter().map(|(n, b)| format!("{n} {b}")).collect();
    let needs = format!(
        "the app pod's memory limits add up to {total} ({})",
        parts.join(" + ")
    );
    if nodes.is_empty() {
        return Outcome::fail(
            format!("{needs}, but no schedulable node matches {placement}"),
            "change app.placement so that it selects a node that exists and is not cordoned",
        );
    }
    let fits: Vec<&NodeRoom> = nodes.iter().filter(|n| n.free() >= total).collect();
    if fits.is_empty() {
        let rooms: Vec<String> = nodes
            .iter()
            .map(|n| {
                format!(
                    "{} has {} allocatable, {} requested by other pods, {} free",
                    n.name,
                    n.allocatable,
                    n.requested,
                    n.free()
                )
            })
            .collect();
        return Outcome::fail(
            format!(
                "{needs}; no candidate node has that free: {}",
                rooms.join("; ")
            ),
            "lower app.resources.limits.memory, or change app.placement to a node with more memory",
        );
    }
    let rooms: Vec<String> = fits
        .iter()
        .map(|n| format!("{} ({} free)", n.name, n.free()))
        .collect();
    Outcome::pass(format!("{needs}; fits on {}", rooms.join(", ")))
}

/// Whether the app container's request and limit leave Paperclip the memory it was measured to
/// use: a limit below the onboarding peak fails (the first install would be OOMKilled), a
/// request below the steady use warns (the scheduler may place it where it cannot grow).
fn measured_fit(request: Bytes, limit: Bytes) -> Option<Outcome> {
    if limit < MEASURED_PEAK {
        return Some(Outcome::fail(
            format!(
                "the app's memory limit {limit} is below what Paperclip was measured to need: its \
                 pod peaked at 1.25 GB during onboarding"
            ),
            format!("set app.resources.limits.memory to at least {MEASURED_PEAK}"),
        ));
    }
    (request < MEASURED_STEADY).then(|| {
        Outcome::warn(
            format!(
                "the app's memory request {request} is below what Paperclip holds after light \
                 use (about 885 MB)"
            ),
            format!("set app.resources.requests.memory to at least {MEASURED_STEADY}"),
        )
    })
}

/// A warning when an earlier run of the app was OOMKilled at a limit the profile does not
/// raise, or when the profile lowers the limit the running release has.
fn earlier_runs(
    pods: &[Pod],
    container: &str,
    running_limit: Option<Bytes>,
    planned: Bytes,
) -> Option<Outcome> {
    let killed_at = pods
        .iter()
        .filter_map(|pod| {
            let status = pod
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|s| s.name == container)?;
            let oom = [status.last_state.as_ref(), status.state.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref())
                .any(|t| t.reason.as_deref() == Some("OOMKilled"));
            let spec = pod.spec.as_ref()?;
            let limit = spec
                .containers
                .iter()
                .find(|c| c.name == container)
                .and_then(memory_limit);
            oom.then_some(limit).flatten()
        })
        .max();
    if let Some(limit) = killed_at.filter(|limit| planned <= *limit) {
        return Some(Outcome::warn(
            format!("the app was OOMKilled at limit {limit}; the profile asks for {planned}"),
            format!("raise app.resources.limits.memory above {limit}"),
        ));
    }
    match running_limit {
        Some(running) if planned < running => Some(Outcome::warn(
            format!(
                "the running app has a {running} memory limit; the profile lowers it to {planned}"
            ),
            format!(
                "keep app.resources.limits.memory at {running} unless the app was measured to need less"
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus, ResourceRequirements,
    };

    use super::*;

    const GI: u128 = 1 << 30;

    fn container(name: &str, request: &str, limit: &str) -> Container {
        let list = |q: &str| Some(BTreeMap::from([("memory".to_string(), Quantity(q.into()))]));
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: (!request.is_empty()).then(|| list(request)).flatten(),
                limits: (!limit.is_empty()).then(|| list(limit)).flatten(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn room(name: &str, allocatable: u128, requested: u128) -> NodeRoom {
        NodeRoom {
            name: name.into(),
            allocatable: Bytes(allocatable * GI),
            requested: Bytes(requested * GI),
        }
    }

    #[test]
    fn a_node_too_small_fails_naming_its_numbers() {
        let outcome = headroom(
            &[("paperclip".into(), Bytes(64 * GI))],
            &[room("arm-1", 16, 1)],
            "nodes with kubernetes.io/hostname=arm-1",
        );
        assert_eq!(outcome.status, Status::Fail);
        assert_eq!(
            outcome.detail,
            "the app pod's memory limits add up to 64Gi (paperclip 64Gi); no candidate node has \
             that free: arm-1 has 16Gi allocatable, 1Gi requested by other pods, 15Gi free"
        );
    }

    #[test]
    fn the_sidecar_counts_and_one_fitting_node_is_enough() {
        let containers = [
            ("paperclip".into(), Bytes(12 * GI)),
            ("paperclip-shell".into(), Bytes(2 * GI)),
        ];
        let outcome = headroom(
            &containers,
            &[room("mini-1", 64, 51), room("gpu-1", 128, 20)],
            "",
        );
        assert_eq!(outcome.status, Status::Pass, "{}", outcome.detail);
        assert!(
            outcome
                .detail
                .contains("14Gi (paperclip 12Gi + paperclip-shell 2Gi)")
        );
        assert!(
            outcome.detail.ends_with("fits on gpu-1 (108Gi free)"),
            "{}",
            outcome.detail
        );
    }

    #[test]
    fn pod_requests_follow_the_scheduler() {
        let spec = PodSpec {
            containers: vec![container("a", "1Gi", "2Gi"), container("b", "", "512Mi")],
            init_containers: Some(vec![container("init", "4Gi", "")]),
            ..Default::default()
        };
        assert_eq!(pod_request(&spec), Bytes(4 * GI));
        let spec = PodSpec {
            init_containers: None,
            ..spec
        };
        assert_eq!(pod_request(&spec), Bytes(GI + GI / 2));
    }

    fn oom_pod(limit: &str, last: bool) -> Pod {
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some("OOMKilled".into()),
                exit_code: 137,
                ..Default::default()
            }),
            ..Default::default()
        };
        Pod {
            spec: Some(PodSpec {
                containers: vec![container("paperclip", "512Mi", limit)],
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "paperclip".into(),
                    last_state: last.then(|| terminated.clone()),
                    state: (!last).then_some(terminated),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_earlier_oom_kill_warns_unless_the_limit_grows() {
        let pods = [oom_pod("2Gi", true)];
        let warning = earlier_runs(&pods, "paperclip", None, Bytes(2 * GI)).unwrap();
        assert_eq!(warning.status, Status::Warn);
        assert_eq!(
            warning.detail,
            "the app was OOMKilled at limit 2Gi; the profile asks for 2Gi"
        );
        assert_eq!(
            warning.fix.as_deref(),
            Some("raise app.resources.limits.memory above 2Gi")
        );
        assert!(earlier_runs(&pods, "paperclip", None, Bytes(12 * GI)).is_none());
        // A container terminated right now counts as well.
        assert!(earlier_runs(&[oom_pod("1Gi", false)], "paperclip", None, Bytes(GI)).is_some());
    }

    #[test]
    fn requests_and_limits_below_the_measured_memory_are_named() {
        let low_limit = measured_fit(Bytes(GI), Bytes(GI)).unwrap();
        assert_eq!(low_limit.status, Status::Fail);
        assert!(
            low_limit.detail.contains("limit 1Gi"),
            "{}",
            low_limit.detail
        );
        assert_eq!(
            low_limit.fix.as_deref(),
            Some("set app.resources.limits.memory to at least 1.5Gi")
        );
        let low_request = measured_fit(Bytes(GI / 2), Bytes(4 * GI)).unwrap();
        assert_eq!(low_request.status, Status::Warn);
        assert!(low_request.detail.contains("request 512Mi"));
        assert!(measured_fit(Bytes(GI), Bytes(4 * GI)).is_none());
    }

    #[test]
    fn shipped_profiles_fit_the_measured_memory() {
        for (name, _) in crate::profile::BUILTIN {
            let profile = crate::profile::load(name, &[]).unwrap().profile;
            let release = crate::render::render(&profile);
            let (_, app) = workload(&release, &profile, Role::App).unwrap();
            let (request, limit) = (container_request(app), memory_limit(app).unwrap());
            assert!(
                measured_fit(request, limit).is_none(),
                "{name}: {request} / {limit}"
            );
        }
    }

    #[test]
    fn lowering_the_running_limit_warns() {
        let warning = earlier_runs(&[], "paperclip", Some(Bytes(12 * GI)), Bytes(4 * GI)).unwrap();
        assert!(
            warning
                .detail
                .contains("12Gi memory limit; the profile lowers it to 4Gi")
        );
        assert!(earlier_runs(&[], "paperclip", Some(Bytes(GI)), Bytes(4 * GI)).is_none());
    }
}
