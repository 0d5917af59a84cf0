//! Infisical as tests see it: the harness's double (tests/infisical-double), reached through its
//! public API like a real server, plus its test controls for faults and the request log.
//!
//! Every test works in a project of its own and scopes faults to it, so tests sharing the one
//! double never see each other's secrets or take each other's faults.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Harness;

/// A project created for one test by the harness's machine identity.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub slug: String,
}

/// A machine identity's universal-auth credentials.
#[derive(Debug, Clone)]
pub struct Identity {
    pub client_id: String,
    pub client_secret: String,
}

/// What the double does to the next matching requests of one project.
#[derive(Debug, Clone)]
pub struct Fault {
    status: Option<u16>,
    delay: Duration,
    count: u32,
    retry_after_secs: Option<u64>,
    method: Option<String>,
    path_prefix: Option<String>,
}

impl Fault {
    /// Fail with `status`; a 429 comes with `Retry-After`, like Infisical's rate limiter's.
    pub fn status(status: u16) -> Fault {
        Fault {
            status: Some(status),
            delay: Duration::ZERO,
            count: 1,
            retry_after_secs: None,
            method: None,
            path_prefix: None,
        }
    }

    /// Answer normally, but only after `delay`.
    pub fn delay(delay: Duration) -> Fault {
        Fault {
            status: None,
            delay,
            count: 1,
            retry_after_secs: None,
            method: None,
            path_prefix: None,
        }
    }

    /// Apply to the next `count` requests instead of only the next one.
    pub fn times(self, count: u32) -> Fault {
        Fault { count, ..self }
    }

    /// Apply only to requests with this method whose path starts with `path_prefix`.
    pub fn on(self, method: &str, path_prefix: &str) -> Fault {
        Fault {
            method: Some(method.to_string()),
            path_prefix: Some(path_prefix.to_string()),
            ..self
        }
    }

    pub fn retry_after(self, secs: u64) -> Fault {
        Fault {
            retry_after_secs: Some(secs),
            ..self
        }
    }
}

/// One API request the double received (never with its body, so never with a secret value).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

pub struct Infisical {
    api_url: String,
    control_url: String,
    identity: Identity,
    // Not shared between tests: each #[tokio::test] has its own runtime, and pooled
    // connections must not outlive the runtime that opened them.
    http: reqwest::Client,
}

impl Infisical {
    pub fn new() -> Infisical {
        let harness = Harness::shared();
        Infisical {
            api_url: harness.var("INFISICAL_API_URL").to_string(),
            control_url: harness.var("HARNESS_INFISICAL_CONTROL_URL").to_string(),
            identity: Identity {
                client_id: harness
                    .var("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID")
                    .to_string(),
                client_secret: harness
                    .var("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET")
                    .to_string(),
            },
            http: reqwest::Client::new(),
        }
    }

    /// The site URL, as users configure it: clients append `/api/...` themselves.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The harness's machine identity, the one External Secrets Operator is given.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A machine identity of its own, which sees none of the other identities' projects.
    pub async fn new_identity(&self) -> Identity {
        let created = self.control("POST", "identities", None).await;
        Identity {
            client_id: text(&created, "clientId"),
            client_secret: text(&created, "clientSecret"),
        }
    }

    /// A client of the official `infisical` crate, logged in with universal auth as `identity`.
    pub async fn client(&self, identity: &Identity) -> infisical::Client {
        self.client_with_timeout(identity, Duration::from_secs(5))
            .await
    }

    /// Like [`Infisical::client`], with requests given up after `timeout`.
    pub async fn client_with_timeout(
        &self,
        identity: &Identity,
        timeout: Duration,
    ) -> infisical::Client {
        let mut client = infisical::Client::builder()
            .base_url(&self.api_url)
            .request_timeout(timeout)
            .build()
            .await
            .expect("build an Infisical client");
        let auth =
            infisical::AuthMethod::new_universal_auth(&identity.client_id, &identity.client_secret);
        client
            .login(auth)
            .await
            .unwrap_or_else(|e| panic!("log in to the Infisical double: {e}"));
        client
    }

    /// A fresh project (environments dev, staging and prod) owned by the harness's identity,
    /// created through Infisical's public API and named `<prefix>-<unique suffix>`.
    pub async fn project(&self, prefix: &str) -> Project {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // The pid and clock keep slugs unique across test processes sharing one double.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let suffix = format!(
            "{:x}{:x}{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let prefix: String = prefix.chars().take(36 - suffix.len() - 1).collect();
        let slug = format!("{prefix}-{suffix}");
        let token = self.access_token(&self.identity).await;
        let response = self
            .http
            .post(format!("{}/api/v2/workspace", self.api_url))
            .bearer_auth(token)
            .json(&json!({ "projectName": slug, "slug": slug }))
            .send()
            .await
            .expect("reach the Infisical double");
        let body = json_body(response, "create a project").await;
        Project {
            id: text(&body["project"], "id"),
            slug: text(&body["project"], "slug"),
        }
    }

    /// Makes the double apply `fault` to the next requests about `project`.
    pub async fn inject(&self, project: &Project, fault: Fault) {
        let body = json!({
            "project": project.id,
            "status": fault.status,
            "delayMs": fault.delay.as_millis() as u64,
            "count": fault.count,
            "retryAfter": fault.retry_after_secs,
            "method": fault.method,
            "pathPrefix": fault.path_prefix,
        });
        self.control("POST", "faults", Some(body)).await;
    }

    /// The API requests about `project` the double has received, oldest first.
    pub async fn requests(&self, project: &Project) -> Vec<Request> {
        let url = format!("{}/requests", self.control_url);
        let response = self
            .http
            .get(url)
            .query(&[("project", &project.id)])
            .send()
            .await
            .expect("reach the Infisical double");
        let body = json_body(response, "read the request log").await;
        body["requests"]
            .as_array()
            .expect("a request list")
            .iter()
            .map(|r| Request {
                method: text(r, "method"),
                path: text(r, "path"),
                status: r["status"].as_u64().expect("a status") as u16,
            })
            .collect()
    }

    async fn access_token(&self, identity: &Identity) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/universal-auth/login", self.api_url))
            .json(
                &json!({ "clientId": identity.client_id, "clientSecret": identity.client_secret }),
            )
            .send()
            .await
            .expect("reach the Infisical double");
        text(&json_body(response, "log in").await, "accessToken")
    }

    async fn control(&self, method: &str, endpoint: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}/{endpoint}", self.control_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("reach the Infisical double");
        json_body(response, endpoint).await
    }
}

async fn json_body(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{what}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_string()
}
