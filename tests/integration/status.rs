//! `paperclipctl status` and `history` against the real Paperclip on the harness's real node:
//! healthy, then made unhealthy for real; a secrets directory root took over.
//!
//! Two tests stay on KWOK's nodes, because only there can the app be made to say what they
//! check (each says why at its top): a volume above 80% (`status_warns_on_a_full_volume`) and
//! an app in its startup recovery (`a_starting_app_is_a_state_…`).

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::harness::Harness;
use crate::harness::apps::{Health, VERSION};
use crate::harness::real::{RealNode, app_pod};
use crate::install::{LLM_KEY, RealRelease, install, installed_real, setup, text};

/// Runs `paperclipctl <verb> --namespace <namespace>` with `extra` against the harness.
async fn run(verb: &str, namespace: &str, extra: &[&str]) -> Output {
    let h = Harness::shared();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args([verb, "--namespace", namespace])
        .args(extra)
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .output()
        .await
        .unwrap()
}

/// Gives the app pod's exec a PATH whose first entry holds `df` printing 90% in use, and puts
/// 700 KiB of backups on the volume, so usage is the same on every machine.
async fn fill_app_volume(namespace: &str, home: &std::path::Path, stubs: &std::path::Path) {
    let df = stubs.join("df");
    std::fs::write(
        &df,
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n\
         for p; do last=$p; done\necho \"/dev/stub 1000 900 100 90% $last\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&df, std::fs::Permissions::from_mode(0o755)).unwrap();
    let backups = home.join("instances/default/data/backups");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(
        backups.join("paperclip-20260101-000000.sql.gz"),
        vec![7u8; 700 * 1024],
    )
    .unwrap();

    let client = Harness::shared().client().await;
    let app = app_pod(namespace).await.metadata.name.unwrap();
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Exec");
    let execs = Api::<DynamicObject>::namespaced_with(
        client,
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "execs"),
    );
    let mut exec = execs.get(&app).await.unwrap();
    let envs = exec.data["spec"]["execs"][0]["local"]["envs"]
        .as_array_mut()
        .unwrap();
    for env in envs.iter_mut().filter(|e| e["name"] == "PATH") {
        let path = format!("{}:{}", stubs.display(), env["value"].as_str().unwrap());
        env["value"] = Value::String(path);
    }
    execs
        .replace(&app, &PostParams::default(), &exec)
        .await
        .unwrap();
}

#[tokio::test]
async fn status_reports_a_healthy_install_and_fails_when_broken() {
    let h = Harness::shared();
    let Some(RealRelease {
        setup,
        run: run_install,
        real,
        slot: _slot,
    }) = installed_real("status").await
    else {
        return;
    };
    assert!(
        run_install.status.success(),
        "install failed:\n{}",
        text(&run_install.stderr)
    );
    let ns = setup.namespace.as_str();

    let healthy = run("status", ns, &[]).await;
    let stdout = text(&healthy.stdout);
    assert!(
        healthy.status.success(),
        "{stdout}\n{}",
        text(&healthy.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Paperclip in namespace {ns}: revision 1, profile frank, deployed"
        )),
        "{stdout}"
    );
    for line in [
        "✓ StatefulSet/paperclip-db-postgresql 1/1 ready",
        "✓ Deployment/paperclip 1/1 available",
        "✓ ExternalSecret/paperclip-auth Ready",
        "✓ PersistentVolumeClaim/paperclip-data Bound",
        "Health: ok, database reachable, bootstrap: ",
        &format!(", version {}\n", release_of(&real.image)),
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains('✗'), "{stdout}");

    let json = run("status", ns, &["-o", "json"]).await;
    assert!(json.status.success(), "{}", text(&json.stderr));
    let document: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["healthy"], true, "{document:#}");
    assert_eq!(document["namespace"], ns);
    assert_eq!(document["release"]["revision"], 1);
    assert_eq!(document["release"]["profile"], "frank");
    assert_eq!(document["health"]["status"], "ok");
    assert_eq!(document["health"]["databaseReachable"], true);
    assert_eq!(document["problems"], serde_json::json!([]));
    let objects = document["objects"].as_array().unwrap();
    // The optional ExternalSecrets have no values in Infisical here: warnings only.
    assert!(
        objects
            .iter()
            .all(|o| o["healthy"] == true || o["optional"] == true),
        "{document:#}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["object"] == "Deployment/paperclip")
    );
    assert!(
        document["pods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ready"] == true && p["restarts"] == 0),
        "{document:#}"
    );

    let history = run("history", ns, &[]).await;
    let listed = text(&history.stdout);
    assert!(history.status.success(), "{}", text(&history.stderr));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.lines().nth(1).unwrap().starts_with("1 "), "{listed}");
    assert!(
        listed.contains(" frank ") && listed.contains("deployed"),
        "{listed}"
    );
    let history = run("history", ns, &["-o", "json"]).await;
    let document: Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(document["revisions"].as_array().unwrap().len(), 1);

    // A synced Secret's ExternalSecret gone: unhealthy, exit 5, the error names it.
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    Api::<DynamicObject>::namespaced_with(
        h.client().await,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "externalsecrets"),
    )
    .delete("paperclip-auth", &DeleteParams::default())
    .await
    .unwrap();
    let broken = run("status", ns, &[]).await;
    assert_eq!(broken.status.code(), Some(5), "{}", text(&broken.stdout));
    let stderr = text(&broken.stderr);
    assert!(stderr.contains("is not healthy"), "{stderr}");
    assert!(
        stderr.contains("ExternalSecret/paperclip-auth is missing"),
        "{stderr}"
    );
    assert!(
        text(&broken.stdout).contains("✗ ExternalSecret/paperclip-auth missing"),
        "{}",
        text(&broken.stdout)
    );
}

/// Runs on KWOK's nodes with the app stand-in: the volume's usage is what `df` in the app
/// container says, and only the stand-in's exec can put a `df` of the test's own first on its
/// PATH (the real node's volumes are directories of this machine's disk, never 90% full). A
/// path of the instance directory that backups do not know is a warning too.
#[tokio::test]
async fn status_warns_on_a_full_volume() {
    let h = Harness::shared();
    let setup = setup("status-full", None).await;
    let app = h.kwok_app(&setup.namespace, Health::Ok).await;
    let app_home = app.paperclip_home();
    let run_install = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    assert!(
        run_install.status.success(),
        "install failed:\n{}",
        text(&run_install.stderr)
    );
    let ns = setup.namespace.as_str();

    // A volume above 80% is a warning that names upstream's backups, not a failure. KWOK picks up
    // the changed Exec after a moment: poll until it does.
    let stubs = tempfile::tempdir().unwrap();
    fill_app_volume(ns, &app_home, stubs.path()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let warned = loop {
        let out = run("status", ns, &[]).await;
        let stdout = text(&out.stdout);
        if stdout.contains("is 90% full") {
            assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
            break stdout;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no usage warning in:\n{stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        warned.contains("instances/default/data/backups hold 7"),
        "{warned}"
    );
    assert!(!warned.contains("not known"), "{warned}");

    // A directory a newer Paperclip might add is named, as `backup` names it.
    std::fs::create_dir(app_home.join("instances/default/brand-new")).unwrap();
    let out = run("status", ns, &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "brand-new in the instance directory is not known to this version of paperclipctl"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_and_history_say_when_nothing_is_installed() {
    let namespace = Harness::shared().namespace("status-empty").await;
    for verb in ["status", "history"] {
        let out = run(verb, &namespace, &[]).await;
        assert_eq!(out.status.code(), Some(7), "{verb}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!(
                "no Paperclip release is installed in namespace {namespace}"
            )),
            "{}",
            text(&out.stderr)
        );
    }
}

/// Runs on KWOK's nodes with the app stand-in: upstream answers `"status":"starting"` only
/// during its startup recovery, seconds long and not to be caught on purpose.
#[tokio::test]
async fn a_starting_app_is_a_state_and_status_names_the_version_its_image_runs() {
    let h = Harness::shared();
    let setup = setup("starting", None).await;
    // Upstream answers `"status":"starting"` during its startup recovery, without a version for
    // an anonymous caller.
    let _app = h.kwok_app(&setup.namespace, Health::Starting).await;
    let installed = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stdout = text(&installed.stdout);
    assert!(
        installed.status.success(),
        "install failed:\n{}",
        text(&installed.stderr)
    );
    assert!(
        stdout.contains("Health: starting (startup recovery in progress), bootstrap: "),
        "{stdout}"
    );

    let ns = setup.namespace.as_str();
    let out = run("status", ns, &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "Health: starting (startup recovery in progress), database reachable, bootstrap: \
             bootstrap_pending, version {VERSION}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: the app is still in its startup recovery"),
        "{stdout}"
    );
    let json = run("status", ns, &["-o", "json"]).await;
    let document: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["healthy"], true, "{document:#}");
    assert_eq!(document["health"]["status"], "starting", "{document:#}");
    assert_eq!(document["health"]["version"], VERSION, "{document:#}");
}

#[tokio::test]
async fn a_secrets_directory_another_uid_owns_is_named_with_the_fix() {
    let Some(RealRelease {
        setup,
        run: installed,
        real,
        slot: _slot,
    }) = installed_real("secrets-owner").await
    else {
        return;
    };
    assert!(
        installed.status.success(),
        "install failed:\n{}",
        text(&installed.stderr)
    );
    let ns = setup.namespace.as_str();
    let ok = run("status", ns, &[]).await;
    assert!(
        !text(&ok.stdout).contains("is owned by uid"),
        "{}",
        text(&ok.stdout)
    );
    // A volume written by root (a restore by hand, an image that ran as root): upstream refuses
    // to start on it.
    chown_as_root(&real, ns, "instances/default/secrets").await;
    let out = run("status", ns, &[]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}");
    assert!(
        stdout.contains(
            "/paperclip/instances/default/secrets is owned by uid 0, not by the app's uid 1000"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("chown -R 1000:1000 "), "{stdout}");
}

/// The Paperclip release the harness built `image` from: its tag is `<release>-<content hash>`.
fn release_of(image: &str) -> &str {
    let tag = image.rsplit(':').next().unwrap();
    tag.split_once('-').map_or(tag, |(release, _)| release)
}

/// Gives `path` on the app's volume to root, from a pod of its own that mounts the volume as
/// root (the app's uid cannot), and waits until it did.
async fn chown_as_root(real: &RealNode, namespace: &str, path: &str) {
    let placement = real.placement().await;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "chown-as-root"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": placement["nodeSelector"],
            "tolerations": placement["tolerations"],
            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            "containers": [{
                "name": "chown",
                "image": real.postgres_image,
                "command": ["chown", "0:0", format!("/volume/{path}")],
                "volumeMounts": [{"name": "data", "mountPath": "/volume"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "paperclip-data"}}],
        },
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, namespace);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let phase = pods
            .get("chown-as-root")
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase)
            .unwrap_or_default();
        match phase.as_str() {
            "Succeeded" => return,
            "Failed" => panic!("chown {path} as root failed"),
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chown {path} as root did not finish (phase {phase})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
