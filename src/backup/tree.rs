//! Checks the tar of instance files an archive carries before a restore unpacks it into the
//! app's volume: every entry must land inside the instance directory. Refused are absolute
//! paths, `..` components, links whose target leads outside (or, for hard links, anywhere but
//! another path of the tree), entries written through a symbolic link of the same tar, and
//! anything but files, directories and links (devices, fifos).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Reads the whole tar from `reader` and returns the number of entries, or why it is refused.
pub fn check(reader: impl Read) -> Result<u64, String> {
    let mut tar = tar::Archive::new(reader);
    let mut links = HashSet::new();
    let mut count = 0;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("the instance files' tar is damaged: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let shown = path.display().to_string();
        let inside = normal(&path)
            .ok_or_else(|| format!("the instance files' tar has the entry {shown:?} outside it"))?;
        if inside.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(format!(
                "the instance files' tar writes {shown:?} through a symbolic link"
            ));
        }
        let kind = entry.header().entry_type();
        let target = || {
            entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.into_owned())
                .ok_or_else(|| {
                    format!("the instance files' tar has a link {shown:?} without target")
                })
        };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = target()?;
                let parent = inside.parent().unwrap_or(Path::new(""));
                if target.is_absolute() || normal_from(parent, &target).is_none() {
                    return Err(format!(
                        "the instance files' tar has a link {shown:?} pointing outside it ({})",
                        target.display()
                    ));
                }
                links.insert(inside.clone());
            }
            tar::EntryType::Link => {
                if normal(&target()?).is_none() {
                    return Err(format!(
                        "the instance files' tar has a hard link {shown:?} to outside it"
                    ));
                }
            }
            other => {
                return Err(format!(
                    "the instance files' tar has {shown:?} of type {other:?}, not a file, \
                     directory or link"
                ));
            }
        }
        // Read through, so that a tar cut short inside an entry is told.
        std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| format!("the instance files' tar is damaged: {e}"))?;
        count += 1;
    }
    Ok(count)
}

/// `path` without `.` components, when it is relative and never climbs out with `..`.
fn normal(path: &Path) -> Option<PathBuf> {
    normal_from(Path::new(""), path)
}

/// `base` joined with `path`, `..` resolved by name, unless that climbs above the root.
fn normal_from(base: &Path, path: &Path) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of raw headers, so that entries the `tar` crate's builder would refuse can be made.
    fn tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, target) in entries {
            let mut header = tar::Header::new_old();
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            let link = &mut header.as_old_mut().linkname;
            link[..target.len()].copy_from_slice(target.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(0);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    use tar::EntryType::{Block, Directory, Link, Regular, Symlink};

    #[test]
    fn files_directories_and_links_inside_pass() {
        let ok = tar(&[
            ("data/storage/", Directory, ""),
            ("data/storage/a.png", Regular, ""),
            ("data/storage/latest", Symlink, "a.png"),
            ("companies/c/up", Symlink, "../../data/storage"),
            ("companies/c/same", Link, "data/storage/a.png"),
        ]);
        assert_eq!(check(ok.as_slice()), Ok(5));
    }

    #[test]
    fn entries_and_links_leading_outside_are_refused() {
        for (entries, why) in [
            (vec![("../escape", Regular, "")], "outside it"),
            (vec![("data/../../escape", Regular, "")], "outside it"),
            (vec![("/etc/passwd", Regular, "")], "outside it"),
            (vec![("data/l", Symlink, "/etc")], "pointing outside"),
            (vec![("data/l", Symlink, "../../x")], "pointing outside"),
            (vec![("h", Link, "../x")], "hard link"),
            (vec![("h", Link, "/etc/shadow")], "hard link"),
            (
                vec![("d", Symlink, "data"), ("d/file", Regular, "")],
                "through a symbolic link",
            ),
            (vec![("dev", Block, "")], "not a file"),
        ] {
            let e = check(tar(&entries).as_slice()).unwrap_err();
            assert!(e.contains(why), "{entries:?}: {e}");
        }
    }

    #[test]
    fn a_truncated_tar_is_refused() {
        let mut body = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4096);
        header.set_cksum();
        body.append_data(&mut header, "big", &[7u8; 4096][..])
            .unwrap();
        let bytes = body.into_inner().unwrap();
        assert!(check(&bytes[..1500]).is_err());
    }
}
