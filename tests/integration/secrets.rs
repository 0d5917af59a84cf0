//! Provisioning Paperclip's secrets in Infisical, against the harness's Infisical: what a user
//! sees on a first install, on a re-run, when rotating, and when something is wrong.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use infisical::secrets::ListSecretsRequest;
use miette::Diagnostic;
use paperclipctl::profile::model::Secrets;
use paperclipctl::secrets::{
    self, Action, Credentials, Done, Inputs, Prompt, PromptRequest, Provided, SecretValue,
    SecretsError, Source,
};

use crate::harness::infisical::{Fault, Infisical, Project, Request};

const FOLDER: &str = "/paperclip/app";
const LLM_KEY: &str = "PAPERCLIP_LITELLM_KEY";
const AUTH_SECRET: &str = "BETTER_AUTH_SECRET";
const BRAVE_KEY: &str = "BRAVE_SEARCH_KEY_PAPERCLIP";
const RESEND_KEY: &str = "EMAIL_RESEND_API_KEY";

/// The secrets part of a profile like frank's, pointed at `project`'s prod environment and a
/// folder two levels deep that does not exist yet.
fn profile_secrets(infisical: &Infisical, project: &Project) -> Secrets {
    let yaml = format!(
        r#"
store:
  hostApi: {host}
  projectSlug: {slug}
  environmentSlug: prod
  secretsPath: {FOLDER}
externalSecrets:
  - name: paperclip-llm-key
    keys: [{{ remote: {LLM_KEY}, as: OPENAI_API_KEY }}]
    static: {{ OPENAI_BASE_URL: "http://litellm:4000" }}
  - name: paperclip-auth
    keys: [{{ remote: {AUTH_SECRET}, generate: true }}]
  - name: paperclip-brave
    optional: true
    keys: [{{ remote: {BRAVE_KEY}, as: BRAVE_API_KEY }}]
  - name: paperclip-resend
    optional: true
    keys: [{{ remote: {RESEND_KEY}, as: RESEND_API_KEY }}]
"#,
        host = infisical.api_url(),
        slug = project.slug,
    );
    serde_yaml_ng::from_str(&yaml).expect("a valid secrets section")
}

/// A fresh project of its own for one test, and the profile's secrets pointed at it.
async fn setup(prefix: &str) -> (Infisical, Project, Secrets) {
    let infisical = Infisical::new();
    let project = infisical.project(prefix).await;
    let secrets = profile_secrets(&infisical, &project);
    (infisical, project, secrets)
}

fn credentials(infisical: &Infisical) -> Credentials {
    let identity = infisical.identity();
    Credentials::new(
        infisical.api_url(),
        &identity.client_id,
        SecretValue::new(identity.client_secret.clone()),
    )
}

/// Inputs as if `pairs` were exported in the environment.
fn inputs(secrets: &Secrets, pairs: &[(&str, &str)]) -> Inputs {
    let provided = Provided::gather(secrets, None, |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    })
    .expect("no secret file to read");
    Inputs {
        provided,
        rotate: BTreeSet::new(),
    }
}

/// The values stored in the test folder, read back with the official client.
async fn stored(infisical: &Infisical, project: &Project) -> Vec<(String, String)> {
    let client = infisical.client(infisical.identity()).await;
    let request = ListSecretsRequest::builder(&project.id, "prod")
        .path(FOLDER)
        .expand_secret_references(false)
        .build();
    let mut secrets: Vec<(String, String)> = client
        .secrets()
        .list(request)
        .await
        .expect("list the stored secrets")
        .into_iter()
        .map(|s| (s.secret_key, s.secret_value))
        .collect();
    secrets.sort();
    secrets
}

fn value_of<'a>(stored: &'a [(String, String)], key: &str) -> &'a str {
    &stored
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} is not stored: {stored:?}"))
        .1
}

/// The requests about `project` that change something, from the `from`th request on.
fn writes(requests: &[Request], from: usize) -> Vec<String> {
    requests[from..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect()
}

fn done_of(outcome: &secrets::Outcome) -> Vec<(&str, &Done)> {
    outcome
        .keys
        .iter()
        .map(|k| (k.key.as_str(), &k.done))
        .collect()
}

#[tokio::test]
async fn a_first_run_creates_the_folder_and_the_keys_and_leaves_optional_ones_absent() {
    let (infisical, project, secrets) = setup("secrets-first").await;
    let inputs = inputs(&secrets, &[(LLM_KEY, "sk-litellm-first-run")]);

    let outcome = secrets::ensure(&secrets, &credentials(&infisical), &inputs, None)
        .await
        .expect("the first run succeeds");

    assert_eq!(outcome.created_folders, ["/paperclip", FOLDER]);
    let generated = Done::Created {
        source: Source::Generated,
    };
    let from_env = Done::Created {
        source: Source::Environment,
    };
    assert_eq!(
        done_of(&outcome),
        [
            (LLM_KEY, &from_env),
            (AUTH_SECRET, &generated),
            (BRAVE_KEY, &Done::Skipped),
            (RESEND_KEY, &Done::Skipped),
        ]
    );
    let stored = stored(&infisical, &project).await;
    let keys: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, [AUTH_SECRET, LLM_KEY], "optional keys stay absent");
    assert_eq!(value_of(&stored, LLM_KEY), "sk-litellm-first-run");
    let auth = value_of(&stored, AUTH_SECRET);
    assert!(auth.len() >= 43, "a generated value of 32 random bytes");
    assert!(
        auth.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "generated values are URL-safe"
    );
    assert_eq!(
        outcome.lines(),
        [
            "created folder /paperclip",
            "created folder /paperclip/app",
            "PAPERCLIP_LITELLM_KEY (paperclip-llm-key): created, from the environment",
            "BETTER_AUTH_SECRET (paperclip-auth): created, generated",
            "BRAVE_SEARCH_KEY_PAPERCLIP (paperclip-brave): skipped (optional, nothing provided)",
            "EMAIL_RESEND_API_KEY (paperclip-resend): skipped (optional, nothing provided)",
        ]
    );
}

#[tokio::test]
async fn a_second_run_changes_nothing() {
    let (infisical, project, secrets) = setup("secrets-rerun").await;
    let credentials = credentials(&infisical);
    let inputs = inputs(&secrets, &[(LLM_KEY, "sk-litellm-rerun")]);
    secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect("the first run succeeds");
    let before = stored(&infisical, &project).await;
    let seen = infisical.requests(&project).await.len();

    let outcome = secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect("the second run succeeds");

    assert!(outcome.created_folders.is_empty());
    assert_eq!(
        done_of(&outcome),
        [
            (LLM_KEY, &Done::Kept),
            (AUTH_SECRET, &Done::Kept),
            (BRAVE_KEY, &Done::Skipped),
            (RESEND_KEY, &Done::Skipped),
        ]
    );
    let requests = infisical.requests(&project).await;
    assert!(requests.len() > seen, "the second run did read Infisical");
    assert_eq!(writes(&requests, seen), Vec::<String>::new());
    assert_eq!(stored(&infisical, &project).await, before);
}

#[tokio::test]
async fn an_existing_value_is_never_overwritten_and_rotate_replaces_it() {
    let (infisical, project, secrets) = setup("secrets-rotate").await;
    let credentials = credentials(&infisical);
    // An install made earlier, by hand or by an older paperclipctl.
    let setup = inputs(
        &secrets,
        &[(LLM_KEY, "sk-existing"), (AUTH_SECRET, "auth-existing")],
    );
    secrets::ensure(&secrets, &credentials, &setup, None)
        .await
        .expect("the setup run succeeds");

    let mut inputs = inputs(&secrets, &[(LLM_KEY, "sk-new"), (AUTH_SECRET, "auth-new")]);
    let outcome = secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect("a run with other values succeeds");
    assert_eq!(
        done_of(&outcome)[..2],
        [(LLM_KEY, &Done::Kept), (AUTH_SECRET, &Done::Kept)]
    );
    let stored_now = stored(&infisical, &project).await;
    assert_eq!(value_of(&stored_now, LLM_KEY), "sk-existing");
    assert_eq!(value_of(&stored_now, AUTH_SECRET), "auth-existing");

    // Rotating a generated key without a provided value generates a new one.
    inputs = self::inputs(&secrets, &[(LLM_KEY, "sk-new")]);
    inputs.rotate.insert(AUTH_SECRET.to_string());
    let outcome = secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect("the rotation succeeds");
    assert_eq!(
        done_of(&outcome)[..2],
        [
            (LLM_KEY, &Done::Kept),
            (
                AUTH_SECRET,
                &Done::Rotated {
                    source: Source::Generated
                }
            ),
        ]
    );
    let rotated = stored(&infisical, &project).await;
    assert_eq!(value_of(&rotated, LLM_KEY), "sk-existing");
    let auth = value_of(&rotated, AUTH_SECRET);
    assert_ne!(auth, "auth-existing");
    assert!(auth.len() >= 43);
}

#[tokio::test]
async fn a_missing_required_key_fails_naming_it_before_anything_is_written() {
    let (infisical, project, secrets) = setup("secrets-missing").await;

    let error = secrets::ensure(
        &secrets,
        &credentials(&infisical),
        &inputs(&secrets, &[]),
        None,
    )
    .await
    .expect_err("a required key without a value fails");

    assert!(
        matches!(error, SecretsError::MissingKeys { count: 1, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(LLM_KEY), "{message}");
    assert!(message.contains("paperclip-llm-key"), "{message}");
    assert!(
        message.contains(&project.slug) && message.contains(FOLDER),
        "{message}"
    );
    assert!(
        !message.contains(BRAVE_KEY),
        "optional keys are not required: {message}"
    );
    let help = error.help().expect("a help line").to_string();
    assert!(help.contains(&format!("export {LLM_KEY}=")), "{help}");
    assert!(help.contains("--secret-file"), "{help}");
    // Not even the generated key or the folder: the run stops before the first write.
    assert_eq!(
        writes(&infisical.requests(&project).await, 0),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_prompt_supplies_what_nothing_else_provides() {
    let (infisical, project, secrets) = setup("secrets-prompt").await;
    let mut asked = Vec::new();
    let mut prompt = |request: &PromptRequest<'_>| -> std::io::Result<Option<SecretValue>> {
        asked.push((request.key.to_string(), request.secrets.to_vec()));
        Ok(Some(SecretValue::new("sk-typed-in")))
    };

    let outcome = secrets::ensure(
        &secrets,
        &credentials(&infisical),
        &inputs(&secrets, &[]),
        Some(&mut prompt as &mut dyn Prompt),
    )
    .await
    .expect("the prompted run succeeds");

    assert_eq!(
        asked,
        [(LLM_KEY.to_string(), vec!["paperclip-llm-key".to_string()])],
        "only the required key nothing provides is asked for"
    );
    assert_eq!(
        done_of(&outcome)[0],
        (
            LLM_KEY,
            &Done::Created {
                source: Source::Prompt
            }
        )
    );
    assert_eq!(
        value_of(&stored(&infisical, &project).await, LLM_KEY),
        "sk-typed-in"
    );
}

#[tokio::test]
async fn the_dry_run_reports_each_key_and_writes_nothing() {
    let (infisical, project, secrets) = setup("secrets-dry-run").await;
    let credentials = credentials(&infisical);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("paperclip.env");
    std::fs::write(&file, format!("{LLM_KEY}=sk-from-file\n")).unwrap();
    let provided = Provided::gather(&secrets, Some(&file), |_| None).expect("a valid file");
    let inputs = Inputs {
        provided,
        rotate: BTreeSet::new(),
    };

    let plan = secrets::dry_run(&secrets, &credentials, &inputs, false)
        .await
        .expect("the dry run succeeds");

    assert_eq!(plan.create_folders, ["/paperclip", FOLDER]);
    let lines = plan.lines();
    assert_eq!(lines[0], "create folder /paperclip");
    assert_eq!(
        lines[2],
        format!(
            "PAPERCLIP_LITELLM_KEY (paperclip-llm-key): will be created, from {}",
            file.display()
        )
    );
    assert_eq!(
        lines[3],
        "BETTER_AUTH_SECRET (paperclip-auth): will be created, generated"
    );
    assert_eq!(
        lines[4],
        "BRAVE_SEARCH_KEY_PAPERCLIP (paperclip-brave): optional, stays absent (nothing provided)"
    );
    assert_eq!(
        writes(&infisical.requests(&project).await, 0),
        Vec::<String>::new()
    );

    // Once installed, the dry run of a rotation says which key would change.
    secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect("the install succeeds");
    let mut rotation = inputs.clone();
    rotation.rotate.insert(AUTH_SECRET.to_string());
    let seen = infisical.requests(&project).await.len();
    let plan = secrets::dry_run(&secrets, &credentials, &rotation, false)
        .await
        .expect("the dry run succeeds");
    let actions: Vec<&Action> = plan.keys.iter().map(|k| &k.action).collect();
    assert_eq!(
        actions[..2],
        [
            &Action::Keep,
            &Action::Rotate {
                source: Source::Generated
            }
        ]
    );
    assert_eq!(
        plan.lines()[1],
        "BETTER_AUTH_SECRET (paperclip-auth): would be rotated, new value generated"
    );
    assert_eq!(
        writes(&infisical.requests(&project).await, seen),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_rate_limited_request_is_retried_after_the_wait_infisical_asks_for() {
    let (infisical, project, secrets) = setup("secrets-429").await;
    infisical
        .inject(&project, Fault::status(429).retry_after(1))
        .await;
    let started = Instant::now();

    secrets::ensure(
        &secrets,
        &credentials(&infisical),
        &inputs(&secrets, &[(LLM_KEY, "sk-after-429")]),
        None,
    )
    .await
    .expect("the run succeeds once the rate limit lifts");

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as long as Retry-After asked"
    );
    let requests = infisical.requests(&project).await;
    assert_eq!(requests[0].status, 429);
    assert_eq!(
        (requests[1].path.as_str(), requests[1].status),
        (requests[0].path.as_str(), 200),
        "the same request, retried"
    );
    assert_eq!(
        value_of(&stored(&infisical, &project).await, LLM_KEY),
        "sk-after-429"
    );
}

#[tokio::test]
async fn a_persistent_server_error_fails_with_a_message_naming_where() {
    let (infisical, project, secrets) = setup("secrets-503").await;
    infisical
        .inject(&project, Fault::status(503).times(4))
        .await;

    let error = secrets::ensure(
        &secrets,
        &credentials(&infisical),
        &inputs(&secrets, &[(LLM_KEY, "sk-never-written")]),
        None,
    )
    .await
    .expect_err("a failing server fails the run");

    assert!(
        matches!(
            error,
            SecretsError::Unavailable {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    for part in [
        "503",
        "4 attempt(s)",
        &project.slug,
        "environment prod",
        FOLDER,
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let help = error.help().expect("a help line").to_string();
    assert!(help.contains("run the command again"), "{help}");
    let requests = infisical.requests(&project).await;
    assert_eq!(
        requests.len(),
        4,
        "four attempts, then it stops: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.status == 503));
}

#[tokio::test]
async fn an_identity_outside_the_project_is_told_to_get_access() {
    let (infisical, project, secrets) = setup("secrets-403").await;
    let stranger = infisical.new_identity().await;
    let credentials = Credentials::new(
        infisical.api_url(),
        &stranger.client_id,
        SecretValue::new(stranger.client_secret.clone()),
    );

    let error = secrets::ensure(&secrets, &credentials, &inputs(&secrets, &[]), None)
        .await
        .expect_err("an identity without access fails");

    assert!(
        matches!(error, SecretsError::NoAccess { status: 403, .. }),
        "{error:?}"
    );
    let help = error.help().expect("a help line").to_string();
    assert!(
        help.contains(&format!(
            "add the machine identity to project {}",
            project.slug
        )),
        "{help}"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_the_login_naming_the_variables_to_check() {
    let (infisical, _project, secrets) = setup("secrets-401").await;
    let credentials = Credentials::new(
        infisical.api_url(),
        &infisical.identity().client_id,
        SecretValue::new("not-the-secret"),
    );

    let error = secrets::ensure(&secrets, &credentials, &inputs(&secrets, &[]), None)
        .await
        .expect_err("a wrong client secret fails");

    assert!(
        matches!(error, SecretsError::LoginRejected { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(infisical.api_url()), "{error}");
    let help = error.help().expect("a help line").to_string();
    assert!(
        help.contains("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"),
        "{help}"
    );
}

#[test]
fn a_bad_secret_file_line_is_reported_by_file_and_line_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("paperclip.env");
    std::fs::write(
        &file,
        "# keys for paperclip\nPAPERCLIP_LITELLM_KEY=sk-fine\nsk-pasted-canary-value\n",
    )
    .unwrap();

    let error = Provided::gather(&Secrets::default(), Some(&file), |_| None)
        .expect_err("a line without KEY= is an error");

    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}:3: ", file.display())),
        "{message}"
    );
    let everything = format!(
        "{error:?} {message} {:?}",
        error.help().map(|h| h.to_string())
    );
    assert!(!everything.contains("canary"), "{everything}");
    assert!(!everything.contains("sk-fine"), "{everything}");
}

/// Every value the flow handles, provided, generated or credential, stays out of everything it
/// prints or returns: plans, outcomes, their JSON, and errors (including a write that fails after
/// the value was sent).
#[tokio::test]
async fn no_secret_value_appears_in_any_output() {
    const CANARY: &str = "canary-7c1e-do-not-print";
    let (infisical, project, secrets) = setup("secrets-canary").await;
    let credentials = credentials(&infisical);
    let mut inputs = inputs(&secrets, &[(LLM_KEY, CANARY), (RESEND_KEY, CANARY)]);
    let mut outputs = vec![format!("{credentials:?}"), format!("{inputs:?}")];

    let plan = secrets::dry_run(&secrets, &credentials, &inputs, false)
        .await
        .expect("the dry run succeeds");
    outputs.extend([
        format!("{plan:?}"),
        plan.lines().join("\n"),
        serde_json::to_string(&plan).unwrap(),
    ]);
    let outcome = secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect("the run succeeds");
    outputs.extend([
        format!("{outcome:?}"),
        outcome.lines().join("\n"),
        serde_json::to_string(&outcome).unwrap(),
    ]);
    let stored = stored(&infisical, &project).await;
    assert_eq!(value_of(&stored, LLM_KEY), CANARY, "the canary was stored");
    let generated = value_of(&stored, AUTH_SECRET).to_string();

    // A rotation whose write keeps failing after the new value was sent.
    inputs.rotate.insert(LLM_KEY.to_string());
    infisical
        .inject(
            &project,
            Fault::status(500)
                .times(4)
                .on("PATCH", &format!("/api/v3/secrets/raw/{LLM_KEY}")),
        )
        .await;
    let failed = secrets::ensure(&secrets, &credentials, &inputs, None)
        .await
        .expect_err("the failing rotation fails");
    assert!(
        matches!(failed, SecretsError::Unavailable { status: 500, .. }),
        "{failed:?}"
    );
    // And errors raised before any write: a rotation without a value, a rejected login.
    let mut no_value = self::inputs(&secrets, &[]);
    no_value.rotate.insert(LLM_KEY.to_string());
    let missing = secrets::ensure(&secrets, &credentials, &no_value, None)
        .await
        .expect_err("rotating a key without a value fails");
    let wrong = Credentials::new(infisical.api_url(), "nobody", SecretValue::new(CANARY));
    let rejected = secrets::ensure(&secrets, &wrong, &inputs, None)
        .await
        .expect_err("a wrong login fails");
    for error in [failed, missing, rejected] {
        outputs.extend([
            format!("{error:?}"),
            error.to_string(),
            format!("{:?}", miette::Report::new(error)),
        ]);
    }

    let client_secret = &infisical.identity().client_secret;
    for output in &outputs {
        assert!(
            !output.contains(CANARY),
            "a provided value leaked: {output}"
        );
        assert!(
            !output.contains(&generated),
            "a generated value leaked: {output}"
        );
        assert!(
            !output.contains(client_secret),
            "the client secret leaked: {output}"
        );
    }
}
