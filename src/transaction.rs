//! The release transaction: the one way anything changes a release.
//!
//! Every verb that writes to a release (install, upgrade, rollback, uninstall, restore) runs its
//! writes as the body of [`run`] or [`run_release`]. The transaction takes the release lock (a
//! Lease, see [`crate::cluster::lock`]), hands the body a [`Transaction`], and gives the lock up
//! when the body ends, however it ends: nowhere else is the lock taken or released. A deploy
//! inside it ([`Transaction::deploy`]) reads the values it applies under the lock (so a value
//! paperclipctl generates, such as the database password, is made only while the lock is held)
//! and records its outcome as a revision with a typed [`Status`]: nowhere else is a record
//! written. An upgrade's automatic rollback is a second deploy in the same transaction, so no
//! other run can slip in between the failed upgrade and the revision that replaces it.
//!
//! Uninstall and restore change no rendered object a record describes (uninstall deletes them,
//! restore replaces data), so their transactions hold the lock without recording a revision.

use std::time::Duration;

use crate::cluster::apply::{self, Change};
use crate::cluster::lock::Lock;
use crate::error::Result;
use crate::install::{self, Generated, Summary};
use crate::profile::Profile;
use crate::release::{self, Status};
use crate::render::{Object, Release};
use crate::ui::progress::Event;

/// What made a revision, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Upgrade,
    /// A deploy of what revision `to` applied, by `rollback` or after a failed upgrade.
    Rollback {
        to: u32,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Install => f.write_str("install"),
            Action::Upgrade => f.write_str("upgrade"),
            Action::Rollback { to } => write!(f, "rollback to {to}"),
        }
    }
}

/// A release's writes while its lock is held.
pub struct Transaction<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
    /// What applying the release's Namespace did before the lock was taken (the Lease lives in
    /// it), reported as the first change of every deploy.
    namespace_change: Option<(String, Change)>,
}

/// How a deploy ended: recorded either way.
pub enum Deployed {
    /// The release came up; recorded as `deployed`.
    Ready(Summary),
    /// A step failed; recorded as `failed: …` (a failure to record it is left unsaid: the deploy's
    /// own error matters more).
    Failed(crate::error::Error),
}

impl Deployed {
    pub fn into_result(self) -> Result<Summary> {
        match self {
            Deployed::Ready(summary) => Ok(summary),
            Deployed::Failed(e) => Err(e),
        }
    }
}

/// Runs `body` holding the release lock of `namespace`, which must exist (uninstall, restore).
/// Fails, naming the holder, when another run holds it. `progress` hears a warning if the lock
/// is lost while `body` runs.
pub async fn run<T>(
    client: &kube::Client,
    namespace: &str,
    progress: &(dyn Fn(Event<'_>) + Sync),
    body: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    locked(client, namespace, None, progress, body).await
}

/// Runs `body` holding the release lock of `release`, whose Namespace is applied first: the
/// release may not exist yet (install), and its Lease lives in that Namespace.
pub async fn run_release<T>(
    client: &kube::Client,
    release: &Release,
    progress: &(dyn Fn(Event<'_>) + Sync),
    body: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let first = release.objects().next().expect("a release has objects");
    debug_assert!(matches!(first, Object::Namespace(_)));
    let change = apply::apply(client, first, &serde_json::to_value(first)?, false).await?;
    let namespace_change = Some((first.id(), change));
    locked(client, &release.namespace, namespace_change, progress, body).await
}

/// Fails as a transaction would start failing when a live run holds `namespace`'s lock, without
/// taking it: for a verb that writes outside the cluster (secrets in Infisical) before its
/// transaction begins.
pub async fn ensure_free(client: &kube::Client, namespace: &str) -> Result<()> {
    Lock::check_free(client, namespace).await
}

/// The one place the lock is taken and given up. A lock lost while `body` runs is said at once
/// (the body may be waiting, not writing); `body` then stops at its next write.
async fn locked<T>(
    client: &kube::Client,
    namespace: &str,
    namespace_change: Option<(String, Change)>,
    progress: &(dyn Fn(Event<'_>) + Sync),
    body: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let lock = Lock::acquire(client, namespace).await?;
    let transaction = Transaction {
        client,
        namespace,
        namespace_change,
    };
    let mut running = std::pin::pin!(body(&transaction));
    let outcome = tokio::select! {
        outcome = &mut running => outcome,
        why = lock.lost() => {
            progress(Event::Warning(&format!(
                "this run lost the release lock in namespace {namespace} ({why}); it writes \
                 nothing more"
            )));
            running.await
        }
    };
    lock.release().await;
    outcome
}

impl Transaction<'_> {
    pub fn client(&self) -> &kube::Client {
        self.client
    }

    pub fn namespace(&self) -> &str {
        self.namespace
    }

    /// Deploys `release` (rendered from `profile`) and records how it ended as the next
    /// revision, made by `action`. `Err` only when nothing was deployed (the values could not be
    /// read) or a ready release could not be recorded.
    pub async fn deploy(
        &self,
        profile: &Profile,
        release: &Release,
        action: Action,
        timeout: Duration,
        progress: &(dyn Fn(Event<'_>) + Sync),
    ) -> Result<Deployed> {
        let values = install::values(self.client, profile, release, Generated::Made).await?;
        let mut changes: Vec<_> = self.namespace_change.iter().cloned().collect();
        let deployed = install::deploy(
            self.client,
            release,
            &values,
            timeout,
            progress,
            &mut changes,
        )
        .await;
        let images = install::images(self.client, release)
            .await
            .unwrap_or_default();
        let record = release::record(
            profile,
            release,
            images,
            &action.to_string(),
            Status::of(&deployed),
        );
        let revision = release::store(self.client, self.namespace, record, progress).await;
        Ok(match (deployed, revision) {
            (Err(e), _) => Deployed::Failed(e),
            (Ok(_), Err(e)) => return Err(e),
            (Ok(ready), Ok(revision)) => {
                Deployed::Ready(Summary::deployed(changes, revision, ready))
            }
        })
    }
}
