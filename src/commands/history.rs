//! `paperclipctl history`: every recorded revision of the release, oldest first.

use super::session::Session;
use crate::cli::{Global, Output};
use crate::error::Result;
use crate::release::{self, Record};
use crate::status;
use crate::ui::Ui;

pub fn run(global: &Global, ui: &Ui) -> Result<()> {
    let namespace = super::namespace(global)?;
    super::block_on(async {
        let session = Session::for_reading(global, namespace.clone(), ui).await?;
        let records = release::history(session.client(), &namespace).await?;
        if records.is_empty() {
            return Err(status::not_installed(&namespace));
        }
        let text = match ui.output {
            Output::Json => {
                serde_json::to_string_pretty(&serde_json::json!({
                    "namespace": namespace,
                    "revisions": records,
                }))? + "\n"
            }
            Output::Text | Output::Yaml => table(&records),
        };
        ui.print(&text)?;
        Ok(())
    })
}

/// One line per revision: when, from which profile, what made it, and how it ended.
fn table(records: &[Record]) -> String {
    let mut out = format!(
        "{:<9} {:<31} {:<16} {:<14} {:<14} {}\n",
        "REVISION", "TIME", "PROFILE", "DIGEST", "ACTION", "RESULT"
    );
    for r in records {
        out.push_str(&format!(
            "{:<9} {:<31} {:<16} {:<14} {:<14} {}\n",
            r.revision,
            r.time,
            r.profile,
            short_digest(&r.profile_digest),
            r.action,
            r.result
        ));
    }
    out
}

/// `sha256:0123456789ab…` shortened to its first 12 hex digits, as image ids are shown.
fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_revisions_with_short_digests() {
        let record = Record {
            revision: 2,
            profile: "frank".into(),
            profile_digest: format!("sha256:{}", "ab".repeat(32)),
            inventory: vec![],
            images: Default::default(),
            time: "2026-01-02T03:04:05Z".into(),
            result: "deployed".into(),
            action: "rollback to 1".into(),
            applied: None,
            stored_digest: String::new(),
        };
        let text = table(&[record]);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("2 "), "{text}");
        assert!(line.contains(" abababababab "), "{text}");
        assert!(line.ends_with(" rollback to 1  deployed"), "{text}");
        assert_eq!(short_digest("sha256:abc"), "abc");
    }
}
