//! App pods on KWOK's nodes, for the tests that need an installed release but not Paperclip's
//! own behaviour, and for the failures only KWOK can stage (the real Paperclip runs on the real
//! node: see [`super::real`]). KWOK runs no container, so this fixture gives a release's app
//! pod the least that paperclipctl reads from a running app, and nothing of upstream's CLI:
//!
//! - exec, which KWOK runs on this machine: a namespaced `Exec` named after the pod, as uid
//!   1000 like the app container, with PAPERCLIP_HOME a directory of the test's own that holds
//!   an onboarded instance already (`config.json`, `.env`, the master key), so onboarding finds
//!   nothing to do; the workdir is a workspace holding only the server package's version;
//! - port 3100, forwarded by a namespaced `PortForward` to a responder of the test's own that
//!   answers `GET /api/health` with the one answer the test stages ([`Health`]); the shell
//!   sidecar's port 2222 still reaches the harness's sshd.
//!
//! KWOK picks exec targets by pod name, known only once the pod exists, so the harness holds
//! such pods back from Ready until they carry [`EXEC_READY`], which this fixture sets once KWOK
//! serves both: an install never reads the app before it can.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::Harness;

/// The annotation that releases an app pod to become Ready (see the harness's pod-ready stage).
pub const EXEC_READY: &str = "harness.paperclipctl.io/exec-ready";

/// The version the workspace's server package reports (what `status` reads from the image).
pub const VERSION: &str = "0.0.0-kwok";

/// What the app answers to `GET /api/health`, as upstream 2026.916.1 answers an anonymous
/// caller of an authenticated instance (server `routes/health.ts`).
#[derive(Clone, Copy)]
pub enum Health {
    /// 200 `ok`: a freshly onboarded instance, its bootstrap invite open.
    Ok,
    /// 200 `starting`: the server's startup recovery still runs.
    Starting,
    /// 503 `database_unreachable`: the server runs, its database is gone.
    DatabaseUnreachable,
}

impl Health {
    fn answer(self) -> (u16, serde_json::Value) {
        let running = |status: &str| {
            json!({
                "status": status, "deploymentMode": "authenticated",
                "deploymentExposure": "private", "commit": null,
                "bootstrapStatus": "bootstrap_pending", "bootstrapInviteActive": true,
            })
        };
        match self {
            Health::Ok => (200, running("ok")),
            Health::Starting => (200, running("starting")),
            Health::DatabaseUnreachable => (
                503,
                json!({"status": "unhealthy", "version": VERSION, "error": "database_unreachable"}),
            ),
        }
    }
}

/// Serves the app pods of one namespace until dropped.
pub struct KwokApp {
    /// PAPERCLIP_HOME as exec into the app sees it: the volume's contents.
    pub home: tempfile::TempDir,
    _workspace: tempfile::TempDir,
    watch: JoinHandle<()>,
    responder: JoinHandle<()>,
}

impl Drop for KwokApp {
    fn drop(&mut self) {
        self.watch.abort();
        self.responder.abort();
    }
}

impl KwokApp {
    /// The app's PAPERCLIP_HOME (`/paperclip` in the image).
    pub fn paperclip_home(&self) -> PathBuf {
        self.home.path().join("paperclip")
    }
}

impl Harness {
    /// Starts serving the app pods that appear in `namespace`, answering health with `health`.
    pub async fn kwok_app(&self, namespace: &str, health: Health) -> KwokApp {
        let home = tempfile::tempdir().unwrap();
        onboarded_home(&home.path().join("paperclip"));
        let workspace = tempfile::tempdir().unwrap();
        server_package(workspace.path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let responder = tokio::spawn(respond(listener, health));
        let client = self.client().await;
        let home_path = home.path().join("paperclip").display().to_string();
        let sshd_port: u16 = self.var("HARNESS_SSHD_PORT").parse().unwrap();
        let workdir = workspace.path().to_path_buf();
        let namespace = namespace.to_string();
        let watch = tokio::spawn(async move {
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
                let mut envs = container_env(&pod);
                envs.push(("PAPERCLIP_HOME".into(), home_path.clone()));
                envs.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
                let envs: Vec<_> = envs
                    .iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect();
                let exec = json!({"execs": [{"local": {
                    "workDir": workdir,
                    "envs": envs,
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                }}]});
                create(&client, &namespace, "Exec", "execs", &name, exec).await;
                // The pod's own PortForward replaces the harness's defaults for it: the shell
                // sidecar's ports keep going to the harness's sshd.
                let forward = json!({"forwards": [
                    {"ports": [3100], "target": {"address": "127.0.0.1", "port": port}},
                    {"ports": [2222, 22], "target": {"address": "127.0.0.1", "port": sshd_port}},
                ]});
                create(
                    &client,
                    &namespace,
                    "PortForward",
                    "portforwards",
                    &name,
                    forward,
                )
                .await;
                wait_until_served(&pods, &name, &workdir, port).await;
                let patch = json!({"metadata": {"annotations": {EXEC_READY: "true"}}});
                pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        });
        KwokApp {
            home,
            _workspace: workspace,
            watch,
            responder,
        }
    }
}

/// The app container's variables that have a plain value, as exec into it sees them (those the
/// kubelet would fill from Secrets are left out: nothing here reads them).
fn container_env(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| c.name == "paperclip")
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| match &e.value {
            Some(value) if !value.contains("$(") => Some((e.name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

/// An instance as upstream's onboarding leaves it, owned by the app's uid.
fn onboarded_home(home: &Path) {
    let instance = home.join("instances/default");
    std::fs::create_dir_all(instance.join("secrets")).unwrap();
    std::fs::write(instance.join("config.json"), b"{}").unwrap();
    std::fs::write(
        instance.join(".env"),
        b"PAPERCLIP_AGENT_JWT_SECRET=kwok\nPAPERCLIP_TOOL_ACTION_SIGNING_SECRET=kwok\n",
    )
    .unwrap();
    std::fs::write(instance.join("secrets/master.key"), b"kwok-master-key\n").unwrap();
    for entry in walk(home) {
        std::os::unix::fs::chown(&entry, Some(1000), Some(1000)).unwrap();
    }
}

/// `dir` and everything below it.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            found.extend(walk(&entry.unwrap().path()));
        }
    }
    found
}

/// The server package where the image has it, with the version module upstream's server
/// reports from (`dist/version.js`).
fn server_package(workspace: &Path) {
    let package = workspace.join("node_modules/@paperclipai/server");
    std::fs::create_dir_all(package.join("dist")).unwrap();
    std::fs::write(
        package.join("package.json"),
        json!({"name": "@paperclipai/server", "version": VERSION, "type": "module"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        package.join("dist/version.js"),
        format!("export const serverVersion = \"{VERSION}\";\n"),
    )
    .unwrap();
}

/// Answers every request on `listener` with `health`'s answer, and names the port it listens
/// on in `x-kwok-app-port`, so the fixture sees when a port-forward reaches it.
async fn respond(listener: tokio::net::TcpListener, health: Health) {
    let port = listener.local_addr().unwrap().port();
    let (status, body) = health.answer();
    let body = body.to_string();
    let reason = if status == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\nx-kwok-app-port: {port}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    while let Ok((mut stream, _)) = listener.accept().await {
        let answer = answer.clone();
        tokio::spawn(async move {
            // The request's head ends with an empty line; its content does not matter.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

async fn create(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    plural: &str,
    pod: &str,
    spec: serde_json::Value,
) {
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", kind);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": pod, "namespace": namespace},
        "spec": spec,
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
    .create(&PostParams::default(), &object)
    .await
    .unwrap();
}

/// Polls (with a deadline) until KWOK runs exec into `pod` in `workdir` and forwards its port
/// 3100 to the responder on `port`.
async fn wait_until_served(pods: &Api<Pod>, pod: &str, workdir: &Path, port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(exec_served(pods, pod, workdir).await && forwarded(pods, pod, port).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "KWOK never served exec and port 3100 of {pod}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn exec_served(pods: &Api<Pod>, pod: &str, workdir: &Path) -> bool {
    let params = AttachParams::default()
        .container("paperclip")
        .stdout(true)
        .stderr(false);
    let Ok(mut process) = pods.exec(pod, ["pwd"], &params).await else {
        return false;
    };
    let mut out = String::new();
    if let Some(mut stdout) = process.stdout() {
        let _ = stdout.read_to_string(&mut out).await;
    }
    let _ = process.join().await;
    Path::new(out.trim()) == workdir
}

async fn forwarded(pods: &Api<Pod>, pod: &str, port: u16) -> bool {
    let Ok(mut forwarder) = pods.portforward(pod, &[3100]).await else {
        return false;
    };
    let Some(mut stream) = forwarder.take_stream(3100) else {
        return false;
    };
    let mut head = Vec::new();
    if stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .is_ok()
    {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    }
    forwarder.abort();
    String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains(&format!("x-kwok-app-port: {port}\r\n"))
}
