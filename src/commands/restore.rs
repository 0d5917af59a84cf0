//! `paperclipctl restore`: puts an archive written by `backup` back, after checking every part.

use crate::backup;
use crate::cli::{Global, RestoreArgs};
use crate::cluster;
use crate::error::{Error, Result};
use crate::render::{self, Object};
use crate::ui::Ui;

pub fn run(global: &Global, args: &RestoreArgs, ui: &Ui) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let namespace = loaded.profile.namespace.to_string();
    // Checked before anything else: a refused archive never reaches the cluster.
    let (manifest, dir) = backup::open(&args.archive)?;
    if manifest.namespace != namespace && !args.other_namespace {
        return Err(Error::usage(
            format!(
                "{} is a backup of namespace {}, not of {namespace}",
                args.archive.display(),
                manifest.namespace
            ),
            format!(
                "restore it into its own release with --namespace {}; to put it into                  {namespace} on purpose (a move to another cluster or namespace), add                  --other-namespace",
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
        ui.print(&format!("{header}A restore would:\n{}", numbered.concat()))?;
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
        let cluster =
            cluster::connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        backup::restore(&cluster.client, &namespace, &manifest, dir.path(), &app, ui).await?;
        ui.print(&format!(
            "Restored {} into {namespace}: {} table(s) with the recorded row counts.\n",
            args.archive.display(),
            manifest.tables.len()
        ))?;
        Ok(())
    })
}
