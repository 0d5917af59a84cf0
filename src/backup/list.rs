//! The archives of one namespace in the local backups directory, described from their manifests.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::archive::{self, Manifest};
use super::crypt::Identity;
use super::local;
use crate::error::{Error, Result};

/// One file of the local backups directory.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalArchive {
    pub path: PathBuf,
    pub bytes: u64,
    /// When the file was last written, as an RFC 3339 UTC time.
    pub modified: String,
    /// The manifest, when the file is an archive whose first entry is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read (a foreign file, a damaged or older archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// The archives in [`local::local_dir`] that belong to `namespace`, newest first: those whose
/// manifest names it, and files whose manifest cannot be read unless their name says they
/// belong to another namespace. Only each file's first entry is read, decrypted with
/// `identities` when the file is encrypted.
pub fn local_archives(namespace: &str, identities: &[Identity]) -> Result<Vec<LocalArchive>> {
    let dir = local::local_dir()?;
    let entries = std::fs::read_dir(&dir).map_err(Error::Output)?;
    let mut archives = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::Output)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let metadata = entry.metadata().map_err(Error::Output)?;
        if !metadata.is_file() || name.ends_with(".partial") {
            continue;
        }
        let path = entry.path();
        let (manifest, unreadable) = match archive::read_manifest(&path, identities) {
            Ok(m) if m.namespace != namespace => continue,
            Ok(m) => (Some(m), None),
            Err(_) if local::names_other_namespace(&name, namespace) => continue,
            Err(why) => (None, Some(why)),
        };
        archives.push(LocalArchive {
            bytes: metadata.len(),
            modified: rfc3339(metadata.modified().map_err(Error::Output)?),
            path,
            manifest,
            unreadable,
        });
    }
    // Newest first: by the manifest's time, else the file's.
    let time = |a: &LocalArchive| created(a).parse::<k8s_openapi::jiff::Timestamp>().ok();
    archives.sort_by(|a, b| time(b).cmp(&time(a)).then_with(|| a.path.cmp(&b.path)));
    Ok(archives)
}

/// When the backup was taken, or the file written when it has no readable manifest.
fn created(archive: &LocalArchive) -> &str {
    archive
        .manifest
        .as_ref()
        .map_or(&archive.modified, |m| &m.created)
}

fn rfc3339(time: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
