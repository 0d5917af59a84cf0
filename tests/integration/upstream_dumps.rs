//! Paperclip's own backups, on the harness's real node with the real app: one is made with the
//! app's `db:backup`, copied here with `backup pull`, and restored. With the official database
//! image the app's user is the superuser and the restore brings the database back to the dump;
//! with the Bitnami contract the app's user is not one and no postgres password is set, so the
//! restore says the steps and changes nothing.

use serde_json::{Value, json};

use crate::harness::Harness;
use crate::harness::real::{self, RealNode};
use crate::install::{setup, text};
use crate::journey::{App, ok, paperclipctl, profile_file, sign_in};
use crate::restore_empty::install_and_sign_up;

async fn company_names(namespace: &str) -> String {
    let mut app = App::connect(namespace).await;
    sign_in(&mut app).await;
    app.json(reqwest::Method::GET, "/api/companies", None)
        .await
        .to_string()
}

#[tokio::test]
async fn the_apps_own_backup_is_pulled_and_restored_with_either_database_flavour() {
    let h = Harness::shared();
    let Some(real) = RealNode::or_skip("Paperclip's own backups") else {
        return;
    };
    let mut slot = real::slot().await;
    for flavor in ["official", "bitnami"] {
        let target = setup(&format!("upstream-{flavor}"), None).await;
        let ns = target.namespace.as_str();
        slot.holds(ns);
        let dir = tempfile::tempdir().unwrap();
        let profile = profile_file(&real, &target, dir.path(), &real.image, flavor).await;
        let mut app = install_and_sign_up(&profile, ns).await;
        app.json(
            reqwest::Method::POST,
            "/api/companies",
            Some(json!({"name": "Kept Co"})),
        )
        .await;

        let made = tokio::process::Command::from(h.kubectl())
            .args([
                "exec",
                "-n",
                ns,
                "deploy/paperclip",
                "-c",
                "paperclip",
                "--",
            ])
            .args(["sh", "-c", "cd /app && pnpm paperclipai db:backup"])
            .output()
            .await
            .unwrap();
        let listed = ok(
            &paperclipctl(&["backup", "list", "-n", ns, "--output", "json"]).await,
            "backup list",
        );
        let listed: Value = serde_json::from_str(&listed).unwrap();
        let name = listed["volume"][0]["name"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "db:backup wrote no backup: {listed}\n{}{}",
                    text(&made.stdout),
                    text(&made.stderr)
                )
            })
            .to_string();
        let pulled = dir.path().join(&name);
        ok(
            &paperclipctl(&[
                "backup",
                "pull",
                &name,
                "-n",
                ns,
                "-f",
                pulled.to_str().unwrap(),
            ])
            .await,
            "backup pull",
        );

        app.json(
            reqwest::Method::POST,
            "/api/companies",
            Some(json!({"name": "Later Co"})),
        )
        .await;
        drop(app);

        let restored = crate::install::operator_command()
            .args(["restore", pulled.to_str().unwrap(), "-p"])
            .arg(&profile)
            .args(["--yes", "--timeout", "10m"])
            .env("PAPERCLIPCTL_BACKUP_DIR", dir.path())
            .output()
            .await
            .unwrap();
        let companies = company_names(ns).await;
        assert!(companies.contains("Kept Co"), "{flavor}: {companies}");
        if flavor == "official" {
            ok(&restored, "restore of the app's own backup");
            assert!(!companies.contains("Later Co"), "{flavor}: {companies}");
        } else {
            let said = text(&restored.stderr);
            assert_eq!(restored.status.code(), Some(5), "{said}");
            assert!(said.contains("only a superuser may"), "{said}");
            assert!(
                said.contains("psql") && said.contains("-U postgres"),
                "{said}"
            );
            assert!(
                companies.contains("Later Co"),
                "nothing changed: {companies}"
            );
        }
        slot.free(ns);
    }
}
