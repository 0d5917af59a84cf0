//! The app pods of a release under test, made to behave like real ones for exec.
//!
//! KWOK runs `kubectl exec` on this machine and picks its environment by pod name only, so a
//! release's app pod gets a namespaced `Exec` named after it: the upstream-CLI stand-in with the
//! test's own PAPERCLIP_HOME, run as uid 1000 like the app container. The harness holds such pods
//! back from Ready until they carry the annotation below, which this fixture sets only once KWOK
//! serves the Exec — so an install never reaches onboarding before its pod can be exec'd into.

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

impl Drop for AppExec {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Harness {
    /// Starts serving exec for the app pods of `namespace` with PAPERCLIP_HOME = `home` (created,
    /// owned by uid 1000 like the app's volume).
    pub async fn serve_app_exec(&self, namespace: &str, home: &Path) -> AppExec {
        std::fs::create_dir_all(home).unwrap();
        std::os::unix::fs::chown(home, Some(1000), Some(1000)).unwrap();
        let client = self.client().await;
        let stub_path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.var("HARNESS_APP_STUB_DIR")
        );
        let namespace = namespace.to_string();
        let home_text = home.display().to_string();
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
                create_exec(&client, &namespace, &name, &home_text, &stub_path).await;
                wait_until_served(&pods, &name, &home_text).await;
                let patch = json!({"metadata": {"annotations": {EXEC_READY: "true"}}});
                pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        });
        AppExec { task }
    }
}

async fn create_exec(client: &kube::Client, namespace: &str, pod: &str, home: &str, path: &str) {
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Exec");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "execs");
    let exec: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Exec",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"execs": [{"local": {
            "workDir": home,
            "envs": [{"name": "PAPERCLIP_HOME", "value": home}, {"name": "PATH", "value": path}],
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
