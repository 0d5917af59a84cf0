//! Putting a verified archive back into a running release. The order keeps every failure
//! recoverable and the instance's live files untouched until the database is replaced: the
//! archive's keys, `.env`, config and instance trees are first staged on the app's volume beside
//! the live ones (`<path>.paperclipctl-restoring`, same directory, so the swap is a rename on
//! one filesystem), the app stops, the dump loads in one transaction that only commits once all
//! of it arrived, and the app comes back whatever happened. Only after the load committed are the
//! staged paths renamed over the live ones (each live one kept as `<path>.paperclipctl-old` until
//! the app is back) and the app restarted to read them. A failed or interrupted load leaves the
//! live files as they were — the old database keeps the key that reads its secrets — and the
//! staged ones are deleted.
//!
//! A restored tree is the archive's tree: files under it that the archive does not hold are gone
//! with the live tree (kept as `*.paperclipctl-old` until the app is back, and in the safety
//! backup). Paths the archive does not include are left as they are.
//!
//! The volume can only be written through a running app container, so the swap waits for the
//! first app container that takes an exec once the app is scaled back up: that container starts
//! with the files it had before, and is restarted once they are swapped.

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

/// Stages `$2` bytes of stdin as the instance file `$1`'s replacement, owner-only, beside it;
/// fails unless all of it arrived.
const STAGE_SCRIPT: &str = r#"f="${PAPERCLIP_HOME:-/paperclip}/instances/default/$1.paperclipctl-restoring"
mkdir -p "$(dirname "$f")" && umask 077 && rm -rf "$f" &&
head -c "$2" >"$f" && [ "$(wc -c <"$f")" -eq "$2" ]"#;

/// Unpacks `$1` bytes of stdin, a tar checked when the archive was opened, into a staging
/// directory of the instance directory, then moves each of the trees `$2…` it holds beside its
/// live one as `<tree>.paperclipctl-restoring`. GNU tar also refuses members that would land
/// outside the staging directory.
const STAGE_TREES_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
command -v tar >/dev/null || { echo "the app image has no tar" >&2; exit 4; }
umask 077 && size=$1 && shift && s=.paperclipctl-restoring && rm -rf "$s" && mkdir "$s" &&
head -c "$size" | tar -xpf - -C "$s" --no-same-owner || exit 5
for t; do
  [ -e "$s/$t" ] || [ -L "$s/$t" ] || continue
  rm -rf "$t.paperclipctl-restoring" && mkdir -p "$(dirname "$t")" &&
  mv "$s/$t" "$t.paperclipctl-restoring" || exit 5
done
rm -rf "$s""#;

/// Swaps every staged path `$1…` in: a live file or tree is kept as `*.paperclipctl-old` (a
/// hard link for a file, so the rename over it is atomic), then the staged one takes its name.
/// A path already swapped by an earlier attempt is left alone, so the script can run again.
const SWAP_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
for f; do
  n="$f.paperclipctl-restoring"
  [ -e "$n" ] || [ -L "$n" ] || continue
  rm -rf "$f.paperclipctl-old" || exit 5
  if [ -d "$f" ] && [ ! -L "$f" ]; then mv "$f" "$f.paperclipctl-old" || exit 5
  elif [ -e "$f" ] || [ -L "$f" ]; then ln "$f" "$f.paperclipctl-old" 2>/dev/null || cp -p "$f" "$f.paperclipctl-old" || exit 5
  fi
  mv -f "$n" "$f" || exit 5
done"#;

/// Deletes what a restore staged for the paths `$1…` (and the staging directory).
const DROP_STAGED_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
rm -rf .paperclipctl-restoring
for f; do rm -rf "$f.paperclipctl-restoring"; done"#;

/// Drops the live paths kept by the swap once the restored app is back (the safety backup holds
/// them).
const DROP_KEPT_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
for f; do rm -rf "$f.paperclipctl-old"; done"#;

/// The paths of the instance directory a restore of `manifest` replaces: the files that travel
/// as parts of their own, then the trees of the instance files' tar.
fn restored_paths(manifest: &Manifest) -> Vec<String> {
    let parts = INSTANCE_PARTS
        .into_iter()
        .filter(|p| manifest.parts.contains_key(*p))
        .map(str::to_string);
    let trees = if manifest.parts.contains_key(FILES) {
        manifest.files.included.clone()
    } else {
        Vec::new()
    };
    parts.chain(trees).collect()
}

/// The steps of a restore, in order, for `--dry-run` and for people reading along.
pub fn steps(manifest: &Manifest, namespace: &str) -> Vec<String> {
    let paths = restored_paths(manifest);
    vec![
        format!(
            "write a safety backup of what {namespace} holds now to the local backups directory"
        ),
        format!(
            "stage the archive's {} on the app's volume beside the live ones, which stay as they are",
            paths.join(", ")
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
            "scale Deployment/{} back up (also when a step fails; then the staged files are \
             deleted and the live ones were never touched)",
            meta::APP_NAME
        ),
        "once the load committed: rename the staged files and trees over the live ones (a \
         restored tree holds exactly the archive's files) and restart the app to read them"
            .to_string(),
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
    let paths = restored_paths(manifest);
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let app_pod = release_app_pod(client, namespace, "stage the instance files in").await?;
    let container = app_container(&pods, namespace, app_pod);
    let staged = signal::or_interrupted(stage(&container, manifest, dir, ui)).await;
    if let Err(cause) = staged {
        if paths.is_empty() {
            return Err(cause);
        }
        // The app still runs; only what this run staged goes.
        return Err(
            match container
                .output("deleting the staged files", DROP_STAGED_SCRIPT, &args)
                .await
            {
                Ok(_) => cause,
                Err(e) => staged_left(&cause, &e),
            },
        );
    }
    let progress = target.progress;
    if !paths.is_empty() {
        progress(Event::Note(&format!(
            "{} staged beside the live ones",
            paths.join(", ")
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
    // The app comes back whatever happened: a failed load rolled back, leaving the old data,
    // which the live files still match.
    let back = scale(&deployments, namespace, replicas).await;
    let tables = match loaded {
        Ok(tables) => tables,
        Err(cause) => {
            back?;
            if paths.is_empty() {
                return Err(cause);
            }
            let dropped = on_first_app(
                target,
                "deleting the staged files",
                DROP_STAGED_SCRIPT,
                &args,
            )
            .await;
            return Err(match dropped {
                Ok(()) => cause,
                Err(e) => staged_left(&cause, &e),
            });
        }
    };
    back?;
    progress(Event::Note("database restored"));

    if paths.is_empty() {
        signal::or_interrupted(available(target)).await?;
        progress(Event::Note(&format!(
            "Deployment/{} available",
            meta::APP_NAME
        )));
    } else {
        let swapped = async {
            on_first_app(target, "swapping the restored files in", SWAP_SCRIPT, &args).await?;
            // The app started with the files it had: restart it with the archive's.
            restart(&pods, namespace).await?;
            available(target).await
        };
        signal::or_interrupted(swapped)
            .await
            .map_err(|e| not_swapped(namespace, &e))?;
        progress(Event::Note(&format!(
            "{} swapped in; Deployment/{} available",
            paths.join(", "),
            meta::APP_NAME
        )));
        let kept = on_first_app(target, "removing the kept files", DROP_KEPT_SCRIPT, &args);
        if let Err(e) = kept.await {
            progress(Event::Warning(&format!(
                "the files replaced by the restore are still on the app's volume as \
                 *.paperclipctl-old: {e}"
            )));
        }
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

/// Stages the archive's instance files and trees beside the live ones.
async fn stage(
    container: &super::exec::Container<'_>,
    manifest: &Manifest,
    dir: &Path,
    ui: &Ui,
) -> Result<()> {
    crate::cluster::lock::ensure_held().await?;
    for part in INSTANCE_PARTS
        .into_iter()
        .filter(|p| manifest.parts.contains_key(*p))
    {
        let bytes = std::fs::read(dir.join(part)).map_err(Error::Output)?;
        container
            .run(
                &format!("staging {part}"),
                STAGE_SCRIPT,
                &[part, &bytes.len().to_string()],
                Input::Bytes(&bytes),
                &ProgressBar::hidden(),
                &mut |_| Ok(()),
            )
            .await?;
    }
    let Some(files) = manifest.parts.get(FILES) else {
        return Ok(());
    };
    let size = files.size.to_string();
    let mut args = vec![size.as_str()];
    args.extend(manifest.files.included.iter().map(String::as_str));
    let bar = bytes_bar(ui, "staging the instance files");
    let unpacked = container
        .run(
            "staging the instance files",
            STAGE_TREES_SCRIPT,
            &args,
            Input::File {
                path: &dir.join(FILES),
                then: b"",
            },
            &bar,
            &mut |_| Ok(()),
        )
        .await;
    bar.finish_and_clear();
    unpacked
}

/// Runs `script` with `args` in the first running app container of the release that takes it,
/// trying again until the app's timeout: the app was just scaled up, and its container may not
/// be running (or exec not yet served) for a while.
async fn on_first_app(target: &Target<'_>, what: &str, script: &str, args: &[&str]) -> Result<()> {
    let pods = Api::<Pod>::namespaced(target.client.clone(), target.namespace);
    let deadline = tokio::time::Instant::now() + target.timeout;
    loop {
        let tried = async {
            let pod = release_app_pod(target.client, target.namespace, what).await?;
            app_container(&pods, target.namespace, pod)
                .output(what, script, args)
                .await
        };
        match tried.await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Deletes the app's pods, so their replacements start with what is on the volume now.
async fn restart(pods: &Api<Pod>, namespace: &str) -> Result<()> {
    for pod in crate::onboarding::app_pods(pods, namespace).await? {
        let name = pod.metadata.name.unwrap_or_default();
        pods.delete(&name, &DeleteParams::default())
            .await
            .map_err(|e| api_error(e, "delete", "pods", Some(namespace)))?;
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

/// The error when the staged files could not be deleted after `cause`: they are inert (no
/// app reads them) and the next restore replaces them.
fn staged_left(cause: &Error, e: &Error) -> Error {
    Error::not_healthy(
        format!("{cause}; then deleting the staged files failed: {e}"),
        "the live files were never touched; the staged ones (*.paperclipctl-restoring on the \
         app's volume) are read by nothing, and the next restore replaces them",
    )
}

/// The error when the database was restored but the files could not be swapped in: where
/// everything is, and how to finish.
fn not_swapped(namespace: &str, e: &Error) -> Error {
    Error::not_healthy(
        format!("the database was restored, but swapping the archive's files in failed: {e}"),
        format!(
            "on the app's volume each restored path is either swapped in already or still \
             staged beside the live one as <path>.paperclipctl-restoring (the replaced one kept \
             as <path>.paperclipctl-old): rename the staged ones over the live ones, then restart \
             the app (kubectl rollout restart -n {namespace} deployment/{}); the database needs \
             the archive's master key",
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
