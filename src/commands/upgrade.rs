//! `paperclipctl upgrade`: check the target, prepare the upgrade (`--dry-run`: print what was
//! prepared), run it, report.

use serde_json::json;

use super::checks::{self, check};
use super::report::{change_lines, change_list, health_json, health_lines};
use super::session::Session;
use crate::cli::{Global, Output, UpgradeArgs};
use crate::error::{Error, Result};
use crate::install::Summary;
use crate::release;
use crate::render;
use crate::ui::Ui;
use crate::ui::progress::Event;
use crate::upgrade::{self, BackupTo, Prepared, Request};

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
        let (client, namespace) = (session.client(), &session.namespace);
        let history = release::history(client, namespace).await?;
        // Checked before preflight: there must be a deployed revision to come back to.
        upgrade::rollback_point(&history, namespace)?;
        let checked = check(&session, &loaded, &args.ignore_preflight).await?;
        let request = Request {
            profile: checked.loaded.profile,
            image_named: args.to.is_some(),
            backup: match (&args.backup_file, args.no_backup) {
                (_, true) => BackupTo::Nowhere,
                (Some(path), false) => BackupTo::File(path.clone()),
                (None, false) => BackupTo::BackupsDir,
            },
        };
        let report = |event: Event<'_>| session.report(event);
        let prepared = upgrade::prepare(client, &history, request, &checked.auth, &report).await?;
        for warning in &prepared.warnings {
            ui.note(&format!("{}: {warning}", ui.warning("warning")));
        }
        if args.dry_run {
            session.progress.finish();
            let text = match ui.output {
                Output::Json => {
                    serde_json::to_string_pretty(&dry_run_json(namespace, &prepared))? + "\n"
                }
                Output::Text | Output::Yaml => dry_run_text(namespace, &prepared, args),
            };
            return Ok(ui.print(&text)?);
        }
        let summary = upgrade::run(
            client,
            &prepared,
            args.timeout,
            &args.diagnostics_dir,
            ui,
            &report,
        )
        .await;
        session.progress.finish();
        let summary = summary?;
        let text = match ui.output {
            Output::Json => serde_json::to_string_pretty(&result_json(&summary, &prepared))? + "\n",
            Output::Text | Output::Yaml => done(namespace, &summary, &prepared, args),
        };
        ui.print(&text)?;
        Ok(())
    })
}

fn result_json(summary: &Summary, prepared: &Prepared) -> serde_json::Value {
    json!({
        "upToDate": summary.up_to_date(),
        "revision": summary.revision,
        "image": prepared.profile.app.image.as_str(),
        "backup": prepared.backup,
        "changes": change_list(&summary.changes),
        "health": health_json(&summary.health),
    })
}

fn done(namespace: &str, summary: &Summary, prepared: &Prepared, args: &UpgradeArgs) -> String {
    let image = &prepared.profile.app.image;
    if summary.up_to_date() {
        return format!(
            "Paperclip in namespace {namespace} already runs {image}: nothing changed.\n{}",
            health_lines(namespace, summary)
        );
    }
    let mut out = format!(
        "Paperclip in namespace {namespace} is upgraded to {image} (revision {}).\n",
        summary.revision.unwrap_or_default()
    );
    if let Some(path) = &prepared.backup {
        out.push_str(&format!("Backup taken before: {}\n", path.display()));
    }
    out.push_str(&health_lines(namespace, summary));
    if args.to.is_some() {
        out.push_str(
            "Set app.image in the profile to this image to keep it: `install` applies the \
             profile's own image.\n",
        );
    }
    out
}

fn dry_run_json(namespace: &str, prepared: &Prepared) -> serde_json::Value {
    json!({
        "dryRun": true,
        "namespace": namespace,
        "upToDate": prepared.up_to_date,
        "image": prepared.profile.app.image.as_str(),
        "rollbackTo": prepared.previous.revision,
        "backup": prepared.backup,
        "changes": change_list(&prepared.changes),
    })
}

fn dry_run_text(namespace: &str, prepared: &Prepared, args: &UpgradeArgs) -> String {
    let image = &prepared.profile.app.image;
    if prepared.up_to_date {
        return format!(
            "Paperclip in namespace {namespace} already runs {image}: an upgrade would change \
             nothing.\nNothing was changed (--dry-run).\n"
        );
    }
    let previous = &prepared.previous;
    let from = previous
        .applied
        .as_ref()
        .map_or("(not recorded)".to_string(), |p| p.app.image.to_string());
    let mut out = format!(
        "Upgrade of Paperclip in namespace {namespace}:\n  app image {from}\n         → {image}\n"
    );
    out.push_str(&match &prepared.backup {
        Some(path) => format!("1. back up to {}\n", path.display()),
        None => "1. no backup (--no-backup)\n".to_string(),
    });
    out.push_str("2. apply (server-side dry run says):\n");
    out.push_str(&change_lines(&prepared.changes));
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
