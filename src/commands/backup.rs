//! `paperclipctl backup`: the database with the instance's master key and config, in one archive;
//! `backup list` and `backup pull` for the archives kept here and the app's own backups.

use std::path::PathBuf;

use super::session::Session;
use crate::backup::{self, LocalArchive, VolumeBackup};
use crate::cli::{BackupArgs, BackupCommand, Global, ListArgs, Output, PullArgs};
use crate::error::{Error, Result};
use crate::ui::{Ui, human_bytes};

pub fn run(global: &Global, args: &BackupArgs, ui: &Ui) -> Result<()> {
    match &args.command {
        None => create(global, args, ui),
        Some(BackupCommand::List(list_args)) => list(global, list_args, ui),
        Some(BackupCommand::Pull(pull)) => pull_one(global, pull, ui),
    }
}

fn create(global: &Global, args: &BackupArgs, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    let selection = backup::layout::Selection {
        include: args.include.iter().cloned().collect(),
        exclude: args.exclude.iter().cloned().collect(),
    };
    selection
        .check()
        .map_err(|why| Error::usage(format!("--include/--exclude: {why}"), TREES_HELP))?;
    let options = backup::Options {
        selection,
        recipients: std::sync::Arc::new(backup::crypt::recipients(&args.recipients)?),
    };
    let path = match &args.file {
        Some(file) => file.clone(),
        None if options.recipients.is_empty() => backup::new_archive_path(&namespace, None)?,
        None => {
            let path = backup::new_archive_path(&namespace, None)?;
            path.with_file_name(format!(
                "{}.age",
                path.file_name().unwrap_or_default().to_string_lossy()
            ))
        }
    };
    super::block_on(async {
        let session = Session::for_reading(global, namespace.clone(), ui).await?;
        let written =
            backup::backup_with(session.client(), &namespace, &path, &options, ui).await?;
        let revision = written
            .manifest
            .revision
            .map_or("no recorded revision".to_string(), |r| {
                format!("revision {r}")
            });
        let files = &written.manifest.files;
        let mut text = format!(
            "Backup of {namespace} ({revision}, {} table(s)) written to {} ({} bytes).\n",
            written.manifest.tables.len(),
            path.display(),
            written.bytes
        );
        if !files.included.is_empty() {
            text.push_str(&format!("Instance files: {}.\n", files.included.join(", ")));
        }
        if !files.excluded.is_empty() {
            text.push_str(&format!(
                "Left out: {} (see --include/--exclude).\n",
                files.excluded.join(", ")
            ));
        }
        if written.manifest.master_key_from_env {
            text.push_str(
                "The master key comes from PAPERCLIP_SECRETS_MASTER_KEY and is not in the \
                 archive: keep that value with it.\n",
            );
        }
        text.push_str(if written.encrypted {
            "It is encrypted with age to the given recipients; restore it with --identity.\n"
        } else {
            "It is NOT encrypted and holds the instance's keys and the database password: keep \
             it as safe as the cluster's secrets, or write it with --recipient.\n"
        });
        ui.print(&text)?;
        Ok(())
    })
}

/// What `--include`/`--exclude` accept.
const TREES_HELP: &str = "see README's \"What a backup holds\" for the trees of the instance \
                          directory and which are in by default";

fn list(global: &Global, args: &ListArgs, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    let identities = match &args.identity {
        Some(file) => backup::crypt::identities(file)?,
        None => Vec::new(),
    };
    let dir = backup::local_dir()?;
    let local = backup::local_archives(&namespace, &identities)?;
    let volume = super::block_on(async {
        let session = Session::for_reading(global, namespace.clone(), ui).await?;
        backup::volume_backups(session.client(), &namespace).await
    })?;
    let text = match ui.output {
        Output::Json => {
            serde_json::to_string_pretty(&serde_json::json!({
                "namespace": namespace,
                "directory": dir,
                "local": local,
                "volume": volume,
            }))? + "\n"
        }
        Output::Text | Output::Yaml => {
            let mut text = format!(
                "{}\n",
                ui.heading(&format!("Archives of {namespace} in {}:", dir.display()))
            );
            text.push_str(&local_table(&local));
            text.push_str(&format!(
                "\n{}\n",
                ui.heading("Paperclip's own backups on the app's volume (data/backups):")
            ));
            text.push_str(&match &volume {
                Some(backups) => volume_table(backups),
                None => format!("  no app pod is running in {namespace} to read them from\n"),
            });
            text
        }
    };
    ui.print(&text)?;
    Ok(())
}

fn pull_one(global: &Global, args: &PullArgs, ui: &Ui) -> Result<()> {
    // A bad name is refused before anything is contacted.
    backup::check_name(&args.name)?;
    let namespace = super::namespace(global)?;
    let destination = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    super::block_on(async {
        let session = Session::for_reading(global, namespace.clone(), ui).await?;
        let bytes = backup::pull(
            session.client(),
            &namespace,
            &args.name,
            &destination,
            args.force,
            ui,
        )
        .await?;
        ui.print(&format!(
            "Copied {} ({bytes} bytes) from the app's volume to {}.\n",
            args.name,
            destination.display()
        ))?;
        Ok::<_, Error>(())
    })
}

/// One line per archive: when it was taken, from which revision, how big, how many tables.
fn local_table(archives: &[LocalArchive]) -> String {
    if archives.is_empty() {
        return "  none\n".to_string();
    }
    let mut out = format!(
        "  {:<20} {:<9} {:>10} {:>7}  {}\n",
        "CREATED", "REVISION", "SIZE", "TABLES", "FILE"
    );
    for a in archives {
        let name = a.path.file_name().unwrap_or_default().to_string_lossy();
        let line = match (&a.manifest, &a.unreadable) {
            (Some(m), _) => format!(
                "  {:<20} {:<9} {:>10} {:>7}  {name}\n",
                short_time(&m.created),
                m.revision.map_or("-".to_string(), |r| r.to_string()),
                human_bytes(a.bytes),
                m.tables.len(),
            ),
            (None, why) => format!(
                "  {:<20} {:<9} {:>10} {:>7}  {name} (unreadable: {})\n",
                short_time(&a.modified),
                "-",
                human_bytes(a.bytes),
                "-",
                why.as_deref().unwrap_or_default()
            ),
        };
        out.push_str(&line);
    }
    out
}

fn volume_table(backups: &[VolumeBackup]) -> String {
    if backups.is_empty() {
        return "  none\n".to_string();
    }
    let mut out = format!("  {:<20} {:>10}  {}\n", "MODIFIED", "SIZE", "NAME");
    for b in backups {
        out.push_str(&format!(
            "  {:<20} {:>10}  {}\n",
            short_time(&b.modified),
            human_bytes(b.bytes),
            b.name
        ));
    }
    out
}

/// An RFC 3339 time to the second, as `2026-01-02 03:04:05Z`.
fn short_time(time: &str) -> String {
    match time.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        Err(_) => time.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_unreadable_ones_included_read_as_a_table() {
        let manifest = backup::archive::Manifest {
            created: "2026-01-02T03:04:05.123Z".into(),
            ..backup::archive::Manifest::new("ns", Some(4), Default::default())
        };
        let archives = [
            LocalArchive {
                path: "/b/paperclip-backup-ns-20260102-030405.tar.zst".into(),
                bytes: 3 * 1024 * 1024,
                modified: "2026-01-02T03:04:06Z".into(),
                manifest: Some(manifest),
                unreadable: None,
            },
            LocalArchive {
                path: "/b/notes.txt".into(),
                bytes: 12,
                modified: "2026-01-01T00:00:00Z".into(),
                manifest: None,
                unreadable: Some("it is neither zstd nor gzip compressed".into()),
            },
        ];
        let text = local_table(&archives);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("  2026-01-02 03:04:05Z 4 "), "{text}");
        assert!(
            lines[1].contains(" 3.0 MiB       0  paperclip-backup-ns-"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("notes.txt (unreadable: it is neither zstd nor gzip compressed)")
        );
        assert_eq!(human_bytes(512), "512 B");
    }
}
