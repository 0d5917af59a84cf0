//! The harness's real node: a kubelet with containerd on this machine, running the real
//! Paperclip and PostgreSQL images the harness built. A test that needs Paperclip's own
//! behaviour (onboarding, `/api/health`, exec into the app, its files on the volume) installs
//! there.
//!
//! The node has the machine's two cores, and every real release holds a CPU request and a
//! gigabyte or more of memory until its namespace is gone. A test holds a [`Slot`] while its
//! release lives: few real releases run at once, and dropping the slot deletes the namespaces
//! it was given.

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::Harness;

/// Real releases alive at once: two fit the node's CPU requests beside another person's.
const SLOTS: usize = 2;

/// What a test needs from the harness to run on the real node.
#[derive(Clone)]
pub struct RealNode {
    pub node: String,
    pub image: String,
    pub previous_image: String,
    pub postgres_image: String,
    pub bitnami_image: String,
    pub storage_class: String,
    pub shell_image: Option<String>,
}

impl RealNode {
    /// The real node of the harness, or why there is none (a harness without its real node
    /// skips these tests and says so).
    pub fn from_harness(h: &Harness) -> Result<RealNode, String> {
        let var = |key: &str| var(h, key);
        Ok(RealNode {
            node: var("HARNESS_REAL_NODE")?,
            image: var("HARNESS_PAPERCLIP_IMAGE")?,
            previous_image: var("HARNESS_PAPERCLIP_IMAGE_PREVIOUS")?,
            postgres_image: var("HARNESS_POSTGRES_IMAGE")?,
            bitnami_image: var("HARNESS_BITNAMI_POSTGRES_IMAGE")?,
            storage_class: var("HARNESS_REAL_STORAGE_CLASS")?,
            shell_image: var("HARNESS_SHELL_IMAGE").ok(),
        })
    }

    /// The real node, or `None` after printing why the test `what` is skipped.
    pub fn or_skip(what: &str) -> Option<RealNode> {
        match RealNode::from_harness(Harness::shared()) {
            Ok(real) => Some(real),
            Err(why) => {
                eprintln!("skipped: {what} runs on the harness's real node, and {why}");
                None
            }
        }
    }

    /// A placement (as a profile's `placement` field) that pins a pod to this node and
    /// tolerates its taints.
    pub async fn placement(&self) -> serde_json::Value {
        let node = Api::<Node>::all(Harness::shared().client().await)
            .get(&self.node)
            .await
            .unwrap();
        let tolerations: Vec<serde_json::Value> = node
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .map(|t| serde_json::json!({"key": t.key, "operator": "Exists", "effect": t.effect}))
            .collect();
        serde_json::json!({
            "nodeSelector": {"kubernetes.io/hostname": self.node},
            "tolerations": tolerations,
        })
    }

    /// `--set` values that move the frank profile onto this node as shipped: the harness's
    /// images (Bitnami's database contract, as frank's), its storage class and its node. The
    /// metrics exporter has no image here, so it is left out.
    pub async fn frank_sets(&self) -> Vec<String> {
        let placement = self.placement().await.to_string();
        let mut sets = vec![
            format!("app.image={}", self.image),
            format!("database.image={}", self.bitnami_image),
            "database.metrics=null".to_string(),
            format!("storage.className={}", self.storage_class),
            format!("app.placement={placement}"),
            format!("database.placement={placement}"),
        ];
        if let Some(shell) = &self.shell_image {
            sets.push(format!("shell.image={shell}"));
        }
        sets
    }
}

/// A place for one test's releases on the real node; dropping it deletes their namespaces.
pub struct Slot {
    _permit: SemaphorePermit<'static>,
    namespaces: Vec<String>,
}

/// Waits for a free slot on the real node.
pub async fn slot() -> Slot {
    static SEMAPHORE: OnceLock<Semaphore> = OnceLock::new();
    let permit = SEMAPHORE
        .get_or_init(|| Semaphore::new(SLOTS))
        .acquire()
        .await
        .expect("the real node's semaphore is never closed");
    Slot {
        _permit: permit,
        namespaces: Vec::new(),
    }
}

impl Slot {
    /// Deletes `namespace` (and so frees the node of its pods) when the slot is dropped.
    pub fn holds(&mut self, namespace: &str) {
        self.namespaces.push(namespace.to_string());
    }
}

impl Slot {
    /// Deletes `namespace` now, for a test that is done with one release before its next.
    pub fn free(&mut self, namespace: &str) {
        self.namespaces.retain(|held| held != namespace);
        delete_namespaces(&[namespace.to_string()]);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A failed test drops its slot while unwinding too: the namespace goes either way.
        delete_namespaces(&self.namespaces);
    }
}

/// Deletes the namespaces without waiting, so the next test's install starts while the pods
/// terminate.
fn delete_namespaces(namespaces: &[String]) {
    if namespaces.is_empty() {
        return;
    }
    let _ = Harness::shared()
        .kubectl()
        .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
        .args(namespaces)
        .output();
}

/// Polls (with a deadline) until `paperclipctl status` says the app of the release in
/// `namespace` is healthy and done with its startup recovery: a real server that just
/// (re)started answers `starting` for a few seconds, longer on a loaded machine.
pub async fn settled(namespace: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
            .args(["status", "-n", namespace, "-o", "json"])
            .env("KUBECONFIG", Harness::shared().var("KUBECONFIG"))
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        let document: serde_json::Value =
            serde_json::from_slice(&status.stdout).unwrap_or_default();
        if document["health"]["status"] == "ok" && document["health"]["databaseReachable"] == true {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the app in {namespace} did not settle: {}\n{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The running (not terminating) app pod of the release in `namespace`.
pub async fn app_pod(namespace: &str) -> Pod {
    Api::<Pod>::namespaced(Harness::shared().client().await, namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/component=app"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .unwrap_or_else(|| panic!("no app pod in {namespace}"))
}

/// What a command run in a container printed, and whether it exited 0.
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` in the app container of the release in `namespace`, as `kubectl exec` does
/// (the container's user, uid 1000, and its workdir /app).
pub async fn exec_app(namespace: &str, command: &[&str]) -> Ran {
    let pod = app_pod(namespace).await;
    let name = pod.metadata.name.unwrap();
    exec(namespace, &name, "paperclip", command).await
}

/// Runs `command` in `container` of `pod` and collects what it printed.
pub async fn exec(namespace: &str, pod: &str, container: &str, command: &[&str]) -> Ran {
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, namespace);
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut process = pods
        .exec(pod, command.to_vec(), &params)
        .await
        .unwrap_or_else(|e| panic!("exec {command:?} in {pod}: {e}"));
    let (mut stdout, mut stderr) = (process.stdout().unwrap(), process.stderr().unwrap());
    let status = process.take_status().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        tokio::try_join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        )
    })
    .await
    .unwrap_or_else(|_| panic!("{command:?} in {pod} did not finish in 2 minutes"))
    .unwrap();
    let status = status.await.unwrap();
    Ran {
        success: status.status.as_deref() == Some("Success"),
        stdout: out,
        stderr: err,
    }
}

/// The shell sidecar image built from this checkout's `embedded/shell-image`, for a test of the
/// sidecar's own scripts. `shell_image` (HARNESS_SHELL_IMAGE) is the image of whichever
/// checkout's `up` last wrote the shared harness's variables; `tests/harness/shell-image`
/// builds and pushes this checkout's (a registry lookup when its content tag is there already).
pub async fn shell_image_of_this_checkout() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/shell-image");
    let out = tokio::process::Command::new(&script)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_string()
}

/// The harness variable `key`: the process's own environment first (a test run may point at
/// other images), then the harness's env file.
pub fn var(h: &Harness, key: &str) -> Result<String, String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| h.var_opt(key).map(str::to_string))
        .ok_or_else(|| format!("{key} is not set"))
}
