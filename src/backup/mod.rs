//! Backup and restore of an installed release: the database (a plain `pg_dump`) together with
//! the instance's `secrets/master.key` and `config.json`, because the database's secrets are
//! encrypted with that key and a dump without it is of little use.
//!
//! Everything runs through exec into the release's own containers (`pg_dump`/`psql` in the
//! database container, `cat` in the app container), so no port or client tool is needed here.

pub mod archive;
mod exec;
mod list;
mod local;
mod volume;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::cluster::{api_error, wait};
use crate::error::{Error, Result};
use crate::render::meta;
use crate::render::{Object, Wave};
use crate::ui::Ui;
use archive::{CONFIG, DUMP, MASTER_KEY, Manifest};
use exec::{Container, Input};
pub use list::{LocalArchive, local_archives};
pub use local::{local_dir, new_archive_path};
pub use volume::{VolumeBackup, check_name, pull, volume_backups};

/// The database container of the StatefulSet's only pod.
const DB_POD: &str = "paperclip-db-postgresql-0";
const DB_CONTAINER: &str = "postgresql";

/// Sets libpq's variables from the container's own (the official image's `POSTGRES_*` or
/// Bitnami's `POSTGRESQL_*`) unless already set, so the password never leaves the container.
const DB_ENV: &str = r#"
export PGHOST="${PGHOST:-127.0.0.1}"
export PGUSER="${PGUSER:-${POSTGRES_USER:-${POSTGRESQL_USERNAME:-postgres}}}"
export PGDATABASE="${PGDATABASE:-${POSTGRES_DB:-${POSTGRESQL_DATABASE:-$PGUSER}}}"
export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-$POSTGRESQL_PASSWORD}}"
"#;

/// Without owners and grants, so the dump restores into a database of any owner.
const DUMP_SCRIPT: &str = "pg_dump --no-owner --no-privileges";

/// Rows of each base table of the public schema, as `name|count` lines.
const COUNT_SQL: &str = "SELECT table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM public.%I', table_name), false, true, '')))[1]::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1";

/// Restores into an emptied database in one transaction: every non-system schema is dropped
/// (objects made after the backup included), `public` is recreated, then the dump is applied.
/// Any error rolls all of it back, so a failed restore leaves the database as it was.
///
/// The dump's size is `$2`: exec cannot always close a command's stdin, so the end of input is
/// counted rather than awaited.
const RESTORE_SCRIPT: &str =
    r#"{ printf '%s\n' "$1"; head -c "$2"; } | psql -X -q -1 -v ON_ERROR_STOP=1 -f - >/dev/null"#;

const EMPTY_SQL: &str = "DO $do$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END $do$; CREATE SCHEMA public;";

/// Reads an instance file (relative to the instance directory) from the app's volume.
const READ_SCRIPT: &str = r#"cat "${PAPERCLIP_HOME:-/paperclip}/instances/default/$1""#;

/// Writes `$2` bytes of stdin to an instance file, owner-only, replacing it only once all of it
/// arrived (the size, because exec cannot always close a command's stdin).
const WRITE_SCRIPT: &str = r#"f="${PAPERCLIP_HOME:-/paperclip}/instances/default/$1"
mkdir -p "$(dirname "$f")" && umask 077 && head -c "$2" >"$f.paperclipctl-new" &&
[ "$(wc -c <"$f.paperclipctl-new")" -eq "$2" ] && mv "$f.paperclipctl-new" "$f""#;

/// How long the app's pods may take to stop once scaled to zero.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a backup wrote.
pub struct Written {
    pub manifest: Manifest,
    pub bytes: u64,
}

/// Writes a backup of the release in `namespace` to `path` (created owner-only); see
/// [`new_archive_path`] for a path in the local backups directory.
pub async fn backup(
    client: &kube::Client,
    namespace: &str,
    path: &Path,
    ui: &Ui,
) -> Result<Written> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let app_pod =
        crate::onboarding::running_app_pod(&pods, namespace, "read the instance files from")
            .await?;
    let app = app_container(&pods, namespace, app_pod);
    let db = database(&pods, namespace);
    let record = crate::release::history(client, namespace).await?.pop();
    let mut manifest = Manifest::new(
        namespace,
        record.as_ref().map(|r| r.revision),
        record.map(|r| r.images).unwrap_or_default(),
    );

    let dir = tempfile::tempdir().map_err(Error::Output)?;
    std::fs::create_dir_all(dir.path().join("secrets")).map_err(Error::Output)?;
    for part in [MASTER_KEY, CONFIG] {
        let bytes = app
            .output(&format!("reading {part}"), READ_SCRIPT, &[part])
            .await?;
        manifest
            .parts
            .insert(part.to_string(), archive::digest(&bytes));
        std::fs::write(dir.path().join(part), bytes).map_err(Error::Output)?;
    }

    manifest.tables = counts(&db).await?;
    let bar = bytes_bar(ui, "dumping the database");
    let mut dump = archive::HashingFile::create(&dir.path().join(DUMP))?;
    db.run(
        "pg_dump",
        &format!("{DB_ENV}{DUMP_SCRIPT}"),
        &[],
        Input::Nothing,
        &ProgressBar::hidden(),
        &mut |chunk| {
            bar.inc(chunk.len() as u64);
            dump.write(chunk)
        },
    )
    .await?;
    bar.finish_and_clear();
    manifest.parts.insert(DUMP.to_string(), dump.finish()?);

    archive::write(path, dir.path(), &manifest)?;
    let bytes = std::fs::metadata(path).map_err(Error::Output)?.len();
    Ok(Written { manifest, bytes })
}

/// Checks the archive at `path` and returns its manifest with the directory holding its parts;
/// a refused archive fails here, before anything on the cluster is touched.
pub fn open(path: &Path) -> Result<(Manifest, tempfile::TempDir)> {
    let dir = tempfile::tempdir().map_err(Error::Output)?;
    let manifest = archive::verify(path, dir.path())?;
    Ok((manifest, dir))
}

/// The steps of a restore, in order, for `--dry-run` and for people reading along.
pub fn steps(manifest: &Manifest, namespace: &str) -> Vec<String> {
    vec![
        format!("put back {MASTER_KEY} and {CONFIG} in the app's volume"),
        format!(
            "scale Deployment/{} in {namespace} to 0 and wait until its pods are gone",
            meta::APP_NAME
        ),
        format!(
            "empty the database and load the dump ({} bytes) in one transaction",
            manifest.parts.get(DUMP).map_or(0, |p| p.size)
        ),
        format!(
            "check that the {} table(s) have the recorded row counts",
            manifest.tables.len()
        ),
        format!(
            "scale Deployment/{} back up and wait until it is available",
            meta::APP_NAME
        ),
    ]
}

/// Restores the verified parts in `dir` into the release in `namespace`; `app` is the rendered
/// Deployment, waited on as an install waits on it.
pub async fn restore(
    client: &kube::Client,
    namespace: &str,
    manifest: &Manifest,
    dir: &Path,
    app: &Object,
    ui: &Ui,
) -> Result<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    // The app reads the key when it starts; the files go back while a pod can still be exec'd
    // into, and the app restarts below with the key that matches the restored data.
    let app_pod =
        crate::onboarding::running_app_pod(&pods, namespace, "put the instance files back into")
            .await?;
    let container = app_container(&pods, namespace, app_pod);
    for part in [MASTER_KEY, CONFIG] {
        let bytes = std::fs::read(dir.join(part)).map_err(Error::Output)?;
        container
            .run(
                &format!("writing {part}"),
                WRITE_SCRIPT,
                &[part, &bytes.len().to_string()],
                Input::Bytes(&bytes),
                &ProgressBar::hidden(),
                &mut |_| Ok(()),
            )
            .await?;
    }
    ui.note(&format!("✓ {MASTER_KEY} and {CONFIG} put back"));

    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let replicas = deployments
        .get(meta::APP_NAME)
        .await
        .map_err(|e| api_error(e, "get", "deployments", Some(namespace)))?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(1);
    scale(&deployments, namespace, 0).await?;
    stop(&pods, namespace).await?;
    ui.note(&format!("✓ Deployment/{} scaled to 0", meta::APP_NAME));

    let db = database(&pods, namespace);
    let dump_size = manifest.parts.get(DUMP).map_or(0, |p| p.size).to_string();
    let bar = bytes_bar(ui, "loading the dump");
    let loaded = db
        .run(
            "psql restore",
            &format!("{DB_ENV}{RESTORE_SCRIPT}"),
            &[EMPTY_SQL, &dump_size],
            Input::File(&dir.join(DUMP)),
            &bar,
            &mut |_| Ok(()),
        )
        .await;
    bar.finish_and_clear();
    // Counted while the app is still stopped: what the restore loaded, not what the app writes
    // once it is back.
    let tables = match loaded {
        Ok(()) => counts(&db).await,
        Err(e) => Err(e),
    };
    // The app comes back whatever the load did: a failed load rolled back, leaving the old data.
    scale(&deployments, namespace, replicas).await?;
    let tables = tables?;
    ui.note("✓ database restored");

    let gate = Wave {
        number: 1,
        title: "app",
        objects: vec![app.clone()],
        wait_for: vec![app.id()],
    };
    wait::wave(client, namespace, &gate, wait::DEFAULT_TIMEOUT, &|_| {}).await?;
    ui.note(&format!("✓ Deployment/{} available", meta::APP_NAME));

    if tables != manifest.tables {
        let differ: Vec<String> = manifest
            .tables
            .iter()
            .filter(|(t, n)| tables.get(*t) != Some(n))
            .map(|(t, n)| format!("{t}: {n} in the backup, {:?} now", tables.get(t)))
            .collect();
        return Err(Error::not_healthy(
            format!(
                "the restored tables differ from the backup: {}",
                differ.join("; ")
            ),
            "the dump did not load as it was taken; compare with `psql` in the database pod",
        ));
    }
    Ok(())
}

/// The app container of the app pod `pod`.
fn app_container<'a>(pods: &'a Api<Pod>, namespace: &'a str, pod: String) -> Container<'a> {
    Container {
        pods,
        namespace,
        pod,
        name: meta::APP_NAME,
    }
}

fn database<'a>(pods: &'a Api<Pod>, namespace: &'a str) -> Container<'a> {
    Container {
        pods,
        namespace,
        pod: DB_POD.to_string(),
        name: DB_CONTAINER,
    }
}

/// Rows of every table of the public schema.
async fn counts(db: &Container<'_>) -> Result<BTreeMap<String, u64>> {
    let script = format!(r#"{DB_ENV}psql -X -tA -v ON_ERROR_STOP=1 -c "$1""#);
    let out = db.output("counting rows", &script, &[COUNT_SQL]).await?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| {
            let (table, count) = line.rsplit_once('|')?;
            Some((table.to_string(), count.trim().parse().ok()?))
        })
        .collect())
}

pub(crate) async fn scale(
    deployments: &Api<Deployment>,
    namespace: &str,
    replicas: i32,
) -> Result<()> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    deployments
        .patch(
            meta::APP_NAME,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| api_error(e, "patch", "deployments", Some(namespace)))?;
    Ok(())
}

/// Waits until every app pod is gone, so nothing writes to the database while it is replaced.
pub(crate) async fn stop(pods: &Api<Pod>, namespace: &str) -> Result<()> {
    for pod in crate::onboarding::app_pods(pods, namespace).await? {
        let name = pod.metadata.name.unwrap_or_default();
        let uid = pod.metadata.uid.unwrap_or_default();
        let gone = await_condition(pods.clone(), &name, conditions::is_deleted(&uid));
        tokio::time::timeout(STOP_TIMEOUT, gone)
            .await
            .map_err(|_| {
                Error::not_healthy(
                    format!(
                        "app pod {name} did not stop within {}s",
                        STOP_TIMEOUT.as_secs()
                    ),
                    format!("look at it: kubectl describe pod -n {namespace} {name}"),
                )
            })?
            .map_err(|e| {
                Error::cluster(
                    format!("cannot watch pod {name}: {e}"),
                    "run the restore again",
                )
            })?;
    }
    Ok(())
}

/// A byte counter on a terminal, nothing otherwise (logs stay plain lines).
fn bytes_bar(ui: &Ui, message: &'static str) -> ProgressBar {
    if ui.quiet || !ui.live_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {bytes} ({bytes_per_sec})")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
