//! `paperclipctl uninstall` after a real install on the harness: reverse wave order, data kept
//! unless purged, a half-installed release, and a second run that has nothing to do.

use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};

use crate::harness::Harness;
use crate::install::{LLM_KEY, RELEASE_KINDS, RealRelease, install, installed_real, setup, text};

async fn uninstall(namespace: &str, extra: &[&str]) -> Output {
    let h = Harness::shared();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args(["uninstall", "--profile", "frank", "--namespace", namespace])
        .args(extra)
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap()
}

/// `Kind/name` of every object labelled managed-by=paperclipctl in `namespace`.
pub(crate) async fn labelled(namespace: &str) -> Vec<String> {
    let client = Harness::shared().client().await;
    let mut found = Vec::new();
    for (group, version, kind, plural) in RELEASE_KINDS {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
        let params = ListParams::default().labels("app.kubernetes.io/managed-by=paperclipctl");
        for object in api.list(&params).await.unwrap().items {
            found.push(format!(
                "{kind}/{}",
                object.metadata.name.unwrap_or_default()
            ));
        }
    }
    found
}

#[tokio::test]
async fn uninstall_keeps_data_until_purged_copes_with_missing_objects_and_runs_twice() {
    let h = Harness::shared();
    // A real install on the real node: its pods really terminate in reverse wave order.
    let Some(RealRelease {
        setup,
        run,
        slot: _slot,
        ..
    }) = installed_real("uninstall").await
    else {
        return;
    };
    let ns = setup.namespace.as_str();
    assert!(
        run.status.success(),
        "install failed:\n{}",
        text(&run.stderr)
    );
    let client = h.client().await;

    // Half-installed: the Deployment is gone already.
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let uid = deployments
        .get("paperclip")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    deployments
        .delete("paperclip", &DeleteParams::default())
        .await
        .unwrap();
    let gone = await_condition(
        deployments.clone(),
        "paperclip",
        conditions::is_deleted(&uid),
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), gone)
        .await
        .unwrap()
        .unwrap();

    let dry = uninstall(ns, &["--dry-run"]).await;
    let out = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("no {s:?} in:\n{out}"));
    assert!(at("Service/paperclip\n") < at("StatefulSet/paperclip-db-postgresql"));
    assert!(at("StatefulSet/paperclip-db-postgresql") < at("ExternalSecret/paperclip-auth"));
    assert!(at("ExternalSecret/paperclip-auth") < at("SecretStore/paperclip-infisical"));
    assert!(at("Kept") < at("PersistentVolumeClaim/paperclip-data"));
    assert!(!labelled(ns).await.is_empty());

    let run = uninstall(ns, &[]).await;
    let (out, err) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "{err}");
    assert!(out.contains("Paperclip is uninstalled"), "{out}");
    for kept in [
        "PersistentVolumeClaim/paperclip-data",
        "PersistentVolumeClaim/paperclip-shell-home",
        "Secret/paperclip-db-postgresql",
    ] {
        assert!(
            out.contains(&format!("  {kept}\n")),
            "{kept} not listed:\n{out}"
        );
    }
    assert!(out.contains("--purge"), "{out}");
    let left = labelled(ns).await;
    assert!(
        left.iter().all(|o| o.starts_with("PersistentVolumeClaim/")
            || o == "Secret/paperclip-db-postgresql"
            || o.starts_with("Secret/paperclipctl.release.")),
        "{left:?}"
    );
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    assert!(pvcs.get_opt("paperclip-data").await.unwrap().is_some());
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    assert!(
        secrets
            .get_opt("paperclip-db-postgresql")
            .await
            .unwrap()
            .is_some()
    );

    let again = uninstall(ns, &[]).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("nothing to uninstall"),
        "{}",
        text(&again.stdout)
    );

    // --purge without a terminal needs --yes, and deletes nothing without it.
    let refused = uninstall(ns, &["--purge"]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--yes"),
        "{}",
        text(&refused.stderr)
    );
    assert!(
        secrets
            .get_opt("paperclip-db-postgresql")
            .await
            .unwrap()
            .is_some()
    );

    let purge = uninstall(ns, &["--purge", "--yes"]).await;
    assert!(purge.status.success(), "{}", text(&purge.stderr));
    assert!(
        text(&purge.stdout).contains("Infisical were left alone"),
        "{}",
        text(&purge.stdout)
    );
    assert_eq!(labelled(ns).await, Vec::<String>::new());
    // The operator's own Secret in the namespace was never touched.
    assert!(
        secrets
            .get_opt("infisical-universal-auth")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_install_that_failed_in_wave_0_uninstalls_and_purges_to_nothing() {
    let setup = setup("uninstall-wave0", None).await;
    let ns = setup.namespace.as_str();
    let args = [
        "--timeout",
        "60s",
        "--ignore-preflight",
        "image-database",
        "--set",
        "database.image=harness.invalid/fail:pull",
    ];
    let run = install(&setup, &args, &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)]).await;
    assert_eq!(run.status.code(), Some(5), "{}", text(&run.stderr));
    let before = labelled(ns).await;
    assert!(
        before.contains(&"StatefulSet/paperclip-db-postgresql".to_string())
            && !before.iter().any(|o| o.starts_with("Deployment/")),
        "{before:?}"
    );

    let run = uninstall(ns, &[]).await;
    let out = text(&run.stdout);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(out.contains("  Secret/paperclip-db-postgresql\n"), "{out}");
    assert!(
        !labelled(ns)
            .await
            .contains(&"StatefulSet/paperclip-db-postgresql".to_string())
    );

    // With the operator's credentials Secret gone too, nothing is left but what paperclipctl
    // made; the namespace was made by the operator, though: the install never labelled it as
    // its own, and a purge leaves it.
    let client = Harness::shared().client().await;
    Api::<Secret>::namespaced(client.clone(), ns)
        .delete("infisical-universal-auth", &DeleteParams::default())
        .await
        .unwrap();
    let purge = uninstall(ns, &["--purge", "--yes"]).await;
    assert!(purge.status.success(), "{}", text(&purge.stderr));
    assert!(
        text(&purge.stdout).contains(&format!(
            "Namespace {ns} kept: paperclipctl did not create it."
        )),
        "{}",
        text(&purge.stdout)
    );
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client);
    let kept = namespaces
        .get_opt(ns)
        .await
        .unwrap()
        .expect("the namespace stays");
    let labels = kept.metadata.labels.unwrap_or_default();
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "the install never took the namespace over: {labels:?}"
    );
}
