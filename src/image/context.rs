//! Build contexts: the files a Dockerfile is built from, as one reproducible tar.

use sha2::{Digest, Sha256};

use super::Platform;

/// The shell sidecar's build context, compiled in so an installed binary can build it. A unit
/// test keeps this list equal to the files under `embedded/shell-image`.
const SHELL_IMAGE: &[(&str, &[u8], u32)] = &[
    (
        "Dockerfile",
        include_bytes!("../../embedded/shell-image/Dockerfile"),
        0o644,
    ),
    (
        "inventory.yaml",
        include_bytes!("../../embedded/shell-image/inventory.yaml"),
        0o644,
    ),
    (
        "rootfs/etc/cont-init.d/10-ssh-host-keys",
        include_bytes!("../../embedded/shell-image/rootfs/etc/cont-init.d/10-ssh-host-keys"),
        0o755,
    ),
    (
        "rootfs/etc/cont-init.d/40-shell-inventory",
        include_bytes!("../../embedded/shell-image/rootfs/etc/cont-init.d/40-shell-inventory"),
        0o755,
    ),
    (
        "rootfs/etc/profile.d/paperclip-shell.sh",
        include_bytes!("../../embedded/shell-image/rootfs/etc/profile.d/paperclip-shell.sh"),
        0o644,
    ),
    (
        "rootfs/etc/ssh/sshd_config",
        include_bytes!("../../embedded/shell-image/rootfs/etc/ssh/sshd_config"),
        0o644,
    ),
    (
        "rootfs/usr/local/bin/paperclip-shell-init",
        include_bytes!("../../embedded/shell-image/rootfs/usr/local/bin/paperclip-shell-init"),
        0o755,
    ),
    (
        "rootfs/usr/local/bin/paperclip-shell-reconcile",
        include_bytes!("../../embedded/shell-image/rootfs/usr/local/bin/paperclip-shell-reconcile"),
        0o755,
    ),
];

/// A build context: a Dockerfile at its root and the files it copies.
#[derive(Debug, Clone)]
pub struct Context {
    /// (path, content, mode), sorted by path.
    files: Vec<(String, Vec<u8>, u32)>,
}

impl Context {
    /// The shell sidecar image's context.
    pub fn shell_image() -> Context {
        Context::new(
            SHELL_IMAGE
                .iter()
                .map(|(path, content, mode)| (path.to_string(), content.to_vec(), *mode)),
        )
    }

    /// A context of the given (path, content, mode) files.
    pub fn new(files: impl IntoIterator<Item = (String, Vec<u8>, u32)>) -> Context {
        let mut files: Vec<_> = files.into_iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Context { files }
    }

    /// The context as a tar archive. Owners and times are fixed, so equal files give equal
    /// bytes and with them an equal tag, on any machine.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content, mode) in &self.files {
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            builder
                .append_data(&mut header, path, content.as_slice())
                .expect("a tar in memory cannot fail to write");
        }
        builder
            .into_inner()
            .expect("a tar in memory cannot fail to write")
    }

    /// `<repository>:ctx-<12 hex>`: the tag of this context built for `platform`. It changes
    /// exactly when a file, a mode or the platform does, so an existing tag means there is
    /// nothing to build.
    pub fn tag(&self, repository: &str, platform: &Platform) -> String {
        let mut hash = Sha256::new();
        hash.update(self.tar());
        hash.update(b"\0");
        hash.update(platform.to_string().as_bytes());
        let hex: String = hash.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{repository}:ctx-{hex}")
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn files_under(dir: &Path, root: &Path, out: &mut Vec<(String, bool)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, root, out);
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = path.metadata().unwrap().permissions().mode();
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, mode & 0o111 != 0));
            }
        }
    }

    #[test]
    fn the_compiled_in_context_is_every_file_of_the_directory_with_its_exec_bit() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/shell-image");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let compiled: Vec<(String, bool)> = SHELL_IMAGE
            .iter()
            .map(|(path, _, mode)| (path.to_string(), mode & 0o111 != 0))
            .collect();
        assert_eq!(compiled, on_disk);
    }

    #[test]
    fn tags_follow_content_and_platform_only() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let arm64: Platform = "linux/arm64".parse().unwrap();
        let context = |body: &str| {
            Context::new([("Dockerfile".to_string(), body.as_bytes().to_vec(), 0o644)])
        };
        let a = context("FROM scratch\n").tag("r/x", &amd64);
        assert!(
            a.starts_with("r/x:ctx-") && a.len() == "r/x:ctx-".len() + 12,
            "{a}"
        );
        assert_eq!(a, context("FROM scratch\n").tag("r/x", &amd64));
        assert_ne!(a, context("FROM scratch\n").tag("r/x", &arm64));
        assert_ne!(a, context("FROM scratch \n").tag("r/x", &amd64));
    }
}
