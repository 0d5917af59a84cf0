//! `paperclipctl export`: the tree a user commits for Argo CD or Flux, its determinism, the
//! `--check` gate, and the API server accepting each wave.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{Run, paperclipctl};
use crate::harness::Harness;

const ARGOCD: &[&str] = &[
    "--format",
    "argocd",
    "--repo-url",
    "https://git.example.test/ops.git",
    "--revision",
    "main",
    "--path",
    "clusters/prod/paperclip",
];

fn export(profile: &str, dir: &Path, extra: &[&str]) -> Run {
    let dir = dir.to_str().unwrap();
    let mut args = vec!["export", "-p", profile, dir];
    args.extend_from_slice(extra);
    paperclipctl(&args)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    paperclipctl::export::read_dir(dir).unwrap()
}

#[test]
fn two_exports_of_one_profile_are_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    for format in [ARGOCD, &["--format", "flux", "--git-repository", "ops"]] {
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for dir in [&a, &b] {
            let run = export("frank", dir, format);
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
        assert_eq!(files(&a), files(&b));
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
}

#[test]
fn argocd_export_lists_one_file_per_object_and_no_secret_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    let run = export("frank", &dir, ARGOCD);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tree = files(&dir);
    insta::assert_snapshot!(
        "export-argocd-frank-files",
        tree.keys().cloned().collect::<Vec<_>>().join("\n")
    );
    // The shell's public keys are the one Secret; the database password is synced.
    let secrets: Vec<_> = tree
        .iter()
        .filter(|(_, bytes)| String::from_utf8_lossy(bytes).contains("kind: Secret\n"))
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(secrets, ["wave-1/03-secret-paperclip-shell-ssh-keys.yaml"]);
    let db =
        String::from_utf8(tree["wave-0/01-externalsecret-paperclip-db-postgresql.yaml"].clone())
            .unwrap();
    assert!(db.contains("key: PAPERCLIP_DB_PASSWORD"), "{db}");
}

#[test]
fn argocd_export_names_the_missing_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let run = export(
        "frank",
        &tmp.path().join("tree"),
        &[
            "--format",
            "argocd",
            "--repo-url",
            "https://git.example.test/ops.git",
        ],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--revision"), "{}", run.stderr);
    assert!(!tmp.path().join("tree").exists());
}

#[test]
fn check_passes_on_a_fresh_export_and_lists_every_hand_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    assert_eq!(export("frank", &dir, ARGOCD).code, 0);
    let check = |dir: &Path| {
        let mut args = vec!["--check"];
        args.extend_from_slice(ARGOCD);
        export("frank", dir, &args)
    };
    let clean = check(&dir);
    assert_eq!(clean.code, 0, "{}", clean.stderr);

    let app = dir.join("argocd/wave-1.yaml");
    let edited = std::fs::read_to_string(&app)
        .unwrap()
        .replace("main", "dev");
    std::fs::write(&app, edited).unwrap();
    std::fs::remove_file(dir.join("wave-0/kustomization.yaml")).unwrap();
    std::fs::write(dir.join("wave-1/extra.yaml"), "kind: ConfigMap\n").unwrap();

    let drift = check(&dir);
    assert_eq!(drift.code, 5, "{}{}", drift.stdout, drift.stderr);
    for line in [
        "differs: argocd/wave-1.yaml",
        "missing: wave-0/kustomization.yaml",
        "extra: wave-1/extra.yaml",
    ] {
        assert!(
            drift.stderr.contains(line),
            "{line} not in {}",
            drift.stderr
        );
    }
}

#[test]
fn export_refuses_a_foreign_directory_without_force_and_replaces_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let refused = export("frank", &dir, ARGOCD);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");

    let forced = export("frank", &dir, &[ARGOCD, &["--force"]].concat());
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(!dir.join("notes.txt").exists());

    // A previous export is replaced without --force, leftovers included.
    std::fs::write(dir.join("wave-0/stale.yaml"), "kind: ConfigMap\n").unwrap();
    let again = export("frank", &dir, ARGOCD);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!dir.join("wave-0/stale.yaml").exists());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755, "{mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["tree"]);
}

#[tokio::test]
async fn every_wave_of_the_export_is_accepted_by_the_api_server() {
    let harness = Harness::shared();
    let namespace = harness.namespace("export").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    let run = export(
        "default",
        &dir,
        &[ARGOCD, &["--namespace", &namespace]].concat(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for wave in ["wave-0", "wave-1"] {
        let output = harness
            .kubectl()
            .args(["apply", "--dry-run=server", "-k"])
            .arg(dir.join(wave))
            .output()
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{wave}: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("(server dry run)"), "{wave}: {stdout}");
    }
}
