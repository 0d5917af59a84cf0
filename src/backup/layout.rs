//! What of Paperclip's instance directory (`$PAPERCLIP_HOME/instances/default`) goes into an
//! archive. Every path the app is known to write is classed here; a path it does not know goes
//! in too and is reported, so a directory a newer Paperclip adds is never left out silently.
//!
//! The small files a restore must put back before anything else (the keys, `.env` and
//! `config.json`) travel as parts of their own; every other included path goes into one tar of
//! the instance files, streamed from the app container.

use std::collections::BTreeSet;

/// How a path under the instance directory is treated by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A file that travels as a part of its own (see [`super::archive`]).
    Part,
    /// Included unless excluded with `--exclude`.
    In,
    /// Re-creatable or large: left out unless included with `--include`.
    Optional,
    /// Of no use to a restore (caches, logs, transient state, the app's own dumps).
    Out,
}

/// The paths the app writes, relative to the instance directory, each with its class and why.
/// `data/` and `secrets/` are looked into one level deeper; anything else is a whole tree.
pub const KNOWN: &[(&str, Class, &str)] = &[
    ("config.json", Class::Part, "the instance's configuration"),
    (
        ".env",
        Class::Part,
        "the agents' JWT and tool-action signing secrets",
    ),
    (
        "secrets/master.key",
        Class::Part,
        "decrypts the secrets in the database",
    ),
    (
        "secrets/decision-signing.key",
        Class::Part,
        "verifies pending decisions",
    ),
    ("secrets", Class::In, "other secrets the app keeps on disk"),
    (
        "data/storage",
        Class::In,
        "uploaded files (local-disk storage)",
    ),
    (
        "companies",
        Class::In,
        "agents' instructions and per-company state",
    ),
    ("skills", Class::In, "installed skills"),
    ("ai-local-logins", Class::In, "AI tools' local sign-ins"),
    ("telemetry", Class::In, "the instance's telemetry identity"),
    (
        "workspaces",
        Class::Optional,
        "agents' working copies, re-creatable from their repositories",
    ),
    (
        "projects",
        Class::Optional,
        "project working copies, re-creatable from their repositories",
    ),
    ("chat-workspaces", Class::Optional, "chat working copies"),
    ("data/run-logs", Class::Optional, "logs of agents' runs"),
    ("logs", Class::Optional, "the server's logs"),
    (
        "db",
        Class::Out,
        "the embedded PostgreSQL, unused: the database is dumped on its own",
    ),
    (
        "data/backups",
        Class::Out,
        "Paperclip's own dumps: copy them with `backup pull`",
    ),
    ("data/provider-traces", Class::Out, "debugging traces"),
    (
        "data/workspace-operation-logs",
        Class::Out,
        "logs of workspace operations",
    ),
    (
        "data/sandbox-orphan-cleanup",
        Class::Out,
        "transient cleanup state",
    ),
    ("runtime", Class::Out, "running agents' sessions"),
    ("runtime-services", Class::Out, "running services' state"),
    ("runtime-service-logs", Class::Out, "running services' logs"),
    (
        "runtime-context-assets",
        Class::Out,
        "assets regenerated for each run",
    ),
    ("import-transfers", Class::Out, "transient import files"),
    ("locks", Class::Out, "lock files of the running app"),
];

/// Directories whose children are classed one by one.
const LOOKED_INTO: [&str; 2] = ["data", "secrets"];

/// Suffixes of what a restore stages beside the paths it replaces, and keeps of the replaced
/// ones, for the time it runs.
const RESTORE_LEFTOVERS: [&str; 2] = [".paperclipctl-old", ".paperclipctl-restoring"];

/// The user's choice on top of [`KNOWN`]: paths to include or exclude, as named there.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub include: BTreeSet<String>,
    pub exclude: BTreeSet<String>,
}

impl Selection {
    /// Refuses a name that is not a tree of [`KNOWN`] (parts cannot be left out: a restore
    /// needs them), naming the ones that are.
    pub fn check(&self) -> Result<(), String> {
        let trees: Vec<&str> = KNOWN
            .iter()
            .filter(|(_, class, _)| *class != Class::Part)
            .map(|(path, ..)| *path)
            .collect();
        for name in self.include.iter().chain(&self.exclude) {
            if !trees.contains(&name.as_str()) {
                return Err(format!(
                    "{name:?} is not a path this tool knows; one of: {}",
                    trees.join(", ")
                ));
            }
        }
        if let Some(both) = self.include.intersection(&self.exclude).next() {
            return Err(format!("{both:?} is both included and excluded"));
        }
        Ok(())
    }
}

/// Where each path found under the instance goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Paths packed into the instance files' tar.
    pub included: Vec<String>,
    /// Paths left out, known ones only.
    pub excluded: Vec<String>,
    /// Paths the tool does not know (included, and reported).
    pub unknown: Vec<String>,
}

/// Classes `found` (paths relative to the instance directory: its entries, and those of the
/// directories in [`LOOKED_INTO`] as `data/x`) under `selection`.
pub fn plan(found: &[String], selection: &Selection) -> Plan {
    let mut plan = Plan::default();
    for path in found {
        if RESTORE_LEFTOVERS.iter().any(|s| path.ends_with(s)) {
            continue;
        }
        if LOOKED_INTO.contains(&path.as_str()) {
            continue;
        }
        let class = KNOWN.iter().find(|(p, ..)| p == path).map(|(_, c, _)| *c);
        let class = match class {
            Some(class) => class,
            // A file of `secrets/` the app may add: kept, as the rest of that directory.
            None if path.starts_with("secrets/") => Class::In,
            None => {
                plan.unknown.push(path.clone());
                plan.included.push(path.clone());
                continue;
            }
        };
        let included = match class {
            Class::Part => continue,
            _ if selection.exclude.contains(path) => false,
            _ if selection.include.contains(path) => true,
            Class::In => true,
            Class::Optional | Class::Out => false,
        };
        if included {
            plan.included.push(path.clone());
        } else {
            plan.excluded.push(path.clone());
        }
    }
    // `--exclude secrets` leaves out the other secrets' files too.
    if selection.exclude.contains("secrets") {
        let (out, kept): (Vec<String>, Vec<String>) = plan
            .included
            .into_iter()
            .partition(|p| p.starts_with("secrets/"));
        plan.included = kept;
        plan.excluded.extend(out);
    }
    plan
}

/// What `backup` and `status` say about a path of the instance directory this version does not
/// know.
pub fn unknown_path_warning(path: &str) -> String {
    format!(
        "{path} in the instance directory is not known to this version of paperclipctl; \
         backups include it, but check whether a restore needs it"
    )
}

/// Lists the instance directory's entries and those of [`LOOKED_INTO`], one per line, relative
/// to the instance directory.
pub const LIST_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
for f in * .[!.]* ..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  printf '%s\n' "$f"
  case "$f" in data|secrets) [ -d "$f" ] && [ ! -L "$f" ] && for g in "$f"/* "$f"/.[!.]* "$f"/..?*; do
    [ -e "$g" ] || [ -L "$g" ] || continue; printf '%s\n' "$g"; done;; esac
done
exit 0"#;

/// Writes a tar of the paths given as arguments (relative to the instance directory) to stdout.
pub const TAR_SCRIPT: &str = r#"cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" || exit 3
command -v tar >/dev/null || { echo "the app image has no tar" >&2; exit 4; }
exec tar -cf - -- "$@""#;

#[cfg(test)]
mod tests {
    use super::*;

    fn found(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn known_trees_follow_their_class_and_unknown_ones_go_in_and_are_reported() {
        let found = found(&[
            "config.json",
            ".env",
            "secrets",
            "secrets/master.key",
            "secrets/decision-signing.key",
            "secrets/other.secret",
            "data",
            "data/storage",
            "data/backups",
            "data/new-thing",
            "companies",
            "workspaces",
            "db",
            "config.json.paperclipctl-old",
            "brand-new",
        ]);
        let plan = plan(&found, &Selection::default());
        assert_eq!(
            plan.included,
            [
                "secrets/other.secret",
                "data/storage",
                "data/new-thing",
                "companies",
                "brand-new"
            ]
        );
        assert_eq!(plan.excluded, ["data/backups", "workspaces", "db"]);
        assert_eq!(plan.unknown, ["data/new-thing", "brand-new"]);
    }

    #[test]
    fn the_user_includes_and_excludes_known_trees_only() {
        let selection = Selection {
            include: ["workspaces".to_string()].into(),
            exclude: ["data/storage".to_string(), "secrets".to_string()].into(),
        };
        selection.check().unwrap();
        let plan = plan(
            &found(&[
                "workspaces",
                "data/storage",
                "secrets/x",
                "secrets/master.key",
            ]),
            &selection,
        );
        assert_eq!(plan.included, ["workspaces"]);
        assert_eq!(plan.excluded, ["data/storage", "secrets/x"]);

        let bad = Selection {
            include: ["secrets/master.key".to_string()].into(),
            ..Selection::default()
        };
        assert!(
            bad.check()
                .unwrap_err()
                .contains("not a path this tool knows")
        );
    }
}
