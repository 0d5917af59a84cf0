//! `paperclipctl uninstall`: delete the release in reverse wave order, keeping its data unless
//! `--purge` (confirmed) says otherwise.

use super::session::Session;
use crate::cli::{Global, UninstallArgs};
use crate::error::{Error, Result};
use crate::render;
use crate::transaction;
use crate::ui::Ui;
use crate::ui::progress::Event;
use crate::uninstall::{self, Found, Inventory};

pub fn run(global: &Global, args: &UninstallArgs, ui: &Ui) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let release = render::render(&loaded.profile);
    let namespace = release.namespace.clone();
    if args.purge && !args.dry_run && !global.yes && !ui.interactive() {
        return Err(Error::usage(
            "--purge deletes data and needs a confirmation, but nobody can answer here",
            "add --yes to confirm that the volumes, the database password and the release \
             records may be deleted",
        ));
    }
    super::block_on(async {
        let connected = Session::connect(global, global.context.as_deref(), namespace.clone(), ui);
        let session = match connected.await {
            Ok(session) => session,
            Err(e) if args.dry_run => {
                ui.note(&format!(
                    "offline: {e}\nWhat follows is what the profile renders, not what the \
                     cluster holds; an uninstall deletes only what it finds there."
                ));
                let rendered = uninstall::planned(&release)?;
                return ui
                    .print(&dry_run(&rendered, &namespace, args.purge))
                    .map_err(Error::Output);
            }
            Err(e) => return Err(e),
        };
        let (client, progress) = (session.client(), &session.progress);
        let found = uninstall::inventory(client, &release).await?;
        if args.dry_run {
            progress.finish();
            return ui
                .print(&dry_run(&found, &namespace, args.purge))
                .map_err(Error::Output);
        }
        if found.to_delete(args.purge).next().is_none() {
            progress.finish();
            let mut out = format!("nothing to uninstall in namespace {namespace}\n");
            out.push_str(&kept_lines(&found, &namespace));
            return ui.print(&out).map_err(Error::Output);
        }
        if args.purge && !global.yes && !confirm(&found, &namespace)? {
            progress.finish();
            return ui.print("nothing was deleted\n").map_err(Error::Output);
        }
        let order: Vec<&Found> = found.to_delete(args.purge).collect();
        transaction::run(client, &namespace, &|e| progress.event(e), async |_| {
            progress.event(Event::Step("deleting in reverse wave order"));
            uninstall::delete(client, &order, args.timeout, &|e| progress.event(e)).await
        })
        .await?;
        // After the transaction: the lock's Lease lives in the namespace it may delete.
        let namespace_kept = match (args.purge, found.own_namespace) {
            (false, _) => None,
            (true, false) => Some(Err("paperclipctl did not create it".to_string())),
            (true, true) => {
                Some(uninstall::delete_namespace_if_empty(client, &namespace, args.timeout).await?)
            }
        };
        progress.finish();
        let mut out = format!(
            "Paperclip is uninstalled from namespace {namespace} ({} object(s) deleted).\n",
            order.len()
        );
        if args.purge {
            match namespace_kept {
                Some(Ok(())) => {
                    out.push_str(&format!("Namespace {namespace} deleted (it was empty).\n"));
                }
                Some(Err(why)) => out.push_str(&format!("Namespace {namespace} kept: {why}.\n")),
                None => {}
            }
            out.push_str(&infisical_lines(&loaded.profile));
        } else {
            out.push_str(&kept_lines(&found, &namespace));
        }
        ui.print(&out).map_err(Error::Output)
    })
}

/// Asks at the terminal before data is deleted.
fn confirm(found: &Inventory, namespace: &str) -> Result<bool> {
    let data: Vec<String> = found.kept().map(Found::id).collect();
    dialoguer::Confirm::new()
        .with_prompt(format!(
            "Delete the release in {namespace} with its data ({})? This cannot be undone",
            if data.is_empty() {
                "none found".to_string()
            } else {
                data.join(", ")
            }
        ))
        .default(false)
        .interact()
        .map_err(|e| Error::Output(std::io::Error::other(e.to_string())))
}

/// What was kept and the one command that removes it.
fn kept_lines(found: &Inventory, namespace: &str) -> String {
    let kept: Vec<&Found> = found.kept().collect();
    if kept.is_empty() {
        return String::new();
    }
    let mut out = String::from("Kept (data survives an uninstall):\n");
    for object in &kept {
        out.push_str(&format!("  {}\n", object.id()));
    }
    out.push_str(&format!(
        "Remove them with: paperclipctl uninstall --purge -n {namespace} (asks first; --yes to skip)\n"
    ));
    out
}

/// Values in Infisical are shared with whoever else reads the project: they are never deleted
/// from here, only named.
fn infisical_lines(profile: &crate::profile::Profile) -> String {
    let synced = render::synced_secrets(profile);
    let store = &synced.store;
    let keys: Vec<&str> = synced
        .external_secrets
        .iter()
        .flat_map(|es| es.keys.iter().map(|k| k.remote.as_str()))
        .collect();
    if keys.is_empty() {
        return String::new();
    }
    format!(
        "The values in Infisical were left alone (other installs may read them): {} in project {}, \
         environment {}, folder {}. Delete them there if nothing else uses them, e.g. \
         `infisical secrets delete {} --env {} --path {}`.\n",
        keys.join(", "),
        store.project_slug,
        store.environment_slug,
        store.secrets_path,
        keys.join(" "),
        store.environment_slug,
        store.secrets_path,
    )
}

fn dry_run(found: &Inventory, namespace: &str, purge: bool) -> String {
    let mut out = String::new();
    let delete: Vec<&Found> = found.to_delete(purge).collect();
    if delete.is_empty() {
        out.push_str(&format!("nothing to uninstall in namespace {namespace}\n"));
    } else {
        out.push_str(&format!(
            "Would delete from namespace {namespace}, in this order:\n"
        ));
        for object in &delete {
            out.push_str(&format!("  {}\n", object.id()));
        }
        if purge && found.own_namespace {
            out.push_str(&format!(
                "  Namespace/{namespace} (if nothing else is left in it)\n"
            ));
        }
    }
    if !purge {
        out.push_str(&kept_lines(found, namespace));
    }
    out
}
