//! The harness's Infisical answers the way the official `infisical` crate and plain HTTP clients
//! expect the real one to: login, secrets in a fresh project, and the real errors.

use std::time::Duration;

use infisical::InfisicalError;
use infisical::secrets::{
    CreateSecretRequest, DeleteSecretRequest, GetSecretRequest, ListSecretsRequest,
    UpdateSecretRequest,
};
use serde_json::Value;

use crate::harness::infisical::{Fault, Infisical};

/// The status and the server's `message` of a failed call.
fn http_error(error: InfisicalError) -> (u16, String) {
    match error {
        InfisicalError::HttpError { status, message } => {
            let body: Value = serde_json::from_str(&message)
                .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {message}"));
            (
                status.as_u16(),
                body["message"].as_str().unwrap_or_default().to_string(),
            )
        }
        other => panic!("expected an HTTP error, got {other}"),
    }
}

#[tokio::test]
async fn the_official_client_round_trips_a_secret() {
    let infisical = Infisical::new();
    let project = infisical.project("smoke-roundtrip").await;
    let client = infisical.client(infisical.identity()).await;
    let secrets = client.secrets();

    let created = secrets
        .create(
            CreateSecretRequest::builder("BETTER_AUTH_SECRET", "first", &project.id, "prod")
                .build(),
        )
        .await
        .expect("create");
    assert_eq!(
        (created.version, created.secret_value.as_str()),
        (1, "first")
    );

    let got = secrets
        .get(GetSecretRequest::builder("BETTER_AUTH_SECRET", &project.id, "prod").build())
        .await
        .expect("get");
    assert_eq!(got.secret_value, "first");
    assert_eq!(got.project_id, project.id);

    let updated = secrets
        .update(
            UpdateSecretRequest::builder("BETTER_AUTH_SECRET", &project.id, "prod")
                .secret_value("second")
                .build(),
        )
        .await
        .expect("update");
    assert_eq!(updated.version, 2);

    // External Secrets Operator's Go SDK names the project by slug and sends an empty
    // workspaceId beside it.
    let by_slug: Value = client
        .http_client
        .get(format!("{}/api/v3/secrets/raw", infisical.api_url()))
        .query(&[
            ("workspaceId", ""),
            ("workspaceSlug", project.slug.as_str()),
            ("environment", "prod"),
            ("secretPath", "/"),
            ("expandSecretReferences", "true"),
            ("include_imports", "true"),
            ("recursive", "false"),
        ])
        .send()
        .await
        .expect("list by slug")
        .json()
        .await
        .expect("a JSON list");
    assert_eq!(by_slug["secrets"][0]["secretValue"], "second");
    assert_eq!(by_slug["imports"], serde_json::json!([]));

    let listed = secrets
        .list(ListSecretsRequest::builder(&project.id, "prod").build())
        .await
        .expect("list");
    let pairs: Vec<(&str, &str)> = listed
        .iter()
        .map(|s| (s.secret_key.as_str(), s.secret_value.as_str()))
        .collect();
    assert_eq!(pairs, [("BETTER_AUTH_SECRET", "second")]);

    // Environments are separate: the same key is free in dev.
    let in_dev = secrets
        .list(ListSecretsRequest::builder(&project.id, "dev").build())
        .await;
    assert!(in_dev.expect("list dev").is_empty());

    secrets
        .delete(DeleteSecretRequest::builder("BETTER_AUTH_SECRET", &project.id, "prod").build())
        .await
        .expect("delete");
    let gone = secrets
        .get(GetSecretRequest::builder("BETTER_AUTH_SECRET", &project.id, "prod").build())
        .await
        .expect_err("a deleted secret is gone");
    assert_eq!(
        http_error(gone),
        (
            404,
            "Secret with name 'BETTER_AUTH_SECRET' not found".to_string()
        )
    );
}

#[tokio::test]
async fn creating_an_existing_secret_fails_like_infisical() {
    let infisical = Infisical::new();
    let project = infisical.project("smoke-duplicate").await;
    let client = infisical.client(infisical.identity()).await;
    let request =
        CreateSecretRequest::builder("PAPERCLIP_LITELLM_KEY", "k", &project.id, "prod").build();
    client
        .secrets()
        .create(request.clone())
        .await
        .expect("first create");

    let error = client
        .secrets()
        .create(request)
        .await
        .expect_err("second create");
    assert_eq!(http_error(error), (400, "Secret already exist".to_string()));
}

#[tokio::test]
async fn a_secret_under_a_missing_folder_is_refused_until_the_folder_exists() {
    let infisical = Infisical::new();
    let project = infisical.project("smoke-folder").await;
    let client = infisical.client(infisical.identity()).await;
    let request =
        CreateSecretRequest::builder("BRAVE_SEARCH_KEY_PAPERCLIP", "b", &project.id, "prod")
            .path("/paperclip")
            .build();

    let error = client
        .secrets()
        .create(request.clone())
        .await
        .expect_err("no folder yet");
    assert_eq!(
        http_error(error),
        (
            404,
            "Folder with path '/paperclip' in environment with slug 'prod' not found".to_string()
        )
    );

    let folder = client
        .http_client
        .post(format!("{}/api/v2/folders", infisical.api_url()))
        .json(&serde_json::json!({ "projectId": project.id, "environment": "prod", "name": "paperclip" }))
        .send()
        .await
        .expect("create the folder");
    assert!(
        folder.status().is_success(),
        "{}",
        folder.text().await.unwrap_or_default()
    );
    client
        .secrets()
        .create(request)
        .await
        .expect("create in the folder");
}

#[tokio::test]
async fn an_injected_rate_limit_reaches_the_client_with_retry_after() {
    let infisical = Infisical::new();
    let project = infisical.project("smoke-ratelimit").await;
    let client = infisical.client(infisical.identity()).await;
    infisical
        .inject(&project, Fault::status(429).retry_after(7).times(2))
        .await;

    let secrets = client.secrets();
    let list = || secrets.list(ListSecretsRequest::builder(&project.id, "prod").build());
    let (status, message) = http_error(list().await.expect_err("rate limited"));
    assert_eq!(status, 429);
    assert_eq!(
        message,
        "Rate limit exceeded. Please try again in 7 seconds"
    );

    let raw = reqwest::Client::new()
        .get(format!("{}/api/v3/secrets/raw", infisical.api_url()))
        .query(&[
            ("workspaceId", project.id.as_str()),
            ("environment", "prod"),
        ])
        .send()
        .await
        .expect("reach the double");
    assert_eq!(raw.status(), 429);
    assert_eq!(raw.headers()["retry-after"], "7");

    // The fault was for two requests only.
    assert!(list().await.expect("after the fault").is_empty());
    let statuses: Vec<u16> = infisical
        .requests(&project)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 429, 200]);
}

#[tokio::test]
async fn a_slow_infisical_makes_the_client_time_out_not_hang() {
    let infisical = Infisical::new();
    let project = infisical.project("smoke-slow").await;
    let client = infisical
        .client_with_timeout(infisical.identity(), Duration::from_millis(300))
        .await;
    infisical
        .inject(&project, Fault::delay(Duration::from_secs(3)))
        .await;

    let started = std::time::Instant::now();
    let error = client
        .secrets()
        .list(ListSecretsRequest::builder(&project.id, "prod").build())
        .await
        .expect_err("times out");
    assert!(
        matches!(error, InfisicalError::RequestError(ref e) if e.is_timeout()),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn requests_without_a_token_or_access_are_refused() {
    let infisical = Infisical::new();
    let project = infisical.project("smoke-auth").await;
    let url = format!("{}/api/v3/secrets/raw", infisical.api_url());
    let query = [
        ("workspaceId", project.id.as_str()),
        ("environment", "prod"),
    ];

    let anonymous = reqwest::Client::new()
        .get(&url)
        .query(&query)
        .send()
        .await
        .expect("reach the double");
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("a JSON error");
    assert_eq!(
        (body["statusCode"].as_u64(), body["message"].as_str()),
        (Some(401), Some("Token missing"))
    );
    assert!(body["reqId"].is_string());

    let stranger = infisical.new_identity().await;
    let client = infisical.client(&stranger).await;
    let error = client
        .secrets()
        .list(ListSecretsRequest::builder(&project.id, "prod").build())
        .await
        .expect_err("not a member");
    assert_eq!(http_error(error).0, 403);

    // None of this touched the project's secrets.
    let requests = infisical.requests(&project).await;
    assert!(requests.iter().all(|r| r.method == "GET"), "{requests:?}");
    assert!(
        requests.iter().all(|r| r.path == "/api/v3/secrets/raw"),
        "{requests:?}"
    );
}
