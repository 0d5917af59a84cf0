//! The harness cluster looks and behaves like the reference cluster wherever paperclipctl can
//! tell: its nodes, workloads that become Ready, volumes that bind, External Secrets that sync
//! from Infisical, `kubectl exec` into a database pod that reaches a real PostgreSQL, and
//! port-forwarding to a shell pod that reaches a real sshd.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, AttachParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::harness::Harness;

/// Generous for a loaded two-core machine; every wait below normally ends within seconds.
const DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn kubectl_and_the_server_are_kubernetes_1_33() {
    let output = Harness::shared()
        .kubectl()
        .args(["version", "--output=json"])
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "kubectl version: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let version: Value = serde_json::from_slice(&output.stdout).expect("kubectl prints JSON");
    for side in ["clientVersion", "serverVersion"] {
        let git_version = version[side]["gitVersion"].as_str().unwrap_or_default();
        assert!(
            git_version.starts_with("v1.33."),
            "{side} is {git_version:?}"
        );
    }
}

#[tokio::test]
async fn nodes_match_the_reference_cluster() {
    let harness = Harness::shared();
    let nodes = Api::<Node>::all(harness.client().await);

    // name, arch, cpu, memory, tainted for GPU workloads only
    let expected = [
        ("mini-1", "amd64", "8", "64Gi", false),
        ("mini-2", "amd64", "8", "64Gi", false),
        ("mini-3", "amd64", "8", "64Gi", false),
        ("gpu-1", "amd64", "32", "128Gi", true),
        ("arm-1", "arm64", "4", "16Gi", false),
    ];
    for (name, arch, cpu, memory, gpu_taint) in expected {
        let node = nodes
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("node {name}: {e}"));
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("kubernetes.io/arch").map(String::as_str),
            Some(arch),
            "{name} arch label"
        );
        assert_eq!(
            labels.get("kubernetes.io/os").map(String::as_str),
            Some("linux"),
            "{name} os label"
        );
        assert_eq!(
            labels.get("kubernetes.io/hostname").map(String::as_str),
            Some(name),
            "{name} hostname label"
        );

        let status = node.status.clone().unwrap_or_default();
        let info = status
            .node_info
            .clone()
            .unwrap_or_else(|| panic!("{name} has no nodeInfo"));
        assert_eq!(info.architecture, arch, "{name} nodeInfo.architecture");
        let allocatable = status.allocatable.clone().unwrap_or_default();
        assert_eq!(
            allocatable.get("cpu").map(|q| q.0.as_str()),
            Some(cpu),
            "{name} cpu"
        );
        assert_eq!(
            allocatable.get("memory").map(|q| q.0.as_str()),
            Some(memory),
            "{name} memory"
        );
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "{name} is not Ready");

        let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
        let has_gpu_taint = taints
            .iter()
            .any(|t| t.key == "nvidia.com/gpu" && t.effect == "NoSchedule");
        assert_eq!(
            has_gpu_taint, gpu_taint,
            "{name} nvidia.com/gpu:NoSchedule taint"
        );
    }
}

#[tokio::test]
async fn deployment_and_statefulset_with_a_longhorn_volume_become_ready() {
    let harness = Harness::shared();
    let client = harness.client().await;
    let ns = harness.namespace("smoke-workloads").await;
    let labels = |app: &str| json!({ "app.kubernetes.io/name": app });

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let deployment: Deployment = from_json(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "strategy": { "type": "Recreate" },
            "selector": { "matchLabels": labels("web") },
            "template": {
                "metadata": { "labels": labels("web") },
                "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] }
            }
        }
    }));
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let statefulset: StatefulSet = from_json(json!({
        "metadata": { "name": "db" },
        "spec": {
            "serviceName": "db",
            "replicas": 1,
            "selector": { "matchLabels": labels("db") },
            "template": {
                "metadata": { "labels": labels("db") },
                "spec": { "containers": [{
                    "name": "postgresql",
                    "image": "postgres:16",
                    "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/postgresql/data" }]
                }] }
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "longhorn",
                    "resources": { "requests": { "storage": "5Gi" } }
                }
            }]
        }
    }));
    statefulsets
        .create(&PostParams::default(), &statefulset)
        .await
        .expect("create statefulset");

    wait_for(
        &deployments,
        "web",
        "deployment web to have 1 available replica",
        |d: &Deployment| d.status.as_ref().and_then(|s| s.available_replicas) == Some(1),
    )
    .await;
    wait_for(
        &statefulsets,
        "db",
        "statefulset db to have 1 ready replica",
        |s: &StatefulSet| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
    )
    .await;

    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    let claim = wait_for(
        &claims,
        "data-db-0",
        "claim data-db-0 to be Bound",
        |c: &PersistentVolumeClaim| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        },
    )
    .await;
    let volume_name = claim
        .spec
        .and_then(|s| s.volume_name)
        .expect("a bound claim names its volume");
    let volume = Api::<PersistentVolume>::all(client)
        .get(&volume_name)
        .await
        .expect("the bound volume exists");
    let spec = volume.spec.expect("volume spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("longhorn"));
    assert_eq!(
        spec.capacity
            .unwrap_or_default()
            .get("storage")
            .map(|q| q.0.as_str()),
        Some("5Gi")
    );
    let claim_ref = spec.claim_ref.expect("the volume is bound to a claim");
    assert_eq!(
        (claim_ref.namespace.as_deref(), claim_ref.name.as_deref()),
        (Some(ns.as_str()), Some("data-db-0"))
    );
}

#[tokio::test]
async fn external_secrets_api_is_served_at_v1_only() {
    let client = Harness::shared().client().await;
    let v1 = client
        .list_api_group_resources("external-secrets.io/v1")
        .await
        .expect("external-secrets.io/v1 is served");
    let names: Vec<&str> = v1.resources.iter().map(|r| r.name.as_str()).collect();
    for kind in [
        "externalsecrets",
        "secretstores",
        "clustersecretstores",
        "clusterexternalsecrets",
    ] {
        assert!(
            names.contains(&kind),
            "external-secrets.io/v1 serves no {kind}: {names:?}"
        );
    }
    let v1beta1 = client
        .list_api_group_resources("external-secrets.io/v1beta1")
        .await;
    let still_served =
        v1beta1.is_ok_and(|list| list.resources.iter().any(|r| r.name == "externalsecrets"));
    assert!(
        !still_served,
        "external-secrets.io/v1beta1 ExternalSecrets are still served"
    );
}

#[tokio::test]
async fn external_secret_syncs_the_value_infisical_holds() {
    let harness = Harness::shared();
    let client = harness.client().await;
    let ns = harness.namespace("smoke-eso").await;
    let api_url = harness
        .var("INFISICAL_API_URL")
        .trim_end_matches('/')
        .to_string();
    let client_id = harness.var("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID");
    let client_secret = harness.var("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET");

    // Put a value into Infisical through its public API, as an operator would.
    let http = reqwest::Client::new();
    let login = infisical_call(
        http.post(format!("{api_url}/api/v1/auth/universal-auth/login"))
            .json(&json!({ "clientId": client_id, "clientSecret": client_secret })),
    )
    .await;
    let token = login["accessToken"]
        .as_str()
        .expect("login answers an accessToken")
        .to_string();
    let project = infisical_call(
        http.post(format!("{api_url}/api/v2/workspace"))
            .bearer_auth(&token)
            .json(&json!({ "projectName": ns })),
    )
    .await;
    let project_id = project["project"]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    let project_slug = project["project"]["slug"]
        .as_str()
        .expect("project slug")
        .to_string();
    let value = format!("sk-litellm-{ns}");
    infisical_call(
        http.post(format!(
            "{api_url}/api/v3/secrets/raw/PAPERCLIP_LITELLM_KEY"
        ))
        .bearer_auth(&token)
        .json(&json!({
            "workspaceId": project_id,
            "environment": "dev",
            "secretPath": "/",
            "secretValue": value,
            "type": "shared"
        })),
    )
    .await;

    // The same objects paperclipctl renders: credentials in a Secret, a SecretStore with the
    // Infisical provider, an ExternalSecret that renames the key and merges a static value.
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let credentials: Secret = from_json(json!({
        "metadata": { "name": "infisical-universal-auth" },
        "stringData": { "clientId": client_id, "clientSecret": client_secret }
    }));
    secrets
        .create(&PostParams::default(), &credentials)
        .await
        .expect("create credentials");

    let stores = eso_api(&client, &ns, "SecretStore");
    let store: DynamicObject = from_json(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": { "name": "infisical" },
        "spec": { "provider": { "infisical": {
            "hostAPI": api_url,
            "auth": { "universalAuthCredentials": {
                "clientId": { "name": "infisical-universal-auth", "key": "clientId" },
                "clientSecret": { "name": "infisical-universal-auth", "key": "clientSecret" }
            } },
            "secretsScope": { "projectSlug": project_slug, "environmentSlug": "dev", "secretsPath": "/" }
        } } }
    }));
    stores
        .create(&PostParams::default(), &store)
        .await
        .expect("create SecretStore");

    let external_secrets = eso_api(&client, &ns, "ExternalSecret");
    let external_secret: DynamicObject = from_json(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": { "name": "paperclip-llm-key" },
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": { "kind": "SecretStore", "name": "infisical" },
            "target": {
                "name": "paperclip-llm-key",
                "template": {
                    "mergePolicy": "Merge",
                    "data": { "OPENAI_BASE_URL": "http://litellm.example:4000/v1" }
                }
            },
            "data": [{ "secretKey": "OPENAI_API_KEY", "remoteRef": { "key": "PAPERCLIP_LITELLM_KEY" } }]
        }
    }));
    external_secrets
        .create(&PostParams::default(), &external_secret)
        .await
        .expect("create ExternalSecret");

    let synced = tokio::time::timeout(
        DEADLINE,
        await_condition(
            secrets.clone(),
            "paperclip-llm-key",
            |s: Option<&Secret>| {
                s.and_then(|s| s.data.as_ref())
                    .is_some_and(|d| d.contains_key("OPENAI_API_KEY"))
            },
        ),
    )
    .await;
    let secret = match synced {
        Ok(result) => result.expect("watch secrets").expect("the secret exists"),
        Err(_) => {
            let status = external_secrets
                .get("paperclip-llm-key")
                .await
                .map(|es| es.data["status"].clone())
                .unwrap_or_default();
            panic!("ExternalSecret did not sync within {DEADLINE:?}; its status: {status}")
        }
    };
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    assert_eq!(text("OPENAI_API_KEY"), Some(value));
    assert_eq!(
        text("OPENAI_BASE_URL").as_deref(),
        Some("http://litellm.example:4000/v1")
    );
}

#[tokio::test]
async fn exec_into_a_database_pod_reaches_postgres() {
    let harness = Harness::shared();
    let ns = harness.namespace("smoke-exec").await;
    let pods = Api::<Pod>::namespaced(harness.client().await, &ns);
    let pod = "paperclip-db-postgresql-0";
    ready_pod(&pods, pod, "database", "postgresql", "postgres:16").await;

    let exec = exec(
        &pods,
        pod,
        Some("postgresql"),
        &["psql", "-tAc", "SELECT 1"],
    )
    .await;
    assert!(exec.success, "psql failed: {}", exec.stderr);
    assert_eq!(exec.stdout.trim(), "1", "stderr: {}", exec.stderr);
}

#[tokio::test]
async fn a_namespaced_exec_named_after_the_pod_overrides_the_harness_default() {
    let harness = Harness::shared();
    let client = harness.client().await;
    let ns = harness.namespace("smoke-exec-override").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let pod = "paperclip-db-postgresql-0";
    ready_pod(&pods, pod, "database", "postgresql", "postgres:16").await;

    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Exec"));
    let override_exec: DynamicObject = from_json(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Exec",
        "metadata": { "name": pod },
        "spec": { "execs": [{ "local": { "envs": [{ "name": "PGPORT", "value": "1" }] } }] }
    }));
    Api::<DynamicObject>::namespaced_with(client, &ns, &resource)
        .create(&PostParams::default(), &override_exec)
        .await
        .expect("create the Exec override");

    // kwok picks the override up from its informer, so the first execs may still see the default.
    let command = ["sh", "-c", "echo \"$PGPORT\""];
    within("exec to use the namespaced override", async {
        while exec(&pods, pod, Some("postgresql"), &command)
            .await
            .stdout
            .trim()
            != "1"
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn port_forward_to_a_shell_pod_reaches_sshd() {
    let harness = Harness::shared();
    let ns = harness.namespace("smoke-forward").await;
    let pods = Api::<Pod>::namespaced(harness.client().await, &ns);
    let pod = "paperclip-shell-0";
    ready_pod(
        &pods,
        pod,
        "shell",
        "paperclip-shell",
        "paperclip-shell:test",
    )
    .await;

    let mut forwarder = pods
        .portforward(pod, &[2222])
        .await
        .expect("port-forward to port 2222");
    let mut stream = forwarder.take_stream(2222).expect("a stream for port 2222");
    // An SSH server speaks first: its identification line is what an ssh client sees.
    let mut banner = Vec::new();
    within("the sshd banner", async {
        let mut byte = [0u8; 1];
        while !banner.ends_with(b"\n") {
            let n = stream
                .read(&mut byte)
                .await
                .expect("read from the forwarded port");
            assert!(n > 0, "the forwarded connection closed before a banner");
            banner.push(byte[0]);
        }
    })
    .await;
    let banner = String::from_utf8_lossy(&banner);
    assert!(
        banner.starts_with("SSH-2.0-"),
        "not an SSH server: {banner:?}"
    );
    drop(stream);
    forwarder.abort();
}

pub(super) struct Exec {
    pub(super) success: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs `command` in a container the way `kubectl exec` does and collects what it printed.
/// `container: None` is the pod's first container, as with `kubectl exec` without `-c`.
pub(super) async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
) -> Exec {
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(container) = container {
        params = params.container(container);
    }
    let mut process = pods
        .exec(pod, command.to_vec(), &params)
        .await
        .unwrap_or_else(|e| panic!("exec {command:?} in {pod}: {e}"));
    let (mut stdout, mut stderr) = (
        process.stdout().expect("stdout"),
        process.stderr().expect("stderr"),
    );
    let status = process.take_status().expect("exec status");
    let (mut out, mut err) = (String::new(), String::new());
    within(&format!("{command:?} to finish"), async {
        tokio::try_join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        )
    })
    .await
    .expect("read the command's output");
    let status = status.await.expect("the command's exit status");
    Exec {
        success: status.status.as_deref() == Some("Success"),
        stdout: out,
        stderr: err,
    }
}

/// Creates a pod labelled as one of the product's components and waits until it is Ready.
async fn ready_pod(pods: &Api<Pod>, name: &str, component: &str, container: &str, image: &str) {
    let pod: Pod = from_json(json!({
        "metadata": {
            "name": name,
            "labels": { "app.kubernetes.io/component": component }
        },
        "spec": { "containers": [{ "name": container, "image": image }] }
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    wait_for(pods, name, &format!("pod {name} to be Ready"), |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await;
}

fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a well-formed object")
}

/// Waits until `name` exists and satisfies `ready`, or panics naming `what` after DEADLINE.
async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, ready: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let done = await_condition(api.clone(), name, move |k: Option<&K>| {
        k.is_some_and(&ready)
    });
    within(what, done)
        .await
        .unwrap_or_else(|e| panic!("watching for {what}: {e}"))
        .unwrap_or_else(|| panic!("{what}: {name} was deleted"))
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}

fn eso_api(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("external-secrets.io", "v1", kind));
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Sends an Infisical API request and returns its JSON answer, panicking with the body on error.
async fn infisical_call(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("reach the Infisical double");
    let status = response.status();
    let body = response.text().await.expect("read the Infisical answer");
    assert!(status.is_success(), "Infisical answered {status}: {body}");
    serde_json::from_str(&body).expect("Infisical answers JSON")
}
