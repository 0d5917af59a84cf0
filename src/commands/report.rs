//! What commands print about a release, shared by the verbs that report it: health, changes
//! and lint findings, as text for people and as JSON.

use serde_json::json;

use crate::cluster::apply::Change;
use crate::health::Health;
use crate::install::Summary;
use crate::onboarding::Outcome;
use crate::render::lint::{Finding, Severity};
use crate::render::meta;
use crate::ui::Ui;

pub(super) fn health_json(health: &Health) -> serde_json::Value {
    match health {
        Health::Ok {
            starting,
            version,
            bootstrap,
            invite_active,
        } => json!({"status": if *starting { "starting" } else { "ok" }, "version": version,
                    "bootstrapStatus": bootstrap, "bootstrapInviteActive": invite_active}),
        Health::Unknown(problem) => json!({"status": "unknown", "problem": problem}),
    }
}

/// `Health: ok, bootstrap: <status>`, and how to get an admin invite when the instance still waits
/// for its first admin and this run printed none.
pub(super) fn health_lines(namespace: &str, summary: &Summary) -> String {
    match &summary.health {
        Health::Ok {
            starting,
            bootstrap,
            invite_active,
            ..
        } => {
            let state = if *starting {
                "starting (startup recovery in progress)"
            } else {
                "ok"
            };
            let mut out = format!("Health: {state}, bootstrap: {bootstrap}\n");
            let invited = matches!(
                &summary.onboarding,
                Some(Outcome::Onboarded {
                    invite_url: Some(_)
                })
            );
            if bootstrap == "bootstrap_pending" && !invited {
                let state = if *invite_active {
                    "an invite is open"
                } else {
                    "no invite is open"
                };
                out.push_str(&format!(
                    "        no admin yet and {state}; a new invite (revoking older ones): \
                     kubectl exec -n {namespace} deploy/{} -c {} -- pnpm paperclipai auth bootstrap-ceo\n",
                    meta::APP_NAME,
                    meta::APP_NAME
                ));
            }
            out
        }
        Health::Unknown(problem) => format!("Health: warning: {problem}\n"),
    }
}

pub(super) fn change_list(changes: &[(String, Change)]) -> Vec<serde_json::Value> {
    changes
        .iter()
        .map(|(id, c)| json!({"object": id, "change": c.as_str()}))
        .collect()
}

/// The changed objects, one per line; `none` when every object is as it is on the cluster.
pub(super) fn change_lines(changes: &[(String, Change)]) -> String {
    let changed: Vec<String> = changes
        .iter()
        .filter(|(_, c)| *c != Change::Unchanged)
        .map(|(id, c)| format!("    {id} {}\n", c.describe()))
        .collect();
    if changed.is_empty() {
        "    none: the cluster already runs this\n".to_string()
    } else {
        changed.concat()
    }
}

pub fn finding_line(ui: &Ui, f: &Finding) -> String {
    let label = match f.severity {
        Severity::Error => ui.error("error"),
        Severity::Warning => ui.warning("warning"),
    };
    format!(
        "{label}[{}] {}: {}\n  help: {}",
        f.code, f.object, f.message, f.help
    )
}
