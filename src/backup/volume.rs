//! Paperclip's own automatic backups, which it writes to `data/backups` in the instance
//! directory on the app's volume: listed, and copied to this machine one at a time.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde::Serialize;

use super::app_container;
use super::exec::{Container, Input};
use crate::error::{Error, Result};
use crate::ui::Ui;

/// The directory, relative to the instance directory (the one `status` measures).
const DIR: &str = "data/backups";

/// One regular file per line, `size mtime name` (seconds since the epoch), for every file of the
/// backups directory; nothing when the app has not written any yet.
const LIST_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default/$1" 2>/dev/null || exit 0
for f in *; do [ -f "$f" ] && stat -c '%s %Y %n' "$f"; done; exit 0"#;

/// Writes the file `$2` of the backups directory `$1` to stdout.
const CAT_SCRIPT: &str = r#"exec cat "${PAPERCLIP_HOME:-/paperclip}/instances/default/$1/$2""#;

/// How many names an unknown name's error suggests.
const SUGGESTED: usize = 5;

/// One backup file on the app's volume.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackup {
    pub name: String,
    pub bytes: u64,
    /// When the app last wrote it, as an RFC 3339 UTC time.
    pub modified: String,
}

/// The backups on the app's volume, newest first, read through the running app pod in
/// `namespace`; `None` when no app pod is running to read them from.
pub async fn volume_backups(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<Vec<VolumeBackup>>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let Some(pod) = crate::onboarding::find_running_app_pod(&pods, namespace).await? else {
        return Ok(None);
    };
    Ok(Some(list(&app_container(&pods, namespace, pod)).await?))
}

/// Copies the backup `name` from the app's volume to `destination`, streamed through a
/// temporary file next to it that becomes `destination` only once every byte arrived (replacing
/// an existing file only when `replace`). Returns the bytes copied.
pub async fn pull(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    destination: &Path,
    replace: bool,
    ui: &Ui,
) -> Result<u64> {
    check_name(name)?;
    if !replace && destination.exists() {
        return Err(Error::usage(
            format!("{} already exists", destination.display()),
            "pass --force to replace it, or -f with another path",
        ));
    }
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let pod = crate::onboarding::running_app_pod(&pods, namespace, "copy the backup from").await?;
    let app = app_container(&pods, namespace, pod);
    let listed = list(&app).await?;
    let Some(backup) = listed.iter().find(|b| b.name == name) else {
        return Err(unknown(name, &listed));
    };

    let parent = match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(parent)
        .map_err(|e| {
            Error::usage(
                format!("cannot write in {}: {e}", parent.display()),
                "pass -f with a path in a writable directory",
            )
        })?;
    let bar = super::bytes_bar(ui, "copying the backup");
    let mut copied = 0u64;
    app.run(
        &format!("copying {name}"),
        CAT_SCRIPT,
        &[DIR, name],
        Input::Nothing,
        &indicatif::ProgressBar::hidden(),
        &mut |chunk| {
            bar.inc(chunk.len() as u64);
            copied += chunk.len() as u64;
            std::io::Write::write_all(partial.as_file_mut(), chunk)
        },
    )
    .await?;
    bar.finish_and_clear();
    if copied != backup.bytes {
        return Err(Error::not_healthy(
            format!(
                "copied {copied} bytes of {name}, but the volume listed {} bytes",
                backup.bytes
            ),
            "the app may have been writing it: pull it again, or a newer one",
        ));
    }
    partial.as_file().sync_all().map_err(Error::Output)?;
    let persisted = if replace {
        partial.persist(destination).map(drop)
    } else {
        partial.persist_noclobber(destination).map(drop)
    };
    persisted.map_err(|e| {
        Error::usage(
            format!("cannot write {}: {}", destination.display(), e.error),
            "pass --force to replace an existing file, or -f with another path",
        )
    })?;
    Ok(copied)
}

/// Refuses anything but a plain file name: the name ends up in a path inside the container.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::usage(
            format!("NAME {name:?} is not a backup's file name"),
            "pass a name as `paperclipctl backup list` shows it, without directories",
        ));
    }
    Ok(())
}

/// The error for a name the volume does not hold, naming the newest ones it does.
fn unknown(name: &str, listed: &[VolumeBackup]) -> Error {
    let help = if listed.is_empty() {
        "the app's volume holds no backups yet".to_string()
    } else {
        let names: Vec<&str> = listed
            .iter()
            .take(SUGGESTED)
            .map(|b| b.name.as_str())
            .collect();
        let more = listed.len().saturating_sub(SUGGESTED);
        let more = if more > 0 {
            format!(" and {more} more (see `paperclipctl backup list`)")
        } else {
            String::new()
        };
        format!("the volume holds: {}{more}", names.join(", "))
    };
    Error::usage(
        format!("no backup named {name:?} on the app's volume"),
        help,
    )
}

async fn list(app: &Container<'_>) -> Result<Vec<VolumeBackup>> {
    let out = app
        .output("listing the app's backups", LIST_SCRIPT, &[DIR])
        .await?;
    let mut backups = parse(&String::from_utf8_lossy(&out));
    backups.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    Ok(backups)
}

/// Reads [`LIST_SCRIPT`]'s lines; a line that does not parse is skipped.
fn parse(text: &str) -> Vec<VolumeBackup> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ' ');
            let bytes = fields.next()?.parse().ok()?;
            let seconds: i64 = fields.next()?.parse().ok()?;
            let name = fields.next()?.to_string();
            let modified = k8s_openapi::jiff::Timestamp::from_second(seconds).ok()?;
            Some(VolumeBackup {
                name,
                bytes,
                modified: modified.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_become_backups() {
        let backups = parse("1024 1767268800 paperclip-2026 01 01.sql.gz\nnot a line\n");
        assert_eq!(
            backups,
            vec![VolumeBackup {
                name: "paperclip-2026 01 01.sql.gz".into(),
                bytes: 1024,
                modified: "2026-01-01T12:00:00Z".into(),
            }]
        );
    }

    #[test]
    fn only_plain_file_names_are_accepted() {
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd"] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::INVALID_INPUT, "{bad}");
            assert!(e.to_string().contains("NAME"), "{e}");
        }
        check_name("paperclip-20260101.sql.gz").unwrap();
    }

    #[test]
    fn an_unknown_name_names_the_newest_existing_ones() {
        let listed: Vec<VolumeBackup> = (0..7)
            .map(|i| VolumeBackup {
                name: format!("b{i}.sql"),
                bytes: 1,
                modified: String::new(),
            })
            .collect();
        let Error::Usage {
            message,
            help: Some(help),
        } = unknown("nope.sql", &listed)
        else {
            panic!("an unknown name is invalid input");
        };
        assert!(message.contains("nope.sql"), "{message}");
        assert!(
            help.contains("b0.sql, b1.sql, b2.sql, b3.sql, b4.sql"),
            "{help}"
        );
        assert!(help.contains("and 2 more"), "{help}");
    }
}
