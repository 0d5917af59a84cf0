//! `paperclipctl upgrade` and `rollback` after an install on the harness: a crash-looping
//! target rolls back by itself and leaves its crash logs in a diagnostics file, a target of the
//! wrong platform or without a possible backup is refused before anything changes, and a good
//! target is backed up, applied, recorded and rolled back on request.
//!
//! The refusals start from the real Paperclip on the real node (its volume, its node's
//! platform). The crash loop and the good target run on KWOK's nodes with the harness's least
//! app (`harness::apps`): KWOK's pod-failures stage plays the crash loop with its restart count
//! and logs on demand, and the good target's images are the harness registry's fixtures, which
//! only KWOK "runs". The real upgrade between two Paperclip releases, with their migrations, and
//! the real rollback are the journey's (`journey.rs`).

use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::harness::Harness;
use crate::harness::real;
use crate::harness::registry::fixture_images;
use crate::install::{
    LLM_KEY, Setup, installed_real, installed_with_instance, setup, text, versions, with_profile,
};

/// Runs `paperclipctl VERB` on the release with `dir` as the backups directory.
async fn run(setup: &Setup, dir: &Path, verb: &str, extra: &[&str]) -> Output {
    let backups = dir.join("backups");
    with_profile(
        setup,
        verb,
        extra,
        &[
            ("PAPERCLIPCTL_BACKUP_DIR", backups.to_str().unwrap()),
            ("PAPERCLIP_LITELLM_KEY", LLM_KEY),
        ],
    )
    .await
}

/// The app Deployment's app-container image and whether it is available.
async fn app(namespace: &str) -> (String, bool) {
    let client = Harness::shared().client().await;
    let deployment = Api::<Deployment>::namespaced(client, namespace)
        .get("paperclip")
        .await
        .unwrap();
    let image = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == "paperclip"))
        .and_then(|c| c.image.clone())
        .unwrap();
    let status = deployment.status.unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0) >= 1
        && status.observed_generation == deployment.metadata.generation;
    (image, available)
}

/// `(revision, action, result)` of every revision, from `history -o json`.
async fn history(setup: &Setup, dir: &Path) -> Vec<(u64, String, String)> {
    let listed = run(setup, dir, "history", &["-o", "json"]).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    json["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let result = r["result"].as_str().unwrap();
            let result = result.split(':').next().unwrap().to_string();
            (
                r["revision"].as_u64().unwrap(),
                r["action"].as_str().unwrap().to_string(),
                result,
            )
        })
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn an_upgrade_to_a_crash_looping_image_rolls_back_by_itself_and_keeps_the_crash_logs() {
    let release = installed_with_instance("upgrade-crash").await;
    let ns = release.setup.namespace.as_str();
    let images = fixture_images().await;
    let (before, _) = app(ns).await;
    let dir = tempfile::tempdir().unwrap();
    let diagnostics = dir.path().join("diagnostics");
    std::fs::create_dir(&diagnostics).unwrap();
    // Something in the namespace tells a secret: the diagnostics file must not repeat it.
    leak_in_an_event(ns, LLM_KEY).await;

    let upgraded = run(
        &release.setup,
        dir.path(),
        "upgrade",
        &[
            "--to",
            &images.crash_looping,
            "--timeout",
            "60s",
            "--diagnostics-dir",
            diagnostics.to_str().unwrap(),
        ],
    )
    .await;
    let stderr = text(&upgraded.stderr);
    assert_eq!(upgraded.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("failed and was rolled back"), "{stderr}");
    assert!(stderr.contains("is crash-looping"), "{stderr}");

    // The app runs the old image again and is available.
    let (after, available) = app(ns).await;
    assert_eq!(after, before);
    assert!(available, "the app is not available after the rollback");

    // The diagnostics file is named in the error and holds the crashed container's log.
    let written = files(&diagnostics);
    assert_eq!(written.len(), 1, "{written:?}");
    let path = written[0].to_str().unwrap();
    assert!(
        stderr.contains(path),
        "the error does not name {path}:\n{stderr}"
    );
    let report = std::fs::read_to_string(&written[0]).unwrap();
    assert!(
        report.contains("Error: kwok stand-in: the previous container exited with status 1"),
        "{report}"
    );
    assert!(report.contains(&images.crash_looping), "{report}");
    assert!(report.contains("CrashLoopBackOff"), "{report}");
    assert!(report.contains("## Events"), "{report}");
    assert!(!report.contains(LLM_KEY), "a secret value reached the file");
    assert!(
        report.contains("connecting with key <redacted paperclip-llm-key/"),
        "{report}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&written[0].metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // A backup was taken before anything changed.
    let backups = files(&dir.path().join("backups"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(stderr.contains(backups[0].to_str().unwrap()), "{stderr}");

    assert_eq!(
        history(&release.setup, dir.path()).await,
        [
            (1, "install".into(), "deployed".into()),
            (2, "upgrade".into(), "failed".into()),
            (3, "rollback to 1".into(), "deployed".into()),
        ]
    );
}

/// A Warning event in `namespace` whose message holds `secret`, as a careless app might log it.
async fn leak_in_an_event(namespace: &str, secret: &str) {
    let client = Harness::shared().client().await;
    let event = Event {
        metadata: ObjectMeta {
            name: Some("leaky-app.1".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Deployment".into()),
            name: Some("paperclip".into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        reason: Some("Leaky".into()),
        message: Some(format!("connecting with key {secret}")),
        type_: Some("Warning".into()),
        ..Default::default()
    };
    Api::<Event>::namespaced(client, namespace)
        .create(&PostParams::default(), &event)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_upgrade_without_a_release_or_without_a_possible_backup_changes_nothing() {
    // Nothing installed: exit 7, before any check.
    let empty = setup("upgrade-none", None).await;
    let dir = tempfile::tempdir().unwrap();
    let refused = with_profile(&empty, "upgrade", &["--to", "latest"], &[]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("no Paperclip release is installed"),
        "{stderr}"
    );

    // Installed, but the app volume lost the master key a backup needs: refused, unchanged.
    let Some(release) = installed_real("upgrade-nobackup").await else {
        return;
    };
    assert!(
        release.run.status.success(),
        "{}",
        text(&release.run.stderr)
    );
    let ns = release.setup.namespace.as_str();
    let key = "/paperclip/instances/default/secrets/master.key";
    let removed = real::exec_app(ns, &["rm", key]).await;
    assert!(removed.success, "{}", removed.stderr);
    let images = fixture_images().await;
    let before = versions(ns).await;
    let refused = run(
        &release.setup,
        dir.path(),
        "upgrade",
        &["--to", &images.amd64_only],
    )
    .await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("the backup before the upgrade failed, so nothing was upgraded"),
        "{stderr}"
    );
    assert!(stderr.contains("--no-backup"), "{stderr}");
    assert_eq!(
        versions(ns).await,
        before,
        "the refused upgrade wrote something"
    );
    assert!(files(&dir.path().join("backups")).is_empty());
    assert_eq!(history(&release.setup, dir.path()).await.len(), 1);
}

#[tokio::test]
async fn an_upgrade_to_an_arm64_only_image_is_refused_before_anything_changes() {
    let Some(release) = installed_real("upgrade-arch").await else {
        return;
    };
    assert!(
        release.run.status.success(),
        "{}",
        text(&release.run.stderr)
    );
    let ns = release.setup.namespace.as_str();
    let images = fixture_images().await;
    let before = versions(ns).await;
    let dir = tempfile::tempdir().unwrap();

    let refused = run(
        &release.setup,
        dir.path(),
        "upgrade",
        &["--to", &images.arm64_only],
    )
    .await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "offers linux/arm64 only; nodes {} (amd64) need linux/amd64",
            release.real.node
        )),
        "{stderr}"
    );
    assert_eq!(
        versions(ns).await,
        before,
        "the refused upgrade wrote something"
    );
    assert!(files(&dir.path().join("backups")).is_empty());
    assert_eq!(history(&release.setup, dir.path()).await.len(), 1);
}

#[tokio::test]
async fn an_upgrade_is_backed_up_applied_and_recorded_and_rollback_goes_back() {
    let release = installed_with_instance("upgrade-good").await;
    let ns = release.setup.namespace.as_str();
    let images = fixture_images().await;
    let (installed_image, _) = app(ns).await;
    let dir = tempfile::tempdir().unwrap();
    let target = &images.amd64_only;

    // The profile as installed: nothing to upgrade, nothing written.
    let before = versions(ns).await;
    let unchanged = run(&release.setup, dir.path(), "upgrade", &[]).await;
    assert!(unchanged.status.success(), "{}", text(&unchanged.stderr));
    assert!(
        text(&unchanged.stdout).contains("nothing changed"),
        "{}",
        text(&unchanged.stdout)
    );
    assert_eq!(versions(ns).await, before);

    // A dry run says what would change and changes nothing.
    let planned = run(
        &release.setup,
        dir.path(),
        "upgrade",
        &["--to", target, "--dry-run"],
    )
    .await;
    let stdout = text(&planned.stdout);
    assert!(planned.status.success(), "{}", text(&planned.stderr));
    assert!(
        stdout.contains("Deployment/paperclip configured"),
        "{stdout}"
    );
    assert!(stdout.contains("deploy revision 1 again"), "{stdout}");
    assert_eq!(versions(ns).await, before);
    assert!(files(&dir.path().join("backups")).is_empty());

    let upgraded = run(&release.setup, dir.path(), "upgrade", &["--to", target]).await;
    let stdout = text(&upgraded.stdout);
    assert!(upgraded.status.success(), "{}", text(&upgraded.stderr));
    assert!(stdout.contains("(revision 2)"), "{stdout}");
    // Applied pinned to the digest the registry serves, so a rollback is exact.
    let (image, available) = app(ns).await;
    assert!(image.starts_with(&format!("{target}@sha256:")), "{image}");
    assert!(available);
    let backups = files(&dir.path().join("backups"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(stdout.contains(backups[0].to_str().unwrap()), "{stdout}");

    // The same target again: nothing to do, no backup, no revision.
    let again = run(&release.setup, dir.path(), "upgrade", &["--to", target]).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("nothing changed"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(files(&dir.path().join("backups")).len(), 1);

    let rolled = run(&release.setup, dir.path(), "rollback", &[]).await;
    let stdout = text(&rolled.stdout);
    assert!(rolled.status.success(), "{}", text(&rolled.stderr));
    assert!(stdout.contains("is back at revision 1"), "{stdout}");
    let (image, available) = app(ns).await;
    assert_eq!(image, installed_image);
    assert!(available);
    assert_eq!(
        history(&release.setup, dir.path()).await,
        [
            (1, "install".into(), "deployed".into()),
            (2, "upgrade".into(), "deployed".into()),
            (3, "rollback to 1".into(), "deployed".into()),
        ]
    );

    // Back to the upgraded revision by number; an unknown one is refused.
    let forward = run(&release.setup, dir.path(), "rollback", &["2"]).await;
    assert!(forward.status.success(), "{}", text(&forward.stderr));
    assert!(app(ns).await.0.starts_with(&format!("{target}@sha256:")));
    let unknown = run(&release.setup, dir.path(), "rollback", &["9"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("there is no revision 9"));
}
