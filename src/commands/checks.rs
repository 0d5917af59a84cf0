//! What a deploying run makes sure of before its first write, shared by `install` (and its
//! dry run) and `upgrade`: the lock is free, lints pass, the images are pinned, preflight passes.

use std::collections::BTreeMap;

use serde_json::json;

use super::session::Session;
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::image;
use crate::preflight;
use crate::profile::Loaded;
use crate::profile::model::{Profile, PullSecret};
use crate::render::lint::Severity;
use crate::render::{self, Release};
use crate::secrets;
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
    let auth = registry_auth(&loaded.profile).await?;
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

/// Registry credentials for preflight and digest pinning: the Docker config's, and for the
/// shell image's registry, when the config has no login for it, `shell.pullSecret`'s own (see
/// [`pull_secret_login`]).
pub(super) async fn registry_auth(profile: &Profile) -> Result<image::RegistryAuth> {
    let auth = image::RegistryAuth::from_docker_config().map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix or move the Docker config file (DOCKER_CONFIG), or log in again",
        )
    })?;
    let pull = profile.shell.as_ref().and_then(|s| s.pull_secret.as_ref());
    match pull {
        Some(pull) if !auth.has_docker_login(pull.registry.as_str()) => {
            Ok(match pull_secret_login(profile, pull).await? {
                Some((credentials, source)) => {
                    auth.with_login(pull.registry.as_str(), credentials, source)
                }
                None => auth,
            })
        }
        _ => Ok(auth),
    }
}

/// The login the kubelet will pull the shell image with: the values of the pull secret's two
/// Infisical keys, or, for a key Infisical does not hold yet, the environment variable of the
/// same name (what this run would store there). With a key in neither, or without Infisical
/// credentials in the environment, there is none, and the registry's refusal says so.
async fn pull_secret_login(
    profile: &Profile,
    pull: &PullSecret,
) -> Result<Option<(image::Credentials, String)>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let store = &profile.secrets.store;
    let keys = [pull.username_key.as_str(), pull.password_key.as_str()];
    let stored = match secrets::Credentials::resolve(store, None, None, env) {
        Ok(credentials) => secrets::read(store, &credentials, &keys).await?,
        Err(_) => BTreeMap::new(),
    };
    let value = |key: &str| {
        stored
            .get(key)
            .map(|v| v.expose().to_string())
            .or_else(|| env(key))
    };
    let (Some(username), Some(password)) = (value(keys[0]), value(keys[1])) else {
        return Ok(None);
    };
    let from = match keys.iter().filter(|k| stored.contains_key(**k)).count() {
        2 => "Infisical",
        1 => "Infisical and the environment",
        _ => "the environment",
    };
    let source = format!(
        "shell.pullSecret's keys {} and {} (from {from})",
        keys[0], keys[1]
    );
    Ok(Some((image::Credentials::new(username, password), source)))
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
