//! `paperclipctl backup`: the database with the instance's master key and config, in one archive.

use std::path::PathBuf;

use crate::backup;
use crate::cli::{BackupArgs, Global};
use crate::cluster;
use crate::error::Result;
use crate::ui::Ui;

pub fn run(global: &Global, args: &BackupArgs, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    let path = args.file.clone().unwrap_or_else(|| {
        let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
        PathBuf::from(format!("paperclip-backup-{namespace}-{now}.tar.gz"))
    });
    super::block_on(async {
        let cluster =
            cluster::connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        let written = backup::backup(&cluster.client, &namespace, &path, ui).await?;
        let revision = written
            .manifest
            .revision
            .map_or("no recorded revision".to_string(), |r| {
                format!("revision {r}")
            });
        ui.print(&format!(
            "Backup of {namespace} ({revision}, {} table(s)) written to {} ({} bytes).\n\
             It holds the instance's master key: keep it as safe as the cluster's secrets.\n",
            written.manifest.tables.len(),
            path.display(),
            written.bytes
        ))?;
        Ok(())
    })
}
