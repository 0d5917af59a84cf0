//! Onboarding: runs upstream's `paperclipai onboard` inside the app container, once.
//!
//! Upstream's `onboard --yes` writes the instance config and then starts a server of its own,
//! which would never return and would fight the server already running in the pod. So the
//! command runs in the background inside the container; the script stops it as soon as its
//! files exist. A `config.json` already on the volume means onboarding happened: nothing runs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;

use crate::cluster::api_error;
use crate::error::{Error, Result};
use crate::render::meta::{self, Component};

/// How long onboarding may take inside the pod before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Runs in the app container (as its user, uid 1000, so files it writes stay writable by the
/// app). Exit codes of upstream's CLI are unreliable, so success is judged by the files.
const SCRIPT: &str = r#"
home="${PAPERCLIP_HOME:-/paperclip}"
instance="$home/instances/default"
if [ -f "$instance/config.json" ]; then
  echo "paperclipctl-onboarding: already-onboarded"
  exit 0
fi
cd /app 2>/dev/null || true
log=$(mktemp 2>/dev/null || echo "/tmp/paperclipctl-onboard.$$.log")
pnpm paperclipai onboard --yes --bind lan >"$log" 2>&1 &
pid=$!
tries=0
until [ -s "$instance/config.json" ] && { [ -n "${PAPERCLIP_SECRETS_MASTER_KEY:-}" ] || [ -s "$instance/secrets/master.key" ]; }; do
  kill -0 "$pid" 2>/dev/null || break
  tries=$((tries + 1))
  [ "$tries" -gt 600 ] && break
  sleep 0.2
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ ! -s "$instance/config.json" ]; then
  echo "paperclipctl-onboarding: failed"
  tail -n 20 "$log"
  rm -f "$log"
  exit 1
fi
rm -f "$log"
echo "paperclipctl-onboarding: onboarded"
pnpm paperclipai auth bootstrap-ceo 2>&1 | grep -i 'invite url' || true
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Onboarding ran now; the bootstrap invite, when upstream printed one.
    Onboarded { invite_url: Option<String> },
    /// The volume already held an onboarded instance.
    AlreadyDone,
}

/// Onboards the release's running app pod in `namespace`.
pub async fn run(client: &kube::Client, namespace: &str) -> Result<Outcome> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let pod = running_app_pod(&pods, namespace, "onboard").await?;
    let params = AttachParams::default()
        .container(meta::APP_NAME)
        .stdout(true)
        .stderr(true)
        .stdin(false);
    let exec = async {
        let mut process = pods
            .exec(&pod, ["sh", "-c", SCRIPT], &params)
            .await
            .map_err(|e| api_error(e, "create", "pods/exec", Some(namespace)))?;
        let mut output = String::new();
        if let Some(mut stdout) = process.stdout() {
            stdout
                .read_to_string(&mut output)
                .await
                .map_err(Error::Output)?;
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.ok();
        Ok::<_, Error>((output, status.and_then(|s| s.status).unwrap_or_default()))
    };
    let (output, status) = tokio::time::timeout(TIMEOUT, exec).await.map_err(|_| {
        Error::not_healthy(
            format!(
                "onboarding in pod {pod} did not finish within {}s",
                TIMEOUT.as_secs()
            ),
            format!(
                "look at the pod's processes: kubectl exec -n {namespace} {pod} -c {} -- ps",
                meta::APP_NAME
            ),
        )
    })??;
    parse(&output, &status, &pod)
}

/// The name of a running (not terminating) app pod of the release in `namespace`; `purpose`
/// ends the message "no running app pod to …" when there is none.
pub(crate) async fn running_app_pod(
    pods: &Api<Pod>,
    namespace: &str,
    purpose: &str,
) -> Result<String> {
    find_running_app_pod(pods, namespace).await?.ok_or_else(|| {
        Error::not_healthy(
            format!("no running app pod to {purpose}"),
            "run `paperclipctl install` again once the app is Ready",
        )
    })
}

/// The name of a running app pod of the release in `namespace`, if there is one.
pub(crate) async fn find_running_app_pod(
    pods: &Api<Pod>,
    namespace: &str,
) -> Result<Option<String>> {
    Ok(app_pods(pods, namespace)
        .await?
        .into_iter()
        .find(is_running)
        .and_then(|p| p.metadata.name))
}

/// Whether a pod runs and is not on its way out: one that can be exec'd into for a while.
pub(crate) fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Every pod of the release's app in `namespace`, terminating ones included.
pub(crate) async fn app_pods(pods: &Api<Pod>, namespace: &str) -> Result<Vec<Pod>> {
    let selector = meta::selector(Component::App)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, "list", "pods", Some(namespace)))?;
    Ok(list.items)
}

/// Reads the script's output: its own marker lines, and upstream's `Invite URL:` line (which
/// upstream prefixes with prompt decorations such as `│`).
fn parse(output: &str, status: &str, pod: &str) -> Result<Outcome> {
    if output.contains("paperclipctl-onboarding: already-onboarded") {
        return Ok(Outcome::AlreadyDone);
    }
    if output.contains("paperclipctl-onboarding: onboarded") {
        let invite_url = output.lines().find_map(|line| {
            let at = line.to_ascii_lowercase().find("invite url:")?;
            line[at + "invite url:".len()..]
                .split_whitespace()
                .next()
                .map(str::to_string)
        });
        return Ok(Outcome::Onboarded { invite_url });
    }
    let tail: Vec<&str> = output
        .lines()
        .filter(|l| !l.starts_with("paperclipctl-onboarding:"))
        .collect();
    Err(Error::not_healthy(
        format!(
            "onboarding failed in pod {pod} ({status}): {}",
            tail.join("\n")
        ),
        "fix what upstream's output says and run `paperclipctl install` again; onboarding runs until it succeeds once",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_invite_url_behind_prompt_decorations() {
        let out =
            "paperclipctl-onboarding: onboarded\n│  Invite URL: http://x:3100/invite/pcp_1 \n";
        assert_eq!(
            parse(out, "Success", "p").unwrap(),
            Outcome::Onboarded {
                invite_url: Some("http://x:3100/invite/pcp_1".into())
            }
        );
        assert_eq!(
            parse("paperclipctl-onboarding: already-onboarded\n", "", "p").unwrap(),
            Outcome::AlreadyDone
        );
        let e = parse(
            "paperclipctl-onboarding: failed\nEACCES: permission denied\n",
            "Failure",
            "p",
        )
        .unwrap_err();
        assert!(e.to_string().contains("EACCES: permission denied"), "{e}");
    }
}
