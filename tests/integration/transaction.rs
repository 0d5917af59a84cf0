//! The release transaction seen from outside, on a real install on the harness: every verb that
//! changes a release refuses while another run holds its lock, and each verb's dry run names
//! exactly the objects its real run then changes. (`restore` under a held lock: see restore.rs.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::harness::apps::Health;
use crate::harness::registry::fixture_images;
use crate::install::{
    Installed, LLM_KEY, install, installed, run_on as run, setup, text, versions,
};
use crate::uninstall::labelled;

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
    let release = installed("tx-locked").await;
    assert!(
        release.run.status.success(),
        "{}",
        text(&release.run.stderr)
    );
    let ns = release.setup.namespace.as_str();
    // Something for a rollback and an uninstall to do: the app's Service is gone.
    Api::<Service>::namespaced(Harness::shared().client().await, ns)
        .delete("paperclip", &DeleteParams::default())
        .await
        .unwrap();
    let leases = hold_lock(ns).await;
    let before = versions(ns).await;
    let target = fixture_images().await.amd64_only;

    let verbs: [(&str, Vec<&str>); 4] = [
        ("install", vec![]),
        ("upgrade", vec!["--to", &target, "--no-backup"]),
        ("rollback", vec!["1"]),
        ("uninstall", vec![]),
    ];
    for (verb, extra) in verbs {
        let refused = run(&release, verb, &extra).await;
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
    let env = [("PAPERCLIP_LITELLM_KEY", LLM_KEY)];
    let before = versions(&setup.namespace).await;
    let preview = json_of(&install(&setup, &["--dry-run", "-o", "json"], &env).await);
    assert_eq!(
        versions(&setup.namespace).await,
        before,
        "the install's dry run wrote"
    );
    let installing = install(&setup, &["--timeout", "60s", "-o", "json"], &env).await;
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
    let release = Installed {
        setup,
        app,
        run: installing,
    };
    let ns = release.setup.namespace.as_str();
    let target = fixture_images().await.amd64_only;

    // Upgrade: the server-side dry run's changes are the real run's.
    let upgrade = ["--to", target.as_str(), "--no-backup", "-o", "json"];
    let before = versions(ns).await;
    let preview = json_of(
        &run(
            &release,
            "upgrade",
            &[&upgrade[..], &["--dry-run"]].concat(),
        )
        .await,
    );
    assert_eq!(versions(ns).await, before, "the upgrade's dry run wrote");
    let done = json_of(&run(&release, "upgrade", &upgrade).await);
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
    let preview = json_of(&run(&release, "rollback", &["1", "--dry-run", "-o", "json"]).await);
    assert_eq!(versions(ns).await, before, "the rollback's dry run wrote");
    let done = json_of(&run(&release, "rollback", &["1", "-o", "json"]).await);
    assert!(!changed(&preview).is_empty(), "{preview}");
    assert_eq!(
        changed(&preview),
        changed(&done),
        "rollback: {preview}\n{done}"
    );

    // Uninstall: the objects the dry run lists are the ones that go.
    let before = versions(ns).await;
    let labelled_before = labelled(ns).await;
    let preview = run(&release, "uninstall", &["--dry-run"]).await;
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
    let done = run(&release, "uninstall", &[]).await;
    assert!(done.status.success(), "{}", text(&done.stderr));
    let after = labelled(ns).await;
    let gone: BTreeSet<String> = labelled_before
        .into_iter()
        .filter(|id| !after.contains(id))
        .collect();
    assert_eq!(named, gone, "uninstall:\n{listed}");
}
