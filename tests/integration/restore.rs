//! What `backup` and `restore` must never do, each triggered for real on a harness install:
//! leave the master key readable or behind on this machine, restore without naming the target
//! and a consent, restore while another run holds the lock, lose the instance's key when the
//! load fails, leave the app scaled to zero, run psql meta-commands from an archive, print row
//! data, or keep writing after another run took the lock over.
//!
//! These run on KWOK's nodes with the harness's least app (`harness::apps`): each failure is
//! staged around paperclipctl (a pod held back from stopping, a lock taken over mid-restore, a
//! forged archive, a planted pod), and none needs Paperclip's own behaviour. The round trip of a
//! real instance through `backup` and `restore` runs on the real node (`backup.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use paperclipctl::backup::archive::{self, CONFIG, DUMP, MASTER_KEY as KEY_PART};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::backup::{DB_POD, command, dedicated_database, psql, run};
use crate::harness::Harness;
use crate::harness::apps::Health;
use crate::install::{
    Installed, LLM_KEY, MASTER_KEY, install, installed_with_instance, setup, text,
};

const APP_SELECTOR: &str = "app.kubernetes.io/component=app";

/// Polls `check` every 100 ms until it holds, failing with `what` after `secs`.
async fn until<F: Future<Output = bool>>(secs: u64, what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Gives the release's database pod an Exec with `envs` (libpq's variables, PGPORT among them)
/// and waits until KWOK serves it.
async fn serve_database_exec(namespace: &str, pods: &Api<Pod>, envs: &[(&str, &str)]) {
    let h = Harness::shared();
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Exec");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "execs");
    let mut envs: Vec<serde_json::Value> = envs
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    envs.push(json!({"name": "PATH", "value": "/usr/local/bin:/usr/bin:/bin"}));
    let exec: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Exec",
        "metadata": {"name": DB_POD, "namespace": namespace},
        "spec": {"execs": [{"local": {"envs": envs}}]},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(h.client().await, namespace, &resource)
        .create(&PostParams::default(), &exec)
        .await
        .unwrap();
    let port = envs
        .iter()
        .find(|e| e["name"] == "PGPORT")
        .and_then(|e| e["value"].as_str())
        .expect("PGPORT is given")
        .to_string();
    until(30, "KWOK never served the Exec", || async {
        let params = AttachParams::default()
            .container("postgresql")
            .stderr(false);
        let Ok(mut process) = pods
            .exec(DB_POD, ["sh", "-c", "echo \"$PGPORT\""], &params)
            .await
        else {
            return false;
        };
        let mut out = String::new();
        process
            .stdout()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .ok();
        out.trim() == port
    })
    .await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn backup_keeps_its_scratch_files_private_and_removes_them_when_interrupted() {
    let release = installed_with_instance("backup-sigint").await;
    let ns = release.setup.namespace.as_str();
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, ns);
    // A database that accepts connections and never answers: the backup stops at its first
    // query, with the master key already read to this machine.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    serve_database_exec(
        ns,
        &pods,
        &[("PGHOST", "127.0.0.1"), ("PGPORT", &port), ("PGUSER", "x")],
    )
    .await;

    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("backup.tar.zst");
    let child = command(ns, &["backup", "-f", archive.to_str().unwrap()])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let scratch = || -> Option<PathBuf> {
        std::fs::read_dir(tmp.path())
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.join(KEY_PART).exists() && p.join(CONFIG).exists())
    };
    until(60, "the backup never read the master key", || async {
        scratch().is_some()
    })
    .await;
    let dir = scratch().unwrap();
    assert_eq!(
        mode(&dir),
        0o700,
        "the scratch directory is the user's alone"
    );
    assert_eq!(
        mode(&dir.join(KEY_PART)),
        0o600,
        "the master key is owner-only"
    );
    assert_eq!(mode(&dir.join(CONFIG)), 0o600);
    assert_eq!(
        std::fs::read(dir.join(KEY_PART)).unwrap(),
        MASTER_KEY,
        "this is the key"
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let ended = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the backup ends on SIGINT")
        .unwrap();
    let stderr = text(&ended.stderr);
    assert_eq!(ended.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the scratch files are removed: {left:?}");
    let written: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "no archive, no partial file: {written:?}"
    );
}

/// An installed release with its own database holding 250 rows of `restore_t`, the fixtures'
/// master key on its volume, and an archive of both.
struct Restorable {
    release: Installed,
    pods: Api<Pod>,
    archive: PathBuf,
    /// The local backups directory the runs use (safety backups land there).
    backups: tempfile::TempDir,
}

impl Restorable {
    async fn new(prefix: &str) -> Restorable {
        Restorable::of(installed_with_instance(prefix).await).await
    }

    /// A release installed with `extra` arguments (profile values set with `--set`).
    async fn installed_with(prefix: &str, extra: &[&str]) -> Restorable {
        let setup = setup(prefix, None).await;
        let app = Harness::shared()
            .kwok_app(&setup.namespace, Health::Ok)
            .await;
        let mut args = vec!["--timeout", "60s"];
        args.extend(extra);
        let run = install(&setup, &args, &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)]).await;
        assert!(
            run.status.success(),
            "install failed:\n{}",
            text(&run.stderr)
        );
        std::fs::write(
            app.paperclip_home()
                .join("instances/default")
                .join(KEY_PART),
            MASTER_KEY,
        )
        .unwrap();
        Restorable::of(Installed { setup, app, run }).await
    }

    async fn of(release: Installed) -> Restorable {
        let ns = release.setup.namespace.clone();
        let pods = Api::<Pod>::namespaced(Harness::shared().client().await, &ns);
        dedicated_database(&ns, &ns.replace('-', "_"), &pods).await;
        psql(
            &pods,
            "CREATE TABLE restore_t (id int PRIMARY KEY, note text); \
             INSERT INTO restore_t SELECT g, 'row ' || g FROM generate_series(1, 250) g",
        )
        .await;
        let secrets = release
            .app
            .paperclip_home()
            .join("instances/default/secrets");
        std::os::unix::fs::chown(&secrets, Some(1000), Some(1000)).unwrap();
        let backups = tempfile::tempdir().unwrap();
        let archive = backups.path().join("taken.tar.zst");
        let taken = run(&ns, &["backup", "-f", archive.to_str().unwrap()]).await;
        assert!(taken.status.success(), "{}", text(&taken.stderr));
        Restorable {
            release,
            pods,
            archive,
            backups,
        }
    }

    fn ns(&self) -> &str {
        &self.release.setup.namespace
    }

    fn key(&self) -> Vec<u8> {
        std::fs::read(
            self.release
                .app
                .paperclip_home()
                .join("instances/default")
                .join(KEY_PART),
        )
        .unwrap()
    }

    async fn rows(&self) -> String {
        psql(&self.pods, "SELECT count(*) FROM restore_t").await
    }

    /// Runs `restore` with `args`, the local backups directory set.
    async fn restore(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["restore"];
        all.extend(args);
        command(self.ns(), &all)
            .env("PAPERCLIPCTL_BACKUP_DIR", self.backups.path())
            .output()
            .await
            .unwrap()
    }

    /// A copy of the archive with its dump followed by `sql` and `key` as its master key,
    /// with a manifest that matches (as anyone with the archive can write one).
    fn forged(&self, name: &str, sql: &str, key: &[u8]) -> String {
        let (mut manifest, parts) = paperclipctl::backup::open(&self.archive, &[]).unwrap();
        let dump = parts.path().join(DUMP);
        let mut body = std::fs::read(&dump).unwrap();
        body.extend_from_slice(sql.as_bytes());
        std::fs::write(&dump, &body).unwrap();
        std::fs::write(parts.path().join(KEY_PART), key).unwrap();
        manifest.parts.insert(DUMP.into(), archive::digest(&body));
        manifest.parts.insert(KEY_PART.into(), archive::digest(key));
        let path = self.backups.path().join(name);
        archive::write(&path, parts.path(), &manifest, &[], &AtomicBool::new(false)).unwrap();
        path.display().to_string()
    }

    async fn replicas(&self) -> i32 {
        let deployments =
            Api::<Deployment>::namespaced(Harness::shared().client().await, self.ns());
        let app = deployments.get("paperclip").await.unwrap();
        app.spec.unwrap().replicas.unwrap()
    }
}

#[tokio::test]
async fn restore_names_its_target_asks_takes_the_lock_and_refuses_meta_commands() {
    let h = Harness::shared();
    let r = Restorable::new("restore-consent").await;
    let ns = r.ns();
    let archive = r.archive.to_str().unwrap();
    psql(&r.pods, "DELETE FROM restore_t WHERE id > 200").await;

    // No terminal, no --yes: the target is named and nothing happens.
    let unconfirmed = r.restore(&[archive]).await;
    let stderr = text(&unconfirmed.stderr);
    assert_eq!(unconfirmed.status.code(), Some(2), "{stderr}");
    let server = {
        let kubeconfig = kube::config::Kubeconfig::read_from(h.var("KUBECONFIG")).unwrap();
        kube::config::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap()
            .cluster_url
            .to_string()
    };
    assert!(
        stderr.contains(&format!("namespace {ns} on cluster ")) && stderr.contains(&server),
        "the cluster and namespace are named: {stderr}"
    );
    assert!(stderr.contains("needs a confirmation"), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(r.rows().await, "200");

    // Another run holds the lock: refused, nothing changed.
    let leases = Api::<Lease>::namespaced(h.client().await, ns);
    let held: Lease = serde_json::from_value(json!({
        "metadata": {"name": "paperclipctl-lock"},
        "spec": {
            "holderIdentity": "paperclipctl@elsewhere/1",
            "leaseDurationSeconds": 30,
            "renewTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        },
    }))
    .unwrap();
    leases.create(&PostParams::default(), &held).await.unwrap();
    let locked = r.restore(&[archive, "--yes"]).await;
    let stderr = text(&locked.stderr);
    assert_eq!(locked.status.code(), Some(4), "{stderr}");
    assert!(
        stderr
            .contains("another paperclipctl run holds the release lock: paperclipctl@elsewhere/1"),
        "{stderr}"
    );
    assert_eq!(r.rows().await, "200");
    leases
        .delete("paperclipctl-lock", &Default::default())
        .await
        .unwrap();

    // A dump with a psql meta-command is refused before anything runs; psql here would have
    // run the shell command on this machine (the harness's database exec is local).
    let marker = r.backups.path().join("meta-command-ran");
    let meta = r.forged(
        "meta.tar.zst",
        &format!("SELECT 1;\n\\! touch {}\n", marker.display()),
        MASTER_KEY,
    );
    let refused = r.restore(&[&meta, "--yes"]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("runs the psql meta-command \\!"),
        "{stderr}"
    );
    assert!(!marker.exists(), "the meta-command never ran");
    assert_eq!(r.rows().await, "200");
}

#[tokio::test]
async fn a_failed_load_keeps_the_instance_key_the_data_and_the_rows_out_of_the_output() {
    let r = Restorable::new("restore-failed-load").await;
    psql(&r.pods, "DELETE FROM restore_t WHERE id > 200").await;
    // A row the database refuses, its value secret: psql's error context would quote it.
    let forged = r.forged(
        "bad-row.tar.zst",
        "COPY public.restore_t (id, note) FROM stdin;\ns3cret-row-value\tnote\n\\.\n",
        b"a-key-from-elsewhere\n",
    );
    let failed = r.restore(&[&forged, "--yes"]).await;
    let all = format!("{}{}", text(&failed.stdout), text(&failed.stderr));
    assert_eq!(failed.status.code(), Some(5), "{all}");
    assert!(
        all.contains("is NOT encrypted: the release's profile names no backup.recipients"),
        "{all}"
    );
    assert!(all.contains("psql restore failed"), "{all}");
    assert!(
        !all.contains("s3cret-row-value"),
        "row data reached the output: {all}"
    );
    assert_eq!(
        r.key(),
        MASTER_KEY,
        "the instance keeps the key of its data"
    );
    assert_eq!(r.rows().await, "200", "the load rolled back");
    assert_eq!(r.replicas().await, 1, "the app is scaled back up");

    // The safety backup holds what was there before the restore began.
    let safety: Vec<PathBuf> = std::fs::read_dir(r.backups.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with("-pre-restore.tar.zst"))
        .collect();
    assert_eq!(safety.len(), 1, "{safety:?}");
    assert_eq!(mode(&safety[0]), 0o600);
    let (manifest, parts) = paperclipctl::backup::open(&safety[0], &[]).unwrap();
    assert_eq!(
        std::fs::read(parts.path().join(KEY_PART)).unwrap(),
        MASTER_KEY
    );
    assert_eq!(manifest.tables.get("restore_t"), Some(&200));
}

#[tokio::test]
async fn a_restore_that_lost_its_lock_stops_before_the_load_and_leaves_the_new_holders_lease() {
    let h = Harness::shared();
    let r = Restorable::new("restore-fenced").await;
    let ns = r.ns();
    psql(&r.pods, "DELETE FROM restore_t WHERE id > 200").await;
    // The app pod cannot go until its finalizer is removed: the restore waits there.
    let pods = Api::<Pod>::namespaced(h.client().await, ns);
    let app = pods
        .list(&ListParams::default().labels(APP_SELECTOR))
        .await
        .unwrap()
        .items
        .remove(0)
        .metadata
        .name
        .unwrap();
    let hold = json!({"metadata": {"finalizers": ["paperclipctl.io/test-hold"]}});
    pods.patch(&app, &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();

    let mut child = command(ns, &["restore", r.archive.to_str().unwrap(), "--yes"])
        .env("PAPERCLIPCTL_BACKUP_DIR", r.backups.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let mut read_until = async |needle: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while !seen.contains(needle) {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} in: {seen}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the restore ended before {needle:?}: {seen}"));
            seen.push_str(&line);
            seen.push('\n');
        }
        seen.clone()
    };
    read_until("staged beside the live ones").await;
    // The app pod is on its way out; another run takes the lock over meanwhile.
    until(30, "the app pod never started terminating", || async {
        pods.get(&app)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    let leases = Api::<Lease>::namespaced(h.client().await, ns);
    let mut lease = leases.get("paperclipctl-lock").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("paperclipctl@elsewhere/2".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    leases
        .replace("paperclipctl-lock", &PostParams::default(), &lease)
        .await
        .unwrap();
    read_until("lost the release lock").await;
    let release = json!({"metadata": {"finalizers": null}});
    pods.patch(&app, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();

    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the restore ends")
        .unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let stderr = format!("{seen}{rest}");
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("this run lost the release lock (paperclipctl@elsewhere/2 took it over)"),
        "{stderr}"
    );
    assert_eq!(
        r.rows().await,
        "200",
        "nothing was loaded after the lock was lost"
    );
    assert_eq!(r.key(), MASTER_KEY, "the live key was never touched");
    assert_eq!(r.replicas().await, 1, "the app is scaled back up");
    let lease = leases.get("paperclipctl-lock").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("paperclipctl@elsewhere/2"),
        "the new holder's Lease is left alone"
    );
}

#[tokio::test]
async fn an_app_that_does_not_stop_in_time_is_scaled_back_with_its_key() {
    let h = Harness::shared();
    let r = Restorable::new("restore-timeout").await;
    let ns = r.ns();
    let pods = Api::<Pod>::namespaced(h.client().await, ns);
    let app = pods
        .list(&ListParams::default().labels(APP_SELECTOR))
        .await
        .unwrap()
        .items
        .remove(0)
        .metadata
        .name
        .unwrap();
    let hold = json!({"metadata": {"finalizers": ["paperclipctl.io/test-hold"]}});
    pods.patch(&app, &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    let forged = r.forged("other-key.tar.zst", "", b"a-key-from-elsewhere\n");

    let timed_out = r.restore(&[&forged, "--yes", "--timeout", "15s"]).await;
    let stderr = text(&timed_out.stderr);
    let release = json!({"metadata": {"finalizers": null}});
    pods.patch(&app, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert_eq!(timed_out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("app pod {app} did not stop within 15s")),
        "{stderr}"
    );
    assert_eq!(r.replicas().await, 1, "the app is scaled back up");
    assert_eq!(
        r.key(),
        MASTER_KEY,
        "the key of the data that stayed is back"
    );
    assert_eq!(r.rows().await, "250");
}

#[tokio::test]
async fn backup_never_reads_from_a_pod_that_only_copies_the_apps_labels() {
    let release = installed_with_instance("backup-planted-pod").await;
    let ns = release.setup.namespace.as_str();
    let h = Harness::shared();
    let pods = Api::<Pod>::namespaced(h.client().await, ns);
    let real = pods
        .list(&ListParams::default().labels(APP_SELECTOR))
        .await
        .unwrap()
        .items
        .remove(0);
    let scaled = h
        .kubectl()
        .args(["scale", "-n", ns, "deployment/paperclip", "--replicas=0"])
        .output()
        .unwrap();
    assert!(scaled.status.success(), "{}", text(&scaled.stderr));
    until(60, "the app pods never went", || async {
        pods.list(&ListParams::default().labels(APP_SELECTOR))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    // Someone who may create pods copies the app's labels onto a pod of their own (all but the
    // ReplicaSet's pod-template-hash, or the ReplicaSet would adopt and then remove it).
    let mut labels = real.metadata.labels.clone().unwrap();
    labels.remove("pod-template-hash");
    let planted: Pod = serde_json::from_value(json!({
        "metadata": {"name": "planted", "labels": labels},
        "spec": {
            "nodeName": real.spec.as_ref().unwrap().node_name,
            "containers": [{"name": "paperclip", "image": "registry.invalid/planted:1"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &planted).await.unwrap();
    until(60, "the planted pod never ran", || async {
        pods.get("planted")
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase)
            .as_deref()
            == Some("Running")
    })
    .await;

    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("backup.tar.zst");
    let refused = run(ns, &["backup", "-f", archive.to_str().unwrap()]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("no running app pod of Deployment/paperclip to read the instance files"),
        "{stderr}"
    );
    assert!(!archive.exists(), "nothing was read from the planted pod");
}

/// Paths under the instance directory that a restore stages or keeps beside the live ones.
fn restore_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".paperclipctl-restoring") || name.ends_with(".paperclipctl-old") {
            found.push(path.clone());
        }
        if path.is_dir() && !path.is_symlink() {
            found.extend(restore_leftovers(&path));
        }
    }
    found
}

#[tokio::test]
async fn the_archives_files_replace_the_live_ones_only_after_the_load_committed() {
    let r = Restorable::new("restore-swap").await;
    let instance = r.release.app.paperclip_home().join("instances/default");
    // An upload in the archive, then one added after the backup.
    let storage = instance.join("data/storage");
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::write(storage.join("kept.txt"), b"in the archive").unwrap();
    for path in [
        instance.join("data"),
        storage.clone(),
        storage.join("kept.txt"),
    ] {
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
    }
    let taken = run(r.ns(), &["backup", "-f", r.archive.to_str().unwrap()]).await;
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    std::fs::write(storage.join("added.txt"), b"after the backup").unwrap();
    std::os::unix::fs::chown(storage.join("added.txt"), Some(1000), Some(1000)).unwrap();
    let env = std::fs::read(instance.join(".env")).unwrap();
    let archive_key = b"the-archive-key\n";

    // A load that takes a few seconds, then fails on a row the database refuses.
    let failing = r.forged(
        "slow-bad-row.tar.zst",
        "SELECT pg_sleep(3);\nCOPY public.restore_t (id, note) FROM stdin;\nnot-a-number\tnote\n\\.\n",
        archive_key,
    );
    let child = command(r.ns(), &["restore", &failing, "--yes"])
        .env("PAPERCLIPCTL_BACKUP_DIR", r.backups.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let staged = instance.join("secrets/master.key.paperclipctl-restoring");
    until(
        120,
        "the archive's key was never staged beside the live one",
        || async { staged.exists() },
    )
    .await;
    assert_eq!(std::fs::read(&staged).unwrap(), archive_key);
    until(120, "the app was never stopped for the load", || async {
        r.replicas().await == 0
    })
    .await;
    assert_eq!(
        r.key(),
        MASTER_KEY,
        "while the dump loads, the live key is the instance's own"
    );
    let failed = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the restore ends")
        .unwrap();
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("psql restore failed"), "{stderr}");
    assert_eq!(r.key(), MASTER_KEY, "the live key was never touched");
    assert_eq!(std::fs::read(instance.join(".env")).unwrap(), env);
    assert!(
        storage.join("added.txt").exists(),
        "the live tree was never touched"
    );
    assert_eq!(
        restore_leftovers(&instance),
        Vec::<PathBuf>::new(),
        "nothing staged is left"
    );
    assert_eq!(r.rows().await, "250", "the load rolled back");
    assert_eq!(r.replicas().await, 1, "the app is scaled back up");

    // The same archive with a dump that loads: its key and its tree are live afterwards.
    let loading = r.forged("other-key.tar.zst", "", archive_key);
    let restored = r.restore(&[&loading, "--yes"]).await;
    let stderr = text(&restored.stderr);
    assert!(restored.status.success(), "{stderr}");
    assert!(stderr.contains("swapped in"), "{stderr}");
    assert_eq!(r.key(), archive_key, "the archive's key is live");
    assert_eq!(std::fs::read(instance.join(".env")).unwrap(), env);
    assert_eq!(
        std::fs::read(storage.join("kept.txt")).unwrap(),
        b"in the archive"
    );
    assert!(
        !storage.join("added.txt").exists(),
        "the restored tree holds the archive's files only"
    );
    assert_eq!(restore_leftovers(&instance), Vec::<PathBuf>::new());
    assert_eq!(r.replicas().await, 1);
}

#[tokio::test]
async fn the_safety_backup_is_encrypted_to_the_profiles_backup_recipients() {
    let key = age::x25519::Identity::generate();
    let recipients = format!("backup.recipients=[{}]", key.to_public());
    let r = Restorable::installed_with("restore-sealed-safety", &["--set", &recipients]).await;
    let restored = r.restore(&[r.archive.to_str().unwrap(), "--yes"]).await;
    let stderr = text(&restored.stderr);
    assert!(restored.status.success(), "{stderr}");
    assert!(
        stderr.contains("encrypted to the profile's backup.recipients"),
        "{stderr}"
    );
    assert!(!stderr.contains("NOT encrypted"), "{stderr}");
    let safety: Vec<PathBuf> = std::fs::read_dir(r.backups.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().contains("-pre-restore"))
        .collect();
    assert_eq!(safety.len(), 1, "{safety:?}");
    assert!(
        archive::is_encrypted(&safety[0]),
        "the safety backup is sealed"
    );
    let bytes = std::fs::read(&safety[0]).unwrap();
    assert!(
        !bytes.windows(MASTER_KEY.len()).any(|w| w == MASTER_KEY),
        "the master key is not in clear"
    );
    use age::secrecy::ExposeSecret;
    let identity = r.backups.path().join("identity.txt");
    std::fs::write(&identity, key.to_string().expose_secret()).unwrap();
    let identities = paperclipctl::backup::crypt::identities(&identity).unwrap();
    let (_, parts) = paperclipctl::backup::open(&safety[0], &identities).unwrap();
    assert_eq!(
        std::fs::read(parts.path().join(KEY_PART)).unwrap(),
        MASTER_KEY
    );
}
