//! Where archives live on this machine when no file is named: one directory per user, readable
//! by its owner only, because every archive holds the instance's master key.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Overrides the directory (scripts, tests, a mounted backup disk).
pub const DIR_VAR: &str = "PAPERCLIPCTL_BACKUP_DIR";

/// What every archive name starts with; a listing picks a namespace's archives by it.
const PREFIX: &str = "paperclip-backup-";

/// The local backups directory, created (owner-only) when missing: `$PAPERCLIPCTL_BACKUP_DIR`,
/// else `paperclipctl/backups` in the platform's data directory (`$XDG_DATA_HOME` or
/// `~/.local/share` on Linux).
pub fn local_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os(DIR_VAR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs::data_dir()
            .ok_or_else(|| {
                Error::usage(
                    "cannot tell where this machine keeps application data (no home directory)",
                    format!("set {DIR_VAR} to a directory for backups, or pass -f FILE"),
                )
            })?
            .join("paperclipctl/backups"),
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                Error::usage(
                    format!("cannot create the backups directory {}: {e}", dir.display()),
                    format!("set {DIR_VAR} to a writable directory, or pass -f FILE"),
                )
            })?;
        // The mode above is filtered by the umask; the archives' directory stays owner-only.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::Output)?;
    }
    Ok(dir)
}

/// A fresh archive path in [`local_dir`]:
/// `paperclip-backup-<namespace>-<UTC yyyymmdd-hhmmss>[-<reason>]<extension>`, e.g. with
/// `reason` `pre-upgrade` for the backup an upgrade takes first.
pub fn new_archive_path(namespace: &str, reason: Option<&str>) -> Result<PathBuf> {
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    let reason = reason.map(|r| format!("-{r}")).unwrap_or_default();
    Ok(local_dir()?.join(format!(
        "{PREFIX}{namespace}-{now}{reason}{}",
        super::archive::EXTENSION
    )))
}

/// Whether `name` (a file name in [`local_dir`]) is named like an archive of a namespace other
/// than `namespace`, so a listing of `namespace` can leave it out without reading it.
pub fn names_other_namespace(name: &str, namespace: &str) -> bool {
    name.starts_with(PREFIX) && !is_archive_of(name, namespace)
}

/// Whether `name` is named like an archive of `namespace`: namespaces are DNS labels, so the
/// name is followed by the 8-digit date.
fn is_archive_of(name: &str, namespace: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(namespace))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| {
            rest.len() > 8
                && rest.as_bytes()[..8].iter().all(u8::is_ascii_digit)
                && rest.as_bytes()[8] == b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_name_belongs_to_its_namespace_only() {
        let name = "paperclip-backup-paperclip-20260101-120000-pre-upgrade.tar.gz";
        assert!(is_archive_of(name, "paperclip"));
        // `paperclip-system`'s archives start with `paperclip-` too.
        assert!(!is_archive_of(
            "paperclip-backup-paperclip-system-20260101-120000.tar.gz",
            "paperclip"
        ));
        assert!(names_other_namespace(
            "paperclip-backup-paperclip-system-20260101-120000.tar.gz",
            "paperclip"
        ));
        assert!(!names_other_namespace("mine.tar.gz", "paperclip"));
    }
}
