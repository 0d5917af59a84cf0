//! The release transaction seen from outside, on a real install on the harness: every verb that
//! changes a release refuses while another run holds its lock, and each verb's dry run names
//! exactly the objects (or, for `restore`, the steps) its real run then changes. (`restore`
//! under a held lock: see restore.rs.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::backup::{dedicated_database, psql};
use crate::harness::Harness;
use crate::harness::apps::Health;
use crate::harness::registry::fixture_images;
use crate::install::{Installed, setup, text, versions};
use crate::uninstall::labelled;
use crate::user::{Release, user_of};

const HOLDER: &str = "paperclipctl@elsewhere/7";

/// Another, live run's lock on the release.
async fn hold_lock(namespace: &str) -> Api<Lease> {
    let leases = Api::<Lease>::namespaced(Harness::shared().client().await, namespace);
    let held: Lease = serde_json::from_value(json!({
        "metadata": {"name": "paperclipctl-lock"},
        "spec": {
            "holderIdentity": HOLDER,
            "leaseDurationSeconds": 300,
            "renewTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        },
    }))
    .unwrap();
    leases.create(&PostParams::default(), &held).await.unwrap();
    leases
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{}", text(&output.stdout));
    })
}

/// `object → change` of every object a JSON result says changed.
fn changed(result: &Value) -> BTreeMap<String, String> {
    result["changes"]
        .as_array()
        .expect("a list of changes")
        .iter()
        .filter(|c| c["change"] != "unchanged")
        .map(|c| {
            (
                c["object"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_mutating_verb_refuses_while_another_run_holds_the_lock() {
    let release = Release::install("tx-locked").await;
    let installed = &release.installed.run;
    assert!(installed.status.success(), "{}", text(&installed.stderr));
    let ns = release.namespace();
    // Something for a rollback and an uninstall to do: the app's Service is gone.
    Api::<Service>::namespaced(Harness::shared().client().await, ns)
        .delete("paperclip", &DeleteParams::default())
        .await
        .unwrap();
    let leases = hold_lock(ns).await;
    let before = versions(ns).await;
    let target = fixture_images().await.amd64_only;

    let upgrade = format!("paperclipctl upgrade -p ./profile.yaml --to {target} --no-backup");
    let verbs = [
        ("install", "paperclipctl install -p ./profile.yaml"),
        ("upgrade", &upgrade),
        ("rollback", "paperclipctl rollback -p ./profile.yaml 1"),
        ("uninstall", "paperclipctl uninstall -p ./profile.yaml"),
    ];
    for (verb, line) in verbs {
        let refused = release.run(line).await;
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(4), "{verb}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "another paperclipctl run holds the release lock: {HOLDER}"
            )),
            "{verb}: {stderr}"
        );
        assert!(
            stderr.contains("expires by itself"),
            "{verb} says when the lock frees itself: {stderr}"
        );
        assert_eq!(versions(ns).await, before, "{verb} wrote behind the lock");
    }
    // The holder's Lease is left as it was.
    let lease = leases.get("paperclipctl-lock").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(HOLDER));
}

#[tokio::test]
async fn each_dry_run_names_exactly_what_the_real_run_then_changes() {
    // Install: the dry run against the cluster names what the install then creates.
    let setup = setup("tx-preview", None).await;
    let app = Harness::shared()
        .kwok_app(&setup.namespace, Health::Ok)
        .await;
    let user = user_of(&setup, &app);
    let before = versions(&setup.namespace).await;
    let preview = json_of(
        &user
            .run("paperclipctl install -p ./profile.yaml --dry-run -o json")
            .await,
    );
    assert_eq!(
        versions(&setup.namespace).await,
        before,
        "the install's dry run wrote"
    );
    let installing = user
        .run("paperclipctl install -p ./profile.yaml --timeout 60s -o json")
        .await;
    let done = json_of(&installing);
    assert!(
        changed(&preview["cluster"]).len() > 10,
        "a first install creates the release: {preview}"
    );
    assert_eq!(
        changed(&preview["cluster"]),
        changed(&done),
        "install: {preview}\n{done}"
    );
    let release = Release {
        user,
        installed: Installed {
            setup,
            app,
            run: installing,
        },
    };
    let ns = release.namespace();
    let target = fixture_images().await.amd64_only;

    // Upgrade: the server-side dry run's changes are the real run's.
    let upgrade =
        format!("paperclipctl upgrade -p ./profile.yaml --to {target} --no-backup -o json");
    let before = versions(ns).await;
    let preview = json_of(&release.run(&format!("{upgrade} --dry-run")).await);
    assert_eq!(versions(ns).await, before, "the upgrade's dry run wrote");
    let done = json_of(&release.run(&upgrade).await);
    assert!(
        !changed(&preview).is_empty(),
        "an upgrade to another image changes something: {preview}"
    );
    assert_eq!(
        changed(&preview),
        changed(&done),
        "upgrade: {preview}\n{done}"
    );

    // Rollback to the install: the same.
    let before = versions(ns).await;
    let rollback = "paperclipctl rollback -p ./profile.yaml 1 -o json";
    let preview = json_of(&release.run(&format!("{rollback} --dry-run")).await);
    assert_eq!(versions(ns).await, before, "the rollback's dry run wrote");
    let done = json_of(&release.run(rollback).await);
    assert!(!changed(&preview).is_empty(), "{preview}");
    assert_eq!(
        changed(&preview),
        changed(&done),
        "rollback: {preview}\n{done}"
    );

    // Uninstall: the objects the dry run lists are the ones that go.
    let before = versions(ns).await;
    let labelled_before = labelled(ns).await;
    let preview = release
        .run("paperclipctl uninstall -p ./profile.yaml --dry-run")
        .await;
    let listed = text(&preview.stdout);
    assert!(preview.status.success(), "{}", text(&preview.stderr));
    assert_eq!(versions(ns).await, before, "the uninstall's dry run wrote");
    let named: BTreeSet<String> = listed
        .lines()
        .skip_while(|l| !l.starts_with("Would delete"))
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.starts_with("  Namespace/"))
        .map(|l| l.trim().to_string())
        .collect();
    assert!(!named.is_empty(), "{listed}");
    let done = release
        .run("paperclipctl uninstall -p ./profile.yaml")
        .await;
    assert!(done.status.success(), "{}", text(&done.stderr));
    let after = labelled(ns).await;
    let gone: BTreeSet<String> = labelled_before
        .into_iter()
        .filter(|id| !after.contains(id))
        .collect();
    assert_eq!(named, gone, "uninstall:\n{listed}");
}

/// Every file below `dir` with its contents, by path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, found: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, found);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                found.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(dir, dir, &mut found);
    found
}

/// The names of the app's pods.
async fn app_pods(pods: &Api<Pod>) -> BTreeSet<String> {
    let params = ListParams::default().labels("app.kubernetes.io/component=app");
    let listed = pods.list(&params).await.unwrap().items;
    listed.into_iter().filter_map(|p| p.metadata.name).collect()
}

/// The safety backups in `dir`.
fn safety_backups(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().contains("-pre-restore"))
        .collect()
}

#[tokio::test]
async fn a_restores_dry_run_names_exactly_the_steps_its_run_then_takes() {
    // A release with its own database and a table, and an archive of it.
    let release = Release::with_instance("tx-restore").await;
    let ns = release.namespace();
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, ns);
    dedicated_database(ns, &ns.replace('-', "_"), &pods).await;
    psql(
        &pods,
        "CREATE TABLE preview_t (id int PRIMARY KEY); \
         INSERT INTO preview_t SELECT generate_series(1, 250)",
    )
    .await;
    let instance = release
        .installed
        .app
        .paperclip_home()
        .join("instances/default");
    std::os::unix::fs::chown(instance.join("secrets"), Some(1000), Some(1000)).unwrap();
    let archive = release.user.dir().join("taken.tar.zst");
    let archive = archive.to_str().unwrap();
    let taken = release
        .run(&format!(
            "paperclipctl backup -p ./profile.yaml --file {archive}"
        ))
        .await;
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    // What is there now differs from the archive in the rows and in every instance file.
    psql(&pods, "DELETE FROM preview_t WHERE id > 200").await;
    for (name, _) in files(&instance) {
        let path = instance.join(name);
        let mut changed = std::fs::read(&path).unwrap();
        changed.extend_from_slice(b"changed since the backup\n");
        std::fs::write(&path, changed).unwrap();
    }
    let backups = release.installed.app.home.path().join("backups");
    let deployments = Api::<Deployment>::namespaced(Harness::shared().client().await, ns);
    let before = (versions(ns).await, files(&instance), app_pods(&pods).await);

    let preview = release
        .run(&format!(
            "paperclipctl restore -p ./profile.yaml {archive} --dry-run"
        ))
        .await;
    let listed = text(&preview.stdout);
    assert!(preview.status.success(), "{}", text(&preview.stderr));
    assert_eq!(
        (versions(ns).await, files(&instance), app_pods(&pods).await),
        before,
        "the restore's dry run changed something"
    );
    assert_eq!(psql(&pods, "SELECT count(*) FROM preview_t").await, "200");
    assert!(safety_backups(&backups).is_empty(), "the dry run backed up");
    let steps: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.trim_start().split_once(". "))
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map(|(_, step)| step)
        .collect();
    let step = |words: &str| {
        steps
            .iter()
            .find(|s| s.contains(words))
            .copied()
            .unwrap_or_else(|| panic!("no step says {words:?}:\n{listed}"))
    };
    let staged = step("on the app's volume beside the live ones");
    let named: BTreeSet<String> = staged
        .strip_prefix("stage the archive's ")
        .and_then(|rest| rest.split_once(" on the app's volume"))
        .unwrap_or_else(|| panic!("which parts? {staged}"))
        .0
        .split(", ")
        .map(str::to_string)
        .collect();
    step("safety backup");
    step(&format!("scale Deployment/paperclip in {ns} to 0"));
    step("load the dump");
    step("check that the 1 table(s) have the recorded row counts");
    step("scale Deployment/paperclip back up");
    step("rename the staged files and trees over the live ones");
    assert_eq!(steps.len(), 7, "{listed}");

    let done = release
        .run(&format!(
            "paperclipctl restore -p ./profile.yaml {archive} --yes"
        ))
        .await;
    assert!(done.status.success(), "{}", text(&done.stderr));
    // The safety backup: one, in the local backups directory.
    assert_eq!(safety_backups(&backups).len(), 1, "{}", text(&done.stderr));
    // The parts named, and only they, now hold the archive's contents.
    let (_, parts) = paperclipctl::backup::open(Path::new(archive), &[]).unwrap();
    let after = files(&instance);
    let changed: BTreeSet<String> = after
        .iter()
        .filter(|(name, content)| before.1.get(*name) != Some(*content))
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(changed, named, "{listed}");
    for name in &named {
        assert_eq!(
            after[name],
            std::fs::read(parts.path().join(name)).unwrap(),
            "{name} is the archive's"
        );
    }
    // The database holds the dump's rows, loaded while the app was scaled to 0 and gone: its
    // pods were replaced, and it is back at its replicas. Of the release's objects only the app
    // Deployment changed.
    assert_eq!(psql(&pods, "SELECT count(*) FROM preview_t").await, "250");
    assert!(
        app_pods(&pods).await.is_disjoint(&before.2),
        "the app's pods were replaced"
    );
    let app = deployments.get("paperclip").await.unwrap();
    assert_eq!(app.spec.unwrap().replicas, Some(1));
    let versions_after = versions(ns).await;
    let changed: BTreeSet<&String> = versions_after
        .iter()
        .filter(|(id, version)| before.0.get(*id) != Some(*version))
        .map(|(id, _)| id)
        .chain(
            before
                .0
                .keys()
                .filter(|id| !versions_after.contains_key(*id)),
        )
        .collect();
    assert_eq!(
        changed,
        BTreeSet::from([&"Deployment/paperclip".to_string()]),
        "{listed}"
    );
}
