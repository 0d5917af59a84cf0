//! A user's whole session with the real Paperclip on the harness's real node: no stand-in in its
//! path. It installs the older release, accepts the printed invite over the real HTTP API,
//! creates data, checks `status`, loses the app pod, upgrades to the newer release and rolls
//! back, survives a broken upgrade, and uninstalls and reinstalls.
//!
//! It needs the harness's real node (HARNESS_REAL_NODE, a tainted node) and the images and
//! storage class the harness built for it; without them it says so and does nothing.
//!
//! The HTTP calls are the ones upstream's UI makes (checked against 2026.916.1 run as a
//! process): `POST /api/auth/sign-up/email`, `POST /api/invites/<token>/accept` with
//! `{"requestType": "human"}` (202 `bootstrapAccepted`), `POST /api/companies`,
//! `POST /api/companies/<id>/agents`, `PUT /api/agents/<id>/instructions-bundle/file`,
//! `POST /api/companies/<id>/assets/images` (multipart), `POST /api/companies/<id>/secrets`.

use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::harness::Harness;
use crate::harness::real::{self, RealNode};
use crate::install::{Setup, setup, text};

/// The profile a user would write for the real node, as a file in `dir` (see [`profile`]).
pub(crate) async fn profile_file(
    real: &RealNode,
    setup: &Setup,
    dir: &std::path::Path,
    app_image: &str,
    flavor: &str,
) -> std::path::PathBuf {
    let profile = profile(real, setup, app_image, flavor).await;
    let path = dir.join(format!("journey-{flavor}.yaml"));
    std::fs::write(&path, serde_json::to_string_pretty(&profile).unwrap()).unwrap();
    path
}

/// The profile a user would write for the real node: the harness's images and storage class,
/// pinned to the node and tolerating its taints, with `setup`'s namespace and Infisical project.
pub(crate) async fn profile(
    real: &RealNode,
    setup: &Setup,
    app_image: &str,
    flavor: &str,
) -> Value {
    let h = Harness::shared();
    let placement = real.placement().await;
    let database_image = if flavor == "bitnami" {
        &real.bitnami_image
    } else {
        &real.postgres_image
    };
    json!({
        "name": "journey",
        "namespace": setup.namespace,
        "storage": {"className": real.storage_class},
        "app": {
            "image": app_image,
            "publicUrl": "http://localhost:3100",
            "placement": placement,
        },
        "database": {"flavor": flavor, "image": database_image, "placement": placement},
        "secrets": {
            "store": {
                "kind": "SecretStore",
                "name": "paperclip-infisical",
                "hostApi": h.var("INFISICAL_API_URL"),
                "projectSlug": setup.project.slug,
                "environmentSlug": "prod",
                "secretsPath": "/paperclip",
            },
            "externalSecrets": [
                {"name": "paperclip-auth", "keys": [{"remote": "BETTER_AUTH_SECRET", "generate": true}]},
            ],
        },
    })
}

/// Runs paperclipctl `args` as the user would, with the Infisical identity exported.
pub(crate) async fn paperclipctl(args: &[&str]) -> Output {
    crate::install::operator_command()
        .args(args)
        .output()
        .await
        .unwrap()
}

pub(crate) fn ok(run: &Output, what: &str) -> String {
    let stdout = text(&run.stdout);
    assert!(
        run.status.success(),
        "{what} failed ({:?}):\n{stdout}\n{}",
        run.status.code(),
        text(&run.stderr)
    );
    stdout
}

/// The real app, reached the way a user reaches a ClusterIP Service from a laptop: `kubectl
/// port-forward` to the Deployment, and the signed-in session's cookie.
pub(crate) struct App {
    forward: tokio::process::Child,
    base: String,
    cookie: Option<String>,
    http: reqwest::Client,
}

impl App {
    pub(crate) async fn connect(namespace: &str) -> App {
        let mut forward = tokio::process::Command::from(Harness::shared().kubectl())
            .args(["port-forward", "-n", namespace, "deploy/paperclip", ":3100"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = tokio::io::BufReader::new(forward.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).await.unwrap();
        // kubectl prints a line per connection: its stdout must stay open and drained, or the
        // write fails and kubectl resets the connection it was handling.
        tokio::spawn(async move {
            let mut rest = String::new();
            while stdout.read_line(&mut rest).await.is_ok_and(|n| n > 0) {
                rest.clear();
            }
        });
        // "Forwarding from 127.0.0.1:PORT -> 3100"
        let port = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.rsplit_once(':'))
            .map(|(_, p)| p.to_string())
            .unwrap_or_else(|| panic!("kubectl port-forward said {line:?}"));
        App {
            forward,
            base: format!("http://127.0.0.1:{port}"),
            cookie: None,
            http: reqwest::Client::new(),
        }
    }

    /// One request with the Host and Origin upstream accepts for the public URL
    /// http://localhost:3100; keeps the session cookie it is given.
    pub(crate) async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Vec<u8>) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Host", "localhost:3100")
            .header("Origin", "http://localhost:3100");
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("Content-Type", content_type).body(bytes);
        }
        let response = request.send().await.unwrap();
        let cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect();
        if !cookies.is_empty() {
            self.cookie = Some(cookies.join("; "));
        }
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    pub(crate) async fn json(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        let (status, bytes) = self.call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.forward.start_kill();
    }
}

/// What the journey created, to be found again after each step.
pub(crate) struct Data {
    company: String,
    agent: String,
    asset: String,
}

pub(crate) const INSTRUCTIONS: &str = "Write the weekly report.";
pub(crate) const UPLOAD: &[u8] = b"\x89PNG\r\n\x1a\njourney";

pub(crate) async fn create_data(app: &mut App) -> Data {
    let company = app
        .json(
            reqwest::Method::POST,
            "/api/companies",
            Some(json!({"name": "Journey Co"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = app
        .json(
            reqwest::Method::POST,
            &format!("/api/companies/{company}/agents"),
            Some(
                json!({"name": "Writer", "role": "general", "adapterType": "process",
                        "adapterConfig": {"command": "true"}}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.json(
        reqwest::Method::PUT,
        &format!("/api/agents/{agent}/instructions-bundle/file"),
        Some(json!({"path": "AGENTS.md", "content": INSTRUCTIONS})),
    )
    .await;
    let boundary = "journey-boundary";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(UPLOAD);
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/companies/{company}/assets/images"),
            Some((&content_type, multipart)),
        )
        .await;
    assert!(
        (200..300).contains(&status),
        "upload: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let asset = serde_json::from_slice::<Value>(&body).unwrap()["assetId"]
        .as_str()
        .unwrap()
        .to_string();
    app.json(
        reqwest::Method::POST,
        &format!("/api/companies/{company}/secrets"),
        Some(json!({"name": "JOURNEY_TOKEN", "value": "journey-secret-value"})),
    )
    .await;
    Data {
        company,
        agent,
        asset,
    }
}

/// Signs in again (a new server may have new sessions) and finds everything `data` names.
pub(crate) async fn assert_data_intact(namespace: &str, data: &Data) {
    let mut app = App::connect(namespace).await;
    sign_in(&mut app).await;
    let companies = app.json(reqwest::Method::GET, "/api/companies", None).await;
    assert!(
        companies.to_string().contains(&data.company),
        "the company is gone: {companies}"
    );
    let file = app
        .json(
            reqwest::Method::GET,
            &format!(
                "/api/agents/{}/instructions-bundle/file?path=AGENTS.md",
                data.agent
            ),
            None,
        )
        .await;
    assert_eq!(file["content"], INSTRUCTIONS);
    let (status, bytes) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/assets/{}/content", data.asset),
            None,
        )
        .await;
    assert_eq!((status, bytes.as_slice()), (200, UPLOAD));
    let secrets = app
        .json(
            reqwest::Method::GET,
            &format!("/api/companies/{}/secrets", data.company),
            None,
        )
        .await;
    assert!(secrets.to_string().contains("JOURNEY_TOKEN"), "{secrets}");
}

pub(crate) const ADMIN: (&str, &str) = ("admin@journey.example", "correct-horse-battery-staple-1");

pub(crate) async fn sign_in(app: &mut App) {
    app.json(
        reqwest::Method::POST,
        "/api/auth/sign-in/email",
        Some(json!({"email": ADMIN.0, "password": ADMIN.1})),
    )
    .await;
}

/// Polls (with a deadline) until the app Deployment has a Ready pod other than `gone`.
async fn wait_for_new_ready_pod(namespace: &str, gone: &str) {
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let ready = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=app"))
            .await
            .unwrap()
            .items
            .into_iter()
            .any(|p| {
                p.metadata.name.as_deref() != Some(gone)
                    && p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        if ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the app pod did not come back Ready"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn delete_app_pod(namespace: &str) {
    let pods = Api::<Pod>::namespaced(Harness::shared().client().await, namespace);
    let pod = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=app"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .unwrap();
    pods.delete(&pod, &DeleteParams::default()).await.unwrap();
    wait_for_new_ready_pod(namespace, &pod).await;
}

#[tokio::test]
async fn a_users_whole_session_with_the_real_paperclip_on_the_real_node() {
    let Some(real) = RealNode::or_skip("the journey") else {
        return;
    };
    let mut slot = real::slot().await;
    let setup = setup("journey", None).await;
    slot.holds(&setup.namespace);
    let ns = setup.namespace.clone();
    let dir = tempfile::tempdir().unwrap();
    let previous = profile_file(&real, &setup, dir.path(), &real.previous_image, "official").await;
    let previous = previous.to_str().unwrap();

    // 1. Install the older release: real onboarding prints the first admin's invite.
    let installed = ok(
        &paperclipctl(&["install", "-p", previous, "--timeout", "10m"]).await,
        "install",
    );
    let invite = installed
        .lines()
        .find_map(|l| l.split("Create the first admin account: ").nth(1))
        .unwrap_or_else(|| panic!("no invite URL in:\n{installed}"));
    let token = invite.trim().rsplit('/').next().unwrap().to_string();

    // 2. The invite is accepted by the real server.
    let mut app = App::connect(&ns).await;
    app.json(
        reqwest::Method::POST,
        "/api/auth/sign-up/email",
        Some(json!({"name": "Admin", "email": ADMIN.0, "password": ADMIN.1})),
    )
    .await;
    let accepted = app
        .json(
            reqwest::Method::POST,
            &format!("/api/invites/{token}/accept"),
            Some(json!({"requestType": "human"})),
        )
        .await;
    assert_eq!(accepted["bootstrapAccepted"], true, "{accepted}");

    // 3. Real data.
    let data = create_data(&mut app).await;
    let running = app.json(reqwest::Method::GET, "/api/health", None).await["version"]
        .as_str()
        .unwrap()
        .to_string();
    drop(app);

    // 4. `status` is healthy and names the version the signed-in health reports.
    let status = ok(&paperclipctl(&["status", "-n", &ns]).await, "status");
    assert!(status.contains(&format!("version {running}")), "{status}");
    assert!(status.contains("bootstrap: ready"), "{status}");

    // 5. The app pod is lost: it comes back by itself with the data, private and public.
    delete_app_pod(&ns).await;
    assert_data_intact(&ns, &data).await;
    ok(
        &paperclipctl(&[
            "install",
            "-p",
            previous,
            "--set",
            "app.exposure=public",
            "--timeout",
            "10m",
        ])
        .await,
        "install with public exposure",
    );
    delete_app_pod(&ns).await;
    assert_data_intact(&ns, &data).await;

    // 6. Upgrade to the newer release (real migrations), then back: the app that runs reads
    // its data, or the rollback refused and said how to restore the backup.
    ok(
        &paperclipctl(&[
            "upgrade",
            "-p",
            previous,
            "--to",
            &real.image,
            "--timeout",
            "10m",
        ])
        .await,
        "upgrade",
    );
    assert_data_intact(&ns, &data).await;
    let back = paperclipctl(&["rollback", "-p", previous]).await;
    if back.status.success() {
        assert_data_intact(&ns, &data).await;
    } else {
        let said = text(&back.stderr);
        assert!(
            said.contains("paperclipctl restore"),
            "a refused rollback names the restore:\n{said}"
        );
    }

    // 7. An upgrade to a broken image rolls back by itself, with the data intact. The image
    // exists and fits the node, so only running it shows it is broken: the PostgreSQL image,
    // whose entrypoint exits at once without its password variable.
    let broken = paperclipctl(&[
        "upgrade",
        "-p",
        previous,
        "--to",
        &real.postgres_image,
        "--no-backup",
        "--timeout",
        "3m",
        "--diagnostics-dir",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(broken.status.code(), Some(5), "{}", text(&broken.stderr));
    assert_data_intact(&ns, &data).await;

    // 8. Uninstall keeps the data; a reinstall finds it.
    ok(
        &paperclipctl(&["uninstall", "-p", previous]).await,
        "uninstall",
    );
    ok(
        &paperclipctl(&["install", "-p", previous, "--timeout", "10m"]).await,
        "reinstall",
    );
    assert_data_intact(&ns, &data).await;
}

#[tokio::test]
async fn both_database_flavours_run_the_real_app_on_the_real_node() {
    let Some(real) = RealNode::or_skip("both database flavours") else {
        return;
    };
    for flavor in ["official", "bitnami"] {
        let mut slot = real::slot().await;
        let setup = setup(&format!("real-{flavor}"), None).await;
        slot.holds(&setup.namespace);
        let dir = tempfile::tempdir().unwrap();
        let profile = profile_file(&real, &setup, dir.path(), &real.image, flavor).await;
        ok(
            &paperclipctl(&[
                "install",
                "-p",
                profile.to_str().unwrap(),
                "--timeout",
                "10m",
            ])
            .await,
            &format!("install with the {flavor} database"),
        );
        // The app just restarted after onboarding: its startup recovery may still run.
        real::settled(&setup.namespace).await;
        let status = ok(
            &paperclipctl(&["status", "-n", &setup.namespace]).await,
            "status",
        );
        assert!(
            status.contains("Health: ok, database reachable"),
            "{flavor}: {status}"
        );
    }
}
