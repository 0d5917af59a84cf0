//! Which nodes a pod may land on, decided the way the scheduler filters them: the pod's
//! nodeSelector must match the node's labels, every NoSchedule/NoExecute taint must be
//! tolerated, and cordoned nodes take nothing new.
//!
//! Preflight checks an image's platforms and the memory headroom against exactly these nodes:
//! checking "some node" would have passed the arm64-only image that then failed on gpu-1.

use k8s_openapi::api::core::v1::{Node, PodSpec, Taint, Toleration};

use crate::image::Platform;

/// A node's name and the platform its container runtime pulls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlatform {
    pub name: String,
    pub platform: Platform,
}

impl NodePlatform {
    /// The node's platform from what its kubelet reports, falling back to the well-known labels
    /// (a node object written by hand may carry only those).
    pub fn of(node: &Node) -> NodePlatform {
        let label = |key: &str| {
            node.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
        };
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let non_empty = |s: &String| !s.is_empty();
        let os = info
            .map(|i| i.operating_system.clone())
            .filter(non_empty)
            .or_else(|| label("kubernetes.io/os"))
            .unwrap_or_else(|| "linux".into());
        let architecture = info
            .map(|i| i.architecture.clone())
            .filter(non_empty)
            .or_else(|| label("kubernetes.io/arch"))
            .unwrap_or_default();
        NodePlatform {
            name: node.metadata.name.clone().unwrap_or_default(),
            platform: Platform::new(&os, &architecture, None),
        }
    }
}

/// The nodes `pod` may be scheduled to, in the order given.
pub fn candidates<'a>(pod: &PodSpec, nodes: &'a [Node]) -> Vec<&'a Node> {
    nodes.iter().filter(|n| schedulable(pod, n)).collect()
}

fn schedulable(pod: &PodSpec, node: &Node) -> bool {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    let selected = pod.node_selector.iter().flatten().all(|(key, value)| {
        labels
            .and_then(|l| l.get(key))
            .is_some_and(|found| found == value)
    });
    let tolerations = pod.tolerations.as_deref().unwrap_or_default();
    let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
    selected
        && taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Whether `toleration` tolerates `taint`, by the rules of the core API: an empty effect matches
/// every effect, an empty key with `Exists` matches every taint, and `Equal` (the default
/// operator) needs the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_matches = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or_default();
    let exists = toleration.operator.as_deref() == Some("Exists");
    if !effect_matches {
        return false;
    }
    if key.is_empty() {
        return exists;
    }
    key == taint.key
        && (exists
            || toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, NodeSystemInfo};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A node like the harness's: hostname and arch labels, allocatable memory, taints.
    pub fn node(name: &str, arch: &str, memory: &str, taints: &[(&str, &str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([
                    ("kubernetes.io/hostname".into(), name.into()),
                    ("kubernetes.io/arch".into(), arch.into()),
                ])),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(key, value, effect)| Taint {
                            key: (*key).into(),
                            value: Some((*value).into()),
                            effect: (*effect).into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                allocatable: Some(BTreeMap::from([("memory".into(), Quantity(memory.into()))])),
                node_info: Some(NodeSystemInfo {
                    architecture: arch.into(),
                    operating_system: "linux".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    /// The reference cluster: three amd64 minis, a tainted amd64 GPU box, one arm64 node.
    pub fn cluster() -> Vec<Node> {
        vec![
            node("mini-1", "amd64", "64Gi", &[]),
            node("mini-2", "amd64", "64Gi", &[]),
            node(
                "gpu-1",
                "amd64",
                "128Gi",
                &[("nvidia.com/gpu", "true", "NoSchedule")],
            ),
            node("arm-1", "arm64", "16Gi", &[]),
        ]
    }

    pub fn toleration(key: &str, operator: &str, effect: Option<&str>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(operator.into()),
            effect: effect.map(Into::into),
            ..Default::default()
        }
    }

    fn names(pod: &PodSpec, nodes: &[Node]) -> Vec<String> {
        candidates(pod, nodes)
            .iter()
            .map(|n| n.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn untolerated_taints_keep_pods_off() {
        let pod = PodSpec::default();
        assert_eq!(names(&pod, &cluster()), ["mini-1", "mini-2", "arm-1"]);
    }

    #[test]
    fn selector_and_toleration_pin_to_the_gpu_node() {
        let pod = PodSpec {
            node_selector: Some(BTreeMap::from([(
                "kubernetes.io/hostname".into(),
                "gpu-1".into(),
            )])),
            tolerations: Some(vec![toleration(
                "nvidia.com/gpu",
                "Exists",
                Some("NoSchedule"),
            )]),
            ..Default::default()
        };
        assert_eq!(names(&pod, &cluster()), ["gpu-1"]);
        let without_toleration = PodSpec {
            tolerations: None,
            ..pod
        };
        assert!(names(&without_toleration, &cluster()).is_empty());
    }

    #[test]
    fn cordoned_nodes_are_skipped() {
        let mut nodes = cluster();
        nodes[0].spec.as_mut().unwrap().unschedulable = Some(true);
        assert_eq!(names(&PodSpec::default(), &nodes), ["mini-2", "arm-1"]);
    }

    #[test]
    fn toleration_matching_rules() {
        let taint = Taint {
            key: "nvidia.com/gpu".into(),
            value: Some("true".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        assert!(tolerates(
            &toleration("nvidia.com/gpu", "Exists", None),
            &taint
        ));
        assert!(tolerates(&toleration("", "Exists", None), &taint));
        assert!(!tolerates(&toleration("", "Equal", None), &taint));
        assert!(!tolerates(
            &toleration("nvidia.com/gpu", "Exists", Some("NoExecute")),
            &taint
        ));
        let mut equal = toleration("nvidia.com/gpu", "Equal", Some("NoSchedule"));
        assert!(!tolerates(&equal, &taint));
        equal.value = Some("true".into());
        assert!(tolerates(&equal, &taint));
        // The operator defaults to Equal.
        equal.operator = None;
        assert!(tolerates(&equal, &taint));
    }

    #[test]
    fn platform_from_node_info_or_labels() {
        let mut arm = node("arm-1", "arm64", "16Gi", &[]);
        assert_eq!(NodePlatform::of(&arm).platform.to_string(), "linux/arm64");
        arm.status = None;
        assert_eq!(NodePlatform::of(&arm).platform.to_string(), "linux/arm64");
    }
}
