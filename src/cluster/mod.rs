//! The cluster: connecting with the user's kubeconfig, and turning API failures into messages
//! that say what was refused and what to do.

pub mod apply;
pub mod exec;
pub mod forward;
pub mod lock;
pub mod wait;

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{Error, Result};

/// A connected cluster.
pub struct Cluster {
    pub client: Client,
    /// The API server's URL, for messages.
    pub server: String,
    /// The kubeconfig context used (`None` for in-cluster credentials), for messages.
    pub context: Option<String>,
}

/// How long connecting may take before the API counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects with `kubeconfig` (or KUBECONFIG / ~/.kube/config, or in-cluster credentials) and
/// `context` (or the current one), and checks that the API answers.
pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Cluster> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let mut used_context = context.map(str::to_string);
    let config: std::result::Result<Config, String> = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                Error::cluster(
                    format!("cannot read kubeconfig {}: {e}", path.display()),
                    "pass --kubeconfig FILE or set KUBECONFIG to a readable kubeconfig",
                )
            })?;
            used_context = used_context.or_else(|| file.current_context.clone());
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| e.to_string())
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| e.to_string()),
        None => Config::infer().await.map_err(|e| e.to_string()),
    };
    let config = config.map_err(|e| {
        Error::cluster(
            format!("cannot load cluster credentials: {e}"),
            "pass --kubeconfig FILE and --context NAME, or run inside a cluster",
        )
    })?;
    if used_context.is_none() && kubeconfig.is_none() {
        used_context = Kubeconfig::read().ok().and_then(|k| k.current_context);
    }
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| {
        Error::cluster(
            format!("cannot build a client for {server}: {e}"),
            "check the kubeconfig's server and certificates",
        )
    })?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(Cluster {
            client,
            server,
            context: used_context,
        }),
        Ok(Err(e)) => Err(Error::cluster(
            format!("the Kubernetes API at {server} did not answer: {e}"),
            "check that the cluster is up and that --context names the right one",
        )),
        Err(_) => Err(Error::cluster(
            format!(
                "the Kubernetes API at {server} did not answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ),
            "check the network path to the API server (VPN, firewall) and --context",
        )),
    }
}

/// The kinds the API server serves in `group_version` (e.g. `external-secrets.io/v1`), or `None`
/// when it does not serve that group version at all. A group nobody serves answers with a bare
/// 404 whose body is no `Status`, which `is_not_found()` does not recognise: the code decides.
pub async fn served_kinds(
    client: &kube::Client,
    group_version: &str,
) -> kube::Result<Option<Vec<String>>> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(Some(list.resources.into_iter().map(|r| r.kind).collect())),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Describes a failed API call: a 403 names the verb and resource that RBAC refused.
pub fn api_error(e: kube::Error, verb: &str, resource: &str, namespace: Option<&str>) -> Error {
    let place = namespace
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default();
    match &e {
        kube::Error::Api(status) if status.code == 403 => Error::cluster(
            format!("forbidden: {verb} {resource}{place}"),
            format!(
                "grant your user `{verb}` on `{resource}`{place} (e.g. a RoleBinding to the `admin` ClusterRole)"
            ),
        ),
        kube::Error::Api(status) if status.code == 404 => Error::cluster(
            format!(
                "{resource} not found{place} while trying to {verb} it: {}",
                status.message
            ),
            "is the CRD installed / the namespace there?",
        ),
        _ => Error::cluster(
            format!("cannot {verb} {resource}{place}: {e}"),
            "run again; if it persists, check the API server's health",
        ),
    }
}
