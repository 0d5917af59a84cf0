//! GitOps export: the rendered release as a directory a user commits, for Argo CD or Flux to
//! apply instead of paperclipctl.
//!
//! Each wave becomes `wave-N/` with one file per object and a `kustomization.yaml`, so
//! `kubectl apply -k wave-N` works as well as a GitOps controller. The controller objects
//! (Argo CD Applications or Flux Kustomizations) live in `argocd/` or `flux/` and keep the
//! install's order: wave 1 after wave 0. The tree is a pure function of the profile and the
//! flags: files are sorted, nothing carries a time, so a re-export only differs where the
//! release does.
//!
//! A generated value cannot be in Git. An install creates the database password server-side; an
//! export instead syncs it from Infisical with an ExternalSecret (the store the release already
//! uses for its other keys), so the same password survives every re-sync. The one Secret left in
//! the tree is the shell's authorized_keys, which holds public keys only.

use std::collections::BTreeMap;

use serde_json::json;

use crate::profile::Profile;
use crate::render::eso::{self, API_VERSION};
use crate::render::meta::{self, DB_NAME, DB_PASSWORD_KEY, RELEASE, SHELL_KEYS_SECRET};
use crate::render::{self, Object, Release};

/// The file that marks a directory as an export, so a re-export may replace it.
pub const MARKER: &str = ".paperclipctl-export";

/// The GitOps controller that applies the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Argocd,
    Flux,
}

/// Where the controller finds the tree in Git.
#[derive(Debug, Clone)]
pub enum Source {
    /// Argo CD reads the repository itself.
    Argocd {
        repo_url: String,
        revision: String,
        path: String,
    },
    /// Flux reads a GitRepository the cluster already has.
    Flux {
        git_repository: String,
        path: String,
    },
}

/// What the export needs besides the profile.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Source,
    /// The Infisical key holding the database password.
    pub db_password_key: String,
}

/// The whole tree: path relative to the export directory → contents.
pub type Tree = BTreeMap<String, String>;

/// Renders the tree for `profile`.
pub fn tree(profile: &Profile, options: &Options) -> Result<Tree, serde_yaml_ng::Error> {
    let release = without_generated_values(render::render(profile), profile, options);
    let mut tree = Tree::new();
    let format = match options.source {
        Source::Argocd { .. } => "argocd",
        Source::Flux { .. } => "flux",
    };
    tree.insert(
        MARKER.into(),
        format!(
            "# Written by paperclipctl export; a re-export replaces this directory.\n\
             format: {format}\nprofile: {}\n",
            profile.name
        ),
    );
    for wave in &release.waves {
        let dir = wave_dir(wave.number);
        let mut files = Vec::new();
        for (index, object) in wave.objects.iter().enumerate() {
            let file = format!(
                "{index:02}-{}-{}.yaml",
                object.kind().to_lowercase(),
                object.name()
            );
            tree.insert(format!("{dir}/{file}"), serde_yaml_ng::to_string(object)?);
            files.push(file);
        }
        tree.insert(
            format!("{dir}/kustomization.yaml"),
            kustomization(wave.number, &files, &options.source)?,
        );
    }
    for wave in &release.waves {
        let (path, object) = controller_object(&release, wave.number, &options.source);
        tree.insert(path, serde_yaml_ng::to_string(&object)?);
    }
    Ok(tree)
}

fn wave_dir(number: u8) -> String {
    format!("wave-{number}")
}

const KUSTOMIZATION_HEADER: &str = "\
# Applied by a GitOps controller or with `kubectl apply -k`. No secret value is in this tree:
# ExternalSecrets sync every key from Infisical, the database password included (the Infisical
# key is named in the paperclip-db-postgresql ExternalSecret); the one Secret written here holds
# the shell's public SSH keys.
";

fn kustomization(
    number: u8,
    files: &[String],
    source: &Source,
) -> Result<String, serde_yaml_ng::Error> {
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
    });
    // Argo CD orders the objects of one Application by their own wave annotation too.
    if matches!(source, Source::Argocd { .. }) {
        k["commonAnnotations"] = json!({ "argocd.argoproj.io/sync-wave": number.to_string() });
    }
    Ok(format!(
        "{KUSTOMIZATION_HEADER}{}",
        serde_yaml_ng::to_string(&k)?
    ))
}

/// The Application or Kustomization that applies one wave, and its path in the tree.
fn controller_object(
    release: &Release,
    number: u8,
    source: &Source,
) -> (String, serde_json::Value) {
    let name = format!("{RELEASE}-{}-{}", release.namespace, wave_dir(number));
    let join = |path: &str| {
        let path = path.trim_matches('/');
        if path.is_empty() || path == "." {
            wave_dir(number)
        } else {
            format!("{path}/{}", wave_dir(number))
        }
    };
    match source {
        Source::Argocd {
            repo_url,
            revision,
            path,
        } => (
            format!("argocd/{}.yaml", wave_dir(number)),
            json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {
                    "name": name,
                    "namespace": "argocd",
                    "annotations": { "argocd.argoproj.io/sync-wave": number.to_string() },
                },
                "spec": {
                    "project": "default",
                    "source": { "repoURL": repo_url, "targetRevision": revision, "path": join(path) },
                    "destination": {
                        "server": "https://kubernetes.default.svc",
                        "namespace": release.namespace,
                    },
                    "syncPolicy": { "automated": { "prune": true, "selfHeal": true } },
                },
            }),
        ),
        Source::Flux {
            git_repository,
            path,
        } => {
            let mut spec = json!({
                "interval": "10m",
                "path": format!("./{}", join(path)),
                "prune": true,
                // The next wave starts only once this one is healthy, as an install waits.
                "wait": true,
                "timeout": "10m",
                "sourceRef": { "kind": "GitRepository", "name": git_repository },
            });
            if number > 0 {
                let previous = format!("{RELEASE}-{}-{}", release.namespace, wave_dir(number - 1));
                spec["dependsOn"] = json!([{ "name": previous }]);
            }
            (
                format!("flux/{}.yaml", wave_dir(number)),
                json!({
                    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                    "kind": "Kustomization",
                    "metadata": { "name": name, "namespace": "flux-system" },
                    "spec": spec,
                }),
            )
        }
    }
}

/// Fills what an install writes server-side: the database password Secret becomes an
/// ExternalSecret writing the same Secret name and key from Infisical, and the shell's
/// authorized_keys Secret gets the profile's public keys, as an install writes them.
fn without_generated_values(mut release: Release, profile: &Profile, options: &Options) -> Release {
    for object in release.waves.iter_mut().flat_map(|w| w.objects.iter_mut()) {
        if let Object::Secret(secret) = object
            && secret.metadata.name.as_deref() == Some(SHELL_KEYS_SECRET)
        {
            if let Some(annotations) = secret.metadata.annotations.as_mut() {
                annotations.remove(meta::GENERATED_KEYS);
            }
            secret.string_data = Some(BTreeMap::from([(
                "authorized_keys".to_string(),
                crate::install::authorized_keys(profile),
            )]));
        } else if let Object::Secret(secret) = object
            && secret.metadata.name.as_deref() == Some(DB_NAME)
        {
            let mut metadata = secret.metadata.clone();
            metadata.annotations = None;
            *object = Object::ExternalSecret(eso::ExternalSecret {
                api_version: API_VERSION.into(),
                kind: "ExternalSecret".into(),
                metadata,
                spec: eso::ExternalSecretSpec {
                    refresh_interval: profile.secrets.refresh_interval.canonical(),
                    secret_store_ref: eso::StoreRef {
                        kind: format!("{:?}", profile.secrets.store.kind),
                        name: profile.secrets.store.name.to_string(),
                    },
                    target: eso::Target {
                        name: DB_NAME.into(),
                        creation_policy: "Owner".into(),
                        template: None,
                    },
                    data: vec![eso::DataItem {
                        secret_key: DB_PASSWORD_KEY.into(),
                        remote_ref: eso::RemoteRef {
                            key: options.db_password_key.clone(),
                        },
                    }],
                },
            });
        }
    }
    release
}

/// How a directory on disk differs from the tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    pub differing: Vec<String>,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.differing.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares `on_disk` (as read by [`read_dir`]) with `expected`.
pub fn compare(expected: &Tree, on_disk: &BTreeMap<String, Vec<u8>>) -> Drift {
    let mut drift = Drift::default();
    for (path, contents) in expected {
        match on_disk.get(path) {
            None => drift.missing.push(path.clone()),
            Some(bytes) if bytes != contents.as_bytes() => drift.differing.push(path.clone()),
            Some(_) => {}
        }
    }
    drift.extra = on_disk
        .keys()
        .filter(|p| !expected.contains_key(*p))
        .cloned()
        .collect();
    drift
}

/// Every file under `dir`, by path relative to it with `/` separators.
pub fn read_dir(dir: &std::path::Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.insert(relative, std::fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

/// Writes `tree` into a fresh directory beside `dir`, then swaps it in, so a failure leaves
/// either the old directory or the new one, never a mix.
pub fn write(dir: &std::path::Path, tree: &Tree) -> std::io::Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".paperclipctl-export-")
        .tempdir_in(&parent)?;
    // A temporary directory is private; the tree is meant to be shared like any checkout.
    std::fs::set_permissions(
        staging.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    for (path, contents) in tree {
        let file = staging.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a file in a directory"))?;
        std::fs::write(file, contents)?;
    }
    if dir.exists() {
        let old = tempfile::Builder::new()
            .prefix(".paperclipctl-export-old-")
            .tempdir_in(&parent)?;
        let kept = old.path().join("tree");
        std::fs::rename(dir, &kept)?;
        if let Err(e) = std::fs::rename(staging.path(), dir) {
            std::fs::rename(&kept, dir)?;
            return Err(e);
        }
        // `old` removes the previous tree when dropped.
    } else {
        std::fs::rename(staging.path(), dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile;

    fn argocd() -> Options {
        Options {
            source: Source::Argocd {
                repo_url: "https://git.example.test/ops.git".into(),
                revision: "main".into(),
                path: "clusters/prod/paperclip".into(),
            },
            db_password_key: "PAPERCLIP_DB_PASSWORD".into(),
        }
    }

    fn flux() -> Options {
        Options {
            source: Source::Flux {
                git_repository: "ops".into(),
                path: "clusters/prod/paperclip".into(),
            },
            db_password_key: "PAPERCLIP_DB_PASSWORD".into(),
        }
    }

    fn frank() -> Profile {
        let key = "shell.authorizedKeys=[ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmKq you@laptop]";
        profile::load("frank", &[key.to_string()]).unwrap().profile
    }

    fn docs(tree: &Tree) -> Vec<(String, serde_json::Value)> {
        tree.iter()
            .filter(|(p, _)| p.ends_with(".yaml"))
            .map(|(p, c)| (p.clone(), serde_yaml_ng::from_str(c).unwrap()))
            .collect()
    }

    #[test]
    fn only_public_keys_are_in_a_secret_and_the_password_comes_from_infisical() {
        for options in [argocd(), flux()] {
            let tree = tree(&frank(), &options).unwrap();
            let secrets: Vec<_> = docs(&tree)
                .into_iter()
                .filter(|(_, doc)| doc["kind"] == "Secret")
                .collect();
            // Only the shell's public keys, exactly the profile's.
            assert_eq!(secrets.len(), 1, "{secrets:?}");
            let (path, keys) = &secrets[0];
            assert!(path.ends_with("-secret-paperclip-shell-ssh-keys.yaml"));
            assert_eq!(
                keys["stringData"],
                json!({"authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmKq you@laptop\n"})
            );
            assert!(keys.get("data").is_none());
            let db: serde_json::Value = serde_yaml_ng::from_str(
                &tree["wave-0/01-externalsecret-paperclip-db-postgresql.yaml"],
            )
            .unwrap();
            assert_eq!(db["spec"]["target"]["name"], DB_NAME);
            assert_eq!(
                db["spec"]["data"][0],
                json!({"secretKey": "password", "remoteRef": {"key": "PAPERCLIP_DB_PASSWORD"}})
            );
        }
    }

    #[test]
    fn argocd_applications_point_at_each_wave_in_order() {
        let tree = tree(&frank(), &argocd()).unwrap();
        for n in 0..2 {
            let app: serde_json::Value =
                serde_yaml_ng::from_str(&tree[&format!("argocd/wave-{n}.yaml")]).unwrap();
            assert_eq!(
                app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
                n.to_string()
            );
            assert_eq!(
                app["spec"]["source"]["path"],
                format!("clusters/prod/paperclip/wave-{n}")
            );
            let k: serde_json::Value =
                serde_yaml_ng::from_str(&tree[&format!("wave-{n}/kustomization.yaml")]).unwrap();
            let listed: Vec<String> = serde_json::from_value(k["resources"].clone()).unwrap();
            let present: Vec<String> = tree
                .keys()
                .filter_map(|p| p.strip_prefix(&format!("wave-{n}/")))
                .filter(|f| *f != "kustomization.yaml")
                .map(String::from)
                .collect();
            assert_eq!(listed, present);
        }
    }

    #[test]
    fn flux_wave_one_depends_on_wave_zero() {
        let tree = tree(&frank(), &flux()).unwrap();
        let zero: serde_json::Value = serde_yaml_ng::from_str(&tree["flux/wave-0.yaml"]).unwrap();
        let one: serde_json::Value = serde_yaml_ng::from_str(&tree["flux/wave-1.yaml"]).unwrap();
        assert!(zero["spec"].get("dependsOn").is_none());
        assert_eq!(
            one["spec"]["dependsOn"][0]["name"],
            zero["metadata"]["name"]
        );
        assert_eq!(one["spec"]["sourceRef"]["name"], "ops");
    }

    #[test]
    fn compare_names_differing_missing_and_extra_files() {
        let expected = Tree::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string()),
        ]);
        let on_disk = BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"changed".to_vec()),
            ("d".to_string(), b"4".to_vec()),
        ]);
        assert_eq!(
            compare(&expected, &on_disk),
            Drift {
                differing: vec!["b".into()],
                missing: vec!["c".into()],
                extra: vec!["d".into()],
            }
        );
    }
}
