//! Platforms (`os/architecture[/variant]`) as builders, registries and nodes name them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::ImageError;

/// A platform such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            // arm64 has only one variant in use; registries write it or leave it out at will.
            variant: variant
                .filter(|v| !(v.is_empty() || architecture == "arm64" && *v == "v8"))
                .map(str::to_string),
        }
    }

    /// Whether an image for `self` runs on `node`: same OS and architecture, and the same
    /// variant when both name one.
    pub fn serves(&self, node: &Platform) -> bool {
        self.os == node.os
            && self.architecture == node.architecture
            && match (&self.variant, &node.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !parts.iter().all(valid) {
            return Err(format!(
                "invalid platform {s:?}: expected os/architecture[/variant] such as linux/amd64"
            ));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/architecture[/variant] such as linux/amd64"
            )),
        }
    }
}

/// The platforms of the nodes a pod with `node_selector` can land on, read from each node's
/// `kubernetes.io/os` and `kubernetes.io/arch` labels (set by the kubelet on every node). An
/// empty selector means every node.
pub async fn placement_platforms(
    client: &kube::Client,
    node_selector: &BTreeMap<String, String>,
) -> Result<Vec<Platform>, ImageError> {
    let selector = node_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| ImageError::Cluster {
            message: format!("cannot list the nodes to find their platform: {e}"),
            help: Some(
                "pass --platform (e.g. linux/amd64) to build without asking the cluster".into(),
            ),
        })?;
    let platforms = node_platforms(&nodes.items);
    if platforms.is_empty() {
        return Err(ImageError::Input {
            message: format!(
                "no node matches the app's placement{}",
                if selector.is_empty() {
                    String::new()
                } else {
                    format!(" ({selector})")
                }
            ),
            help: Some("fix app.placement.nodeSelector in the profile, or pass --platform".into()),
        });
    }
    Ok(platforms)
}

/// The distinct platforms of `nodes`, sorted.
fn node_platforms(nodes: &[Node]) -> Vec<Platform> {
    let mut platforms: Vec<Platform> = nodes
        .iter()
        .filter_map(|node| {
            let labels = node.metadata.labels.as_ref()?;
            Some(Platform::new(
                labels.get("kubernetes.io/os")?,
                labels.get("kubernetes.io/arch")?,
                None,
            ))
        })
        .collect();
    platforms.sort();
    platforms.dedup();
    platforms
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[test]
    fn parses_and_prints_platforms() {
        let arm: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(arm.to_string(), "linux/arm/v7");
        // arm64/v8 is plain arm64.
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64"
        );
        for bad in ["amd64", "linux/", "Linux/amd64", "linux/amd64/v1/x"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_image_serves_nodes_of_its_os_and_architecture() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(p("linux/amd64").serves(&p("linux/amd64")));
        assert!(p("linux/arm/v7").serves(&p("linux/arm")));
        assert!(!p("linux/arm64").serves(&p("linux/amd64")));
        assert!(!p("linux/arm/v6").serves(&p("linux/arm/v7")));
    }

    #[test]
    fn node_platforms_are_distinct_and_skip_unlabelled_nodes() {
        let node = |arch: Option<&str>| Node {
            metadata: ObjectMeta {
                labels: arch.map(|a| {
                    [
                        ("kubernetes.io/os".to_string(), "linux".to_string()),
                        ("kubernetes.io/arch".to_string(), a.to_string()),
                    ]
                    .into()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let nodes = [
            node(Some("arm64")),
            node(Some("amd64")),
            node(Some("arm64")),
            node(None),
        ];
        let found: Vec<String> = node_platforms(&nodes)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(found, ["linux/amd64", "linux/arm64"]);
    }
}
