//! What a deploying run makes sure of before its first write, shared by `install` (and its
//! dry run) and `upgrade`: the lock is free, lints pass, the images are pinned, preflight passes.

use serde_json::json;

use super::session::Session;
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::image;
use crate::preflight;
use crate::profile::Loaded;
use crate::profile::model::Profile;
use crate::render::lint::Severity;
use crate::render::{self, Release};
use crate::transaction;
use crate::ui::Ui;
use crate::ui::progress::{Event, Progress};

/// What a run makes sure of before its first write, in this order: no other run holds the
/// release lock (Infisical is written before the lock is taken), the shell image is pinned to
/// its digest, and preflight passes. The release returned is the one the run applies.
pub(super) async fn check(
    session: &Session<'_>,
    loaded: &Loaded,
    ignore: &[String],
) -> Result<Checked> {
    let (client, ui, progress) = (session.client(), session.ui, &session.progress);
    transaction::ensure_free(client, &session.namespace).await?;
    let auth = registry_auth()?;
    let loaded = pin_shell(client, loaded, &auth, progress).await?;
    let release = render::render(&loaded.profile);
    let report = preflight(client, &loaded.profile, &release, &auth, ignore, ui).await?;
    Ok(Checked {
        loaded,
        release,
        report,
        auth,
    })
}

/// A profile that passed [`check`], with the release it renders.
pub(super) struct Checked {
    pub loaded: Loaded,
    pub release: Release,
    pub report: preflight::Report,
    /// The registry logins the checks used, for pinning more images the same way.
    pub auth: image::RegistryAuth,
}

/// Registry credentials from the Docker config, for preflight and digest pinning.
pub(super) fn registry_auth() -> Result<image::RegistryAuth> {
    image::RegistryAuth::from_docker_config().map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix or move the Docker config file (DOCKER_CONFIG), or log in again",
        )
    })
}

/// Prints what the lints found and stops when one of them is an error.
pub(super) fn lint(release: &Release, ui: &Ui) -> Result<()> {
    for finding in &release.findings {
        ui.note(&super::report::finding_line(ui, finding));
    }
    let errors = release
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if errors > 0 {
        return Err(Error::Lint { count: errors });
    }
    Ok(())
}

/// Runs every preflight check and stops, before anything is written, when one fails that the
/// user did not choose to ignore. The table goes to stderr; with `--output json` a failed
/// preflight prints its report as the command's JSON document.
pub(super) async fn preflight(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
    auth: &image::RegistryAuth,
    ignore: &[String],
    ui: &Ui,
) -> Result<preflight::Report> {
    let report = preflight::run(client, profile, release, auth).await;
    ui.note(&report.to_text());
    if let Some(unknown) = ignore.iter().find(|id| report.get(id).is_none()) {
        let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
        return Err(Error::usage(
            format!("--ignore-preflight {unknown}: there is no such check"),
            format!("checks: {}", ids.join(", ")),
        ));
    }
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.outcome.status == preflight::Status::Fail)
        .map(|c| c.id.as_str())
        .collect();
    for id in failed.iter().filter(|id| ignore.iter().any(|i| i == *id)) {
        ui.note(&format!(
            "{}: preflight check {id} failed; going on as --ignore-preflight says",
            ui.warning("warning")
        ));
    }
    let blocking = failed
        .iter()
        .filter(|id| !ignore.iter().any(|i| i == *id))
        .count();
    if blocking > 0 {
        if ui.output == Output::Json {
            ui.print(&(serde_json::to_string_pretty(&json!({ "preflight": report }))? + "\n"))?;
        }
        return Err(Error::Preflight { count: blocking });
    }
    Ok(report)
}

/// The profile with its shell sidecar pinned to the digest the registry serves now (see
/// [`image::pin_shell_image`]); unchanged without a sidecar.
pub(super) async fn pin_shell(
    client: &kube::Client,
    loaded: &Loaded,
    auth: &image::RegistryAuth,
    progress: &Progress,
) -> Result<Loaded> {
    let mut loaded = loaded.clone();
    let Some(shell) = loaded.profile.shell.as_mut() else {
        return Ok(loaded);
    };
    let selector = loaded
        .origin
        .strip_prefix("builtin:")
        .unwrap_or(&loaded.origin);
    let mut push = format!("paperclipctl image push --profile {selector}");
    if !loaded.overrides.is_empty() {
        push.push_str(" with the same --set options");
    }
    let node_selector = &loaded.profile.app.placement.node_selector;
    let pinned = image::pin_shell_image(client, &shell.image, node_selector, auth, &push).await?;
    progress.event(Event::Note(&format!(
        "shell image {} pinned to {}",
        shell.image, pinned.digest
    )));
    shell.image = pinned.reference;
    Ok(loaded)
}
