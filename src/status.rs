//! The state of an installed release, read from the cluster: the latest release record, every
//! object it lists, the pods, how full the volumes are, and the app's own `/api/health`.
//!
//! The record's inventory says which objects to look at, so `status` needs no profile and sees
//! exactly what the last install applied. Anything wrong is a *problem* (the command exits
//! non-zero, so it can gate CI); anything that will soon be wrong is a *warning* (exit 0).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::api_error;
use crate::cluster::apply::api_resource;
use crate::cluster::exec::Container;
use crate::cluster::wait::{self, Readiness, Synced};
use crate::error::{Error, Result};
use crate::health::{self, Health};
use crate::release::{self, Record};
use crate::render::Object;
use crate::render::meta::{self, Component};

/// Above this share of a volume in use, status warns: Paperclip's hourly backups fill a volume
/// steadily, and a full one stops both the app and PostgreSQL.
pub const USAGE_WARN_PERCENT: u8 = 80;

/// How long one exec into a pod may take; a stuck exec must not hold the report.
pub(crate) const EXEC_TIMEOUT: Duration = Duration::from_secs(15);

/// Upstream's automatic backups, relative to the app's home: the usual reason the app volume fills.
const BACKUPS_DIR: &str = "instances/default/data/backups";
/// The instance's keys, relative to the app's home. Upstream refuses to start when this
/// directory is not owned by its own uid (server `services/decision-signing.js`: "… must be
/// owned by the Paperclip process user").
const SECRETS_DIR: &str = "instances/default/secrets";

/// Everything `status` found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespace: String,
    pub healthy: bool,
    pub release: Record,
    pub objects: Vec<ObjectState>,
    pub pods: Vec<PodState>,
    pub volumes: Vec<VolumeUsage>,
    pub health: HealthState,
    /// What makes the release unhealthy; empty when it is healthy.
    pub problems: Vec<String>,
    /// What needs attention soon but does not make the release unhealthy.
    pub warnings: Vec<String>,
    /// The shell sidecar's last reconcile summary (the line its MOTD shows), when there is a
    /// sidecar running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectState {
    /// `Kind/name`.
    pub object: String,
    pub healthy: bool,
    /// An optional ExternalSecret: the app runs without it, so not being synced is a warning.
    pub optional: bool,
    /// In a few words: `1/1 ready`, `Bound`, `missing`, the Ready condition's message.
    pub detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodState {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// Why a container last terminated (e.g. `OOMKilled`), when one did.
    pub last_termination: Option<String>,
    /// A condition that waiting will not fix, with what to do about it.
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeUsage {
    pub pod: String,
    pub container: String,
    pub path: String,
    /// `None` when `df` could not be run; `error` then says why.
    pub used_percent: Option<u8>,
    pub used_kib: Option<u64>,
    pub size_kib: Option<u64>,
    /// Size of upstream's backups directory (app volume only).
    pub backups_kib: Option<u64>,
    /// Owner of the instance's `secrets/` directory and the app's own uid (app volume only).
    pub secrets_owner: Option<u32>,
    pub app_uid: Option<u32>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all_fields = "camelCase")]
pub enum HealthState {
    /// `/api/health` answered ok: the server reaches its database.
    #[serde(rename = "ok")]
    Ok {
        version: Option<String>,
        bootstrap_status: String,
        database_reachable: bool,
    },
    /// The server answers and reaches its database but still runs its startup recovery.
    #[serde(rename = "starting")]
    Starting {
        version: Option<String>,
        bootstrap_status: String,
        database_reachable: bool,
    },
    /// It could not be read, or reports a problem (an unreachable database among them).
    #[serde(rename = "unhealthy")]
    Unhealthy { problem: String },
}

/// Reads the status of the release in `namespace`. No release record there is an error of its
/// own ([`Error::NotInstalled`]), so scripts can tell "not installed" from "broken".
pub async fn read(client: &kube::Client, namespace: &str) -> Result<Report> {
    let release = release::history(client, namespace)
        .await?
        .pop()
        .ok_or_else(|| not_installed(namespace))?;
    let mut objects = Vec::new();
    for id in &release.inventory {
        objects.push(object_state(client, namespace, id).await?);
    }
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/instance={}", meta::RELEASE);
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, "list", "pods", Some(namespace)))?;
    let mut pod_states: Vec<PodState> = listed.items.iter().map(pod_state).collect();
    // A server that exits at start because it cannot reach PostgreSQL crash-loops: say so.
    for (state, pod) in pod_states.iter_mut().zip(&listed.items) {
        if state.problem.is_some()
            && !state.ready
            && is_app(pod)
            && let Some(failure) = health::database_failure_of(&pods, &state.name).await
        {
            state.problem = Some(
                match health::unreachable_database(
                    &format!("pod {} exited at start: {failure}", state.name),
                    namespace,
                ) {
                    Error::NotHealthy {
                        message,
                        help: Some(help),
                    } => format!("{message}; {help}"),
                    other => other.to_string(),
                },
            );
        }
    }
    let volumes = volumes(&pods, &listed.items).await;
    let running = listed
        .items
        .iter()
        .find(|p| crate::onboarding::is_running(p) && is_app(p));
    let health = match health::check(client, namespace).await {
        Ok(Health::Ok {
            starting,
            version,
            bootstrap,
            ..
        }) => {
            // Anonymous callers get no version from an authenticated instance: ask the image.
            let version = match (version, running) {
                (Some(v), _) => Some(v),
                (None, Some(pod)) => running_version(&pods, pod).await,
                (None, None) => None,
            };
            if starting {
                HealthState::Starting {
                    version,
                    bootstrap_status: bootstrap,
                    database_reachable: true,
                }
            } else {
                HealthState::Ok {
                    version,
                    bootstrap_status: bootstrap,
                    database_reachable: true,
                }
            }
        }
        Ok(Health::Unknown(problem)) => HealthState::Unhealthy { problem },
        Err(e) => HealthState::Unhealthy {
            problem: e.to_string(),
        },
    };
    let (problems, mut warnings) = judge(&objects, &pod_states, &volumes, &health);
    if let Some(pod) = running {
        warnings.extend(unknown_instance_paths(&pods, pod).await);
    }
    let shell = match running {
        Some(pod) => crate::shell::last_reconcile(&pods, pod).await,
        None => None,
    };
    // A failed reconcile leaves the shell usable, with fewer tools: worth a look, not unhealthy.
    if let Some(line) = shell.as_deref().filter(|l| crate::shell::is_failure(l)) {
        warnings.push(format!("the shell sidecar's last reconcile failed: {line}"));
    }
    Ok(Report {
        namespace: namespace.to_string(),
        healthy: problems.is_empty(),
        release,
        objects,
        pods: pod_states,
        volumes,
        health,
        problems,
        warnings,
        shell,
    })
}

/// The error for a namespace without a release record.
pub fn not_installed(namespace: &str) -> Error {
    Error::NotInstalled {
        message: format!("no Paperclip release is installed in namespace {namespace}"),
        help: Some(
            "install it with `paperclipctl install`, or name the release's namespace with \
             --namespace or --profile"
                .into(),
        ),
    }
}

async fn object_state(client: &kube::Client, namespace: &str, id: &str) -> Result<ObjectState> {
    let (kind, name) = id.split_once('/').unwrap_or((id, ""));
    let (resource, namespaced) = api_resource(kind);
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, "get", &resource.plural, Some(namespace)))?;
    let optional = found
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref()?.get(meta::OPTIONAL))
        .is_some_and(|v| v == "true");
    let (healthy, detail) = match found {
        None => (false, "missing".to_string()),
        // The whole object: a Deployment's readiness reads its generation too.
        Some(object) => object_health(kind, &serde_json::to_value(&object)?),
    };
    Ok(ObjectState {
        object: id.to_string(),
        healthy,
        optional,
        detail,
    })
}

/// Whether a live object of `kind` (its JSON) is healthy, and in a few words why (not).
fn object_health(kind: &str, data: &Value) -> (bool, String) {
    let number = |pointer: &str| data.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "StatefulSet" => {
            let want = data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let have = number("/status/readyReplicas");
            // Scaled to zero serves nothing: that is not a healthy Paperclip.
            let scaled = if want == 0 { " (scaled to 0)" } else { "" };
            (
                want > 0 && have >= want,
                format!("{have}/{want} ready{scaled}"),
            )
        }
        "Deployment" => {
            let want = data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let have = number("/status/availableReplicas");
            let scaled = if want == 0 { " (scaled to 0)" } else { "" };
            let detail = format!("{have}/{want} available{scaled}");
            // Judged as the waits judge it (scaled to zero is never ready).
            match serde_json::from_value::<Deployment>(data.clone())
                .map(|d| wait::deployment_ready(&d))
            {
                Ok(Readiness::Ready) => (true, detail),
                Ok(Readiness::NotYet(why)) if want > 0 && have >= want => {
                    (false, format!("{detail}, not ready: {why}"))
                }
                _ => (false, detail),
            }
        }
        "ExternalSecret" => match wait::external_secret_synced(data) {
            // The Ready condition's message says what synced, or why not.
            Synced::Yes { message } => (
                true,
                format!("Ready: {message}")
                    .trim_end_matches(": ")
                    .to_string(),
            ),
            Synced::No { message, .. } => (
                false,
                format!("not Ready: {message}")
                    .trim_end_matches(": ")
                    .to_string(),
            ),
            Synced::Unknown => (
                false,
                "not synced yet (is the External Secrets controller running?)".into(),
            ),
        },
        "PersistentVolumeClaim" => {
            let phase = data
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending");
            (phase == "Bound", phase.to_string())
        }
        _ => (true, "present".into()),
    }
}

fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let last_termination = containers.iter().find_map(|c| {
        let terminated = c.last_state.as_ref()?.terminated.as_ref()?;
        Some(format!(
            "{}: {}",
            c.name,
            terminated.reason.as_deref().unwrap_or("terminated")
        ))
    });
    let problem = wait::pod_problem(pod, &owner(pod)).map(|e| match e {
        Error::NotHealthy {
            message,
            help: Some(help),
        } => format!("{message}; {help}"),
        other => other.to_string(),
    });
    PodState {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        ready,
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        last_termination,
        problem,
    }
}

/// Whether `pod` is one of the app's (not the database's).
fn is_app(pod: &Pod) -> bool {
    pod.metadata.labels.as_ref().is_some_and(|l| {
        meta::selector(Component::App)
            .iter()
            .all(|(k, v)| l.get(k) == Some(v))
    })
}

/// The workload a pod belongs to, as [`wait::pod_problem`] names it in its messages.
fn owner(pod: &Pod) -> Object {
    let component = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/component"));
    let metadata = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    if component.map(String::as_str) == Some("database") {
        Object::StatefulSet(StatefulSet {
            metadata: metadata(meta::DB_NAME),
            ..Default::default()
        })
    } else {
        Object::Deployment(Deployment {
            metadata: metadata(meta::APP_NAME),
            ..Default::default()
        })
    }
}

/// How full the app's data volume and the database's volume are, from `df -P` inside their
/// containers (the volume's own view, whatever the storage backend).
async fn volumes(pods: &Api<Pod>, listed: &[Pod]) -> Vec<VolumeUsage> {
    let running = |component: Component| {
        let wanted = meta::selector(component);
        listed.iter().find(|p| {
            crate::onboarding::is_running(p)
                && p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| wanted.iter().all(|(k, v)| l.get(k) == Some(v)))
        })
    };
    let mut usages = Vec::new();
    if let Some(pod) = running(Component::App) {
        // The app's home is PAPERCLIP_HOME, /paperclip unless the container says otherwise.
        let script = format!(
            "home=\"${{PAPERCLIP_HOME:-/paperclip}}\"; echo \"path $home\"; df -P \"$home\" 2>&1 | tail -n 1; \
             echo \"backups $(du -sk \"$home/{BACKUPS_DIR}\" 2>/dev/null | cut -f1)\"; \
             echo \"secrets-owner $(stat -c %u \"$home/{SECRETS_DIR}\" 2>/dev/null) uid $(id -u)\""
        );
        usages.push(usage(pods, pod, meta::APP_NAME, &script).await);
    }
    if let Some(pod) = running(Component::Database) {
        let path = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .find(|c| c.name == DB_CONTAINER)
            .and_then(|c| c.volume_mounts.as_ref()?.iter().find(|m| m.name == "data"))
            .map(|m| m.mount_path.clone());
        if let Some(path) = path {
            let script = format!("echo \"path {path}\"; df -P '{path}' 2>&1 | tail -n 1");
            usages.push(usage(pods, pod, DB_CONTAINER, &script).await);
        }
    }
    usages
}

/// The database's container in its pod.
const DB_CONTAINER: &str = "postgresql";

async fn usage(pods: &Api<Pod>, pod: &Pod, container: &str, script: &str) -> VolumeUsage {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let output = tokio::time::timeout(EXEC_TIMEOUT, exec(pods, &name, container, script)).await;
    let output = match output {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {}s", EXEC_TIMEOUT.as_secs())),
    };
    let mut usage = VolumeUsage {
        pod: name,
        container: container.to_string(),
        path: String::new(),
        used_percent: None,
        used_kib: None,
        size_kib: None,
        backups_kib: None,
        secrets_owner: None,
        app_uid: None,
        error: None,
    };
    match output.and_then(|text| parse_usage(&text)) {
        Ok(parsed) => {
            usage.path = parsed.path;
            usage.used_percent = Some(parsed.percent);
            usage.used_kib = Some(parsed.used);
            usage.size_kib = Some(parsed.size);
            usage.backups_kib = parsed.backups;
            (usage.secrets_owner, usage.app_uid) = parsed.owner.unzip();
        }
        Err(e) => usage.error = Some(e),
    }
    usage
}

/// A warning for each path of the instance directory that backups do not know (classed as
/// `backup` classes them); none when the listing cannot be read.
async fn unknown_instance_paths(pods: &Api<Pod>, pod: &Pod) -> Vec<String> {
    use crate::backup::layout;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let listed = tokio::time::timeout(
        EXEC_TIMEOUT,
        exec(pods, &name, meta::APP_NAME, layout::LIST_SCRIPT),
    )
    .await;
    let Ok(Ok(listing)) = listed else {
        return Vec::new();
    };
    let found: Vec<String> = listing.lines().map(str::to_string).collect();
    layout::plan(&found, &layout::Selection::default())
        .unknown
        .iter()
        .map(|path| layout::unknown_path_warning(path))
        .collect()
}

/// Finds the `@paperclipai/server` package the app container runs (from the arguments of its
/// first process, else in the image's workspace, `/app`) and prints the version the server
/// itself reports: upstream's `dist/version.js` resolves it (a version stamped into the image
/// at build time, else the package's), so this is what the server would answer to a signed-in
/// caller. Node is the app container's own runtime.
const VERSION_SCRIPT: &str = r#"cd /app 2>/dev/null || true
exec node --input-type=module -e '
import { readFileSync, readlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
const isServer = (dir) => {
  try { return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name === "@paperclipai/server"; }
  catch { return false; }
};
const fromFirstProcess = () => {
  let args = [], cwd = "/";
  try {
    args = readFileSync("/proc/1/cmdline", "utf8").split("\0").filter(Boolean);
    cwd = readlinkSync("/proc/1/cwd");
  } catch {}
  for (const arg of args) {
    for (let dir = dirname(resolve(cwd, arg)); dir !== dirname(dir); dir = dirname(dir)) {
      if (isServer(dir)) return dir;
    }
  }
  return null;
};
const fromWorkspace = () => {
  const candidates = [join(process.cwd(), "server")];
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    candidates.push(join(dir, "node_modules", "@paperclipai", "server"));
    if (dir === dirname(dir)) break;
  }
  return candidates.find(isServer) ?? null;
};
const root = fromFirstProcess() ?? fromWorkspace();
if (root) {
  try {
    const { serverVersion } = await import(pathToFileURL(join(root, "dist", "version.js")).href);
    console.log("version " + serverVersion);
  } catch {
    console.log("version " + JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version);
  }
}
'
"#;

/// The version of the Paperclip server the app container of `pod` runs, when it can be found.
async fn running_version(pods: &Api<Pod>, pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref()?;
    let run = exec(pods, name, meta::APP_NAME, VERSION_SCRIPT);
    let output = tokio::time::timeout(EXEC_TIMEOUT, run).await.ok()?.ok()?;
    output
        .lines()
        .find_map(|l| l.strip_prefix("version "))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The stdout of `script` in `container` of `pod`, whatever its exit code (a script's output
/// says what it found), or why the exec could not run.
pub(crate) async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    script: &str,
) -> std::result::Result<String, String> {
    let container = Container {
        pods,
        namespace: pods.namespace().unwrap_or_default(),
        pod: pod.to_string(),
        name: container,
    };
    match container.capture(script).await {
        Ok((output, _)) => Ok(output),
        Err(e) => Err(format!("cannot exec into {pod}: {e}")),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    path: String,
    percent: u8,
    used: u64,
    size: u64,
    backups: Option<u64>,
    /// The owner of `secrets/` and the uid the exec ran as, when the directory exists.
    owner: Option<(u32, u32)>,
}

/// Reads the exec's output: `path P`, the data line of `df -P` (`fs 1024-blocks used available
/// capacity mountpoint`), and for the app `backups N` (KiB, empty when there are none).
fn parse_usage(text: &str) -> std::result::Result<Parsed, String> {
    let mut path = String::new();
    let mut backups = None;
    let mut owner = None;
    let mut df = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("path ") {
            path = p.trim().to_string();
        } else if let Some(o) = line.strip_prefix("secrets-owner ") {
            let words: Vec<&str> = o.split_whitespace().collect();
            if let [owner_uid, "uid", uid] = words[..] {
                owner = owner_uid.parse().ok().zip(uid.parse().ok());
            }
        } else if let Some(b) = line.strip_prefix("backups") {
            backups = b.trim().parse().ok();
        } else {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 6
                && let (Ok(size), Ok(used), Ok(percent)) = (
                    fields[1].parse::<u64>(),
                    fields[2].parse::<u64>(),
                    fields[4].trim_end_matches('%').parse::<u8>(),
                )
            {
                df = Some((size, used, percent));
            }
        }
    }
    let (size, used, percent) = df.ok_or_else(|| {
        // What df said instead (e.g. "No such file or directory"), not the script's own lines.
        let said = text
            .lines()
            .rfind(|l| {
                !l.starts_with("path ")
                    && !l.starts_with("backups")
                    && !l.starts_with("secrets-owner")
                    && !l.trim().is_empty()
            })
            .unwrap_or("no output");
        format!("df -P gave no usage line ({said})")
    })?;
    Ok(Parsed {
        path,
        percent,
        used,
        size,
        backups,
        owner,
    })
}

/// Sorts what was found into problems (unhealthy) and warnings.
fn judge(
    objects: &[ObjectState],
    pods: &[PodState],
    volumes: &[VolumeUsage],
    health: &HealthState,
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for o in objects.iter().filter(|o| !o.healthy) {
        let text = format!("{} is {}", o.object, o.detail);
        if o.optional {
            warnings.push(format!("{text} (optional: the app runs without it)"));
        } else {
            problems.push(text);
        }
    }
    for pod in pods {
        match (&pod.problem, pod.ready) {
            (Some(problem), false) => problems.push(problem.clone()),
            // Ready again after, say, an OOM kill: it will happen again under the same load.
            (Some(problem), true) => warnings.push(problem.clone()),
            (None, _) => {}
        }
    }
    warnings.extend(volumes.iter().filter_map(volume_warning));
    problems.extend(volumes.iter().filter_map(foreign_secrets));
    match health {
        HealthState::Unhealthy { problem } => problems.push(format!("/api/health: {problem}")),
        HealthState::Starting { .. } => warnings.push(
            "the app is still in its startup recovery (/api/health says starting); run status \
             again in a minute"
                .into(),
        ),
        HealthState::Ok { .. } => {}
    }
    (problems, warnings)
}

/// A problem when the instance's `secrets/` belongs to another uid than the app's: upstream
/// then refuses to start, and the app cannot take it back itself.
fn foreign_secrets(v: &VolumeUsage) -> Option<String> {
    let (owner, uid) = (v.secrets_owner?, v.app_uid?);
    (owner != uid).then(|| {
        format!(
            "{path}/{SECRETS_DIR} is owned by uid {owner}, not by the app's uid {uid}: upstream \
             refuses to start (\"must be owned by the Paperclip process user\"); give it back \
             from a root shell on the volume: chown -R {uid}:{uid} {path}/{SECRETS_DIR}",
            path = v.path
        )
    })
}

/// A warning for a volume above [`USAGE_WARN_PERCENT`], naming upstream's backups when they hold
/// most of what is used.
fn volume_warning(v: &VolumeUsage) -> Option<String> {
    let percent = v.used_percent?;
    if percent <= USAGE_WARN_PERCENT {
        return None;
    }
    let mut text = format!(
        "the volume at {} of pod {} is {percent}% full",
        v.path, v.pod
    );
    match (v.backups_kib, v.used_kib) {
        (Some(backups), Some(used)) if used > 0 && backups * 2 > used => text.push_str(&format!(
            "; upstream's backups in {}/{BACKUPS_DIR} hold {} of {} used: delete old \
             paperclip-*.sql.gz files there (keep recent ones, and secrets/master.key with them)",
            v.path,
            human(backups),
            human(used)
        )),
        _ => text.push_str("; grow the PersistentVolumeClaim or free space"),
    }
    Some(text)
}

/// KiB (what `df -P` and `du -k` count) as people read sizes.
fn human(kib: u64) -> String {
    crate::ui::human_bytes(kib.saturating_mul(1024))
}

impl Report {
    /// The report for people.
    pub fn to_text(&self) -> String {
        let r = &self.release;
        let mut out = format!(
            "Paperclip in namespace {}: revision {}, profile {}, {} at {}\n",
            self.namespace, r.revision, r.profile, r.result, r.time
        );
        out.push_str("Objects:\n");
        for o in &self.objects {
            let mark = match (o.healthy, o.optional) {
                (true, _) => "✓",
                (false, true) => "!",
                (false, false) => "✗",
            };
            out.push_str(&format!("  {mark} {} {}\n", o.object, o.detail));
        }
        out.push_str("Pods:\n");
        if self.pods.is_empty() {
            out.push_str("  none\n");
        }
        for p in &self.pods {
            let ready = if p.ready { "ready" } else { "not ready" };
            out.push_str(&format!(
                "  {} {}, {ready}, {} restart(s)",
                p.name, p.phase, p.restarts
            ));
            if let Some(last) = &p.last_termination {
                out.push_str(&format!(", last terminated {last}"));
            }
            out.push('\n');
        }
        out.push_str("Volumes:\n");
        for v in &self.volumes {
            match (v.used_percent, &v.error) {
                (Some(percent), _) => {
                    out.push_str(&format!(
                        "  {} of {} ({}): {percent}% of {} used",
                        v.path,
                        v.pod,
                        v.container,
                        human(v.size_kib.unwrap_or(0))
                    ));
                    if let Some(backups) = v.backups_kib {
                        out.push_str(&format!(", backups {}", human(backups)));
                    }
                    out.push('\n');
                }
                (None, error) => out.push_str(&format!(
                    "  {} ({}): usage unknown: {}\n",
                    v.pod,
                    v.container,
                    error.as_deref().unwrap_or_default()
                )),
            }
        }
        match &self.health {
            HealthState::Ok {
                version,
                bootstrap_status,
                ..
            }
            | HealthState::Starting {
                version,
                bootstrap_status,
                ..
            } => {
                let state = match self.health {
                    HealthState::Starting { .. } => "starting (startup recovery in progress)",
                    _ => "ok",
                };
                out.push_str(&format!(
                    "Health: {state}, database reachable, bootstrap: {bootstrap_status}, \
                     version {}\n",
                    version.as_deref().unwrap_or("unknown")
                ))
            }
            HealthState::Unhealthy { problem } => {
                out.push_str(&format!("Health: unhealthy: {problem}\n"))
            }
        }
        if let Some(line) = &self.shell {
            out.push_str(&format!("Shell: {line}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        out
    }

    /// The error `status` ends with when something is wrong: exit code NOT_HEALTHY.
    pub fn verdict(&self) -> Result<()> {
        if self.problems.is_empty() {
            return Ok(());
        }
        Err(Error::not_healthy(
            format!(
                "Paperclip in namespace {} is not healthy: {}",
                self.namespace,
                self.problems.join("; ")
            ),
            "fix what is named above; `paperclipctl install` re-applies the release",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workloads_scaled_to_zero_and_unsynced_secrets_are_unhealthy() {
        let deployment = json!({"spec": {"replicas": 0}, "status": {}});
        assert_eq!(
            object_health("Deployment", &deployment),
            (false, "0/0 available (scaled to 0)".into())
        );
        let ready = json!({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}});
        assert_eq!(
            object_health("StatefulSet", &ready),
            (true, "1/1 ready".into())
        );
        let es = json!({"status": {"conditions": [{"type": "Ready", "status": "False",
            "reason": "SecretSyncedError", "message": "could not get secret data"}]}});
        assert_eq!(
            object_health("ExternalSecret", &es),
            (false, "not Ready: could not get secret data".into())
        );
        let pvc = json!({"status": {"phase": "Bound"}});
        assert_eq!(
            object_health("PersistentVolumeClaim", &pvc),
            (true, "Bound".into())
        );
    }

    #[test]
    fn a_deployment_is_healthy_only_when_the_waits_would_call_it_ready() {
        let rolled_out = json!({"metadata": {"generation": 2}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1}});
        assert_eq!(
            object_health("Deployment", &rolled_out),
            (true, "1/1 available".into())
        );
        // The old pod still serves while the new template's pod does not come up.
        let stuck = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1,
                       "availableReplicas": 1}});
        assert_eq!(
            object_health("Deployment", &stuck),
            (
                false,
                "1/1 available, not ready: 1/1 available, 1/1 updated, 2 pod(s)".into()
            )
        );
    }

    #[test]
    fn reads_df_and_du_and_names_the_backups_when_they_fill_the_volume() {
        let text = "path /paperclip\n/dev/sdb 1000 900 100 90% /paperclip\nbackups 700\n";
        let parsed = parse_usage(text).unwrap();
        assert_eq!(
            parsed,
            Parsed {
                path: "/paperclip".into(),
                percent: 90,
                used: 900,
                size: 1000,
                backups: Some(700),
                owner: None,
            }
        );
        let mut usage = VolumeUsage {
            pod: "paperclip-abc".into(),
            container: "paperclip".into(),
            path: parsed.path,
            used_percent: Some(90),
            used_kib: Some(900),
            size_kib: Some(1000),
            backups_kib: Some(700),
            secrets_owner: Some(1000),
            app_uid: Some(1000),
            error: None,
        };
        assert_eq!(foreign_secrets(&usage), None);
        let warning = volume_warning(&usage).unwrap();
        assert!(warning.contains("is 90% full"), "{warning}");
        assert!(
            warning.contains("/paperclip/instances/default/data/backups hold 700 KiB of 900 KiB"),
            "{warning}"
        );
        usage.backups_kib = Some(100);
        assert!(
            volume_warning(&usage)
                .unwrap()
                .contains("grow the PersistentVolumeClaim")
        );
        usage.used_percent = Some(USAGE_WARN_PERCENT);
        assert_eq!(volume_warning(&usage), None);
        let missing = parse_usage("path /x\ndf: /x: No such file or directory\n").unwrap_err();
        assert!(
            missing.contains("(df: /x: No such file or directory)"),
            "{missing}"
        );
        assert_eq!(
            parse_usage("path /x\nbackups \n/dev/a 10 1 9 10% /x\n")
                .unwrap()
                .backups,
            None
        );
    }

    #[test]
    fn only_required_objects_unready_pods_and_a_failing_health_make_it_unhealthy() {
        let object = |id: &str, healthy: bool, optional: bool| ObjectState {
            object: id.into(),
            healthy,
            optional,
            detail: if healthy { "present" } else { "missing" }.into(),
        };
        let pod = |ready: bool| PodState {
            name: "paperclip-abc".into(),
            phase: "Running".into(),
            ready,
            restarts: 3,
            last_termination: Some("paperclip: OOMKilled".into()),
            problem: Some("was OOMKilled at its memory limit (2Gi)".into()),
        };
        let ok = HealthState::Ok {
            version: None,
            bootstrap_status: "ready".into(),
            database_reachable: true,
        };
        let objects = [
            object("Service/paperclip", true, false),
            object("ExternalSecret/paperclip-brave", false, true),
        ];
        let (problems, warnings) = judge(&objects, &[pod(true)], &[], &ok);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("optional"), "{warnings:?}");

        let objects = [object("ExternalSecret/paperclip-auth", false, false)];
        let down = HealthState::Unhealthy {
            problem: "no running app pod".into(),
        };
        let (problems, _) = judge(&objects, &[pod(false)], &[], &down);
        assert_eq!(
            problems,
            [
                "ExternalSecret/paperclip-auth is missing",
                "was OOMKilled at its memory limit (2Gi)",
                "/api/health: no running app pod"
            ]
        );
    }

    #[test]
    fn a_secrets_directory_of_another_uid_is_a_problem_naming_the_fix() {
        let text =
            "path /paperclip\n/dev/a 10 1 9 10% /paperclip\nbackups \nsecrets-owner 0 uid 1000\n";
        let parsed = parse_usage(text).unwrap();
        assert_eq!(parsed.owner, Some((0, 1000)));
        let usage = VolumeUsage {
            pod: "paperclip-abc".into(),
            container: "paperclip".into(),
            path: parsed.path,
            used_percent: Some(10),
            used_kib: Some(1),
            size_kib: Some(10),
            backups_kib: None,
            secrets_owner: Some(0),
            app_uid: Some(1000),
            error: None,
        };
        let problem = foreign_secrets(&usage).unwrap();
        assert!(
            problem.starts_with(
                "/paperclip/instances/default/secrets is owned by uid 0, not by the app's uid 1000"
            ),
            "{problem}"
        );
        assert!(problem.contains("chown -R 1000:1000 /paperclip/instances/default/secrets"));
        // No secrets directory yet (before onboarding): nothing to say.
        let fresh =
            parse_usage("path /p\n/dev/a 10 1 9 10% /p\nsecrets-owner  uid 1000\n").unwrap();
        assert_eq!(fresh.owner, None);
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human(700), "700 KiB");
        assert_eq!(human(1536), "1.5 MiB");
        assert_eq!(human(5 * 1024 * 1024), "5.0 GiB");
    }
}
