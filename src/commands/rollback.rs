//! `paperclipctl rollback [REVISION]`: prepare going back to an earlier revision (`--dry-run`:
//! print what was prepared), run it, report.

use serde_json::json;

use super::report::{change_lines, change_list, health_json, health_lines};
use super::session::Session;
use crate::cli::{Global, Output, RollbackArgs};
use crate::error::Result;
use crate::rollback;
use crate::ui::Ui;

pub fn run(global: &Global, args: &RollbackArgs, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    super::block_on(async {
        let session = Session::connect(global, global.context.as_deref(), namespace, ui).await?;
        let (client, namespace) = (session.client(), session.namespace.as_str());
        let prepared = rollback::prepare(client, namespace, args.revision).await?;
        let (target, profile) = (&prepared.target, prepared.profile());
        let heading = format!(
            "revision {} ({}, app image {})",
            target.revision, target.profile, profile.app.image
        );
        if args.dry_run {
            session.progress.finish();
            let text = match ui.output {
                Output::Json => {
                    serde_json::to_string_pretty(&json!({
                        "dryRun": true,
                        "namespace": namespace,
                        "revision": target.revision,
                        "upToDate": prepared.up_to_date,
                        "image": profile.app.image.as_str(),
                        "changes": change_list(&prepared.changes),
                    }))? + "\n"
                }
                Output::Text | Output::Yaml => format!(
                    "Rollback of Paperclip in namespace {namespace} to {heading}; would apply:\n{}\
                     The database would stay as it is. Nothing was changed (--dry-run).\n",
                    change_lines(&prepared.changes)
                ),
            };
            return Ok(ui.print(&text)?);
        }
        let summary = rollback::run(client, &prepared, args.timeout, &|event| {
            session.report(event)
        })
        .await;
        session.progress.finish();
        let summary = summary?;
        let text = match ui.output {
            Output::Json => {
                serde_json::to_string_pretty(&json!({
                    "upToDate": summary.up_to_date(),
                    "revision": summary.revision,
                    "rolledBackTo": target.revision,
                    "image": profile.app.image.as_str(),
                    "changes": change_list(&summary.changes),
                    "health": health_json(&summary.health),
                }))? + "\n"
            }
            Output::Text | Output::Yaml if summary.up_to_date() => format!(
                "Paperclip in namespace {namespace} already runs what {heading} applied: nothing \
                 changed.\n{}",
                health_lines(namespace, &summary)
            ),
            Output::Text | Output::Yaml => format!(
                "Paperclip in namespace {namespace} is back at {heading}, as revision {}.\n{}\
                 The database was not changed; `paperclipctl backup list` shows the backups \
                 taken before upgrades.\n",
                summary.revision.unwrap_or_default(),
                health_lines(namespace, &summary)
            ),
        };
        ui.print(&text)?;
        Ok(())
    })
}
