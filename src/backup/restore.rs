//! Putting a verified archive back into a running release. The order keeps every failure
//! recoverable: the archive's keys, `.env` and config go onto the volume with the current ones
//! kept beside them (`*.paperclipctl-old`), its other instance files are unpacked over the
//! instance directory (added or replaced, never removed), the app stops, the dump loads in one transaction that
//! only commits once all of it arrived, and the app comes back whatever happened. When the load
//! fails the kept key and config are put back and the app restarts with them, so the old
//! database is never left with a key that cannot read its secrets.
//!
//! The files can only be written through a running app container, which is why they are put in
//! place before the app stops rather than after the load: after a failed load the app runs
//! briefly with the archive's key until the kept one is back and the pods restarted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use super::archive::{DUMP, FILES, INSTANCE_PARTS, Manifest};
use super::exec::Input;
use super::{DB_ENV, app_container, bytes_bar, counts, database, release_app_pod, upstream};
use crate::cluster::{api_error, wait};
use crate::error::{Error, Result};
use crate::render::{Object, Wave, meta};
use crate::signal;
use crate::ui::Ui;
use crate::ui::progress::Event;

/// Loads `$2` bytes of stdin after emptying the database with `$1`, all in one transaction: every
/// non-system schema is dropped (objects made after the backup included), `public` is recreated,
/// then the dump is applied. The `COMMIT` and the marker after it are the last bytes sent, so an
/// input cut short (a dropped connection, an interrupted run) never commits. Errors are terse
/// and without context lines, which would quote rows of the dump.
///
/// The size is given because exec cannot always close a command's stdin.
const LOAD_SCRIPT: &str = r#"{ printf 'BEGIN;\n%s\n' "$1"; head -c "$2"; } | psql -X -q -tA -v ON_ERROR_STOP=1 -v VERBOSITY=terse -v SHOW_CONTEXT=never -f -"#;

const EMPTY_SQL: &str = "DO $do$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END $do$; CREATE SCHEMA public;";

/// What follows the dump on the load's stdin; psql prints the marker only once the commit is done.
const COMMITTED: &str = "paperclipctl-restore-committed";

/// Writes `$2` bytes of stdin to an instance file, owner-only, in place only once all of it
/// arrived; the current file is kept beside it as `*.paperclipctl-old` (or `*.paperclipctl-none`
/// says there was none).
const PUT_SCRIPT: &str = r#"f="${PAPERCLIP_HOME:-/paperclip}/instances/default/$1"
mkdir -p "$(dirname "$f")" && umask 077 && rm -f "$f.paperclipctl-old" "$f.paperclipctl-none" &&
head -c "$2" >"$f.paperclipctl-new" && [ "$(wc -c <"$f.paperclipctl-new")" -eq "$2" ] &&
if [ -e "$f" ]; then cp -p "$f" "$f.paperclipctl-old"; else : >"$f.paperclipctl-none"; fi &&
mv "$f.paperclipctl-new" "$f""#;

/// Unpacks `$1` bytes of stdin, a tar checked when the archive was opened, into the instance
/// directory; GNU tar also refuses members that would land outside it.
const UNPACK_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
command -v tar >/dev/null || { echo "the app image has no tar" >&2; exit 4; }
umask 077 && head -c "$1" | tar -xpf - --no-same-owner --no-overwrite-dir"#;

/// The instance files of `manifest` that travel as parts of their own, in the order they are
/// put back.
fn instance_parts(manifest: &Manifest) -> Vec<&'static str> {
    INSTANCE_PARTS
        .into_iter()
        .filter(|p| manifest.parts.contains_key(*p))
        .collect()
}

/// Puts the kept file back (or removes the new one when there was none before); does nothing
/// for a file that was never replaced.
const PUT_BACK_SCRIPT: &str = r#"f="${PAPERCLIP_HOME:-/paperclip}/instances/default/$1"
rm -f "$f.paperclipctl-new"
if [ -e "$f.paperclipctl-old" ]; then mv "$f.paperclipctl-old" "$f"
elif [ -e "$f.paperclipctl-none" ]; then rm -f "$f" "$f.paperclipctl-none"; fi"#;

/// Drops what was kept once the restore succeeded (the safety backup holds it).
const DROP_KEPT_SCRIPT: &str = r#"f="${PAPERCLIP_HOME:-/paperclip}/instances/default/$1"
rm -f "$f.paperclipctl-old" "$f.paperclipctl-none""#;

/// The steps of a restore, in order, for `--dry-run` and for people reading along.
pub fn steps(manifest: &Manifest, namespace: &str) -> Vec<String> {
    vec![
        format!(
            "write a safety backup of what {namespace} holds now to the local backups directory"
        ),
        format!(
            "put {} in the app's volume, keeping the current ones beside them{}",
            instance_parts(manifest).join(", "),
            if manifest.parts.contains_key(FILES) {
                format!(
                    ", and unpack the instance files ({}) over the instance directory",
                    manifest.files.included.join(", ")
                )
            } else {
                String::new()
            }
        ),
        format!(
            "scale Deployment/{} in {namespace} to 0 and wait until its pods are gone",
            meta::APP_NAME
        ),
        format!(
            "empty the database and load the dump ({} bytes) in one transaction{}",
            manifest.parts.get(DUMP).map_or(0, |p| p.size),
            if manifest.upstream_dump {
                " as the database's superuser (Paperclip's own dump; the instance files stay)"
            } else {
                ""
            }
        ),
        format!(
            "check that the {} table(s) have the recorded row counts",
            manifest.tables.len()
        ),
        format!(
            "scale Deployment/{} back up (also when a step fails; then with the kept key and config)",
            meta::APP_NAME
        ),
    ]
}

/// Where and how a restore runs.
pub struct Target<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    /// The rendered app Deployment, waited on as an install waits on it.
    pub app: &'a Object,
    /// How long the app's pods may take to stop, and the app to come back.
    pub timeout: Duration,
    /// Hears each step done and each warning: the restore prints nothing itself.
    pub progress: &'a (dyn Fn(Event<'_>) + Sync),
}

/// Restores the verified parts in `dir` into the release; the caller holds the lock.
pub async fn restore(target: &Target<'_>, manifest: &Manifest, dir: &Path, ui: &Ui) -> Result<()> {
    let Target {
        client, namespace, ..
    } = *target;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    if manifest.upstream_dump {
        superuser_at_hand(&database(&pods, namespace), namespace).await?;
    }
    let app_pod = release_app_pod(client, namespace, "put the instance files back into").await?;
    let container = app_container(&pods, namespace, app_pod);
    // The parts this run began to replace: only those are put back (an older run's leftovers
    // beside the others are not this run's to move).
    let mut begun = Vec::new();
    let parts = instance_parts(manifest);
    let put = signal::or_interrupted(async {
        crate::cluster::lock::ensure_held().await?;
        for part in parts.iter().copied() {
            begun.push(part);
            let bytes = std::fs::read(dir.join(part)).map_err(Error::Output)?;
            container
                .run(
                    &format!("writing {part}"),
                    PUT_SCRIPT,
                    &[part, &bytes.len().to_string()],
                    Input::Bytes(&bytes),
                    &ProgressBar::hidden(),
                    &mut |_| Ok(()),
                )
                .await?;
        }
        if let Some(files) = manifest.parts.get(FILES) {
            let bar = bytes_bar(ui, "unpacking the instance files");
            let unpacked = container
                .run(
                    "unpacking the instance files",
                    UNPACK_SCRIPT,
                    &[&files.size.to_string()],
                    Input::File {
                        path: &dir.join(FILES),
                        then: b"",
                    },
                    &bar,
                    &mut |_| Ok(()),
                )
                .await;
            bar.finish_and_clear();
            unpacked?;
        }
        Ok(())
    })
    .await;
    if let Err(cause) = put {
        // The app still runs with the key it read when it started: the files go back, no restart.
        return Err(match put_back_files(&container, &begun).await {
            Ok(()) => cause,
            Err(e) => left_kept(namespace, &cause, &e),
        });
    }
    let progress = target.progress;
    progress(Event::Note(&format!(
        "{} put in place (the current ones kept beside them)",
        parts.join(", ")
    )));
    if manifest.parts.contains_key(FILES) {
        progress(Event::Note(&format!(
            "instance files unpacked ({})",
            manifest.files.included.join(", ")
        )));
    }
    if manifest.master_key_from_env {
        progress(Event::Warning(
            "the backed-up app took its master key from PAPERCLIP_SECRETS_MASTER_KEY; this \
             release needs the same value to read the restored secrets",
        ));
    }

    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let replicas = deployments
        .get(meta::APP_NAME)
        .await
        .map_err(|e| api_error(e, "get", "deployments", Some(namespace)))?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(1);
    let loaded = match scale(&deployments, namespace, 0).await {
        Ok(()) => signal::or_interrupted(stop_and_load(target, manifest, dir, ui)).await,
        Err(e) => Err(e),
    };
    // The app comes back whatever happened: a failed load rolled back, leaving the old data.
    let back = scale(&deployments, namespace, replicas).await;
    let tables = match loaded {
        Ok(tables) => tables,
        Err(e) => {
            back?;
            return Err(put_back(target, &pods, &parts, e).await);
        }
    };
    back?;
    progress(Event::Note("database restored"));

    signal::or_interrupted(available(target)).await?;
    progress(Event::Note(&format!(
        "Deployment/{} available",
        meta::APP_NAME
    )));
    let tidied = async {
        let pod = release_app_pod(client, namespace, "tidy up").await?;
        let container = app_container(&pods, namespace, pod);
        for part in parts.iter().copied() {
            container
                .output("removing the kept files", DROP_KEPT_SCRIPT, &[part])
                .await?;
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = tidied.await {
        progress(Event::Warning(&format!(
            "the key and config kept beside the restored ones (*.paperclipctl-old) are still on \
             the app's volume: {e}"
        )));
    }

    // Paperclip's own dumps record no row counts.
    if !manifest.upstream_dump && tables != manifest.tables {
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

/// Waits for the app's pods to go, loads the dump and counts the rows it loaded (while the app
/// is still stopped: what the restore loaded, not what the app writes once it is back).
async fn stop_and_load(
    target: &Target<'_>,
    manifest: &Manifest,
    dir: &Path,
    ui: &Ui,
) -> Result<BTreeMap<String, u64>> {
    let pods = Api::<Pod>::namespaced(target.client.clone(), target.namespace);
    stop(
        &pods,
        target.namespace,
        target.timeout,
        "the app was scaled back up and nothing was restored",
    )
    .await?;
    (target.progress)(Event::Note(&format!(
        "Deployment/{} scaled to 0",
        meta::APP_NAME
    )));

    crate::cluster::lock::ensure_held().await?;
    let db = database(&pods, target.namespace);
    let trailer = format!("\nCOMMIT;\nSELECT '{COMMITTED}';\n");
    let size = manifest.parts.get(DUMP).map_or(0, |p| p.size) + trailer.len() as u64;
    let bar = bytes_bar(ui, "loading the dump");
    // Only the end of the output matters: the marker printed after the commit.
    let mut tail = Vec::new();
    let loaded = db
        .run_reporting(
            "psql restore",
            &format!("{}{DB_ENV}{LOAD_SCRIPT}", load_env(manifest)),
            &[EMPTY_SQL, &size.to_string()],
            Input::File {
                path: &dir.join(DUMP),
                then: trailer.as_bytes(),
            },
            &bar,
            &mut |chunk| {
                tail.extend_from_slice(chunk);
                let keep = tail.len().saturating_sub(256);
                tail.drain(..keep);
                Ok(())
            },
            &without_values,
        )
        .await;
    bar.finish_and_clear();
    loaded?;
    if !String::from_utf8_lossy(&tail)
        .trim_end()
        .ends_with(COMMITTED)
    {
        return Err(Error::not_healthy(
            "psql did not confirm that the restore committed (the dump may not have arrived \
             whole, and then it rolled back)",
            "check the row counts with `psql` in the database pod, then run the restore again",
        ));
    }
    counts(&db).await
}

/// What runs before [`DB_ENV`] for a load: the superuser for Paperclip's own dumps.
fn load_env(manifest: &Manifest) -> &'static str {
    if manifest.upstream_dump {
        upstream::SUPERUSER_ENV
    } else {
        ""
    }
}

/// Fails, before anything is changed, when the database container offers no superuser to load
/// one of Paperclip's own dumps with.
async fn superuser_at_hand(db: &super::exec::Container<'_>, namespace: &str) -> Result<()> {
    let script = format!(
        r#"{}{DB_ENV}psql -X -tA -v ON_ERROR_STOP=1 -c "$1""#,
        upstream::SUPERUSER_ENV
    );
    let answer = db
        .output(
            "checking for a superuser",
            &script,
            &[upstream::IS_SUPERUSER_SQL],
        )
        .await?;
    if String::from_utf8_lossy(&answer).trim() == "t" {
        Ok(())
    } else {
        Err(upstream::needs_superuser(namespace))
    }
}

/// psql's error lines without what they quote: a failed row's values (`invalid input syntax
/// for type integer: "…"`) must not reach a terminal or a CI log.
fn without_values(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains("ERROR:") || l.contains("FATAL:"))
        .map(|l| match l.find('"') {
            Some(at) => format!("{}\"…\" (quoted values left out)", &l[..at]),
            None => l.to_string(),
        })
        .collect();
    if lines.is_empty() {
        "psql failed (its output is left out: it may quote rows)".to_string()
    } else {
        lines.join("; ")
    }
}

/// After a failed restore: the kept key and config back in place and the app restarted with
/// them. Returns the error to report, `cause` when all went back.
async fn put_back(target: &Target<'_>, pods: &Api<Pod>, parts: &[&str], cause: Error) -> Error {
    let namespace = target.namespace;
    let back = async {
        available(target).await?;
        let pod = release_app_pod(target.client, namespace, "put the kept files back into").await?;
        put_back_files(&app_container(pods, namespace, pod), parts).await?;
        // The app read the archive's key when it started: restart it with the kept one.
        for pod in crate::onboarding::app_pods(pods, namespace).await? {
            let name = pod.metadata.name.unwrap_or_default();
            pods.delete(&name, &DeleteParams::default())
                .await
                .map_err(|e| api_error(e, "delete", "pods", Some(namespace)))?;
        }
        available(target).await
    };
    match back.await {
        Ok(()) => {
            (target.progress)(Event::Note(&format!(
                "{} put back as they were; the app restarted with them",
                parts.join(", ")
            )));
            cause
        }
        Err(e) => left_kept(namespace, &cause, &e),
    }
}

async fn put_back_files(container: &super::exec::Container<'_>, parts: &[&str]) -> Result<()> {
    for part in parts {
        container
            .output("putting the kept file back", PUT_BACK_SCRIPT, &[part])
            .await?;
    }
    Ok(())
}

/// The error when the kept files could not be put back: where they are.
fn left_kept(namespace: &str, cause: &Error, e: &Error) -> Error {
    Error::not_healthy(
        format!("{cause}; then putting the kept key and config back failed: {e}"),
        format!(
            "the instance's key and config are kept as *.paperclipctl-old beside them on the \
             app's volume (and in the safety backup): move them back, then restart the app \
             (kubectl rollout restart -n {namespace} deployment/{})",
            meta::APP_NAME
        ),
    )
}

/// Waits until the app's Deployment is available, as an install waits on it.
async fn available(target: &Target<'_>) -> Result<()> {
    let gate = Wave {
        number: 1,
        title: "app",
        objects: vec![target.app.clone()],
        wait_for: vec![target.app.id()],
    };
    wait::wave(
        target.client,
        target.namespace,
        &gate,
        target.timeout,
        &|_| {},
    )
    .await
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

/// Waits until every app pod is gone, so nothing writes to the database while it is replaced
/// (or, after onboarding, so the next pod starts with what onboarding wrote). `then` says, on a
/// timeout, what the caller did about it.
pub(crate) async fn stop(
    pods: &Api<Pod>,
    namespace: &str,
    timeout: Duration,
    then: &str,
) -> Result<()> {
    for pod in crate::onboarding::app_pods(pods, namespace).await? {
        let name = pod.metadata.name.unwrap_or_default();
        let uid = pod.metadata.uid.unwrap_or_default();
        let gone = await_condition(pods.clone(), &name, conditions::is_deleted(&uid));
        tokio::time::timeout(timeout, gone)
            .await
            .map_err(|_| {
                Error::not_healthy(
                    format!(
                        "app pod {name} did not stop within {}s; {then}",
                        timeout.as_secs()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_errors_keep_their_line_and_lose_the_values_they_quote() {
        let stderr = "psql:<stdin>:41: ERROR:  invalid input syntax for type integer: \"s3cret-row\"\n\
                      CONTEXT:  COPY t, line 1, column id: \"s3cret-row\"\n";
        let shown = without_values(stderr);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("psql:<stdin>:41: ERROR:  invalid input syntax"),
            "{shown}"
        );
    }
}
