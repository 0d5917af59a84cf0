//! Backup and restore of an installed release: the database (a plain `pg_dump`) together with
//! what of the instance directory a restore onto an empty volume needs (see [`layout`]): its
//! keys, `.env` and `config.json`, uploads, agents' instructions. The database's secrets are
//! encrypted with the master key, so a dump without it is of little use.
//!
//! Everything runs through exec into the release's own containers (`pg_dump`/`psql` in the
//! database container, `cat` in the app container), so no port or client tool is needed here.

pub mod archive;
pub mod crypt;
pub mod layout;
mod list;
mod local;
pub mod restore;
mod scratch;
mod script;
mod tree;
pub mod upstream;
mod volume;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams};

use crate::cluster::api_error;

use crate::cluster::exec::{self, Container, Input};
use crate::error::{Error, Result};
use crate::render::meta;
use crate::signal;
use crate::ui::Ui;
use archive::{CompressedPart, DUMP, FILES, INSTANCE_PARTS, MASTER_KEY, Manifest};
pub use list::{LocalArchive, local_archives};
pub use local::{local_dir, new_archive_path};
pub use restore::{restore, steps};
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

/// Reads an instance file (relative to the instance directory) from the app's volume.
const READ_SCRIPT: &str = r#"cat "${PAPERCLIP_HOME:-/paperclip}/instances/default/$1""#;

/// Prints `set` when the app container has its master key in the environment.
const KEY_ENV_SCRIPT: &str = r#"printf %s "${PAPERCLIP_SECRETS_MASTER_KEY:+set}""#;

/// What a backup wrote.
pub struct Written {
    pub manifest: Manifest,
    pub bytes: u64,
    pub encrypted: bool,
}

/// What goes into a backup besides the database, and for whom it is encrypted.
#[derive(Default)]
pub struct Options {
    pub selection: layout::Selection,
    /// Encrypt the archive to these; none writes it unencrypted.
    pub recipients: Arc<Vec<crypt::Recipient>>,
}

/// Writes a safety backup of the release in `namespace` to `path` (created owner-only) with the
/// default selection, encrypted to the `backup.recipients` of the profile the release last
/// applied; without any it is written unencrypted and a note says so. See [`new_archive_path`]
/// for a path in the local backups directory.
pub async fn backup(
    client: &kube::Client,
    namespace: &str,
    path: &Path,
    ui: &Ui,
) -> Result<Written> {
    let applied = crate::release::history(client, namespace)
        .await?
        .pop()
        .and_then(|r| r.applied);
    let named: Vec<String> = applied
        .iter()
        .flat_map(|p| &p.backup.recipients)
        .map(|r| r.to_string())
        .collect();
    if named.is_empty() {
        ui.note(&format!(
            "note: the safety backup {} is NOT encrypted: the release's profile names no \
             backup.recipients; it holds the instance's keys and the database password",
            path.display()
        ));
    }
    let options = Options {
        recipients: Arc::new(crypt::recipients(&named)?),
        ..Options::default()
    };
    backup_with(client, namespace, path, &options, ui).await
}

/// Writes a backup as [`backup`] does, with `options`.
pub async fn backup_with(
    client: &kube::Client,
    namespace: &str,
    path: &Path,
    options: &Options,
    ui: &Ui,
) -> Result<Written> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let app_pod = release_app_pod(client, namespace, "read the instance files from").await?;
    let app = app_container(&pods, namespace, app_pod);
    let db = database(&pods, namespace);
    let record = crate::release::history(client, namespace).await?.pop();
    let mut manifest = Manifest::new(
        namespace,
        record.as_ref().map(|r| r.revision),
        record.map(|r| r.images).unwrap_or_default(),
    );

    let dir = scratch::dir()?;
    // Interrupted, the parts go with `dir` and the archive's partial file is removed.
    signal::or_interrupted(async {
        instance(&app, dir.path(), &options.selection, &mut manifest, ui).await?;
        dump(&db, dir.path(), &mut manifest, ui).await
    })
    .await?;
    let cancel = Arc::new(AtomicBool::new(false));
    let recipients = options.recipients.clone();
    let mut writing = tokio::task::spawn_blocking({
        let (path, parts, manifest, cancel) = (
            path.to_path_buf(),
            dir.path().to_path_buf(),
            manifest.clone(),
            cancel.clone(),
        );
        move || archive::write(&path, &parts, &manifest, &recipients, &cancel)
    });
    let written = tokio::select! {
        written = &mut writing => written,
        interrupted = signal::interrupted() => {
            cancel.store(true, Ordering::Relaxed);
            // Waited for, so the partial file is gone before `dir` is.
            let _ = writing.await;
            return Err(interrupted);
        }
    };
    written.map_err(|e| Error::Output(std::io::Error::other(e)))??;
    let bytes = std::fs::metadata(path).map_err(Error::Output)?.len();
    Ok(Written {
        manifest,
        bytes,
        encrypted: !options.recipients.is_empty(),
    })
}

/// Reads the instance's own files into `dir` and packs the rest of what `selection` includes
/// into [`FILES`], streamed from the app container's `tar`; reports the paths it does not know.
async fn instance(
    app: &Container<'_>,
    dir: &Path,
    selection: &layout::Selection,
    manifest: &mut Manifest,
    ui: &Ui,
) -> Result<()> {
    let listing = app
        .output("listing the instance directory", layout::LIST_SCRIPT, &[])
        .await?;
    let found: Vec<String> = String::from_utf8_lossy(&listing)
        .lines()
        .map(str::to_string)
        .collect();
    let from_env = app
        .output("reading the app's environment", KEY_ENV_SCRIPT, &[])
        .await?
        == b"set";
    manifest.master_key_from_env = from_env;
    for part in INSTANCE_PARTS {
        if !found.iter().any(|f| f == part) {
            if part == MASTER_KEY && !from_env {
                return Err(Error::not_healthy(
                    format!(
                        "the app has no {MASTER_KEY} and no PAPERCLIP_SECRETS_MASTER_KEY: a \
                         backup without the key cannot decrypt the instance's secrets"
                    ),
                    "finish the app's onboarding (`paperclipctl install`), then back up",
                ));
            }
            continue;
        }
        let bytes = app
            .output(&format!("reading {part}"), READ_SCRIPT, &[part])
            .await?;
        manifest
            .parts
            .insert(part.to_string(), archive::digest(&bytes));
        scratch::write(&dir.join(part), &bytes)?;
    }
    if from_env {
        ui.note(
            "note: the master key comes from PAPERCLIP_SECRETS_MASTER_KEY in the app's \
             environment; the release restored from this backup needs the same value",
        );
    }

    let plan = layout::plan(&found, selection);
    for path in &plan.unknown {
        ui.note(&format!("warning: {}", layout::unknown_path_warning(path)));
    }
    if !plan.included.is_empty() {
        let bar = bytes_bar(ui, "packing the instance files");
        let mut files = CompressedPart::create(dir, FILES)?;
        let paths: Vec<&str> = plan.included.iter().map(String::as_str).collect();
        app.run(
            "packing the instance files",
            layout::TAR_SCRIPT,
            &paths,
            Input::Nothing,
            &ProgressBar::hidden(),
            &mut |chunk| {
                bar.inc(chunk.len() as u64);
                files.write(chunk)
            },
        )
        .await?;
        bar.finish_and_clear();
        manifest.parts.insert(FILES.to_string(), files.finish()?);
    }
    manifest.files = plan;
    Ok(())
}

/// Counts the rows and dumps the database into `dir`, compressed as it streams in.
async fn dump(db: &Container<'_>, dir: &Path, manifest: &mut Manifest, ui: &Ui) -> Result<()> {
    manifest.tables = counts(db).await?;
    let bar = bytes_bar(ui, "dumping the database");
    let mut dump = CompressedPart::create(dir, DUMP)?;
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
    Ok(())
}

/// Checks the archive at `path` (decrypted with `identities` when it is encrypted) and returns
/// its manifest with the directory holding its parts; a refused archive fails here, before
/// anything on the cluster is touched.
pub fn open(path: &Path, identities: &[crypt::Identity]) -> Result<(Manifest, tempfile::TempDir)> {
    let dir = scratch::dir()?;
    let manifest = archive::verify(path, dir.path(), identities)?;
    refuse_meta_commands(path, dir.path())?;
    Ok((manifest, dir))
}

/// Refuses a dump (in `dir`, from the file at `path`) that holds a psql meta-command.
fn refuse_meta_commands(path: &Path, dir: &Path) -> Result<()> {
    if let Some((line, command)) = script::first_meta_command(&dir.join(DUMP))? {
        return Err(Error::usage(
            format!(
                "{} is not a usable backup: its {DUMP} runs the psql meta-command {command} \
                 (line {line}), which could run commands or touch files in the database container",
                path.display()
            ),
            "restore only archives written by `pg_dump` through `paperclipctl backup`",
        ));
    }
    Ok(())
}

/// Opens one of Paperclip's own dumps (see [`upstream`]) for a restore into `namespace`, checked
/// as an archive's dump is.
pub fn open_upstream(path: &Path, namespace: &str) -> Result<(Manifest, tempfile::TempDir)> {
    let dir = scratch::dir()?;
    let manifest = upstream::open(path, dir.path(), namespace)?;
    refuse_meta_commands(path, dir.path())?;
    Ok((manifest, dir))
}

/// A running app pod made by the release's own Deployment (through its ReplicaSet), for
/// `purpose` ("read the instance files from"). Labels alone can be copied by anyone who may
/// create pods in the namespace, and a restore writes the master key into the pod it picks.
/// (A copy that also carries the ReplicaSet's pod-template-hash is adopted by it; that case is
/// not told apart here.)
async fn release_app_pod(client: &kube::Client, namespace: &str, purpose: &str) -> Result<String> {
    let controller = |refs: &Option<Vec<OwnerReference>>| {
        refs.iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| r.uid.clone())
    };
    let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(meta::APP_NAME)
        .await
        .map_err(|e| api_error(e, "get", "deployments", Some(namespace)))?;
    let deployment_uid = deployment.and_then(|d| d.metadata.uid);
    let sets: Vec<String> = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, "list", "replicasets.apps", Some(namespace)))?
        .items
        .into_iter()
        .filter(|rs| {
            deployment_uid.is_some() && controller(&rs.metadata.owner_references) == deployment_uid
        })
        .filter_map(|rs| rs.metadata.uid)
        .collect();
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    crate::onboarding::app_pods(&pods, namespace)
        .await?
        .into_iter()
        .filter(crate::onboarding::is_running)
        .find(|p| controller(&p.metadata.owner_references).is_some_and(|uid| sets.contains(&uid)))
        .and_then(|p| p.metadata.name)
        .ok_or_else(|| {
            Error::not_healthy(
                format!(
                    "no running app pod of Deployment/{} to {purpose}",
                    meta::APP_NAME
                ),
                "run `paperclipctl install` again once the app is Ready; pods with the app's \
                 labels that its Deployment did not make are never used",
            )
        })
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
