//! Upgrades: a new profile (most often just a newer app image) applied the safe way.
//!
//! The command layer resolves and checks the target (preflight: the tag exists and offers the
//! nodes' platforms) before anything changes. Here: a backup is written first, the release is
//! applied and waited for as an install is (the app Deployment recreates its pod, so two
//! versions never share the volume), and when it does not become ready, the failing pods' state,
//! logs and events go to a diagnostics file before the previous revision is deployed again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup;
use crate::diagnostics;
use crate::error::{Error, Result};
use crate::install::{self, Generated, Summary};
use crate::profile::Profile;
use crate::profile::types::ImageRef;
use crate::release::{self, Record};
use crate::render::{self, Release};
use crate::status;
use crate::transaction::{self, Action, Deployed, Transaction};
use crate::ui::Ui;
use crate::ui::progress::Event;

/// An upgrade to run: the target profile (images pinned) and its rendered release.
pub struct Upgrade<'a> {
    pub profile: &'a Profile,
    pub release: &'a Release,
    /// The release's revisions, oldest first, as [`rollback_point`] checked them.
    pub history: &'a [Record],
    pub timeout: Duration,
    /// Where the backup taken before anything changes goes; `None` skips it.
    pub backup: Option<PathBuf>,
    /// Where a failed upgrade writes its diagnostics file.
    pub diagnostics_dir: &'a Path,
}

pub enum Outcome {
    /// The release already runs this profile: nothing was written, no backup taken.
    UpToDate(Summary),
    Upgraded {
        summary: Summary,
        backup: Option<PathBuf>,
    },
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

/// Runs the upgrade; on failure the error says what failed, where the diagnostics are, and
/// whether the previous revision is back. The backup, the deploy and the rollback after a
/// failure are one release transaction.
pub async fn run(
    client: &kube::Client,
    upgrade: &Upgrade<'_>,
    ui: &Ui,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Outcome> {
    let namespace = upgrade.release.namespace.as_str();
    // What runs now, to come back to; chosen before this upgrade adds a revision.
    let previous = rollback_point(upgrade.history, namespace)?;
    let values = install::values(
        client,
        upgrade.profile,
        upgrade.release,
        Generated::Placeholder,
    )
    .await?;
    let last = upgrade.history.last();
    if install::up_to_date(client, upgrade.profile, upgrade.release, &values, last).await? {
        return Ok(Outcome::UpToDate(
            install::unchanged(client, upgrade.release).await?,
        ));
    }
    if previous.applied.is_none() {
        ui.note(&format!(
            "warning: revision {} was recorded without its profile: a failed upgrade cannot be \
             rolled back by itself",
            previous.revision
        ));
    }
    transaction::run_release(client, upgrade.release, async |tx| {
        if let Some(path) = &upgrade.backup {
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
                upgrade.profile,
                upgrade.release,
                Action::Upgrade,
                upgrade.timeout,
                progress,
            )
            .await?;
        match deployed {
            Deployed::Ready(summary) => Ok(Outcome::Upgraded {
                summary,
                backup: upgrade.backup.clone(),
            }),
            Deployed::Failed(cause) => Err(recover(tx, upgrade, previous, &cause, progress).await),
        }
    })
    .await
}

/// After a failed upgrade, still in its transaction: the diagnostics file first (the rollback
/// replaces the failing pods), then the previous revision deployed again. Returns the error the
/// user reads.
async fn recover(
    tx: &Transaction<'_>,
    upgrade: &Upgrade<'_>,
    previous: &Record,
    cause: &Error,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Error {
    let client = tx.client();
    let namespace = upgrade.release.namespace.as_str();
    let image = &upgrade.profile.app.image;
    progress(Event::Step("collecting diagnostics"));
    let heading = format!("upgrade to {image} failed: {cause}");
    let diagnostics = match diagnostics::collect(client, namespace, &heading).await {
        Ok(text) => diagnostics::write(upgrade.diagnostics_dir, namespace, "upgrade", &text),
        Err(e) => Err(e),
    };
    let mut help = match &diagnostics {
        Ok(path) => format!("pod states, crash logs and events: {}", path.display()),
        Err(e) => format!("the diagnostics file could not be written: {e}"),
    };
    if let Some(path) = &upgrade.backup {
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
                    tx.deploy(profile, &release, action, upgrade.timeout, progress)
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
