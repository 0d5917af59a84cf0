//! `paperclipctl backup` and `restore`. On the real node, against the real Paperclip: a table
//! with rows in its PostgreSQL and the master key onboarding wrote go into an archive, are
//! wiped, and come back byte for byte; a tampered archive is refused without touching anything.
//!
//! On KWOK's nodes, with the harness's least app (no Paperclip behaviour is involved: these
//! check paperclipctl's own files): `backup` without a file writes to the local backups
//! directory, `backup list` shows those archives and the app's own backups on its volume, and
//! `backup pull` copies one of the latter here. There the database pod's exec reaches the
//! harness's PostgreSQL, shared by every test, so a test points its release's database pod at a
//! database of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use tokio::io::AsyncReadExt;

use k8s_openapi::api::core::v1::Secret;

use crate::harness::{Harness, real};
use crate::install::{installed_real, installed_with_instance, text};

pub(crate) const DB_POD: &str = "paperclip-db-postgresql-0";

pub(crate) async fn run(namespace: &str, args: &[&str]) -> Output {
    command(namespace, args).output().await.unwrap()
}

/// Runs paperclipctl with `dir` as the local backups directory.
async fn run_in(dir: &Path, namespace: &str, args: &[&str]) -> Output {
    command(namespace, args)
        .env("PAPERCLIPCTL_BACKUP_DIR", dir)
        .output()
        .await
        .unwrap()
}

pub(crate) fn command(namespace: &str, args: &[&str]) -> tokio::process::Command {
    let h = Harness::shared();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"));
    command
        .args(args)
        .args(["--namespace", namespace, "--profile", "frank"])
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("NO_COLOR", "1")
        .env("CI", "true");
    command
}

#[tokio::test]
async fn backup_without_a_file_writes_to_the_backups_directory_and_list_shows_it() {
    let release = installed_with_instance("backup-list").await;
    let ns = release.setup.namespace.as_str();
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::fs::write(backups.join("notes.txt"), b"not an archive").unwrap();

    let backed_up = run_in(&backups, ns, &["backup"]).await;
    let stdout = text(&backed_up.stdout);
    assert!(
        backed_up.status.success(),
        "{stdout}{}",
        text(&backed_up.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(&format!("paperclip-backup-{ns}-")))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let name = &names[0];
    assert!(name.ends_with(".tar.zst"), "{name}");
    assert!(stdout.contains(name.as_str()), "{stdout}");
    let mode = std::fs::metadata(backups.join(name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the archive holds the master key");

    let listed = run_in(&backups, ns, &["backup", "list"]).await;
    let stdout = text(&listed.stdout);
    assert!(listed.status.success(), "{stdout}{}", text(&listed.stderr));
    let line = stdout
        .lines()
        .find(|l| l.ends_with(name.as_str()))
        .unwrap_or_else(|| panic!("the archive is listed: {stdout}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[2], "1", "revision 1 in {line}");
    assert!(
        stdout.contains("notes.txt (unreadable: it is neither zstd nor gzip compressed)"),
        "{stdout}"
    );

    let json = run_in(&backups, ns, &["backup", "list", "-o", "json"]).await;
    assert!(json.status.success(), "{}", text(&json.stderr));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["namespace"], ns);
    let local = document["local"].as_array().unwrap();
    assert_eq!(local.len(), 2, "{document:#}");
    assert!(local[0]["path"].as_str().unwrap().ends_with(name.as_str()));
    assert_eq!(local[0]["manifest"]["revision"], 1);
    assert_eq!(local[0]["manifest"]["namespace"], ns);
    assert!(local[0]["bytes"].as_u64().unwrap() > 0);
    assert!(local[1]["unreadable"].is_string(), "{document:#}");
    assert_eq!(document["volume"], json!([]), "{document:#}");

    // Without a running app pod the volume cannot be read; the local archives still are.
    let scaled = Harness::shared()
        .kubectl()
        .args(["scale", "-n", ns, "deployment/paperclip", "--replicas=0"])
        .output()
        .unwrap();
    assert!(scaled.status.success(), "{}", text(&scaled.stderr));
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, ns);
    let selector = ListParams::default().labels("app.kubernetes.io/component=app");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !pods.list(&selector).await.unwrap().items.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the app pods never went"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = run_in(&backups, ns, &["backup", "list"]).await;
    let stdout = text(&listed.stdout);
    assert!(listed.status.success(), "{stdout}{}", text(&listed.stderr));
    assert!(stdout.contains(name.as_str()), "{stdout}");
    assert!(stdout.contains("no app pod is running in"), "{stdout}");
    let json = run_in(&backups, ns, &["backup", "list", "-o", "json"]).await;
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["volume"], serde_json::Value::Null, "{document:#}");
    assert_eq!(document["local"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_apps_own_backups_are_listed_and_pulled_byte_for_byte() {
    let release = installed_with_instance("backup-pull").await;
    let ns = release.setup.namespace.as_str();
    let volume = release
        .app
        .paperclip_home()
        .join("instances/default/data/backups");
    std::fs::create_dir_all(&volume).unwrap();
    // Several exec chunks' worth of bytes that do not repeat.
    let body: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let name = "paperclip-20260101-000000.sql.gz";
    std::fs::write(volume.join(name), &body).unwrap();
    std::fs::write(volume.join("paperclip-20251231-000000.sql.gz"), b"older").unwrap();
    let here = tempfile::tempdir().unwrap();

    let listed = run_in(here.path(), ns, &["backup", "list", "-o", "json"]).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let document: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let entry = document["volume"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed: {document:#}"));
    assert_eq!(entry["bytes"], body.len() as u64);
    let table = text(&run_in(here.path(), ns, &["backup", "list"]).await.stdout);
    assert!(table.contains(&format!("2.9 MiB  {name}")), "{table}");

    let target = here.path().join("pulled.sql.gz");
    let target_arg = target.to_str().unwrap();
    let pulled = run(ns, &["backup", "pull", name, "-f", target_arg]).await;
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    assert!(std::fs::read(&target).unwrap() == body, "the copy differs");
    assert!(text(&pulled.stdout).contains(&format!("({} bytes)", body.len())));

    let again = run(ns, &["backup", "pull", name, "-f", target_arg]).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    std::fs::write(&target, b"stale").unwrap();
    let forced = run(ns, &["backup", "pull", name, "-f", target_arg, "--force"]).await;
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(std::fs::read(&target).unwrap() == body, "the copy differs");

    let escaping = run(ns, &["backup", "pull", "../x"]).await;
    let stderr = text(&escaping.stderr);
    assert_eq!(escaping.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("NAME \"../x\""), "{stderr}");

    let unknown = run(
        ns,
        &["backup", "pull", "nope.sql.gz", "-f", target_arg, "--force"],
    )
    .await;
    let stderr = text(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(name) && stderr.contains("paperclip-20251231"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&target).unwrap() == body,
        "a failed pull leaves the file alone"
    );
}

/// Runs `sql` with psql in the release's database pod and returns its unaligned output.
pub(crate) async fn psql(pods: &Api<Pod>, sql: &str) -> String {
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
pub(crate) async fn dedicated_database(namespace: &str, name: &str, pods: &Api<Pod>) {
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

/// Flips one byte inside the archive's dump entry, keeping the zstd and tar framing valid.
fn tamper(path: &Path) {
    let mut raw = zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap();
    let at = raw
        .windows(9)
        .position(|w| w == b"backup_t ")
        .expect("the dump names the table");
    raw[at] ^= 0x01;
    std::fs::write(path, zstd::encode_all(raw.as_slice(), 3).unwrap()).unwrap();
}

/// Runs `sql` with psql in the real database container of the release in `namespace`, as the
/// database's own user (from the container's variables of either image contract).
async fn real_psql(namespace: &str, sql: &str) -> String {
    let script = r#"export PGHOST=127.0.0.1
export PGUSER="${POSTGRES_USER:-${POSTGRESQL_USERNAME:-postgres}}"
export PGDATABASE="${POSTGRES_DB:-${POSTGRESQL_DATABASE:-$PGUSER}}"
export PGPASSWORD="${POSTGRES_PASSWORD:-$POSTGRESQL_PASSWORD}"
exec psql -X -tA -v ON_ERROR_STOP=1 -c "$1""#;
    let ran = real::exec(
        namespace,
        DB_POD,
        "postgresql",
        &["sh", "-c", script, "sh", sql],
    )
    .await;
    assert!(ran.success, "psql {sql}: {}", ran.stderr);
    ran.stdout.trim().to_string()
}

/// The bytes of `path` in the running app container.
async fn app_file(namespace: &str, path: &str) -> Option<Vec<u8>> {
    let ran = real::exec_app(namespace, &["base64", "-w0", path]).await;
    use base64::Engine;
    ran.success.then(|| {
        base64::engine::general_purpose::STANDARD
            .decode(ran.stdout.trim())
            .unwrap()
    })
}

#[tokio::test]
async fn backup_and_restore_bring_back_rows_and_the_master_key_and_refuse_a_tampered_archive() {
    // The real Paperclip's instance on the real node: its database with upstream's schema, the
    // master key onboarding wrote, and a restore that stops and starts the real app.
    let Some(release) = installed_real("backup").await else {
        return;
    };
    assert!(
        release.run.status.success(),
        "{}",
        text(&release.run.stderr)
    );
    let h = Harness::shared();
    let ns = release.setup.namespace.as_str();
    let home = tempfile::tempdir().unwrap();
    real_psql(
        ns,
        "CREATE TABLE backup_t (id int PRIMARY KEY, note text); \
         INSERT INTO backup_t SELECT g, 'row ' || g FROM generate_series(1, 250) g",
    )
    .await;
    let tables = real_psql(
        ns,
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .await;
    let key = "/paperclip/instances/default/secrets/master.key";
    let master_key = app_file(ns, key)
        .await
        .expect("onboarding wrote the master key");
    let db_password = Api::<Secret>::namespaced(h.client().await, ns)
        .get("paperclip-db-postgresql")
        .await
        .unwrap()
        .data
        .unwrap()["password"]
        .0
        .clone();
    let db_password = String::from_utf8(db_password).unwrap();
    let storage = "/paperclip/instances/default/data/storage";
    let upload = format!("{storage}/company-1/upload.png");
    let wrote = real::exec_app(
        ns,
        &[
            "sh",
            "-c",
            "mkdir -p \"$(dirname \"$1\")\" && printf 'uploaded bytes' > \"$1\"",
            "sh",
            &upload,
        ],
    )
    .await;
    assert!(wrote.success, "{}", wrote.stderr);

    let archive = home.path().join("backup.tar.zst");
    let archive_arg = archive.to_str().unwrap();
    let backed_up = run(ns, &["backup", "-f", archive_arg]).await;
    let stdout = text(&backed_up.stdout);
    assert!(
        backed_up.status.success(),
        "{stdout}\n{}",
        text(&backed_up.stderr)
    );
    assert!(
        stdout.contains(&format!("revision 1, {tables} table(s)")),
        "{stdout}"
    );
    let all = format!("{stdout}{}", text(&backed_up.stderr));
    assert!(
        !all.contains(String::from_utf8_lossy(&master_key).trim()),
        "{all}"
    );
    assert!(!all.contains(&db_password), "{all}");

    let dry = run(ns, &["restore", archive_arg, "--dry-run"]).await;
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("empty the database and load the dump"),
        "{}",
        text(&dry.stdout)
    );

    // Another release's backup is refused unless the move is meant.
    let elsewhere = run(
        "paperclip-elsewhere",
        &["restore", archive_arg, "--dry-run"],
    )
    .await;
    let stderr = text(&elsewhere.stderr);
    assert_eq!(elsewhere.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is a backup of namespace {ns}, not of paperclip-elsewhere"
        )),
        "{stderr}"
    );
    let meant = run(
        "paperclip-elsewhere",
        &["restore", archive_arg, "--dry-run", "--other-namespace"],
    )
    .await;
    assert!(meant.status.success(), "{}", text(&meant.stderr));

    // A lost key and table: nothing to keep a safety backup of, so the restore is told so.
    real_psql(ns, "DROP TABLE backup_t").await;
    let removed = real::exec_app(ns, &["rm", key]).await;
    assert!(removed.success, "{}", removed.stderr);
    let removed = real::exec_app(ns, &["rm", "-r", storage]).await;
    assert!(removed.success, "{}", removed.stderr);
    let refused = run(ns, &["restore", archive_arg, "--yes"]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("the safety backup of") && stderr.contains("--no-safety-backup"),
        "{stderr}"
    );
    let restored = run(ns, &["restore", archive_arg, "--yes", "--no-safety-backup"]).await;
    assert!(
        restored.status.success(),
        "{}\n{}",
        text(&restored.stdout),
        text(&restored.stderr)
    );
    assert_eq!(real_psql(ns, "SELECT count(*) FROM backup_t").await, "250");
    assert_eq!(app_file(ns, key).await, Some(master_key.clone()));
    assert_eq!(
        app_file(ns, &upload).await.as_deref(),
        Some(&b"uploaded bytes"[..])
    );
    // The real app runs on the restored instance.
    real::settled(ns).await;

    tamper(&archive);
    real_psql(ns, "DELETE FROM backup_t WHERE id > 200").await;
    let refused = run(ns, &["restore", archive_arg, "--yes"]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("database.sql does not match the manifest"),
        "{stderr}"
    );
    assert_eq!(real_psql(ns, "SELECT count(*) FROM backup_t").await, "200");

    // An archive whose instance files hold a link out of the instance directory is refused
    // before anything is touched: rows, key and volume stay as they are.
    let forged = forged_with_escaping_link(&home.path().join("restored.tar.zst"), ns).await;
    let refused = run(ns, &["restore", forged.to_str().unwrap(), "--yes"]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pointing outside"), "{stderr}");
    assert_eq!(real_psql(ns, "SELECT count(*) FROM backup_t").await, "200");
    assert_eq!(app_file(ns, key).await, Some(master_key));
    let escaped = real::exec_app(ns, &["test", "-e", &format!("{storage}/escape")]).await;
    assert!(!escaped.success, "the forged link was written");
}

/// A fresh backup (at `path`) whose instance files were replaced by a tar holding a symbolic
/// link out of the instance directory, with a manifest that matches, as anyone holding an
/// archive can write one.
async fn forged_with_escaping_link(path: &Path, namespace: &str) -> std::path::PathBuf {
    use paperclipctl::backup::archive::{self, FILES};
    let taken = run(namespace, &["backup", "-f", path.to_str().unwrap()]).await;
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let (mut manifest, parts) = paperclipctl::backup::open(path, &[]).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    tar.append_link(&mut header, "data/storage/escape", "../../../../../tmp")
        .unwrap();
    let files = tar.into_inner().unwrap();
    std::fs::write(parts.path().join(FILES), &files).unwrap();
    manifest.parts.insert(FILES.into(), archive::digest(&files));
    let forged = path.with_file_name("forged.tar.zst");
    archive::write(
        &forged,
        parts.path(),
        &manifest,
        &[],
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap();
    forged
}
