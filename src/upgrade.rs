//! Upgrades: a new profile (most often just a newer app image) applied the safe way.
//!
//! [`prepare`] decides everything with reads only: the revision a failure goes back to, the
//! image pinned to its digest, where the backup goes, and what applying would change (server-side
//! dry runs). `upgrade --dry-run` prints that; [`run`] does it: a backup is written first, the
//! release is applied and waited for as an install is (the app Deployment recreates its pod, so
//! two versions never share the volume), and when it does not become ready, the failing pods'
//! state, logs and events go to a diagnostics file before the previous revision is deployed again.
//! The command layer checks the target (preflight: the tag exists and offers the nodes'
//! platforms) before [`prepare`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup;
use crate::cluster::apply::Change;
use crate::diagnostics;
use crate::error::{Error, Result};
use crate::image::{self, RegistryAuth};
use crate::install::{self, Generated, Summary};
use crate::profile::Profile;
use crate::profile::types::ImageRef;
use crate::release::{self, Record};
use crate::render::{self, Release};
use crate::status;
use crate::transaction::{self, Action, Deployed, Transaction};
use crate::ui::Ui;
use crate::ui::progress::Event;

/// What the user asked of an upgrade.
pub struct Request {
    /// The target profile, checked by preflight, its shell image pinned.
    pub profile: Profile,
    /// The image was named on the command line (`--to`): it is pinned to what its tag names now,
    /// even when the profile's image looks like the one running.
    pub image_named: bool,
    pub backup: BackupTo,
}

/// Where the backup taken before an upgrade goes.
pub enum BackupTo {
    /// No backup (`--no-backup`).
    Nowhere,
    File(PathBuf),
    /// A new archive in the local backups directory.
    BackupsDir,
}

/// What an upgrade would do, decided with reads, registry lookups and server-side dry runs only:
/// what `upgrade --dry-run` shows, and what [`run`] then does.
pub struct Prepared {
    /// The profile deployed, its images pinned to digests.
    pub profile: Profile,
    pub release: Release,
    /// The revision a failed upgrade goes back to (the newest deployed one).
    pub previous: Record,
    /// What applying each object would do, in apply order.
    pub changes: Vec<(String, Change)>,
    /// The newest revision deployed this very profile and no object would change: a run writes
    /// nothing, not even the lock, and takes no backup.
    pub up_to_date: bool,
    /// Where the backup goes; `None` skips it.
    pub backup: Option<PathBuf>,
    /// What the user should know before the run (printed by the command).
    pub warnings: Vec<String>,
}

/// Prepares the upgrade of the release whose revisions are `history` (oldest first) to
/// `request`, without writing anything to the cluster.
pub async fn prepare(
    client: &kube::Client,
    history: &[Record],
    request: Request,
    auth: &RegistryAuth,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Prepared> {
    let mut profile = request.profile;
    let namespace = profile.namespace.to_string();
    let previous = rollback_point(history, &namespace)?.clone();
    let running = previous.applied.as_ref().map(|p| &p.app.image);
    match running.filter(|running| !request.image_named && same_image(running, &profile.app.image))
    {
        // An unchanged profile keeps the image as it runs, so upgrading it changes nothing.
        Some(running) => profile.app.image = running.clone(),
        // A new image, or a named one (which asks for what the tag names now), is pinned; after
        // preflight, which explains a missing tag or a platform gap better.
        None => {
            let pinned = image::pin(&profile.app.image, auth, "app.image").await?;
            progress(Event::Note(&format!(
                "app image {} pinned to {}",
                profile.app.image, pinned.digest
            )));
            profile.app.image = pinned.reference;
        }
    }
    let release = render::render(&profile);
    let values = install::values(client, &profile, &release, Generated::Placeholder).await?;
    let changes = install::changes(client, &release, &values).await?;
    let up_to_date = install::up_to_date(&profile, history.last(), &changes);
    let backup = match request.backup {
        _ if up_to_date => None,
        BackupTo::Nowhere => None,
        BackupTo::File(path) => Some(path),
        BackupTo::BackupsDir => Some(backup::new_archive_path(&namespace, Some("pre-upgrade"))?),
    };
    let mut warnings = Vec::new();
    if previous.applied.is_none() && !up_to_date {
        warnings.push(format!(
            "revision {} was recorded without its profile: a failed upgrade cannot be rolled \
             back by itself",
            previous.revision
        ));
    }
    Ok(Prepared {
        profile,
        release,
        previous,
        changes,
        up_to_date,
        backup,
        warnings,
    })
}

/// Whether `running` is `wanted`, or `wanted` pinned to a digest.
fn same_image(running: &ImageRef, wanted: &ImageRef) -> bool {
    running == wanted
        || running
            .as_str()
            .strip_prefix(wanted.as_str())
            .is_some_and(|rest| rest.starts_with('@'))
}

/// The image `--to` names: `latest`, a tag such as `sha-3494e84` or `v1.2.0` (of the app
/// image's repository), or a whole image reference (anything with `/`, `:` or `@`).
pub fn target_image(current: &ImageRef, to: &str) -> std::result::Result<ImageRef, String> {
    if to.contains(['/', ':', '@']) {
        return to.parse();
    }
    let text = current.as_str();
    let repository = text.split_once('@').map_or(text, |(r, _)| r);
    let repository = match repository.rsplit_once(':') {
        // A colon after the last slash starts a tag; before it, it is a registry port.
        Some((name, tag)) if !tag.contains('/') => name,
        _ => repository,
    };
    format!("{repository}:{to}").parse()
}

/// The revision a failed upgrade goes back to: the newest deployed one. Fails when nothing is
/// installed in `namespace`, or nothing ever deployed there.
pub fn rollback_point<'h>(history: &'h [Record], namespace: &str) -> Result<&'h Record> {
    history
        .iter()
        .rev()
        .find(|r| r.deployed())
        .ok_or_else(|| match history.last() {
            None => status::not_installed(namespace),
            Some(last) => Error::not_healthy(
                format!(
                    "no revision of the release in {namespace} ever deployed (the last one {})",
                    last.result
                ),
                "finish the install with `paperclipctl install` first",
            ),
        })
}

/// Runs an upgrade [`prepare`]d before; on failure the error says what failed, where the
/// diagnostics are, and whether the previous revision is back. The backup, the deploy and the
/// rollback after a failure are one release transaction. An up-to-date release is left as it is.
pub async fn run(
    client: &kube::Client,
    prepared: &Prepared,
    timeout: Duration,
    diagnostics_dir: &Path,
    ui: &Ui,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Summary> {
    if prepared.up_to_date {
        return install::unchanged(client, &prepared.release).await;
    }
    let namespace = prepared.release.namespace.as_str();
    transaction::run_release(client, &prepared.release, progress, async |tx| {
        if let Some(path) = &prepared.backup {
            progress(Event::Step("backup before the upgrade"));
            if let Err(e) = backup::backup(client, namespace, path, ui).await {
                return Err(Error::not_healthy(
                    format!("the backup before the upgrade failed, so nothing was upgraded: {e}"),
                    "fix what stopped the backup (`paperclipctl backup` shows it), or upgrade with \
                     --no-backup at your own risk",
                ));
            }
            progress(Event::Note(&format!(
                "backup written to {}",
                path.display()
            )));
        }
        let deployed = tx
            .deploy(
                &prepared.profile,
                &prepared.release,
                Action::Upgrade,
                timeout,
                progress,
            )
            .await?;
        match deployed {
            Deployed::Ready(summary) => Ok(summary),
            Deployed::Failed(cause) => {
                Err(recover(tx, prepared, timeout, diagnostics_dir, &cause, progress).await)
            }
        }
    })
    .await
}

/// After a failed upgrade, still in its transaction: the diagnostics file first (the rollback
/// replaces the failing pods), then the previous revision deployed again. Returns the error the
/// user reads.
async fn recover(
    tx: &Transaction<'_>,
    prepared: &Prepared,
    timeout: Duration,
    diagnostics_dir: &Path,
    cause: &Error,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Error {
    let client = tx.client();
    let (namespace, previous) = (prepared.release.namespace.as_str(), &prepared.previous);
    let image = &prepared.profile.app.image;
    progress(Event::Step("collecting diagnostics"));
    let heading = format!("upgrade to {image} failed: {cause}");
    let diagnostics = match diagnostics::collect(client, namespace, &heading).await {
        Ok(text) => diagnostics::write(diagnostics_dir, namespace, "upgrade", &text),
        Err(e) => Err(e),
    };
    let mut help = match &diagnostics {
        Ok(path) => format!("pod states, crash logs and events: {}", path.display()),
        Err(e) => format!("the diagnostics file could not be written: {e}"),
    };
    if let Some(path) = &prepared.backup {
        help.push_str(&format!(
            "\nthe backup taken before the upgrade: {} (`paperclipctl restore` it if the new \
             version changed the database)",
            path.display()
        ));
    }
    let rolled_back = match &previous.applied {
        Some(profile) => {
            progress(Event::Step(&format!(
                "rolling back to revision {}",
                previous.revision
            )));
            let deployed = match release::verify(client, namespace, previous).await {
                Ok(()) => {
                    let release = render::render(profile);
                    let action = Action::Rollback {
                        to: previous.revision,
                    };
                    tx.deploy(profile, &release, action, timeout, progress)
                        .await
                        .and_then(Deployed::into_result)
                }
                Err(e) => Err(e),
            };
            deployed
                .map(|summary| summary.revision.unwrap_or_default())
                .map_err(|e| e.to_string())
        }
        None => Err(format!(
            "revision {} was recorded without its profile",
            previous.revision
        )),
    };
    let message = match rolled_back {
        Ok(revision) => format!(
            "the upgrade to {image} failed and was rolled back: revision {revision} runs what \
             revision {} ran, and it is ready. What failed: {cause}",
            previous.revision
        ),
        Err(e) => format!(
            "the upgrade to {image} failed ({cause}) and rolling back to revision {} failed \
             too: {e}",
            previous.revision
        ),
    };
    Error::not_healthy(message, help)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(text: &str) -> ImageRef {
        text.parse().unwrap()
    }

    fn record(revision: u32, result: &str) -> Record {
        Record {
            revision,
            profile: "frank".into(),
            profile_digest: "sha256:00".into(),
            inventory: vec![],
            images: Default::default(),
            time: String::new(),
            result: result.into(),
            action: "install".into(),
            applied: None,
            stored_digest: String::new(),
        }
    }

    #[test]
    fn an_upgrade_goes_back_to_the_newest_deployed_revision_and_needs_one() {
        let history = [
            record(1, "deployed"),
            record(2, "deployed"),
            record(3, "failed: crash"),
        ];
        assert_eq!(rollback_point(&history, "ns").unwrap().revision, 2);

        let none = rollback_point(&[], "ns").unwrap_err();
        assert_eq!(none.exit_code(), crate::error::exit::NOT_INSTALLED);
        let never = rollback_point(&history[2..], "ns").unwrap_err();
        assert_eq!(never.exit_code(), crate::error::exit::NOT_HEALTHY);
        assert!(
            never
                .to_string()
                .contains("ever deployed (the last one failed: crash)"),
            "{never}"
        );
    }

    #[test]
    fn a_tag_replaces_the_app_images_tag_or_digest() {
        let current = image("ghcr.io/paperclipai/paperclip:sha-3494e84");
        assert_eq!(
            target_image(&current, "sha-0123abc").unwrap().as_str(),
            "ghcr.io/paperclipai/paperclip:sha-0123abc"
        );
        let pinned = image(&format!(
            "registry.local:5000/p/paperclip:v1@sha256:{}",
            "a".repeat(64)
        ));
        assert_eq!(
            target_image(&pinned, "latest").unwrap().as_str(),
            "registry.local:5000/p/paperclip:latest"
        );
        let port_only = image("registry.local:5000/paperclip");
        assert_eq!(
            target_image(&port_only, "v2").unwrap().as_str(),
            "registry.local:5000/paperclip:v2"
        );
    }

    #[test]
    fn a_whole_reference_is_taken_as_it_is() {
        let current = image("ghcr.io/paperclipai/paperclip:sha-3494e84");
        assert_eq!(
            target_image(&current, "ghcr.io/me/paperclip:fix")
                .unwrap()
                .as_str(),
            "ghcr.io/me/paperclip:fix"
        );
        assert!(target_image(&current, "Bad Ref:x").is_err());
    }
}
