//! The app's own view of itself once it runs: upstream's `GET /api/health`, read through a
//! port-forward to the app pod.
//!
//! A Ready pod only says that its probe passed; the health document also says whether the server
//! reaches PostgreSQL and whether the instance still waits for its first admin
//! (`bootstrapStatus`). Private mode answers 403 to every `Host` it does not know, so the request
//! names `localhost`, which upstream always allows.
//!
//! The request goes through hyper's HTTP/1.1 client connection over the port-forward stream
//! rather than a hand-written request: it handles chunked and length-delimited bodies and
//! keep-alive without our own parser.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde::Deserialize;

use crate::cluster::forward;
use crate::error::{Error, Result};
use crate::onboarding;
use crate::render::{APP_PORT, meta};

/// How long reading the document may take, port-forward included. A Ready app answers in
/// milliseconds; a stuck stream must not hold the install.
const DEADLINE: Duration = Duration::from_secs(20);

/// What the health document says, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The server answered and reaches its database (`starting` tells whether it still runs
    /// its startup recovery: a state, not a failure).
    Ok {
        starting: bool,
        version: Option<String>,
        /// `ready`, or `bootstrap_pending` while an authenticated instance has no admin yet.
        bootstrap: String,
        /// A bootstrap invite exists that nobody has accepted yet.
        invite_active: bool,
    },
    /// The document could not be read or made no sense; the install itself went through.
    Unknown(String),
}

/// Upstream's document (server `routes/health.js`): `{status, bootstrapStatus,
/// bootstrapInviteActive, …}` with 200, where `status` is `starting` until the server's startup
/// recovery is done and `ok` after; anonymous callers of an authenticated instance get no
/// `version`. With the database lost, 503 `{status: "unhealthy", version, error:
/// "database_unreachable"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    status: Option<String>,
    version: Option<String>,
    error: Option<String>,
    bootstrap_status: Option<String>,
    #[serde(default)]
    bootstrap_invite_active: bool,
}

/// Reads `/api/health` of the release's running app pod in `namespace`. Only a database the
/// server cannot reach is an error: everything else (no answer, 403, a body that is not the
/// document) is reported as [`Health::Unknown`] for the summary to warn about.
pub async fn check(client: &kube::Client, namespace: &str) -> Result<Health> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let pod = onboarding::running_app_pod(&pods, namespace, "read /api/health from").await?;
    let answer = match tokio::time::timeout(DEADLINE, get(&pods, &pod, namespace)).await {
        Ok(answer) => answer?,
        Err(_) => {
            return Ok(Health::Unknown(format!(
                "pod {pod} did not answer GET /api/health within {}s",
                DEADLINE.as_secs()
            )));
        }
    };
    match answer {
        Ok((status, body)) => interpret(status, &body, namespace),
        Err(problem) => Ok(Health::Unknown(format!(
            "cannot read /api/health of pod {pod}: {problem}"
        ))),
    }
}

/// One GET over a port-forward. The outer error is the API server refusing the port-forward; the
/// inner one a failure on the stream, with the forwarder's own message when it sent one.
async fn get(
    pods: &Api<Pod>,
    pod: &str,
    namespace: &str,
) -> Result<std::result::Result<(u16, Bytes), String>> {
    let (forward, stream) = forward::open(pods, pod, namespace, APP_PORT as u16).await?;
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(connection);
        let request = hyper::Request::get("/api/health")
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .expect("a static request is valid");
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        drop(sender);
        connection.abort();
        Ok::<_, hyper::Error>((status, body))
    };
    let outcome = match exchange.await {
        Ok(answer) => {
            forward.close();
            Ok(answer)
        }
        // The forwarder says why the stream closed (e.g. nothing listens on the port); that
        // says more than hyper's "connection closed before message completed".
        Err(e) => Err(forward
            .closed_because()
            .await
            .unwrap_or_else(|| e.to_string())),
    };
    Ok(outcome)
}

/// The error for an app that cannot reach its database: what it said, and where to look.
pub fn unreachable_database(what: &str, namespace: &str) -> Error {
    Error::not_healthy(
        format!(
            "Paperclip cannot reach its database at {}: {what}",
            database_host(namespace)
        ),
        format!(
            "check DATABASE_URL of Deployment/{app} (password from Secret {db}) and that \
             Service/{db} has endpoints: kubectl get endpoints -n {namespace} {db}",
            app = meta::APP_NAME,
            db = meta::DB_NAME
        ),
    )
}

/// The host and port the app's DATABASE_URL names (rendered in `render::app`).
pub fn database_host(namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{}",
        meta::DB_NAME,
        crate::render::DB_PORT
    )
}

/// Upstream's server exits about ten seconds after its start when it cannot reach PostgreSQL,
/// before it serves any HTTP: its log then ends with "Paperclip server failed to start" and the
/// driver's error, e.g. `"message": "getaddrinfo ENOTFOUND <host>"` or `"message": "connect
/// ECONNREFUSED <address>:5432"` (observed with 2026.916.1). Returns that message when the
/// failure was the database.
pub fn database_failure(log: &str) -> Option<String> {
    const CONNECTION_ERRORS: &[&str] = &[
        "ENOTFOUND",
        "EAI_AGAIN",
        "ECONNREFUSED",
        "ETIMEDOUT",
        "EHOSTUNREACH",
        "ENETUNREACH",
        "ECONNRESET",
        "CONNECT_TIMEOUT",
        "password authentication failed",
        "no pg_hba.conf entry",
        "does not exist",
        "Connection terminated",
    ];
    let failed = log.rfind("Paperclip server failed to start")?;
    let message = log[failed..].lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("\"message\": \"")?;
        Some(
            rest.strip_suffix("\",")
                .or(rest.strip_suffix('"'))
                .unwrap_or(rest),
        )
    })?;
    CONNECTION_ERRORS
        .iter()
        .any(|e| message.contains(e))
        .then(|| message.to_string())
}

/// Why the app container of `pod` failed to start, when its log says it could not reach the
/// database: the log of its last run (a crash-looping container's current one holds nothing
/// yet), or else of this one.
pub async fn database_failure_of(pods: &Api<Pod>, pod: &str) -> Option<String> {
    let mut params = kube::api::LogParams {
        container: Some(meta::APP_NAME.into()),
        tail_lines: Some(200),
        previous: true,
        ..Default::default()
    };
    for previous in [true, false] {
        params.previous = previous;
        let log = tokio::time::timeout(DEADLINE, pods.logs(pod, &params)).await;
        if let Ok(Ok(log)) = log
            && let Some(failure) = database_failure(&log)
        {
            return Some(failure);
        }
    }
    None
}

/// The verdict on one answer of `/api/health`.
fn interpret(status: u16, body: &[u8], namespace: &str) -> Result<Health> {
    let document: Option<Document> = serde_json::from_slice(body).ok();
    let error = document.as_ref().and_then(|d| d.error.as_deref());
    if status == 503 && error == Some("database_unreachable") {
        return Err(unreachable_database(
            "it runs, but GET /api/health answered 503 database_unreachable",
            namespace,
        ));
    }
    let Some(document) = document.filter(|_| status == 200) else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(200).collect();
        let hint = if status == 403 {
            " (private mode refused Host: localhost)"
        } else {
            ""
        };
        return Ok(Health::Unknown(format!(
            "GET /api/health answered {status}{hint}: {}",
            text.trim()
        )));
    };
    let starting = match document.status.as_deref() {
        Some("ok") => false,
        Some("starting") => true,
        other => {
            return Ok(Health::Unknown(format!(
                "GET /api/health reports status {:?}",
                other.unwrap_or_default()
            )));
        }
    };
    Ok(Health::Ok {
        starting,
        version: document.version,
        // Upstream leaves it out only without a database, where there is nothing to bootstrap.
        bootstrap: document.bootstrap_status.unwrap_or_else(|| "ready".into()),
        invite_active: document.bootstrap_invite_active,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of 2026.916.1's log when its database host does not resolve (colours as it
    /// prints them without a terminal).
    const NO_DATABASE: &str = "\x1b[36mUsing external PostgreSQL via DATABASE_URL/config\x1b[39m
[00:07:03] \x1b[31mERROR\x1b[39m: \x1b[36mPaperclip server failed to start\x1b[39m
    err: {
      \"type\": \"Error\",
      \"message\": \"getaddrinfo ENOTFOUND paperclip-db-postgresql.ns.svc\",
      \"stack\":
          Error: getaddrinfo ENOTFOUND paperclip-db-postgresql.ns.svc
      \"code\": \"ENOTFOUND\",
    }
";

    #[test]
    fn a_start_that_failed_on_the_database_is_told_from_other_crashes() {
        assert_eq!(
            database_failure(NO_DATABASE).as_deref(),
            Some("getaddrinfo ENOTFOUND paperclip-db-postgresql.ns.svc")
        );
        let refused = NO_DATABASE.replace(
            "getaddrinfo ENOTFOUND paperclip-db-postgresql.ns.svc\",",
            "connect ECONNREFUSED 10.0.0.7:5432\",",
        );
        assert_eq!(
            database_failure(&refused).as_deref(),
            Some("connect ECONNREFUSED 10.0.0.7:5432")
        );
        let other = NO_DATABASE.replace(
            "getaddrinfo ENOTFOUND paperclip-db-postgresql.ns.svc\",",
            "authenticated public exposure requires auth.baseUrlMode=explicit\",",
        );
        assert_eq!(database_failure(&other), None);
        assert_eq!(database_failure("listening on 3100"), None);
    }

    #[test]
    fn reads_bootstrap_state_and_treats_only_an_unreachable_database_as_failure() {
        let ok = br#"{"status":"ok","version":"1.2.3","deploymentMode":"authenticated",
            "bootstrapStatus":"bootstrap_pending","bootstrapInviteActive":true}"#;
        assert_eq!(
            interpret(200, ok, "ns").unwrap(),
            Health::Ok {
                starting: false,
                version: Some("1.2.3".into()),
                bootstrap: "bootstrap_pending".into(),
                invite_active: true
            }
        );
        // What 2026.916.1 answers during its startup recovery: a state, not a failure.
        let starting = br#"{"status":"starting","deploymentMode":"authenticated","commit":null,
            "bootstrapStatus":"bootstrap_pending","bootstrapInviteActive":true}"#;
        assert!(matches!(
            interpret(200, starting, "ns").unwrap(),
            Health::Ok {
                starting: true,
                version: None,
                ..
            }
        ));
        let down = br#"{"status":"unhealthy","version":"1.2.3","error":"database_unreachable"}"#;
        let e = interpret(503, down, "ns").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::NOT_HEALTHY);
        let help = match &e {
            Error::NotHealthy { help, .. } => help.clone().unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(help.contains("DATABASE_URL"), "{help}");
        assert!(help.contains("paperclip-db-postgresql"), "{help}");
        assert!(
            e.to_string()
                .contains("cannot reach its database at paperclip-db-postgresql.ns.svc:5432"),
            "{e}"
        );

        let refused = br#"{"error":"This hostname is not allowed for this Paperclip instance."}"#;
        match interpret(403, refused, "ns").unwrap() {
            Health::Unknown(text) => {
                assert!(text.contains("403 (private mode refused"), "{text}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret(502, b"Bad Gateway", "ns").unwrap(),
            Health::Unknown(_)
        ));
    }
}
