//! `paperclipctl upgrade`: check the target, back up, apply, and roll back by itself on failure.

use serde_json::json;

use super::checks::{self, check};
use super::report::{change_lines, change_list, health_json, health_lines};
use super::session::Session;
use crate::backup;
use crate::cli::{Global, Output, UpgradeArgs};
use crate::cluster::apply::Change;
use crate::error::{Error, Result};
use crate::image;
use crate::install::{self, Generated, Summary};
use crate::profile::types::ImageRef;
use crate::release;
use crate::render;
use crate::ui::Ui;
use crate::ui::progress::Event;
use crate::upgrade::{self, Outcome, Upgrade};

pub fn run(global: &Global, args: &UpgradeArgs, ui: &Ui) -> Result<()> {
    let mut loaded = super::load_profile(global)?;
    if let Some(to) = &args.to {
        loaded.profile.app.image =
            upgrade::target_image(&loaded.profile.app.image, to).map_err(|message| {
                Error::usage(
                    format!("--to {to}: {message}"),
                    "give `latest`, a tag such as sha-3494e84, or a whole image reference",
                )
            })?;
    }
    checks::lint(&render::render(&loaded.profile), ui)?;
    let namespace = loaded.profile.namespace.to_string();
    super::block_on(async {
        let session = Session::connect(global, global.context.as_deref(), namespace, ui).await?;
        let (client, namespace, progress) =
            (session.client(), &session.namespace, &session.progress);
        let history = release::history(client, namespace).await?;
        // Checked before preflight: there must be a deployed revision to come back to.
        let previous = upgrade::rollback_point(&history, namespace)?;
        let checked = check(&session, &loaded, &args.ignore_preflight).await?;
        let auth = checked.auth;
        let mut profile = checked.loaded.profile;
        let running = previous.applied.as_ref().map(|p| &p.app.image);
        match running.filter(|running| args.to.is_none() && same_image(running, &profile.app.image))
        {
            // An unchanged profile keeps the image as it runs, so upgrading it changes nothing.
            Some(running) => profile.app.image = running.clone(),
            // A new image, or any --to (which asks for what the tag names now), is pinned;
            // after preflight, which explains a missing tag or a platform gap better.
            None => {
                let pinned = image::pin(&profile.app.image, &auth, "app.image").await?;
                progress.event(Event::Note(&format!(
                    "app image {} pinned to {}",
                    profile.app.image, pinned.digest
                )));
                profile.app.image = pinned.reference;
            }
        }
        let release = render::render(&profile);

        let backup = match (&args.backup_file, args.no_backup) {
            (_, true) => None,
            (Some(path), false) => Some(path.clone()),
            (None, false) => Some(backup::new_archive_path(namespace, Some("pre-upgrade"))?),
        };
        if args.dry_run {
            let values =
                install::values(client, &profile, &release, Generated::Placeholder).await?;
            let changes = install::changes(client, &release, &values).await?;
            progress.finish();
            let text = match ui.output {
                Output::Json => {
                    serde_json::to_string_pretty(&json!({
                        "dryRun": true,
                        "namespace": namespace,
                        "image": profile.app.image.as_str(),
                        "rollbackTo": previous.revision,
                        "backup": backup,
                        "changes": change_list(&changes),
                    }))? + "\n"
                }
                Output::Text | Output::Yaml => {
                    dry_run_text(namespace, previous, &profile, &changes, &backup, args)
                }
            };
            return Ok(ui.print(&text)?);
        }

        let outcome = upgrade::run(
            client,
            &Upgrade {
                profile: &profile,
                release: &release,
                history: &history,
                timeout: args.timeout,
                backup,
                diagnostics_dir: &args.diagnostics_dir,
            },
            ui,
            &|event| progress.event(event),
        )
        .await;
        progress.finish();
        let text = match (&outcome?, ui.output) {
            (Outcome::UpToDate(summary), Output::Json) => {
                serde_json::to_string_pretty(&result_json(summary, &profile, None))? + "\n"
            }
            (Outcome::Upgraded { summary, backup }, Output::Json) => {
                serde_json::to_string_pretty(&result_json(summary, &profile, backup.as_ref()))?
                    + "\n"
            }
            (Outcome::UpToDate(summary), _) => format!(
                "Paperclip in namespace {namespace} already runs {}: nothing changed.\n{}",
                profile.app.image,
                health_lines(namespace, summary)
            ),
            (Outcome::Upgraded { summary, backup }, _) => {
                let mut out = format!(
                    "Paperclip in namespace {namespace} is upgraded to {} (revision {}).\n",
                    profile.app.image,
                    summary.revision.unwrap_or_default()
                );
                if let Some(path) = backup {
                    out.push_str(&format!("Backup taken before: {}\n", path.display()));
                }
                out.push_str(&health_lines(namespace, summary));
                if args.to.is_some() {
                    out.push_str(
                        "Set app.image in the profile to this image to keep it: `install` \
                         applies the profile's own image.\n",
                    );
                }
                out
            }
        };
        ui.print(&text)?;
        Ok(())
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

fn result_json(
    summary: &Summary,
    profile: &crate::profile::Profile,
    backup: Option<&std::path::PathBuf>,
) -> serde_json::Value {
    json!({
        "upToDate": summary.up_to_date(),
        "revision": summary.revision,
        "image": profile.app.image.as_str(),
        "backup": backup,
        "changes": change_list(&summary.changes),
        "health": health_json(&summary.health),
    })
}

fn dry_run_text(
    namespace: &str,
    previous: &release::Record,
    profile: &crate::profile::Profile,
    changes: &[(String, Change)],
    backup: &Option<std::path::PathBuf>,
    args: &UpgradeArgs,
) -> String {
    let from = previous
        .applied
        .as_ref()
        .map_or("(not recorded)".to_string(), |p| p.app.image.to_string());
    let mut out = format!(
        "Upgrade of Paperclip in namespace {namespace}:\n  app image {from}\n         → {}\n",
        profile.app.image
    );
    out.push_str(&match backup {
        Some(path) => format!("1. back up to {}\n", path.display()),
        None => "1. no backup (--no-backup)\n".to_string(),
    });
    out.push_str("2. apply (server-side dry run says):\n");
    out.push_str(&change_lines(changes));
    let back = format!("deploy revision {} again", previous.revision);
    out.push_str(&format!(
        "3. wait until ready (timeout {}s per wave); if it is not, write diagnostics to {} and \
         {back}\n",
        args.timeout.as_secs(),
        args.diagnostics_dir.display(),
    ));
    out.push_str("Nothing was changed (--dry-run).\n");
    out
}
