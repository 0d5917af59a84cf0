//! The calls paperclipctl makes to Infisical, with retries and errors that say where and what.
//!
//! Login goes through the official `infisical` crate. Every later call goes through the crate's
//! logged-in HTTP client (`Client::http_client`, which carries the access token) against the same
//! base URL, rather than through its `secrets()` methods, because those:
//! - turn every HTTP error into a status and a body, dropping the `Retry-After` header a 429
//!   comes with, so a rate-limited call could not wait as long as the server asks;
//! - have no folder endpoints and no project lookup by slug (the profile names the project by
//!   slug; the secret endpoints want its id);
//! - read secret values into memory just to learn which keys exist.
//!
//! Paths follow Infisical's public API reference: `GET /api/v1/projects/slug/{slug}`,
//! `GET|POST /api/v2/folders`, `GET /api/v3/secrets/raw`, `POST|PATCH /api/v3/secrets/raw/{key}`.

use std::collections::BTreeSet;
use std::time::Duration;

use infisical::{AuthMethod, InfisicalError};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Target;
use super::credentials::Credentials;
use super::error::SecretsError;
use super::value::SecretValue;

/// How long calls keep trying: a failing server gets about 3.5 s (four attempts) to recover
/// before the user hears about it, and no call waits past a minute whatever `Retry-After` asks.
const RETRY: Policy = Policy {
    attempts: 4,
    first_backoff: Duration::from_millis(500),
    deadline: Duration::from_secs(60),
};
/// One request's limit; the crate's default (10 s) is short for a self-hosted server under load.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Server messages quoted in errors are cut here: a message is for orientation, not a dump.
const MAX_MESSAGE: usize = 300;

/// A logged-in connection to one project, environment and folder.
pub(crate) struct Session {
    client: infisical::Client,
    project_id: String,
    pub target: Target,
}

struct Policy {
    /// Attempts per call, counting the first.
    attempts: u32,
    /// The wait after the first failed attempt without `Retry-After`; doubled after each.
    first_backoff: Duration,
    /// No call, retries included, goes on longer than this.
    deadline: Duration,
}

/// How one call ended, after its retries.
struct Failure {
    kind: FailureKind,
    attempts: u32,
}

enum FailureKind {
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    Transport {
        detail: String,
    },
}

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    /// Worth trying again: 429, 5xx, a timeout or a refused connection.
    Retry(FailureKind),
    Fail(FailureKind),
}

impl Session {
    /// Logs in and finds the target's project and environment.
    pub async fn open(credentials: &Credentials, target: Target) -> Result<Session, SecretsError> {
        let client = infisical::Client::builder()
            .base_url(credentials.host())
            .user_agent(concat!("paperclipctl/", env!("CARGO_PKG_VERSION")))
            .request_timeout(REQUEST_TIMEOUT)
            .build()
            .await
            .map_err(|e| SecretsError::Unreachable {
                host: target.host.clone(),
                operation: "set up an HTTP client".into(),
                detail: e.to_string(),
            })?;
        let mut session = Session {
            client,
            project_id: String::new(),
            target,
        };
        session.login(credentials).await?;
        session.project_id = session.project().await?;
        Ok(session)
    }

    async fn login(&mut self, credentials: &Credentials) -> Result<(), SecretsError> {
        let secret = credentials.client_secret();
        let client = &mut self.client;
        let result = with_retries(&RETRY, async || {
            let auth = AuthMethod::new_universal_auth(credentials.client_id(), secret.expose());
            match client.login(auth).await {
                Ok(()) => Attempt::Done(()),
                Err(InfisicalError::HttpError { status, message }) => {
                    // The crate keeps no headers, so a rate-limited login backs off on its own
                    // schedule instead of Retry-After.
                    status_attempt(status, message_of(&message, Some(secret)), None)
                }
                Err(InfisicalError::RequestError(e)) => transport_attempt(&e),
                Err(other) => Attempt::Fail(FailureKind::Transport {
                    detail: other.to_string(),
                }),
            }
        })
        .await;
        result.map_err(|failure| match failure.kind {
            FailureKind::Status {
                status: status @ (400 | 401 | 403 | 404 | 422),
                message,
                ..
            } => SecretsError::LoginRejected {
                host: self.target.host.clone(),
                status,
                message,
            },
            _ => self.error("log in with universal auth", failure),
        })
    }

    /// The project's id, once its slug and environment are known to exist.
    async fn project(&self) -> Result<String, SecretsError> {
        #[derive(Deserialize)]
        struct Project {
            id: String,
            #[serde(default)]
            environments: Vec<Environment>,
        }
        #[derive(Deserialize)]
        struct Environment {
            slug: String,
        }
        let slug = &self.target.project;
        let url = format!("{}/api/v1/projects/slug/{slug}", self.client.base_url);
        let project: Project =
            self.call(Method::GET, &url, None, None)
                .await
                .map_err(|failure| match failure.kind {
                    FailureKind::Status { status: 404, .. } => SecretsError::ProjectNotFound {
                        host: self.target.host.clone(),
                        project: slug.clone(),
                    },
                    _ => self.error("look up the project", failure),
                })?;
        let environments: Vec<&str> = project
            .environments
            .iter()
            .map(|e| e.slug.as_str())
            .collect();
        if !environments.contains(&self.target.environment.as_str()) {
            return Err(SecretsError::EnvironmentNotFound {
                project: slug.clone(),
                environment: self.target.environment.clone(),
                help: format!(
                    "set secrets.store.environmentSlug to one of the project's environments: {}",
                    environments.join(", ")
                ),
            });
        }
        Ok(project.id)
    }

    /// The folders of the target path that do not exist yet, outermost first (`/a`, `/a/b`).
    pub async fn missing_folders(&self) -> Result<Vec<String>, SecretsError> {
        #[derive(Deserialize)]
        struct Folders {
            folders: Vec<Folder>,
        }
        #[derive(Deserialize)]
        struct Folder {
            name: String,
        }
        let mut parent = "/".to_string();
        let segments: Vec<&str> = segments(&self.target.path).collect();
        for (depth, name) in segments.iter().enumerate() {
            let url = format!("{}/api/v2/folders", self.client.base_url);
            let query = [
                ("projectId", self.project_id.as_str()),
                ("environment", self.target.environment.as_str()),
                ("path", parent.as_str()),
            ];
            let folders: Folders = self
                .call(Method::GET, &url, Some(&query), None)
                .await
                .map_err(|failure| self.error(&format!("list the folders in {parent}"), failure))?;
            if !folders.folders.iter().any(|f| f.name == *name) {
                return Ok((depth..segments.len())
                    .map(|end| format!("/{}", segments[..=end].join("/")))
                    .collect());
            }
            parent = format!("/{}", segments[..=depth].join("/"));
        }
        Ok(Vec::new())
    }

    /// Creates the folder `path` (its parent must exist).
    pub async fn create_folder(&self, path: &str) -> Result<(), SecretsError> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = if parent.is_empty() { "/" } else { parent };
        let url = format!("{}/api/v2/folders", self.client.base_url);
        let body = json!({
            "projectId": self.project_id,
            "environment": self.target.environment,
            "name": name,
            "path": parent,
        });
        self.call::<Value>(Method::POST, &url, None, Some((&body, None)))
            .await
            .map_err(|failure| self.error(&format!("create the folder {path}"), failure))?;
        Ok(())
    }

    /// The keys present in the target folder, imported ones included: External Secrets reads
    /// imports too, so an imported key is there as far as the app is concerned. Values are not
    /// kept.
    pub async fn keys(&self) -> Result<BTreeSet<String>, SecretsError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Key {
            secret_key: String,
        }
        #[derive(Deserialize)]
        struct Listed {
            secrets: Vec<Key>,
            #[serde(default)]
            imports: Vec<Import>,
        }
        #[derive(Deserialize)]
        struct Import {
            #[serde(default)]
            secrets: Vec<Key>,
        }
        let url = format!("{}/api/v3/secrets/raw", self.client.base_url);
        let query = [
            ("workspaceId", self.project_id.as_str()),
            ("environment", self.target.environment.as_str()),
            ("secretPath", self.target.path.as_str()),
            ("recursive", "false"),
            ("include_imports", "true"),
            ("expandSecretReferences", "false"),
        ];
        let listed: Listed = self
            .call(Method::GET, &url, Some(&query), None)
            .await
            .map_err(|failure| self.error("list the secrets", failure))?;
        let imported = listed.imports.into_iter().flat_map(|i| i.secrets);
        Ok(listed
            .secrets
            .into_iter()
            .chain(imported)
            .map(|k| k.secret_key)
            .collect())
    }

    /// The value of `key` in the target folder, or `None` when there is no such key.
    pub async fn value(&self, key: &str) -> Result<Option<SecretValue>, SecretsError> {
        #[derive(Deserialize)]
        struct Read {
            secret: Secret,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Secret {
            secret_value: String,
        }
        let url = format!("{}/api/v3/secrets/raw/{key}", self.client.base_url);
        let query = [
            ("workspaceId", self.project_id.as_str()),
            ("environment", self.target.environment.as_str()),
            ("secretPath", self.target.path.as_str()),
            ("type", "shared"),
        ];
        match self
            .call::<Read>(Method::GET, &url, Some(&query), None)
            .await
        {
            Ok(read) => Ok(Some(SecretValue::new(read.secret.secret_value))),
            Err(Failure {
                kind: FailureKind::Status { status: 404, .. },
                ..
            }) => Ok(None),
            Err(failure) => Err(self.error(&format!("read {key}"), failure)),
        }
    }

    /// Creates `key`; `Ok(false)` when it turned out to exist already (written meanwhile by
    /// someone else), in which case it is left alone.
    pub async fn create_secret(
        &self,
        key: &str,
        value: &SecretValue,
    ) -> Result<bool, SecretsError> {
        let operation = format!("create {key}");
        match self.write_secret(Method::POST, key, value).await {
            Ok(()) => Ok(true),
            Err(failure) => match failure.kind {
                FailureKind::Status { status: 400, .. } if self.keys().await?.contains(key) => {
                    Ok(false)
                }
                _ => Err(self.write_error(&operation, failure)),
            },
        }
    }

    /// Replaces the value of the existing `key`.
    pub async fn update_secret(&self, key: &str, value: &SecretValue) -> Result<(), SecretsError> {
        self.write_secret(Method::PATCH, key, value)
            .await
            .map_err(|failure| self.write_error(&format!("rotate {key}"), failure))
    }

    async fn write_secret(
        &self,
        method: Method,
        key: &str,
        value: &SecretValue,
    ) -> Result<(), Failure> {
        let url = format!("{}/api/v3/secrets/raw/{key}", self.client.base_url);
        let body = json!({
            "workspaceId": self.project_id,
            "environment": self.target.environment,
            "secretPath": self.target.path,
            "type": "shared",
            "secretValue": value.expose(),
        });
        // The answer echoes the value: read nothing from it.
        self.call::<serde::de::IgnoredAny>(method, &url, None, Some((&body, Some(value))))
            .await
            .map(|_| ())
    }

    fn write_error(&self, operation: &str, failure: Failure) -> SecretsError {
        match failure.kind {
            FailureKind::Status { status: 404, .. } => SecretsError::FolderNotFound {
                target: self.target.clone(),
            },
            _ => self.error(operation, failure),
        }
    }

    /// One API call with retries; `body` is sent as JSON, and the secret value in it (if any) is
    /// scrubbed from any message the server answers with.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        query: Option<&[(&str, &str)]>,
        body: Option<(&Value, Option<&SecretValue>)>,
    ) -> Result<T, Failure> {
        let sent = body.and_then(|(_, value)| value);
        let request = || {
            let mut request: RequestBuilder = self
                .client
                .http_client
                .request(method.clone(), url)
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(query) = query {
                request = request.query(query);
            }
            if let Some((body, _)) = body {
                request = request.json(body);
            }
            request
        };
        with_retries(&RETRY, async || {
            let response = match request().send().await {
                Ok(response) => response,
                Err(e) => return transport_attempt(&e),
            };
            let status = response.status();
            // Delta-seconds, the form Infisical sends; an HTTP date falls back to the backoff.
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                Err(e) => return transport_attempt(&e),
            };
            if status.is_success() {
                // serde's message could quote the answer, which may hold values: say only that
                // the shape was unexpected.
                return match serde_json::from_slice(&bytes) {
                    Ok(value) => Attempt::Done(value),
                    Err(_) => Attempt::Fail(FailureKind::Status {
                        status: status.as_u16(),
                        message: "the answer is not the JSON Infisical's API documents".into(),
                        retry_after: None,
                    }),
                };
            }
            let text = String::from_utf8_lossy(&bytes);
            status_attempt(status, message_of(&text, sent), retry_after)
        })
        .await
    }

    fn error(&self, operation: &str, failure: Failure) -> SecretsError {
        let operation = operation.to_string();
        let target = self.target.clone();
        let attempts = failure.attempts;
        match failure.kind {
            FailureKind::Transport { detail } => SecretsError::Unreachable {
                host: target.host,
                operation,
                detail,
            },
            FailureKind::Status {
                status: status @ (401 | 403),
                message,
                ..
            } => SecretsError::NoAccess {
                help: if status == 401 {
                    "Infisical no longer accepts the access token of this run; run the command \
                     again, and if it persists check the identity's access-token TTL"
                        .to_string()
                } else {
                    format!(
                        "add the machine identity to project {} with a role that may read and \
                         create secrets and folders in environment {} under {}",
                        target.project, target.environment, target.path
                    )
                },
                operation,
                target,
                status,
                message,
            },
            FailureKind::Status {
                status: 429,
                retry_after,
                ..
            } => SecretsError::RateLimited {
                operation,
                target,
                attempts,
                waited: match retry_after {
                    Some(secs) if attempts < RETRY.attempts => format!(
                        " (it asked to wait {secs} s, past the {} s a call may take)",
                        RETRY.deadline.as_secs()
                    ),
                    _ => String::new(),
                },
            },
            FailureKind::Status {
                status: status @ 500..,
                message,
                ..
            } => SecretsError::Unavailable {
                operation,
                target,
                status,
                attempts,
                message,
            },
            FailureKind::Status {
                status, message, ..
            } => SecretsError::Rejected {
                operation,
                target,
                status,
                message,
            },
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, has been tried `policy.attempts` times, or
/// the next wait would pass the deadline. Waits `Retry-After` when the server sent one, else
/// backs off exponentially.
async fn with_retries<T>(
    policy: &Policy,
    mut attempt: impl AsyncFnMut() -> Attempt<T>,
) -> Result<T, Failure> {
    let deadline = Instant::now() + policy.deadline;
    let mut backoff = policy.first_backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let kind = match attempt().await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fail(kind) => return Err(Failure { kind, attempts }),
            Attempt::Retry(kind) => kind,
        };
        let wait = match &kind {
            FailureKind::Status {
                retry_after: Some(secs),
                ..
            } => Duration::from_secs(*secs),
            _ => backoff,
        };
        if attempts >= policy.attempts || Instant::now() + wait > deadline {
            return Err(Failure { kind, attempts });
        }
        tokio::time::sleep(wait).await;
        backoff *= 2;
    }
}

fn status_attempt<T>(status: StatusCode, message: String, retry_after: Option<u64>) -> Attempt<T> {
    let kind = FailureKind::Status {
        status: status.as_u16(),
        message,
        retry_after,
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Attempt::Retry(kind)
    } else {
        Attempt::Fail(kind)
    }
}

fn transport_attempt<T>(error: &reqwest::Error) -> Attempt<T> {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    let kind = FailureKind::Transport { detail };
    if error.is_timeout() || error.is_connect() {
        Attempt::Retry(kind)
    } else {
        Attempt::Fail(kind)
    }
}

/// The human part of an Infisical error body (`message`, and `error` when it is a sentence, as
/// in 403s), shortened, with `sent` scrubbed out in case the server quoted it.
fn message_of(body: &str, sent: Option<&SecretValue>) -> String {
    let message = match serde_json::from_str::<Value>(body) {
        Ok(json) => {
            let part = |key: &str| match &json[key] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let (message, error) = (part("message"), part("error"));
            if error.contains(' ') && error != message {
                format!("{message}: {error}")
            } else if message.is_empty() {
                error
            } else {
                message
            }
        }
        Err(_) => body.trim().to_string(),
    };
    let message = match sent.map(SecretValue::expose) {
        Some(value) if !value.is_empty() => message.replace(value, "<redacted>"),
        _ => message,
    };
    if message.chars().count() > MAX_MESSAGE {
        let cut: String = message.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        message
    }
}

/// The folder names of a normalised path (`/` has none).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn messages_come_from_the_json_body_and_never_carry_the_sent_value() {
        let body = r#"{"reqId":"req-1","statusCode":403,"message":"You are not allowed to access this resource","error":"Identity is not a member of the specified project with ID 'p1'"}"#;
        assert_eq!(
            message_of(body, None),
            "You are not allowed to access this resource: Identity is not a member of the specified project with ID 'p1'"
        );
        let body = r#"{"message":"Secret already exist","error":"BadRequest"}"#;
        assert_eq!(message_of(body, None), "Secret already exist");
        let echoed = r#"{"message":"bad value hunter2-canary here"}"#;
        let sent = SecretValue::new("hunter2-canary");
        assert_eq!(message_of(echoed, Some(&sent)), "bad value <redacted> here");
        assert_eq!(message_of(&"x".repeat(400), None).chars().count(), 301);
    }

    /// Short waits, so the tests take milliseconds; the logic is the same.
    const FAST: Policy = Policy {
        attempts: 3,
        first_backoff: Duration::from_millis(5),
        deadline: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn server_errors_back_off_then_give_up_after_the_attempt_limit() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<(), Failure> = with_retries(&FAST, async || {
            calls.fetch_add(1, Ordering::Relaxed);
            status_attempt(StatusCode::SERVICE_UNAVAILABLE, String::new(), None)
        })
        .await;
        assert_eq!(result.err().unwrap().attempts, FAST.attempts);
        assert_eq!(calls.load(Ordering::Relaxed), FAST.attempts);
        // 5 ms, then 10 ms.
        assert!(start.elapsed() >= Duration::from_millis(15));
    }

    #[tokio::test]
    async fn a_retry_after_past_the_deadline_stops_at_once_and_client_errors_are_not_retried() {
        let start = Instant::now();
        let result: Result<(), Failure> = with_retries(&FAST, async || {
            status_attempt(StatusCode::TOO_MANY_REQUESTS, String::new(), Some(3600))
        })
        .await;
        assert_eq!(result.err().unwrap().attempts, 1);
        assert!(start.elapsed() < Duration::from_secs(1));

        let result: Result<(), Failure> = with_retries(&FAST, async || {
            status_attempt(StatusCode::BAD_REQUEST, String::new(), None)
        })
        .await;
        assert_eq!(result.err().unwrap().attempts, 1);
    }

    #[tokio::test]
    async fn a_later_success_wins() {
        let calls = AtomicU32::new(0);
        let result = with_retries(&FAST, async || {
            if calls.fetch_add(1, Ordering::Relaxed) < 2 {
                status_attempt(StatusCode::BAD_GATEWAY, String::new(), None)
            } else {
                Attempt::Done("ok")
            }
        })
        .await;
        assert_eq!(result.ok(), Some("ok"));
    }
}
