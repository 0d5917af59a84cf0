//! Going back to an earlier revision: its recorded profile rendered and deployed again, waited
//! for as an install is, and recorded as a new revision (`rollback to N`), as Helm does.
//!
//! Only objects go back; the database keeps what the newer version wrote. A backup taken before
//! the upgrade (`paperclipctl backup list`) brings the data back when a newer version migrated it.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::install::{self, Generated};
use crate::profile::Profile;
use crate::release::Record;
use crate::render::{self, Release};

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

/// The release `profile` renders and the values its objects would be applied with (generated
/// values as placeholders: this runs before the lock): what a rollback to it previews and
/// compares with what runs.
pub async fn prepare(client: &kube::Client, profile: &Profile) -> Result<(Release, Vec<Value>)> {
    let release = render::render(profile);
    let values = install::values(client, profile, &release, Generated::Placeholder).await?;
    Ok((release, values))
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
