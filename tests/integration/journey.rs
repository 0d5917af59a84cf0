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

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::harness::Harness;
use crate::install::{Setup, setup, text};

/// What the journey needs from the harness, or why it cannot run.
pub(crate) struct RealNode {
    node: String,
    pub(crate) image: String,
    previous_image: String,
    postgres_image: String,
    bitnami_image: String,
    storage_class: String,
}

impl RealNode {
    pub(crate) fn from_harness(h: &Harness) -> Result<RealNode, String> {
        let var = |key: &str| {
            std::env::var(key)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| h.var_opt(key).map(str::to_string))
                .ok_or_else(|| format!("{key} is not set"))
        };
        Ok(RealNode {
            node: var("HARNESS_REAL_NODE")?,
            image: var("HARNESS_PAPERCLIP_IMAGE")?,
            previous_image: var("HARNESS_PAPERCLIP_IMAGE_PREVIOUS")?,
            postgres_image: var("HARNESS_POSTGRES_IMAGE")?,
            bitnami_image: var("HARNESS_BITNAMI_POSTGRES_IMAGE")?,
            storage_class: var("HARNESS_REAL_STORAGE_CLASS")?,
        })
    }
}

/// The profile a user would write for the real node: the harness's images and storage class,
/// pinned to the node and tolerating its taints.
pub(crate) async fn profile_file(
    real: &RealNode,
    setup: &Setup,
    dir: &std::path::Path,
    app_image: &str,
    flavor: &str,
) -> std::path::PathBuf {
    let h = Harness::shared();
    let node = Api::<Node>::all(h.client().await)
        .get(&real.node)
        .await
        .unwrap();
    let tolerations: Vec<Value> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| json!({"key": t.key, "operator": "Exists", "effect": t.effect}))
        .collect();
    let placement = json!({
        "nodeSelector": {"kubernetes.io/hostname": real.node},
        "tolerations": tolerations,
    });
    let database_image = if flavor == "bitnami" {
        &real.bitnami_image
    } else {
        &real.postgres_image
    };
    let profile = json!({
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
    });
    let path = dir.join(format!("journey-{flavor}.yaml"));
    std::fs::write(&path, serde_json::to_string_pretty(&profile).unwrap()).unwrap();
    path
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
    let h = Harness::shared();
    let real = match RealNode::from_harness(h) {
        Ok(real) => real,
        Err(why) => {
            eprintln!("skipped: the journey runs on the harness's real node, and {why}");
            return;
        }
    };
    let setup = setup("journey", None).await;
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
    free_the_node(&ns).await;
}

/// Deletes a finished test's namespace: the real node has the machine's two cores, and every
/// real pod holds its CPU request until it is gone (earlier runs' namespaces are removed by
/// `tests/run`, but the real node's tests run side by side within one).
pub(crate) async fn free_the_node(namespace: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    Api::<Namespace>::all(Harness::shared().client().await)
        .delete(namespace, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn both_database_flavours_run_the_real_app_on_the_real_node() {
    let h = Harness::shared();
    let real = match RealNode::from_harness(h) {
        Ok(real) => real,
        Err(why) => {
            eprintln!(
                "skipped: the real node's renderings need the harness's real node, and {why}"
            );
            return;
        }
    };
    for flavor in ["official", "bitnami"] {
        let setup = setup(&format!("real-{flavor}"), None).await;
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
        let status = ok(
            &paperclipctl(&["status", "-n", &setup.namespace]).await,
            "status",
        );
        assert!(
            status.contains("Health: ok, database reachable"),
            "{flavor}: {status}"
        );
        free_the_node(&setup.namespace).await;
    }
}

#[tokio::test]
async fn the_frank_profile_runs_on_the_real_node_with_its_shell_sidecar() {
    let h = Harness::shared();
    let real = match RealNode::from_harness(h) {
        Ok(real) => real,
        Err(why) => {
            eprintln!("skipped: frank's rendering runs on the harness's real node, and {why}");
            return;
        }
    };
    let shell_image = match h.var_opt("HARNESS_SHELL_IMAGE") {
        Some(image) => image.to_string(),
        None => {
            eprintln!("skipped: the harness built no shell sidecar image");
            return;
        }
    };
    // Frank as shipped (bitnami database, the sidecar with its home volume, LoadBalancer
    // Services, its requests and limits), moved to the harness: its images, its storage class
    // and its node. The metrics exporter has no image here, so it is left out.
    let placement = "{nodeSelector: {kubernetes.io/hostname: NODE}, tolerations: \
                     [{key: harness.paperclipctl.io/real-node, operator: Exists, effect: NoSchedule}]}"
        .replace("NODE", &real.node);
    let sets = [
        format!("app.image={}", real.image),
        format!("database.image={}", real.bitnami_image),
        "database.metrics=null".to_string(),
        format!("shell.image={shell_image}"),
        format!("storage.className={}", real.storage_class),
        format!("app.placement={placement}"),
        format!("database.placement={placement}"),
    ];
    let mut extra = vec!["--timeout", "10m"];
    extra.extend(sets.iter().flat_map(|s| ["--set", s.as_str()]));
    let setup = setup("real-frank", None).await;
    let installed = crate::install::install(
        &setup,
        &extra,
        &[("PAPERCLIP_LITELLM_KEY", crate::install::LLM_KEY)],
    )
    .await;
    ok(&installed, "install of frank");

    let pods = Api::<Pod>::namespaced(h.client().await, &setup.namespace);
    let app = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=app"))
        .await
        .unwrap()
        .items
        .remove(0);
    let ready: Vec<(String, bool)> = app
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.ready))
        .collect();
    assert_eq!(
        ready,
        [
            ("paperclip".to_string(), true),
            ("paperclip-shell".to_string(), true)
        ],
        "both containers run on the real node"
    );
    let status = ok(
        &paperclipctl(&["status", "-n", &setup.namespace]).await,
        "status",
    );
    assert!(
        status.contains("Health: ok, database reachable"),
        "{status}"
    );
    free_the_node(&setup.namespace).await;
}
