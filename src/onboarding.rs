//! Onboarding: runs upstream's `paperclipai onboard` inside the app container, once, and then
//! restarts the app so that it runs with what onboarding wrote.
//!
//! Upstream's `onboard --yes` writes the instance's files and then starts a whole server of its
//! own (CLI `onboard.ts`: `--yes` means "start immediately"; there is no option that skips it).
//! In the image `pnpm paperclipai` is a process tree (pnpm, node, node), and that second server
//! ignores SIGTERM: stopping the first pid leaves a ~640 MB server with its own schedulers and
//! backups on the same database. So the script waits until the configuration is saved, freezes
//! every process below the one it started (SIGSTOP, so none can fork meanwhile), kills them all,
//! and fails when any is still there. A `config.json` already on the volume means onboarding
//! happened: nothing runs.
//!
//! Upstream's server reads `instances/default/.env` (the agent JWT secret and the tool-action
//! signing secret onboarding creates) and `config.json` only at start (server `config.js`), so
//! the app that ran during onboarding says "Agent JWT missing" until it starts again:
//! [`restart_app`] does that. The volume stays the one place these secrets live, and backups
//! carry them with it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::cluster::exec::Container;
use crate::cluster::{api_error, wait};
use crate::error::{Error, Result};
use crate::render::meta::{self, Component};
use crate::render::{Object, Wave};

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
# Upstream's image runs its CLI from the workspace (`pnpm paperclipai`); an image installed from
# the npm registry has `paperclipai` on PATH instead.
cli() {
  if [ -d /app ] && command -v pnpm >/dev/null 2>&1; then (cd /app && pnpm paperclipai "$@"); else paperclipai "$@"; fi
}
log=$(mktemp 2>/dev/null || echo "/tmp/paperclipctl-onboard.$$.log")
cli onboard --yes --bind lan >"$log" 2>&1 &
pid=$!
# "pid ppid state" of every process, read from /proc (the command name may hold spaces).
processes() {
  for stat in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$stat" || continue
    fields=${line##*) }
    set -- $fields
    echo "${line%% *} $2 $1"
  done
}
# The pids below $pid, found by parent until no new one turns up; each is stopped when found.
tree() {
  found=" $pid "
  grew=1
  while [ "$grew" = 1 ]; do
    grew=0
    while read -r p parent state; do
      case "$found" in *" $p "*) continue ;; esac
      case "$found" in *" $parent "*) found="$found$p "; grew=1; kill -STOP "$p" 2>/dev/null ;; esac
    done <<EOF_PROCESSES
$(processes)
EOF_PROCESSES
  done
  echo "$found"
}
tries=0
# The configuration is saved last, after .env and the master key.
until [ -s "$instance/config.json" ] && grep -q "Configuration saved" "$log" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || break
  tries=$((tries + 1))
  [ "$tries" -gt 600 ] && break
  sleep 0.2
done
kill -STOP "$pid" 2>/dev/null
all=$(tree)
for p in $all; do kill -KILL "$p" 2>/dev/null; done
wait "$pid" 2>/dev/null
left=""
tries=0
while :; do
  left=""
  for p in $all; do
    read -r line 2>/dev/null <"/proc/$p/stat" || continue
    fields=${line##*) }
    set -- $fields
    [ "$1" = Z ] || left="$left $p"
  done
  [ -z "$left" ] && break
  tries=$((tries + 1))
  [ "$tries" -gt 50 ] && break
  sleep 0.1
done
if [ -n "$left" ]; then
  echo "paperclipctl-onboarding: left-running$left"
  exit 1
fi
if [ ! -s "$instance/config.json" ]; then
  echo "paperclipctl-onboarding: failed"
  tail -n 20 "$log"
  rm -f "$log"
  exit 1
fi
rm -f "$log"
echo "paperclipctl-onboarding: onboarded"
cli auth bootstrap-ceo 2>&1 | grep -i 'invite url' || true
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
    let app = Container {
        pods: &pods,
        namespace,
        pod: pod.clone(),
        name: meta::APP_NAME,
    };
    let exec = async {
        let (output, exit) = app.capture(SCRIPT).await?;
        Ok::<_, Error>((output, exit.status))
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
    parse(&output, &status, &pod, namespace)
}

/// Starts the app of `release` again, so that its server reads the `.env` and `config.json`
/// onboarding just wrote: scaled to zero, its pods gone (two servers never share the volume),
/// scaled back, and waited for like the install's app wave.
pub async fn restart_app(
    client: &kube::Client,
    release: &crate::render::Release,
    timeout: Duration,
    progress: &(dyn Fn(crate::ui::progress::Event<'_>) + Sync),
) -> Result<()> {
    let namespace = release.namespace.as_str();
    let app = release
        .objects()
        .find(|o| matches!(o, Object::Deployment(_)) && o.name() == meta::APP_NAME)
        .expect("a release has the app Deployment")
        .clone();
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    use crate::backup::restore::{scale, stop};
    scale(&deployments, namespace, 0).await?;
    let stopped = stop(
        &pods,
        namespace,
        timeout,
        "the app was scaled back up without the restart",
    )
    .await;
    // Back to one replica whatever happened: an app left at 0 is an outage.
    scale(&deployments, namespace, 1).await?;
    stopped?;
    // A watch may first show the Deployment as it was before the scale-down, ready with the pod
    // just stopped: the wait starts once its controller has seen the scale-up.
    let generation = deployments
        .get(meta::APP_NAME)
        .await
        .map_err(|e| api_error(e, "get", "deployments", Some(namespace)))?
        .metadata
        .generation;
    let seen = kube::runtime::wait::await_condition(
        deployments,
        meta::APP_NAME,
        move |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()?.observed_generation) >= generation
        },
    );
    tokio::time::timeout(timeout, seen)
        .await
        .map_err(|_| {
            Error::not_healthy(
                format!(
                    "the Deployment controller did not take up the restart of Deployment/{} \
                     within {}s",
                    meta::APP_NAME,
                    timeout.as_secs()
                ),
                format!(
                    "look at it: kubectl describe deployment -n {namespace} {}",
                    meta::APP_NAME
                ),
            )
        })?
        .map_err(|e| {
            Error::cluster(
                format!("cannot watch Deployment/{}: {e}", meta::APP_NAME),
                "run the install again",
            )
        })?;
    let gate = Wave {
        number: 1,
        title: "app",
        wait_for: vec![app.id()],
        objects: vec![app],
    };
    wait::wave(client, namespace, &gate, timeout, progress).await
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
fn parse(output: &str, status: &str, pod: &str, namespace: &str) -> Result<Outcome> {
    if output.contains("paperclipctl-onboarding: already-onboarded") {
        return Ok(Outcome::AlreadyDone);
    }
    if let Some(left) = output
        .lines()
        .find_map(|l| l.strip_prefix("paperclipctl-onboarding: left-running"))
    {
        return Err(Error::not_healthy(
            format!(
                "onboarding in pod {pod} left upstream's processes running (pids{left}), \
                 a second Paperclip server among them"
            ),
            format!(
                "stop them: kubectl exec -n {namespace} {pod} -c {} -- kill -KILL{left}; then \
                 run `paperclipctl install` again",
                meta::APP_NAME
            ),
        ));
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
            parse(out, "Success", "p", "ns").unwrap(),
            Outcome::Onboarded {
                invite_url: Some("http://x:3100/invite/pcp_1".into())
            }
        );
        assert_eq!(
            parse(
                "paperclipctl-onboarding: already-onboarded\n",
                "",
                "p",
                "ns"
            )
            .unwrap(),
            Outcome::AlreadyDone
        );
        let left = parse(
            "paperclipctl-onboarding: left-running 41 42\n",
            "Failure",
            "p",
            "ns",
        )
        .unwrap_err();
        assert!(left.to_string().contains("(pids 41 42)"), "{left}");
        match &left {
            Error::NotHealthy {
                help: Some(help), ..
            } => assert!(help.contains("kubectl exec -n ns p -c paperclip -- kill -KILL 41 42")),
            other => panic!("{other:?}"),
        }
        let e = parse(
            "paperclipctl-onboarding: failed\nEACCES: permission denied\n",
            "Failure",
            "p",
            "ns",
        )
        .unwrap_err();
        assert!(e.to_string().contains("EACCES: permission denied"), "{e}");
    }
}
