//! `paperclipctl backup` and `restore` against a real harness install: a table with rows in
//! PostgreSQL and a master key on the app's volume go into an archive, are wiped, and come back
//! byte for byte; a tampered archive is refused without touching anything.
//!
//! The harness's PostgreSQL is shared by every test, and a restore empties the database it
//! targets, so this test points its release's database pod at a database of its own.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::harness::Harness;
use crate::install::{LLM_KEY, install, setup, text};

const DB_POD: &str = "paperclip-db-postgresql-0";
const MASTER_KEY: &[u8] = b"master-key-bytes-0123456789abcdef\n";

async fn run(namespace: &str, args: &[&str]) -> Output {
    let h = Harness::shared();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args(args)
        .args(["--namespace", namespace, "--profile", "frank"])
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .output()
        .await
        .unwrap()
}

/// Runs `sql` with psql in the release's database pod and returns its unaligned output.
async fn psql(pods: &Api<Pod>, sql: &str) -> String {
    let params = AttachParams::default()
        .container("postgresql")
        .stderr(false);
    let mut process = pods
        .exec(
            DB_POD,
            ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
            &params,
        )
        .await
        .unwrap();
    let mut out = String::new();
    process
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    process.join().await.unwrap();
    out.trim().to_string()
}

/// Creates database `name` in the harness's PostgreSQL and an Exec that gives the release's
/// database pod libpq variables naming it, then waits until KWOK serves that Exec.
async fn dedicated_database(namespace: &str, name: &str, pods: &Api<Pod>) {
    let h = Harness::shared();
    let var = |k: &str| h.var(k).to_string();
    let created = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-c", &format!("CREATE DATABASE {name}")])
        .env("PGHOST", var("HARNESS_PG_HOST"))
        .env("PGPORT", var("HARNESS_PG_PORT"))
        .env("PGUSER", var("HARNESS_PG_USER"))
        .env("PGPASSWORD", var("HARNESS_PG_PASSWORD"))
        .env("PGDATABASE", var("HARNESS_PG_DATABASE"))
        .status()
        .await
        .unwrap();
    assert!(created.success());
    let envs = [
        ("PGHOST", var("HARNESS_PG_HOST")),
        ("PGPORT", var("HARNESS_PG_PORT")),
        ("PGUSER", var("HARNESS_PG_USER")),
        ("PGPASSWORD", var("HARNESS_PG_PASSWORD")),
        ("PGDATABASE", name.to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
    ];
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Exec");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "execs");
    let exec: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Exec",
        "metadata": {"name": DB_POD, "namespace": namespace},
        "spec": {"execs": [{"local": {
            "envs": envs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        }}]},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(h.client().await, namespace, &resource)
        .create(&PostParams::default(), &exec)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while psql(pods, "SELECT current_database()").await != name {
        assert!(
            tokio::time::Instant::now() < deadline,
            "KWOK never served the Exec for {DB_POD}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Flips one byte inside the archive's dump entry, keeping the gzip and tar framing valid.
fn tamper(path: &Path) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let at = raw
        .windows(9)
        .position(|w| w == b"backup_t ")
        .expect("the dump names the table");
    raw[at] ^= 0x01;
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap();
}

#[tokio::test]
async fn backup_and_restore_bring_back_rows_and_the_master_key_and_refuse_a_tampered_archive() {
    let h = Harness::shared();
    let setup = setup("backup", None).await;
    let ns = setup.namespace.as_str();
    let home = tempfile::tempdir().unwrap();
    let app_home = home.path().join("paperclip");
    let _exec = h.serve_app_exec(ns, &app_home).await;
    let installed = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    assert!(installed.status.success(), "{}", text(&installed.stderr));

    let pods = Api::<Pod>::namespaced(h.client().await, ns);
    let database = ns.replace('-', "_");
    dedicated_database(ns, &database, &pods).await;
    psql(
        &pods,
        "CREATE TABLE backup_t (id int PRIMARY KEY, note text); \
         INSERT INTO backup_t SELECT g, 'row ' || g FROM generate_series(1, 250) g",
    )
    .await;
    let instance = app_home.join("instances/default");
    let key = instance.join("secrets/master.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::os::unix::fs::chown(key.parent().unwrap(), Some(1000), Some(1000)).unwrap();
    std::fs::write(&key, MASTER_KEY).unwrap();
    if !instance.join("config.json").exists() {
        std::fs::write(instance.join("config.json"), b"{}").unwrap();
    }

    let archive = home.path().join("backup.tar.gz");
    let archive_arg = archive.to_str().unwrap();
    let backed_up = run(ns, &["backup", "-f", archive_arg]).await;
    let stdout = text(&backed_up.stdout);
    assert!(
        backed_up.status.success(),
        "{stdout}\n{}",
        text(&backed_up.stderr)
    );
    assert!(stdout.contains("revision 1, 1 table(s)"), "{stdout}");
    let all = format!("{stdout}{}", text(&backed_up.stderr));
    assert!(!all.contains("master-key-bytes"), "{all}");
    assert!(!all.contains(h.var("HARNESS_PG_PASSWORD")), "{all}");

    let dry = run(ns, &["restore", archive_arg, "--dry-run"]).await;
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("empty the database and load the dump"),
        "{}",
        text(&dry.stdout)
    );

    psql(&pods, "DROP TABLE backup_t").await;
    std::fs::remove_file(&key).unwrap();
    let restored = run(ns, &["restore", archive_arg]).await;
    assert!(
        restored.status.success(),
        "{}\n{}",
        text(&restored.stdout),
        text(&restored.stderr)
    );
    assert_eq!(psql(&pods, "SELECT count(*) FROM backup_t").await, "250");
    assert_eq!(std::fs::read(&key).unwrap(), MASTER_KEY);

    tamper(&archive);
    psql(&pods, "DELETE FROM backup_t WHERE id > 200").await;
    let refused = run(ns, &["restore", archive_arg]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("database.sql does not match the manifest"),
        "{stderr}"
    );
    assert_eq!(psql(&pods, "SELECT count(*) FROM backup_t").await, "200");
}
