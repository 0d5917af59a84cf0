//! What the shell sidecar says about itself: the summary line its boot hook's reconciler writes
//! (the line the sidecar's MOTD shows at every SSH login), read by `status`.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::render::meta::SHELL_NAME;
use crate::status::{EXEC_TIMEOUT, exec};

/// Where the reconciler writes its summary in the sidecar (the image links `/etc/motd` to it).
const SUMMARY: &str = "/var/lib/paperclip-shell/motd";
/// How the reconciler starts a summary of a run that went wrong.
const FAILURE_MARK: &str = "⚠";

/// The sidecar's last reconcile summary in `pod`: `None` when the pod has no sidecar, a sentence
/// saying why when the line cannot be read (its first boot still installing, say).
pub async fn last_reconcile(pods: &Api<Pod>, pod: &Pod) -> Option<String> {
    let has_sidecar = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .any(|c| c.name == SHELL_NAME);
    if !has_sidecar {
        return None;
    }
    let name = pod.metadata.name.as_deref()?;
    let script = format!("cat {SUMMARY} 2>/dev/null || echo 'no reconcile has finished yet'");
    let line = match tokio::time::timeout(EXEC_TIMEOUT, exec(pods, name, SHELL_NAME, &script)).await
    {
        Ok(Ok(text)) => text.lines().next().unwrap_or_default().trim().to_string(),
        Ok(Err(e)) => format!("unknown: {e}"),
        Err(_) => format!("unknown: no answer within {}s", EXEC_TIMEOUT.as_secs()),
    };
    Some(line)
}

/// Whether a summary line reports a failed install, removal or inventory.
pub fn is_failure(line: &str) -> bool {
    line.starts_with(FAILURE_MARK)
}
