//! What explains a failed rollout, gathered into one file before anything is rolled back: a
//! rollback replaces the failing pods, and their logs and state go with them.
//!
//! The file holds every release pod's state, its containers' logs (the previous container's
//! too when it restarted: that is where a crash loop's error is), and the namespace's events.
//! Logs may print configuration, so every value of every Secret in the namespace is replaced by
//! `<redacted …>` before anything is written; when the Secrets cannot be read, logs are left
//! out rather than written unredacted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod, Secret};
use kube::api::{Api, ListParams, LogParams};

use crate::cluster::api_error;
use crate::error::{Error, Result};
use crate::render::meta;

/// Lines of each log kept: enough for a stack trace, small enough to read.
const LOG_LINES: i64 = 200;
/// Values shorter than this are not redacted: replacing `1` or `true` everywhere hides more
/// than it protects.
const SHORTEST_SECRET: usize = 6;

/// Gathers the diagnostics of the release in `namespace`, under `heading` (what failed).
pub async fn collect(client: &kube::Client, namespace: &str, heading: &str) -> Result<String> {
    let mut out = String::new();
    let now = k8s_openapi::jiff::Timestamp::now();
    let _ = writeln!(
        out,
        "# paperclipctl diagnostics, {now}, namespace {namespace}"
    );
    let _ = writeln!(out, "# {heading}\n");

    let redactions = match secret_values(client, namespace).await {
        Ok(values) => Some(values),
        Err(e) => {
            let _ = writeln!(
                out,
                "(container logs left out: the namespace's Secrets could not be read to redact \
                 them: {e})\n"
            );
            None
        }
    };
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let selector = format!("{}={}", meta::MANAGED_BY.0, meta::MANAGED_BY.1);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, "list", "pods", Some(namespace)))?;
    for pod in &list.items {
        pod_section(&pods, pod, redactions.is_some(), &mut out).await;
    }
    out.push_str(&events(client, namespace).await);
    Ok(match &redactions {
        Some(values) => redact(&out, values),
        None => out,
    })
}

/// Writes `text` to a new owner-only file in `dir`, named after the namespace and the time.
pub fn write(dir: &Path, namespace: &str, what: &str, text: &str) -> Result<PathBuf> {
    use std::io::Write;
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    let path = dir.join(format!("paperclip-{what}-{namespace}-{now}.log"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(Error::Output)?;
    file.write_all(text.as_bytes()).map_err(Error::Output)?;
    Ok(path)
}

async fn pod_section(pods: &Api<Pod>, pod: &Pod, with_logs: bool, out: &mut String) {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "## Pod {name}: {} on {}",
        status.phase.as_deref().unwrap_or("Unknown"),
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("no node")
    );
    for condition in status.conditions.iter().flatten() {
        let _ = writeln!(
            out,
            "   condition {}={} {}",
            condition.type_,
            condition.status,
            condition.message.as_deref().unwrap_or_default()
        );
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let _ = writeln!(out, "{}", container_line(container));
        if !with_logs {
            continue;
        }
        let restarted = container.restart_count > 0
            || container
                .last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some());
        if restarted {
            log(pods, name, &container.name, true, out).await;
        }
        log(pods, name, &container.name, false, out).await;
    }
    out.push('\n');
}

/// `container NAME (image): ready, 4 restarts, waiting: CrashLoopBackOff …; last exit 1 (Error)`.
fn container_line(c: &ContainerStatus) -> String {
    let mut line = format!(
        "   container {} ({}): {}, {} restart(s)",
        c.name,
        c.image,
        if c.ready { "ready" } else { "not ready" },
        c.restart_count
    );
    if let Some(state) = &c.state {
        if let Some(waiting) = &state.waiting {
            let _ = write!(
                line,
                "; waiting: {} {}",
                waiting.reason.as_deref().unwrap_or_default(),
                waiting.message.as_deref().unwrap_or_default()
            );
        } else if let Some(done) = &state.terminated {
            let _ = write!(
                line,
                "; terminated: exit {} ({})",
                done.exit_code,
                done.reason.as_deref().unwrap_or_default()
            );
        }
    }
    if let Some(last) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
        let _ = write!(
            line,
            "; last exit {} ({})",
            last.exit_code,
            last.reason.as_deref().unwrap_or_default()
        );
    }
    line
}

async fn log(pods: &Api<Pod>, pod: &str, container: &str, previous: bool, out: &mut String) {
    let params = LogParams {
        container: Some(container.to_string()),
        previous,
        tail_lines: Some(LOG_LINES),
        timestamps: true,
        ..Default::default()
    };
    let which = if previous {
        "the previous (exited) container"
    } else {
        "the current container"
    };
    let _ = writeln!(
        out,
        "   --- log of {container}, {which}, last {LOG_LINES} lines ---"
    );
    match pods.logs(pod, &params).await {
        Ok(text) if text.trim().is_empty() => out.push_str("   (empty)\n"),
        Ok(text) => {
            for line in text.lines() {
                let _ = writeln!(out, "   | {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "   (no log: {e})");
        }
    }
}

/// The namespace's events, oldest first (events expire after an hour; what is left is recent).
async fn events(client: &kube::Client, namespace: &str) -> String {
    let mut out = String::from("## Events\n");
    let api = Api::<Event>::namespaced(client.clone(), namespace);
    let mut events = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            let _ = writeln!(out, "   (cannot list events: {e})");
            return out;
        }
    };
    let time = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    events.sort_by_key(time);
    for event in &events {
        let object = &event.involved_object;
        let _ = writeln!(
            out,
            "   {} {} {} {}/{}: {}{}",
            time(event).map(|t| t.to_string()).unwrap_or_default(),
            event.type_.as_deref().unwrap_or_default(),
            event.reason.as_deref().unwrap_or_default(),
            object.kind.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
            event.message.as_deref().unwrap_or_default().trim(),
            match event.count {
                Some(n) if n > 1 => format!(" (×{n})"),
                _ => String::new(),
            }
        );
    }
    if events.is_empty() {
        out.push_str("   (none)\n");
    }
    out
}

/// Every value of every Secret in the namespace, named `secret/key`, longest first (so a value
/// containing another is replaced whole).
async fn secret_values(client: &kube::Client, namespace: &str) -> Result<Vec<(String, String)>> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, "list", "secrets", Some(namespace)))?;
    let mut values: Vec<(String, String)> = secrets
        .items
        .iter()
        .flat_map(|secret| {
            let name = secret.metadata.name.clone().unwrap_or_default();
            secret.data.iter().flatten().map(move |(key, value)| {
                (
                    format!("{name}/{key}"),
                    String::from_utf8_lossy(&value.0).into_owned(),
                )
            })
        })
        .flat_map(|(name, value)| {
            // A value is also checked line by line: a key file's lines appear in logs alone.
            let mut parts = vec![value.clone()];
            if value.contains('\n') {
                parts.extend(value.lines().map(str::to_string));
            }
            parts.into_iter().map(move |part| (name.clone(), part))
        })
        .filter(|(_, value)| value.trim().len() >= SHORTEST_SECRET)
        .collect();
    values.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
    Ok(values)
}

fn redact(text: &str, values: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (name, value) in values {
        let value = value.trim();
        if text.contains(value) {
            text = text.replace(value, &format!("<redacted {name}>"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_value_is_redacted_longest_first() {
        let values = vec![
            (
                "db/url".to_string(),
                "postgres://u:hunter22@db/x".to_string(),
            ),
            ("db/password".to_string(), "hunter22".to_string()),
        ];
        let text = "connect postgres://u:hunter22@db/x failed\npassword hunter22 rejected\n";
        let out = redact(text, &values);
        assert_eq!(
            out,
            "connect <redacted db/url> failed\npassword <redacted db/password> rejected\n"
        );
    }
}
