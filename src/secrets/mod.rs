//! Paperclip's secrets in Infisical: make sure every key the profile's ExternalSecrets read
//! exists, so External Secrets can sync them into the cluster.
//!
//! The rules, in the order a user meets them:
//! - an existing key is never overwritten, unless it is named in `rotate`;
//! - a missing key gets a value from, in order: the environment or `--secret-file` (so an older
//!   install's value can be carried over), a random one when the profile says `generate: true`,
//!   or, for a required key, the caller's [`Prompt`] when there is one;
//! - a missing optional key with no value stays absent (the app starts without it);
//! - a missing required key with no value stops the run before anything is written, naming the
//!   key and how to provide it.
//!
//! [`dry_run`] and [`ensure`] decide with the same code; the dry run just stops
//! before the writes. Values never leave [`SecretValue`] except in the request that stores them:
//! plans, outcomes and errors name keys, never values.

mod api;
mod credentials;
mod error;
mod provided;
mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::profile::model::{SecretStore, Secrets};

pub use credentials::{Credentials, ENV_API_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET};
pub use error::SecretsError;
pub use provided::{Provided, Source};
pub use value::SecretValue;

use api::Session;

/// Where the secrets go: named in every plan line and error, so a user knows which project,
/// environment and folder a message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub host: String,
    pub project: String,
    pub environment: String,
    /// The folder, normalised (`/`, `/paperclip`).
    pub path: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "project {}, environment {}, folder {} at {}",
            self.project, self.environment, self.path, self.host
        )
    }
}

/// What the user hands in besides the profile.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Values for keys Infisical lacks (or for keys to rotate).
    pub provided: Provided,
    /// Keys (Infisical names) whose existing value is replaced.
    pub rotate: BTreeSet<String>,
}

/// Asks the person at the terminal for a value no other source has. The caller plugs in hidden
/// input (e.g. a password prompt); without a prompt, a missing required key is an error naming
/// the variable to set. `ask` blocks: prompts happen before any write, one key at a time.
pub trait Prompt: Send {
    /// The value for `request.key`, or `None` when the person enters nothing.
    fn ask(&mut self, request: &PromptRequest<'_>) -> std::io::Result<Option<SecretValue>>;
}

impl<F> Prompt for F
where
    F: FnMut(&PromptRequest<'_>) -> std::io::Result<Option<SecretValue>> + Send,
{
    fn ask(&mut self, request: &PromptRequest<'_>) -> std::io::Result<Option<SecretValue>> {
        self(request)
    }
}

/// What a prompt asks for.
#[derive(Debug, Clone)]
pub struct PromptRequest<'a> {
    /// The key's name in Infisical, which is also the variable that could provide it.
    pub key: &'a str,
    /// The Kubernetes Secrets (ExternalSecrets) that read the key.
    pub secrets: &'a [String],
    /// Whether the key exists and the value replaces it.
    pub rotate: bool,
}

/// What happens to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// It exists and stays as it is.
    Keep,
    /// It is missing and will be created.
    Create { source: Source },
    /// It exists and will be replaced (it was named in `rotate`).
    Rotate { source: Source },
    /// It is optional, missing, and nothing was provided: it stays absent.
    Absent,
    /// It is required (or to be rotated) and nothing can provide a value.
    Missing,
}

/// One key of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPlan {
    pub key: String,
    pub secrets: Vec<String>,
    pub optional: bool,
    #[serde(flatten)]
    pub action: Action,
}

impl fmt::Display for KeyPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.key, self.secrets.join(", "))?;
        match &self.action {
            Action::Keep => f.write_str("exists, kept"),
            Action::Create { source } => write!(f, "will be created, {source}"),
            Action::Rotate { source } => write!(f, "would be rotated, new value {source}"),
            Action::Absent => f.write_str("optional, stays absent (nothing provided)"),
            Action::Missing => write!(f, "missing: set {} or add it to a --secret-file", self.key),
        }
    }
}

/// What [`ensure`] would do, computed against Infisical without writing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub target: Target,
    /// Folders to create, outermost first.
    pub create_folders: Vec<String>,
    pub keys: Vec<KeyPlan>,
}

impl Plan {
    /// One line per folder and key, for the install plan and `--dry-run`.
    pub fn lines(&self) -> Vec<String> {
        self.create_folders
            .iter()
            .map(|folder| format!("create folder {folder}"))
            .chain(self.keys.iter().map(KeyPlan::to_string))
            .collect()
    }

    fn missing(&self) -> Vec<&KeyPlan> {
        self.keys
            .iter()
            .filter(|k| k.action == Action::Missing)
            .collect()
    }
}

/// What happened to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Done {
    Kept,
    Created {
        source: Source,
    },
    Rotated {
        source: Source,
    },
    /// Optional and not provided: left absent.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyOutcome {
    pub key: String,
    pub secrets: Vec<String>,
    #[serde(flatten)]
    pub done: Done,
}

impl fmt::Display for KeyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.key, self.secrets.join(", "))?;
        match &self.done {
            Done::Kept => f.write_str("kept"),
            Done::Created { source } => write!(f, "created, {source}"),
            Done::Rotated { source } => write!(f, "rotated, new value {source}"),
            Done::Skipped => f.write_str("skipped (optional, nothing provided)"),
        }
    }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub target: Target,
    pub created_folders: Vec<String>,
    pub keys: Vec<KeyOutcome>,
}

impl Outcome {
    /// One line per folder and key, for the install summary.
    pub fn lines(&self) -> Vec<String> {
        self.created_folders
            .iter()
            .map(|folder| format!("created folder {folder}"))
            .chain(self.keys.iter().map(KeyOutcome::to_string))
            .collect()
    }
}

/// Computes what [`ensure`] would do, reading Infisical but writing nothing. `interactive` says
/// whether a prompt would be available for values nothing else provides.
pub async fn dry_run(
    secrets: &Secrets,
    credentials: &Credentials,
    inputs: &Inputs,
    interactive: bool,
) -> Result<Plan, SecretsError> {
    survey(secrets, credentials, inputs, interactive)
        .await
        .map(|(_, plan)| plan)
}

/// Logs in, creates the missing folders of `secretsPath`, and creates (or rotates) the keys the
/// plan calls for. Fails before writing anything when a required key has no value.
pub async fn ensure(
    secrets: &Secrets,
    credentials: &Credentials,
    inputs: &Inputs,
    mut prompt: Option<&mut dyn Prompt>,
) -> Result<Outcome, SecretsError> {
    let (session, plan) = survey(secrets, credentials, inputs, prompt.is_some()).await?;
    missing_error(&plan.target, &plan.missing())?;

    // Every value is settled (prompts included) before the first write, so a refused prompt
    // leaves Infisical untouched.
    let mut values = Vec::new();
    let mut refused = Vec::new();
    for key in &plan.keys {
        let (Action::Create { source } | Action::Rotate { source }) = &key.action else {
            values.push(None);
            continue;
        };
        let value = match source {
            Source::Generated => Some(SecretValue::generate()?),
            Source::Environment | Source::File { .. } => inputs
                .provided
                .get(&key.key)
                .map(|(value, _)| value.clone()),
            Source::Prompt => {
                let request = PromptRequest {
                    key: &key.key,
                    secrets: &key.secrets,
                    rotate: matches!(key.action, Action::Rotate { .. }),
                };
                let prompt = prompt
                    .as_deref_mut()
                    .expect("a prompt source needs a prompt");
                prompt
                    .ask(&request)
                    .map_err(|e| SecretsError::Prompt {
                        key: key.key.clone(),
                        detail: e.to_string(),
                    })?
                    .filter(|v| !v.is_empty())
            }
        };
        if value.is_none() {
            refused.push(key);
        }
        values.push(value);
    }
    missing_error(&plan.target, &refused)?;

    for folder in &plan.create_folders {
        session.create_folder(folder).await?;
    }
    let mut keys = Vec::new();
    for (key, value) in plan.keys.iter().zip(values) {
        let done = match (&key.action, value) {
            (Action::Create { source }, Some(value)) => {
                if session.create_secret(&key.key, &value).await? {
                    Done::Created {
                        source: source.clone(),
                    }
                } else {
                    Done::Kept
                }
            }
            (Action::Rotate { source }, Some(value)) => {
                session.update_secret(&key.key, &value).await?;
                Done::Rotated {
                    source: source.clone(),
                }
            }
            (Action::Keep, _) => Done::Kept,
            (Action::Absent, _) => Done::Skipped,
            (Action::Missing, _) | (_, None) => unreachable!("checked before the first write"),
        };
        keys.push(KeyOutcome {
            key: key.key.clone(),
            secrets: key.secrets.clone(),
            done,
        });
    }
    Ok(Outcome {
        target: plan.target,
        created_folders: plan.create_folders,
        keys,
    })
}

/// Reads the values of `keys` from the store's project, environment and folder, for a login
/// this machine needs itself (the shell's registry credentials); keys Infisical lacks are left
/// out of the answer.
pub async fn read(
    store: &SecretStore,
    credentials: &Credentials,
    keys: &[&str],
) -> Result<BTreeMap<String, SecretValue>, SecretsError> {
    let target = Target {
        host: credentials.host().to_string(),
        project: store.project_slug.clone(),
        environment: store.environment_slug.clone(),
        path: normalize_path(&store.secrets_path)?,
    };
    let session = Session::open(credentials, target).await?;
    let mut values = BTreeMap::new();
    for key in keys {
        if let Some(value) = session.value(key).await? {
            values.insert(key.to_string(), value);
        }
    }
    Ok(values)
}

/// Logs in and reads what exists, then decides per key.
async fn survey(
    secrets: &Secrets,
    credentials: &Credentials,
    inputs: &Inputs,
    interactive: bool,
) -> Result<(Session, Plan), SecretsError> {
    let wanted = wanted(secrets);
    let unknown: Vec<&str> = inputs
        .rotate
        .iter()
        .filter(|key| !wanted.iter().any(|w| &w.key == *key))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = wanted.iter().map(|w| w.key.as_str()).collect();
        return Err(SecretsError::UnknownRotate {
            keys: unknown.join(", "),
            help: format!("the profile's keys are: {}", known.join(", ")),
        });
    }
    let store = &secrets.store;
    let target = Target {
        host: credentials.host().to_string(),
        project: store.project_slug.clone(),
        environment: store.environment_slug.clone(),
        path: normalize_path(&store.secrets_path)?,
    };
    let session = Session::open(credentials, target).await?;
    let create_folders = session.missing_folders().await?;
    // Infisical lists nothing for a folder that does not exist: skip the call.
    let existing = if create_folders.is_empty() {
        session.keys().await?
    } else {
        BTreeSet::new()
    };
    let plan = Plan {
        target: session.target.clone(),
        create_folders,
        keys: decide(&wanted, &existing, inputs, interactive),
    };
    Ok((session, plan))
}

/// A key the profile needs, merged over the ExternalSecrets that read it: required when any of
/// them is, generated when any of them says so.
#[derive(Debug)]
struct Wanted {
    key: String,
    secrets: Vec<String>,
    optional: bool,
    generate: bool,
}

fn wanted(secrets: &Secrets) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for es in &secrets.external_secrets {
        for key in &es.keys {
            let name = es.name.to_string();
            match wanted.iter_mut().find(|w| w.key == key.remote.as_str()) {
                Some(w) => {
                    if !w.secrets.contains(&name) {
                        w.secrets.push(name);
                    }
                    w.optional &= es.optional;
                    w.generate |= key.generate;
                }
                None => wanted.push(Wanted {
                    key: key.remote.to_string(),
                    secrets: vec![name],
                    optional: es.optional,
                    generate: key.generate,
                }),
            }
        }
    }
    wanted
}

/// The per-key decision, shared by the dry run and the real run. A provided value wins over
/// generating one, so an existing install's secret can be carried over.
fn decide(
    wanted: &[Wanted],
    existing: &BTreeSet<String>,
    inputs: &Inputs,
    interactive: bool,
) -> Vec<KeyPlan> {
    wanted
        .iter()
        .map(|w| {
            let exists = existing.contains(&w.key);
            let rotate = inputs.rotate.contains(&w.key);
            let source = if let Some((_, source)) = inputs.provided.get(&w.key) {
                Some(source.clone())
            } else if w.generate {
                Some(Source::Generated)
            } else if interactive && (!w.optional || (exists && rotate)) {
                Some(Source::Prompt)
            } else {
                None
            };
            let action = match (exists, rotate, source) {
                (true, false, _) => Action::Keep,
                (true, true, Some(source)) => Action::Rotate { source },
                (false, _, Some(source)) => Action::Create { source },
                (false, _, None) if w.optional => Action::Absent,
                (_, _, None) => Action::Missing,
            };
            KeyPlan {
                key: w.key.clone(),
                secrets: w.secrets.clone(),
                optional: w.optional,
                action,
            }
        })
        .collect()
}

fn missing_error(target: &Target, missing: &[&KeyPlan]) -> Result<(), SecretsError> {
    if missing.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = missing
        .iter()
        .map(|k| format!("{} (for {})", k.key, k.secrets.join(", ")))
        .collect();
    let example = &missing[0].key;
    Err(SecretsError::MissingKeys {
        count: missing.len(),
        keys: keys.join(", "),
        target: target.clone(),
        help: format!(
            "provide each one as an environment variable of the same name (export {example}=…) \
             or as a {example}=… line in a file passed with --secret-file; run in a terminal to \
             be asked instead"
        ),
    })
}

/// `secretsPath` as Infisical stores it: `/` or `/a/b`, each folder of letters, digits, `-`, `_`.
fn normalize_path(raw: &str) -> Result<String, SecretsError> {
    let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    let valid = segments.iter().all(|s| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !valid {
        return Err(SecretsError::InvalidPath {
            path: raw.to_string(),
        });
    }
    Ok(format!("/{}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::model::{ExternalSecret, SecretKey};

    fn key(remote: &str, generate: bool) -> SecretKey {
        SecretKey {
            remote: remote.parse().unwrap(),
            target: None,
            generate,
        }
    }

    fn external_secret(name: &str, optional: bool, keys: Vec<SecretKey>) -> ExternalSecret {
        ExternalSecret {
            name: name.parse().unwrap(),
            optional,
            keys,
            static_values: Default::default(),
        }
    }

    /// The shape of the frank profile: one provided key, one generated, two optional.
    fn secrets() -> Secrets {
        Secrets {
            external_secrets: vec![
                external_secret("paperclip-llm-key", false, vec![key("LLM_KEY", false)]),
                external_secret("paperclip-auth", false, vec![key("AUTH_SECRET", true)]),
                external_secret("paperclip-brave", true, vec![key("BRAVE_KEY", false)]),
                external_secret("paperclip-resend", true, vec![key("RESEND_KEY", false)]),
            ],
            ..Secrets::default()
        }
    }

    fn actions(plan: &[KeyPlan]) -> Vec<(&str, &Action)> {
        plan.iter().map(|k| (k.key.as_str(), &k.action)).collect()
    }

    fn provided(pairs: &[(&str, &str)]) -> Provided {
        let secrets = secrets();
        Provided::gather(&secrets, None, |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn existing(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_fresh_folder_gets_generated_and_provided_keys_and_optional_ones_stay_absent() {
        let inputs = Inputs {
            provided: provided(&[("LLM_KEY", "sk-1"), ("RESEND_KEY", "re-1")]),
            rotate: BTreeSet::new(),
        };
        let plan = decide(&wanted(&secrets()), &existing(&[]), &inputs, false);
        assert_eq!(
            actions(&plan),
            [
                (
                    "LLM_KEY",
                    &Action::Create {
                        source: Source::Environment
                    }
                ),
                (
                    "AUTH_SECRET",
                    &Action::Create {
                        source: Source::Generated
                    }
                ),
                ("BRAVE_KEY", &Action::Absent),
                (
                    "RESEND_KEY",
                    &Action::Create {
                        source: Source::Environment
                    }
                ),
            ]
        );
    }

    #[test]
    fn existing_keys_are_kept_even_when_a_value_is_provided_unless_rotated() {
        let all = existing(&["LLM_KEY", "AUTH_SECRET", "BRAVE_KEY"]);
        let mut inputs = Inputs {
            provided: provided(&[("LLM_KEY", "sk-new")]),
            rotate: BTreeSet::new(),
        };
        let plan = decide(&wanted(&secrets()), &all, &inputs, false);
        assert!(plan[..3].iter().all(|k| k.action == Action::Keep));

        inputs.rotate = ["AUTH_SECRET", "BRAVE_KEY"].map(String::from).into();
        let plan = decide(&wanted(&secrets()), &all, &inputs, false);
        assert_eq!(
            plan[1].action,
            Action::Rotate {
                source: Source::Generated
            }
        );
        // Not generated and nothing provided: rotating it needs a value.
        assert_eq!(plan[2].action, Action::Missing);
        let interactive = decide(&wanted(&secrets()), &all, &inputs, true);
        assert_eq!(
            interactive[2].action,
            Action::Rotate {
                source: Source::Prompt
            }
        );
    }

    #[test]
    fn a_required_key_without_a_value_is_missing_or_prompted_for() {
        let inputs = Inputs::default();
        let plan = decide(&wanted(&secrets()), &existing(&[]), &inputs, false);
        assert_eq!(plan[0].action, Action::Missing);
        assert_eq!(
            plan[0].to_string(),
            "LLM_KEY (paperclip-llm-key): missing: set LLM_KEY or add it to a --secret-file"
        );
        let plan = decide(&wanted(&secrets()), &existing(&[]), &inputs, true);
        assert_eq!(
            plan[0].action,
            Action::Create {
                source: Source::Prompt
            }
        );
        // Optional keys are never prompted for.
        assert_eq!(plan[2].action, Action::Absent);
    }

    #[test]
    fn a_provided_value_wins_over_generating_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("carry-over.env");
        std::fs::write(&file, "AUTH_SECRET=from-the-old-install\n").unwrap();
        let inputs = Inputs {
            provided: Provided::gather(&secrets(), Some(&file), |_| None).unwrap(),
            rotate: BTreeSet::new(),
        };
        let plan = decide(&wanted(&secrets()), &existing(&[]), &inputs, false);
        assert_eq!(
            plan[1].action,
            Action::Create {
                source: Source::File { path: file.clone() }
            }
        );
    }

    #[test]
    fn a_key_read_by_two_secrets_is_required_when_either_is() {
        let secrets = Secrets {
            external_secrets: vec![
                external_secret("a", true, vec![key("SHARED", false)]),
                external_secret("b", false, vec![key("SHARED", false)]),
            ],
            ..Secrets::default()
        };
        let wanted = wanted(&secrets);
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].secrets, ["a", "b"]);
        assert!(!wanted[0].optional);
    }

    #[test]
    fn secret_paths_are_normalised_and_checked() {
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("").unwrap(), "/");
        assert_eq!(normalize_path("paperclip/app/").unwrap(), "/paperclip/app");
        assert!(normalize_path("/pa perclip").is_err());
    }
}
