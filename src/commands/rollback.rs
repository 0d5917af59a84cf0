//! `paperclipctl rollback [REVISION]`: deploy what an earlier revision applied, again.

use serde_json::json;

use super::report::{change_lines, change_list, health_json, health_lines};
use super::session::Session;
use crate::cli::{Global, Output, RollbackArgs};
use crate::error::Result;
use crate::install;
use crate::release;
use crate::rollback;
use crate::status;
use crate::transaction::{self, Action};
use crate::ui::Ui;
use crate::ui::progress::Event;

pub fn run(global: &Global, args: &RollbackArgs, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    super::block_on(async {
        let session =
            Session::connect(global, global.context.as_deref(), namespace.clone(), ui).await?;
        let (client, progress) = (session.client(), &session.progress);
        let history = release::history(client, &namespace).await?;
        if history.is_empty() {
            return Err(status::not_installed(&namespace));
        }
        let target = rollback::target(&history, args.revision)?;
        release::verify(client, &namespace, target).await?;
        let profile = target
            .applied
            .as_ref()
            .expect("a rollback target carries its profile");
        let prepared = rollback::prepare(client, profile).await?;
        let (release, values) = &prepared;
        let heading = format!(
            "revision {} ({}, app image {})",
            target.revision, target.profile, profile.app.image
        );
        if args.dry_run {
            let changes = install::changes(client, release, values).await?;
            let text = match ui.output {
                Output::Json => {
                    serde_json::to_string_pretty(&json!({
                        "dryRun": true,
                        "namespace": namespace,
                        "revision": target.revision,
                        "image": profile.app.image.as_str(),
                        "changes": change_list(&changes),
                    }))? + "\n"
                }
                Output::Text | Output::Yaml => format!(
                    "Rollback of Paperclip in namespace {namespace} to {heading}; would apply:\n{}\
                     The database would stay as it is. Nothing was changed (--dry-run).\n",
                    change_lines(&changes)
                ),
            };
            return Ok(ui.print(&text)?);
        }
        if install::up_to_date(client, profile, release, values, history.last()).await? {
            let summary = install::unchanged(client, release).await?;
            ui.print(&format!(
                "Paperclip in namespace {namespace} already runs what {heading} applied: nothing \
                 changed.\n{}",
                health_lines(&namespace, &summary)
            ))?;
            return Ok(());
        }
        progress.event(Event::Step(&format!("rolling back to {heading}")));
        let action = Action::Rollback {
            to: target.revision,
        };
        let deployed = transaction::run_release(client, release, async |tx| {
            tx.deploy(profile, release, action, args.timeout, &|e| {
                progress.event(e)
            })
            .await?
            .into_result()
        })
        .await;
        progress.finish();
        let summary = deployed?;
        let text = match ui.output {
            Output::Json => {
                serde_json::to_string_pretty(&json!({
                    "revision": summary.revision,
                    "rolledBackTo": target.revision,
                    "image": profile.app.image.as_str(),
                    "changes": change_list(&summary.changes),
                    "health": health_json(&summary.health),
                }))? + "\n"
            }
            Output::Text | Output::Yaml => format!(
                "Paperclip in namespace {namespace} is back at {heading}, as revision {}.\n{}\
                 The database was not changed; `paperclipctl backup list` shows the backups \
                 taken before upgrades.\n",
                summary.revision.unwrap_or_default(),
                health_lines(&namespace, &summary)
            ),
        };
        ui.print(&text)?;
        Ok(())
    })
}
