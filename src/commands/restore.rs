//! `paperclipctl restore`: puts an archive written by `backup` back, after checking every part,
//! naming the cluster and namespace it will replace, and a confirmation.

use super::session::Session;
use crate::backup::{self, restore::Target};
use crate::cli::{Global, RestoreArgs};
use crate::cluster::apply;
use crate::error::{Error, Result};
use crate::render::{self, Object, meta};
use crate::transaction;
use crate::ui::Ui;

pub fn run(global: &Global, args: &RestoreArgs, ui: &Ui) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let namespace = loaded.profile.namespace.to_string();
    // Checked before anything else: a refused archive never reaches the cluster.
    let identities = match &args.identity {
        Some(file) => backup::crypt::identities(file)?,
        None => Vec::new(),
    };
    let (manifest, dir) = if backup::upstream::is_upstream_dump(&args.archive) {
        backup::open_upstream(&args.archive, &namespace)?
    } else {
        backup::open(&args.archive, &identities)?
    };
    if manifest.namespace != namespace && !args.other_namespace {
        return Err(Error::usage(
            format!(
                "{} is a backup of namespace {}, not of {namespace}",
                args.archive.display(),
                manifest.namespace
            ),
            format!(
                "restore it into its own release with --namespace {}; to put it into \
                 {namespace} on purpose (a move to another cluster or namespace), add \
                 --other-namespace",
                manifest.namespace
            ),
        ));
    }
    let steps = backup::steps(&manifest, &namespace);
    let numbered: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {}. {s}\n", i + 1))
        .collect();
    let header = format!(
        "{} verified: backup of {} taken {}, {} table(s).\n",
        args.archive.display(),
        manifest.namespace,
        manifest.created,
        manifest.tables.len()
    );
    if args.dry_run {
        let against = super::block_on(against(global, &namespace, ui))?;
        ui.print(&format!(
            "{header}{against}A restore would:\n{}",
            numbered.concat()
        ))?;
        return Ok(());
    }
    let release = render::render(&loaded.profile);
    let app = release
        .objects()
        .find(|o| matches!(o, Object::Deployment(_)))
        .cloned()
        .ok_or_else(|| {
            Error::usage("the profile renders no app Deployment", "check the profile")
        })?;
    ui.note(&header);
    super::block_on(async {
        let session =
            Session::connect(global, global.context.as_deref(), namespace.clone(), ui).await?;
        let cluster = &session.cluster;
        let place = format!(
            "namespace {namespace} on cluster {} ({})",
            cluster.context.as_deref().unwrap_or("in-cluster"),
            cluster.server
        );
        ui.note(&format!(
            "This restore replaces the database, master key and config of {place}."
        ));
        confirm(global, ui, &place)?;
        let client = &cluster.client;
        transaction::run(client, &namespace, &|e| session.report(e), async |_| {
            if args.no_safety_backup {
                ui.note("no safety backup (--no-safety-backup): what is there now is replaced");
            } else {
                let safety = backup::new_archive_path(&namespace, Some("pre-restore"))?;
                let written = backup::backup(client, &namespace, &safety, ui)
                    .await
                    .map_err(|e| match e {
                        Error::Interrupted { .. } => e,
                        e => Error::not_healthy(
                            format!(
                                "the safety backup of {namespace} failed, so nothing was \
                                 restored: {e}"
                            ),
                            "make `paperclipctl backup` work first (the app must be running); \
                             for an instance that cannot be backed up (its master key is lost), \
                             add --no-safety-backup",
                        ),
                    })?;
                ui.note(&format!(
                    "✓ safety backup of what is there now: {} ({} bytes, {})",
                    safety.display(),
                    written.bytes,
                    if written.encrypted {
                        "encrypted to the profile's backup.recipients"
                    } else {
                        "not encrypted"
                    }
                ));
            }
            let target = Target {
                client,
                namespace: &namespace,
                app: &app,
                timeout: args.timeout,
                progress: &|e| session.report(e),
            };
            backup::restore(&target, &manifest, dir.path(), ui).await
        })
        .await?;
        ui.print(&format!(
            "Restored {} into {place}: {} table(s) with the recorded row counts.\n",
            args.archive.display(),
            manifest.tables.len()
        ))?;
        Ok(())
    })
}

/// What a restore's dry run finds on the cluster, as the run would before its first write: the
/// lock is free (held, it fails as the run would) and the app is there to take the files.
/// Offline it is empty, and stderr says so.
async fn against(global: &Global, namespace: &str, ui: &Ui) -> Result<String> {
    let connected = Session::connect(global, global.context.as_deref(), namespace.into(), ui);
    let session = match connected.await {
        Ok(session) => session,
        Err(e) => {
            ui.note(&format!(
                "offline: {e}\nThe archive was checked; the cluster was not."
            ));
            return Ok(String::new());
        }
    };
    let client = session.client();
    transaction::ensure_free(client, namespace).await?;
    let app = apply::get(client, "Deployment", meta::APP_NAME, Some(namespace)).await?;
    let place = format!(
        "namespace {namespace} on cluster {} ({})",
        session.cluster.context.as_deref().unwrap_or("in-cluster"),
        session.cluster.server
    );
    let replicas = app.map(|d| d.data["spec"]["replicas"].as_i64().unwrap_or(1));
    let app = match replicas {
        Some(replicas) => format!(
            "Deployment/{} runs {replicas} replica(s) and is scaled back to {} after the load",
            meta::APP_NAME,
            replicas.max(1)
        ),
        None => format!(
            "there is no Deployment/{} to put the files into: a restore would stop there \
             (install the release first)",
            meta::APP_NAME
        ),
    };
    Ok(format!(
        "Against {place}: the release lock is free; {app}.\n"
    ))
}

/// Asks at a terminal; without one, `--yes` must say it.
fn confirm(global: &Global, ui: &Ui, place: &str) -> Result<()> {
    if global.yes {
        return Ok(());
    }
    if !ui.interactive() {
        return Err(Error::usage(
            format!("restoring into {place} replaces its data and needs a confirmation"),
            "check the cluster and namespace above, then add --yes to restore without asking",
        ));
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Replace the database, master key and config of {place}?"
        ))
        .default(false)
        .interact()
        .map_err(|e| Error::Output(std::io::Error::other(e.to_string())))?;
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            "restore cancelled; nothing changed",
            "run it again to restore",
        ))
    }
}
