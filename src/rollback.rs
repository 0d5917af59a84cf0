//! Going back to an earlier revision: its recorded profile rendered and deployed again, waited
//! for as an install is, and recorded as a new revision (`rollback to N`), as Helm does.
//!
//! [`prepare`] finds and verifies the revision and dry-runs its objects (what `rollback
//! --dry-run` shows); [`run`] deploys them in a release transaction.
//!
//! Only objects go back; the database keeps what the newer version wrote. A backup taken before
//! the upgrade (`paperclipctl backup list`) brings the data back when a newer version migrated it.

use std::time::Duration;

use crate::cluster::apply::Change;
use crate::error::{Error, Result};
use crate::install::{self, Generated, Summary};
use crate::profile::Profile;
use crate::release::{self, Record};
use crate::render::{self, Release};
use crate::status;
use crate::transaction::{self, Action};
use crate::ui::progress::Event;

/// The revision to go back to: `revision` when given, else the newest deployed revision that
/// applied something other than what the newest revision applied.
pub fn target(history: &[Record], revision: Option<u32>) -> Result<&Record> {
    let listed = || {
        let all: Vec<String> = history
            .iter()
            .map(|r| format!("{} ({})", r.revision, r.result))
            .collect();
        format!("revisions: {}", all.join(", "))
    };
    let record = match revision {
        Some(n) => history
            .iter()
            .find(|r| r.revision == n)
            .ok_or_else(|| Error::usage(format!("there is no revision {n}"), listed()))?,
        None => {
            let current = history.last().map(|r| r.profile_digest.as_str());
            history
                .iter()
                .rev()
                .find(|r| r.deployed() && Some(r.profile_digest.as_str()) != current)
                .ok_or_else(|| {
                    Error::usage(
                        "no earlier deployed revision differs from the current one",
                        format!(
                            "name one with `paperclipctl rollback REVISION`; {}",
                            listed()
                        ),
                    )
                })?
        }
    };
    if !record.deployed() {
        return Err(Error::usage(
            format!(
                "revision {} did not deploy: {}",
                record.revision, record.result
            ),
            format!("go back to a deployed revision; {}", listed()),
        ));
    }
    if record.applied.is_none() {
        return Err(Error::usage(
            format!(
                "revision {} was recorded without its profile, so it cannot be rendered again",
                record.revision
            ),
            "install that profile again with `paperclipctl install --profile …`",
        ));
    }
    Ok(record)
}

/// What a rollback would do, decided with reads and server-side dry runs only: what `rollback
/// --dry-run` shows, and what [`run`] then does.
pub struct Prepared {
    /// The revision gone back to; it carries the profile it applied.
    pub target: Record,
    /// What that profile renders today.
    pub release: Release,
    /// What applying each object would do, in apply order.
    pub changes: Vec<(String, Change)>,
    /// The newest revision already deployed this profile and no object would change: a run
    /// writes nothing, not even the lock.
    pub up_to_date: bool,
}

impl Prepared {
    /// The profile the target revision applied.
    pub fn profile(&self) -> &Profile {
        self.target
            .applied
            .as_ref()
            .expect("a rollback target carries its profile")
    }
}

/// Prepares going back to `revision` (or, without one, as [`target`] chooses) in `namespace`:
/// the revision is found and its record verified, its profile rendered and dry-run (generated
/// values as placeholders: this runs before the lock). Nothing is written.
pub async fn prepare(
    client: &kube::Client,
    namespace: &str,
    revision: Option<u32>,
) -> Result<Prepared> {
    let history = release::history(client, namespace).await?;
    if history.is_empty() {
        return Err(status::not_installed(namespace));
    }
    let target = target(&history, revision)?.clone();
    release::verify(client, namespace, &target).await?;
    let profile = target
        .applied
        .as_ref()
        .expect("a rollback target carries its profile");
    let release = render::render(profile);
    let values = install::values(client, profile, &release, Generated::Placeholder).await?;
    let changes = install::changes(client, &release, &values).await?;
    let up_to_date = install::up_to_date(profile, history.last(), &changes);
    Ok(Prepared {
        target,
        release,
        changes,
        up_to_date,
    })
}

/// Runs a rollback [`prepare`]d before: the target's profile deployed in a release transaction
/// and recorded as `rollback to N`. An up-to-date release is left as it is.
pub async fn run(
    client: &kube::Client,
    prepared: &Prepared,
    timeout: Duration,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Summary> {
    if prepared.up_to_date {
        return install::unchanged(client, &prepared.release).await;
    }
    let to = prepared.target.revision;
    progress(Event::Step(&format!("rolling back to revision {to}")));
    transaction::run_release(client, &prepared.release, progress, async |tx| {
        tx.deploy(
            prepared.profile(),
            &prepared.release,
            Action::Rollback { to },
            timeout,
            progress,
        )
        .await?
        .into_result()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: u32, digest: &str, result: &str) -> Record {
        let profile = crate::profile::load("frank", &[]).unwrap().profile;
        Record {
            revision,
            profile: "frank".into(),
            profile_digest: digest.into(),
            inventory: vec![],
            images: Default::default(),
            time: String::new(),
            result: result.into(),
            action: "install".into(),
            applied: Some(profile),
            stored_digest: String::new(),
        }
    }

    #[test]
    fn without_a_revision_it_goes_back_to_the_newest_other_deployed_one() {
        let history = [
            record(1, "a", "deployed"),
            record(2, "b", "deployed"),
            record(3, "c", "failed: crash"),
            record(4, "b", "deployed"),
        ];
        assert_eq!(target(&history, None).unwrap().revision, 1);
    }

    #[test]
    fn a_failed_or_missing_revision_is_refused_naming_the_revisions() {
        let history = [record(1, "a", "deployed"), record(2, "b", "failed: crash")];
        let failed = target(&history, Some(2)).unwrap_err().to_string();
        assert!(failed.contains("revision 2 did not deploy"), "{failed}");
        let missing = target(&history, Some(9)).unwrap_err();
        assert_eq!(missing.exit_code(), crate::error::exit::INVALID_INPUT);
        let only_one = target(&history[..1], None).unwrap_err().to_string();
        assert!(
            only_one.contains("no earlier deployed revision"),
            "{only_one}"
        );
    }
}
