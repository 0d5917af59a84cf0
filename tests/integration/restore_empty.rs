//! A backup of the real Paperclip restored onto an empty volume in a fresh namespace, on the
//! harness's real node: the admin signs in again and finds the company, the agent with its
//! instructions, the upload and the secret; the instance's keys and `.env` are the backed-up
//! ones. The archive is encrypted to an age key and decrypted with its identity.

use std::path::Path;

use serde_json::json;

use crate::harness::real::{self, RealNode};
use crate::install::{setup, text};
use crate::journey::{ADMIN, App, assert_data_intact, create_data, ok, paperclipctl, profile_file};

/// sha256 of the instance files that must come back unchanged, read in the app container.
async fn instance_digests(namespace: &str) -> String {
    let run = real::exec_app(
        namespace,
        &[
            "sh",
            "-c",
            "cd \"${PAPERCLIP_HOME:-/paperclip}/instances/default\" && \
             sha256sum secrets/master.key .env && \
             { [ ! -e secrets/decision-signing.key ] || sha256sum secrets/decision-signing.key; }",
        ],
    )
    .await;
    assert!(run.success, "{}", run.stderr);
    run.stdout
}

pub(crate) async fn install_and_sign_up(profile: &Path, namespace: &str) -> App {
    let installed = ok(
        &paperclipctl(&[
            "install",
            "-p",
            profile.to_str().unwrap(),
            "--timeout",
            "10m",
        ])
        .await,
        "install",
    );
    let invite = installed
        .lines()
        .find_map(|l| l.split("Create the first admin account: ").nth(1))
        .unwrap_or_else(|| panic!("no invite URL in:\n{installed}"));
    let token = invite.trim().rsplit('/').next().unwrap().to_string();
    let mut app = App::connect(namespace).await;
    app.json(
        reqwest::Method::POST,
        "/api/auth/sign-up/email",
        Some(json!({"name": "Admin", "email": ADMIN.0, "password": ADMIN.1})),
    )
    .await;
    app.json(
        reqwest::Method::POST,
        &format!("/api/invites/{token}/accept"),
        Some(json!({"requestType": "human"})),
    )
    .await;
    app
}

#[tokio::test]
async fn an_encrypted_backup_restored_onto_an_empty_volume_brings_everything_back() {
    let Some(real) = RealNode::or_skip("the restore onto an empty volume") else {
        return;
    };
    let mut slot = real::slot().await;
    let dir = tempfile::tempdir().unwrap();
    let source = setup("backup-src", None).await;
    slot.holds(&source.namespace);
    let profile = profile_file(&real, &source, dir.path(), &real.image, "official").await;
    let mut app = install_and_sign_up(&profile, &source.namespace).await;
    let data = create_data(&mut app).await;
    drop(app);
    let digests = instance_digests(&source.namespace).await;

    // An age key pair, as `age-keygen` writes it.
    let key = age::x25519::Identity::generate();
    let identity = dir.path().join("backup-key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&identity, key.to_string().expose_secret()).unwrap();
    }
    let archive = dir.path().join("everything.tar.zst.age");
    let recipient = key.to_public().to_string();
    let args = [
        "backup",
        "-n",
        &source.namespace,
        "-f",
        archive.to_str().unwrap(),
        "--recipient",
        &recipient,
    ];
    let backed_up = ok(&paperclipctl(&args).await, "backup");
    assert!(backed_up.contains("encrypted with age"), "{backed_up}");
    assert!(backed_up.contains("data/storage"), "{backed_up}");
    assert!(backed_up.contains("companies"), "{backed_up}");
    assert!(
        !std::fs::read(&archive)
            .unwrap()
            .windows(b"journey-secret-value".len())
            .any(|w| w == b"journey-secret-value")
    );
    slot.free(&source.namespace);

    // A fresh namespace with an empty volume, its own new instance and keys.
    let target = setup("restore-dst", None).await;
    slot.holds(&target.namespace);
    let profile = profile_file(&real, &target, dir.path(), &real.image, "official").await;
    drop(install_and_sign_up(&profile, &target.namespace).await);
    assert_ne!(instance_digests(&target.namespace).await, digests);

    let without = paperclipctl(&[
        "restore",
        archive.to_str().unwrap(),
        "-p",
        profile.to_str().unwrap(),
        "--dry-run",
    ])
    .await;
    assert_eq!(without.status.code(), Some(2), "{}", text(&without.stderr));
    assert!(text(&without.stderr).contains("--identity"));

    let backups = dir.path().join("backups");
    let restored = crate::install::operator_command()
        .args([
            "restore",
            archive.to_str().unwrap(),
            "-p",
            profile.to_str().unwrap(),
            "--identity",
            identity.to_str().unwrap(),
            "--other-namespace",
            "--yes",
            "--timeout",
            "10m",
        ])
        .env("PAPERCLIPCTL_BACKUP_DIR", &backups)
        .output()
        .await
        .unwrap();
    ok(&restored, "restore");

    assert_eq!(instance_digests(&target.namespace).await, digests);
    assert_data_intact(&target.namespace, &data).await;
    slot.free(&target.namespace);
}
