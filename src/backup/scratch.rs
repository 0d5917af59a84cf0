//! Scratch space on this machine for an archive's parts: the master key and the whole dump lie
//! there while a backup is written or a restore runs, so the directory is the user's alone
//! (0700, whatever the umask) and every file in it owner-only (0600). The directory goes with its
//! [`TempDir`] when the run ends, fails or is interrupted (see [`crate::signal`]).

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use tempfile::TempDir;

use crate::error::{Error, Result};

/// A fresh private directory under `$TMPDIR`.
pub fn dir() -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix("paperclipctl-")
        .permissions(Permissions::from_mode(0o700))
        .tempdir()
        .map_err(Error::Output)
}

/// Creates (or truncates) the owner-only file `path`, and its missing parent directories
/// owner-only too.
pub fn create(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(Error::Output)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::Output)
}

/// Writes `bytes` to the owner-only file `path`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    create(path)?.write_all(bytes).map_err(Error::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_and_its_files_are_owner_only_whatever_the_umask() {
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = dir().unwrap();
        let key = dir.path().join("secrets/master.key");
        write(&key, b"key").unwrap();
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(key.parent().unwrap()), 0o700);
        assert_eq!(mode(&key), 0o600);
    }
}
