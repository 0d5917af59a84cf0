//! The app pods of a release under test, made to behave like real ones for exec.
//!
//! KWOK runs `kubectl exec` on this machine and picks its environment by pod name only, so a
//! release's app pod gets a namespaced `Exec` named after it: the upstream-CLI stand-in with the
//! test's own PAPERCLIP_HOME, run as uid 1000 like the app container. The harness holds such pods
//! back from Ready until they carry the annotation below, which this fixture sets only once KWOK
//! serves the Exec — so an install never reaches onboarding before its pod can be exec'd into.
//!
//! The Exec carries the container's plain environment (with DATABASE_URL pointing at the
//! harness's PostgreSQL), as `kubectl exec` into a real container sees it: upstream's CLI reads
//! DATABASE_URL and PAPERCLIP_PUBLIC_URL from there. Port 3100 of every pod reaches the harness's
//! shared app stand-in; a test that needs another answer from the app starts an [`AppServer`] of
//! its own, which this fixture then forwards the pods' port 3100 to.
//!
//! The stand-ins are this checkout's (`tests/harness/app-stub`), whichever checkout started the
//! shared harness, and exec runs in the stand-in's copy of the image's workspace (`app/`, where
//! upstream's server package lives), as exec into the app image starts in `/app`.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use super::Harness;

/// The annotation that releases an app pod to become Ready (see the harness's pod-ready stage).
pub const EXEC_READY: &str = "harness.paperclipctl.io/exec-ready";

/// Serves exec into every app pod that appears in `namespace`, until the handle is dropped.
pub struct AppExec {
    task: JoinHandle<()>,
}

/// A stand-in for the app's HTTP endpoint of one test (app-stub/paperclip-server), stopped when
/// dropped.
pub struct AppServer {
    port: u16,
    _process: tokio::process::Child,
}

impl Drop for AppExec {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Harness {
    /// Starts serving exec for the app pods of `namespace` with PAPERCLIP_HOME = `home` (created,
    /// owned by uid 1000 like the app's volume).
    pub async fn serve_app_exec(&self, namespace: &str, home: &Path) -> AppExec {
        self.serve_app(namespace, home, None).await
    }

    /// Starts an app stand-in of its own with `args` (see app-stub/paperclip-server).
    pub async fn app_server(&self, args: &[&str]) -> AppServer {
        use tokio::io::AsyncBufReadExt;
        let script = stub_dir().join("paperclip-server");
        let mut process = tokio::process::Command::new(script)
            .args(["--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the app stand-in said {line:?}"));
        AppServer {
            port,
            _process: process,
        }
    }

    /// Like [`Harness::serve_app_exec`], and forwards the pods' port 3100 to `server`.
    pub async fn serve_app_exec_with_server(
        &self,
        namespace: &str,
        home: &Path,
        server: &AppServer,
    ) -> AppExec {
        self.serve_app(namespace, home, Some(server.port)).await
    }

    async fn serve_app(&self, namespace: &str, home: &Path, http_port: Option<u16>) -> AppExec {
        std::fs::create_dir_all(home).unwrap();
        std::os::unix::fs::chown(home, Some(1000), Some(1000)).unwrap();
        let client = self.client().await;
        let stub_path = format!("{}:/usr/local/bin:/usr/bin:/bin", stub_dir().display());
        let namespace = namespace.to_string();
        let home_text = home.display().to_string();
        let database_url = format!(
            "postgres://{}:{}@{}:{}/{}",
            self.var("HARNESS_PG_USER"),
            self.var("HARNESS_PG_PASSWORD"),
            self.var("HARNESS_PG_HOST"),
            self.var("HARNESS_PG_PORT"),
            self.var("HARNESS_PG_DATABASE")
        );
        let task = tokio::spawn(async move {
            let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
            let selector =
                "app.kubernetes.io/component=app,app.kubernetes.io/managed-by=paperclipctl";
            let mut stream = watcher(pods.clone(), watcher::Config::default().labels(selector))
                .default_backoff()
                .applied_objects()
                .boxed();
            // The watch reports every update of a pod; each pod is set up once.
            let mut handled = std::collections::BTreeSet::new();
            while let Some(Ok(pod)) = stream.next().await {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let served = pod
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(EXEC_READY));
                if served
                    || pod.metadata.deletion_timestamp.is_some()
                    || !handled.insert(name.clone())
                {
                    continue;
                }
                let mut envs = container_env(&pod, &database_url);
                envs.push(("PAPERCLIP_HOME".into(), home_text.clone()));
                envs.push(("PATH".into(), stub_path.clone()));
                create_exec(&client, &namespace, &name, &envs).await;
                wait_until_served(&pods, &name, &home_text).await;
                if let Some(port) = http_port {
                    create_port_forward(&client, &namespace, &name, port).await;
                    wait_until_forwarded(&pods, &name, port).await;
                }
                let patch = json!({"metadata": {"annotations": {EXEC_READY: "true"}}});
                pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        });
        AppExec { task }
    }
}

/// The stand-ins of this checkout.
fn stub_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/app-stub")
}

/// The app container's variables that have a plain value, as exec into it sees them; DATABASE_URL
/// (which the kubelet would expand from the password Secret) names the harness's PostgreSQL.
fn container_env(pod: &Pod, database_url: &str) -> Vec<(String, String)> {
    let container = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .find(|c| c.name == "paperclip");
    container
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| match (e.name.as_str(), &e.value) {
            ("DATABASE_URL", _) => Some((e.name.clone(), database_url.to_string())),
            (_, Some(value)) if !value.contains("$(") => Some((e.name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

async fn create_exec(client: &kube::Client, namespace: &str, pod: &str, envs: &[(String, String)]) {
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Exec");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "execs");
    let exec: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Exec",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"execs": [{"local": {
            "workDir": stub_dir().join("app"),
            "envs": envs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        }}]},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .create(&PostParams::default(), &exec)
        .await
        .unwrap();
}

/// Polls (with a deadline) until KWOK runs exec into `pod` with the new environment.
async fn wait_until_served(pods: &Api<Pod>, pod: &str, home: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let params = AttachParams::default()
        .container("paperclip")
        .stdout(true)
        .stderr(false);
    loop {
        if let Ok(mut process) = pods
            .exec(pod, ["printenv", "PAPERCLIP_HOME"], &params)
            .await
        {
            let mut out = String::new();
            if let Some(mut stdout) = process.stdout() {
                let _ = stdout.read_to_string(&mut out).await;
            }
            let _ = process.join().await;
            if out.trim() == home {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "KWOK never served the Exec for {pod}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PortForward named after `pod`, which KWOK prefers to the harness's ClusterPortForward.
async fn create_port_forward(client: &kube::Client, namespace: &str, pod: &str, port: u16) {
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "PortForward");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "portforwards");
    let forward: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"forwards": [{"ports": [3100], "target": {"address": "127.0.0.1", "port": port}}]},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .create(&PostParams::default(), &forward)
        .await
        .unwrap();
}

/// Polls (with a deadline) until port 3100 of `pod` reaches the stand-in on `port`, which names
/// its port in every answer.
async fn wait_until_forwarded(pods: &Api<Pod>, pod: &str, port: u16) {
    use tokio::io::AsyncWriteExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let expected = format!("x-stand-in-port: {port}\r\n");
    loop {
        if let Ok(mut forwarder) = pods.portforward(pod, &[3100]).await
            && let Some(mut stream) = forwarder.take_stream(3100)
        {
            let request = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n";
            let mut head = Vec::new();
            if stream.write_all(request).await.is_ok() {
                let mut buf = [0u8; 1024];
                // The headers end with an empty line; the body is not needed.
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
                    {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
            }
            forwarder.abort();
            if String::from_utf8_lossy(&head)
                .to_ascii_lowercase()
                .contains(&expected)
            {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "KWOK never forwarded port 3100 of {pod} to the stand-in on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
