//! `paperclipctl install` against the harness: a real API server and real External Secrets
//! syncing from the Infisical double. The fresh install runs the real Paperclip on the real node
//! (onboarding, its invite, its health, the shell sidecar).
//!
//! The failures run on KWOK's nodes, because only KWOK can stage them on demand: the kubelet
//! states of the harness's pod-failures stage (crash loop, OOM kill, pull and config errors), a
//! volume that cannot attach, a server that has lost its database; the refusals before anything
//! runs (lock, missing secret, preflight) need no pod at all. Their app pods get the harness's
//! least app (`harness::apps`).

use std::collections::BTreeMap;
use std::process::Output;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};

use crate::harness::Harness;
use crate::harness::apps::{Health, KwokApp};
use crate::harness::infisical::{Infisical, Project};
use crate::harness::real::{self, RealNode, Slot};

pub(crate) const LLM_KEY: &str = "llm-key-for-install-tests";

/// A release under test: its namespace (holding the store's credentials Secret, as an operator
/// would create it) and its own Infisical project.
pub(crate) struct Setup {
    pub(crate) namespace: String,
    pub(crate) project: Project,
    /// LoadBalancer IPs of the app and the shell (unique: Services of earlier tests keep theirs).
    app_ip: String,
    shell_ip: String,
    /// `--set` values that say where the release runs and which images it runs.
    placement: Vec<String>,
}

/// Creates the namespace and project; the store's credentials Secret gets `store_secret` as the
/// client secret (`None`: the harness identity's real one).
pub(crate) async fn setup(prefix: &str, store_secret: Option<&str>) -> Setup {
    let h = Harness::shared();
    let infisical = Infisical::new();
    let namespace = h.namespace(prefix).await;
    let project = infisical.project(prefix).await;
    let identity = infisical.identity();
    let client_secret = store_secret.map_or(identity.client_secret.clone(), str::to_string);
    let credentials = Secret {
        metadata: ObjectMeta {
            name: Some("infisical-universal-auth".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("clientId".to_string(), identity.client_id.clone()),
            ("clientSecret".to_string(), client_secret),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(h.client().await, &namespace)
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();
    // Preflight reads every image from its registry: on KWOK's nodes the harness registry's
    // two-platform fixture stands in for them all (no container ever runs there).
    let image = crate::harness::registry::fixture_images()
        .await
        .multi_platform;
    Setup {
        namespace,
        project,
        app_ip: crate::harness::unique_ip(),
        shell_ip: crate::harness::unique_ip(),
        placement: vec![
            format!("app.image={image}"),
            format!("database.image={image}"),
            format!("database.metrics.image={image}"),
            format!("shell.image={image}"),
        ],
    }
}

/// Like [`setup`], for a release of the frank profile on the harness's real node with the real
/// images; `slot` deletes the namespace when dropped.
pub(crate) async fn setup_real(prefix: &str, real: &RealNode, slot: &mut Slot) -> Setup {
    let mut setup = setup(prefix, None).await;
    slot.holds(&setup.namespace);
    setup.placement = real.frank_sets().await;
    setup
}

/// Runs `paperclipctl install` of the frank profile against the harness and `setup`, with the
/// Infisical identity in the environment (as an operator exports it) and `env` on top.
pub(crate) async fn install(setup: &Setup, extra: &[&str], env: &[(&str, &str)]) -> Output {
    with_profile(setup, "install", extra, env).await
}

impl Setup {
    /// What the release changes of the frank profile, as `PATH=VALUE`: its store in the
    /// Infisical double and its project, its addresses, and where and what it runs.
    pub(crate) fn changes(&self) -> Vec<String> {
        let h = Harness::shared();
        let mut changes = vec![
            "secrets.store.kind=SecretStore".to_string(),
            "secrets.store.name=paperclip-infisical".to_string(),
            format!("secrets.store.hostApi={}", h.var("INFISICAL_API_URL")),
            format!("secrets.store.projectSlug={}", self.project.slug),
            "secrets.store.environmentSlug=prod".to_string(),
            "secrets.store.secretsPath=/paperclip".to_string(),
            "secrets.store.credentials.namespace=null".to_string(),
            format!("app.service.loadBalancerIp={}", self.app_ip),
            format!("shell.service.loadBalancerIp={}", self.shell_ip),
        ];
        changes.extend(self.placement.iter().cloned());
        changes
    }
}

/// Runs the paperclipctl command `verb` with the frank profile set up as `install` sets it.
pub(crate) async fn with_profile(
    setup: &Setup,
    verb: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut command = operator_command();
    command
        .args([verb, "--profile", "frank", "--namespace", &setup.namespace])
        .args(setup.changes().iter().flat_map(|s| ["--set", s.as_str()]))
        .args(extra)
        .env_remove("PAPERCLIP_LITELLM_KEY")
        .envs(env.iter().copied());
    command.output().await.unwrap()
}

/// paperclipctl as an operator runs it against the harness: its kubeconfig, the Infisical
/// identity exported, no terminal, no colour.
pub(crate) fn operator_command() -> tokio::process::Command {
    let h = Harness::shared();
    let identity = Infisical::new().identity().clone();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"));
    command
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", &identity.client_id)
        .env(
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
            &identity.client_secret,
        )
        .env_remove("INFISICAL_API_URL")
        .env("CI", "true")
        .env("NO_COLOR", "1");
    command
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(group, version, kind, plural)` of every namespaced kind a release is made of.
pub(crate) const RELEASE_KINDS: [(&str, &str, &str, &str); 10] = [
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "Service", "services"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    (
        "external-secrets.io",
        "v1",
        "ExternalSecret",
        "externalsecrets",
    ),
    ("external-secrets.io", "v1", "SecretStore", "secretstores"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
];

/// A release installed from the frank profile on KWOK's nodes, its app pods served by the
/// harness's least app (see `harness::apps`): what day-2 tests start from that need a release
/// but none of Paperclip's own behaviour. The install's output is for the test to check.
pub(crate) struct Installed {
    pub setup: Setup,
    pub app: KwokApp,
    pub run: Output,
}

pub(crate) async fn installed(prefix: &str) -> Installed {
    let setup = setup(prefix, None).await;
    let app = Harness::shared()
        .kwok_app(&setup.namespace, Health::Ok)
        .await;
    let run = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    Installed { setup, app, run }
}

/// A release of the frank profile installed on the real node with the real Paperclip: what the
/// day-2 tests that need the app's own behaviour start from, its app past its startup recovery.
/// The install's output is for the test to check; the namespace goes when the release is
/// dropped.
pub(crate) struct RealRelease {
    pub setup: Setup,
    pub run: Output,
    pub real: RealNode,
    pub slot: Slot,
}

/// Installs a [`RealRelease`], or `None` (having said why) on a harness without its real node.
pub(crate) async fn installed_real(prefix: &str) -> Option<RealRelease> {
    let real = RealNode::or_skip(prefix)?;
    let mut slot = real::slot().await;
    let setup = setup_real(prefix, &real, &mut slot).await;
    let run = install(
        &setup,
        &["--timeout", "10m"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    if run.status.success() {
        real::settled(&setup.namespace).await;
    }
    Some(RealRelease {
        setup,
        run,
        real,
        slot,
    })
}

/// The master key the day-2 fixtures put on the app's volume.
pub(crate) const MASTER_KEY: &[u8] = b"master-key-bytes-0123456789abcdef\n";

/// An installed release whose app volume holds the instance files a backup reads.
pub(crate) async fn installed_with_instance(prefix: &str) -> Installed {
    let release = installed(prefix).await;
    assert!(
        release.run.status.success(),
        "install failed:\n{}",
        text(&release.run.stderr)
    );
    let key = release
        .app
        .paperclip_home()
        .join("instances/default/secrets/master.key");
    std::fs::write(&key, MASTER_KEY).unwrap();
    release
}

/// resourceVersion of every object paperclipctl manages in `namespace`, plus its release records.
pub(crate) async fn versions(namespace: &str) -> BTreeMap<String, String> {
    let client = Harness::shared().client().await;
    let mut versions = BTreeMap::new();
    let lease = ("coordination.k8s.io", "v1", "Lease", "leases");
    for (group, version, kind, plural) in RELEASE_KINDS.into_iter().chain([lease]) {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&ListParams::default()).await.unwrap().items {
            let name = object.metadata.name.clone().unwrap_or_default();
            versions.insert(
                format!("{kind}/{name}"),
                object.metadata.resource_version.clone().unwrap_or_default(),
            );
        }
    }
    versions
}

/// `stat -c FORMAT` of `paths` inside the app container, one line per path.
async fn stat_in_app(namespace: &str, format: &str, paths: &[&str]) -> Vec<String> {
    let mut command = vec!["stat", "-c", format];
    command.extend_from_slice(paths);
    let ran = real::exec_app(namespace, &command).await;
    assert!(ran.success, "stat {paths:?}: {}", ran.stderr);
    ran.stdout.lines().map(str::to_string).collect()
}

/// Ports (decimal) something listens on in the app container, from its /proc/net/tcp{,6}.
async fn listening_ports(namespace: &str) -> Vec<u16> {
    let ran = real::exec_app(namespace, &["cat", "/proc/net/tcp", "/proc/net/tcp6"]).await;
    assert!(ran.success, "{}", ran.stderr);
    let mut ports: Vec<u16> = ran
        .stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
            let port = fields.get(1)?.rsplit_once(':')?.1;
            (fields.get(3) == Some(&"0A")).then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[tokio::test]
async fn fresh_install_reaches_ready_in_wave_order_onboards_once_and_a_second_run_changes_nothing()
{
    // The frank profile as shipped (its shell sidecar, its Bitnami database) on the real node.
    let Some(RealRelease {
        setup,
        run,
        slot: _slot,
        ..
    }) = installed_real("install").await
    else {
        return;
    };
    let h = Harness::shared();
    let ns = setup.namespace.as_str();
    let llm_env = [("PAPERCLIP_LITELLM_KEY", LLM_KEY)];
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "install failed:\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "Paperclip is installed in namespace {ns} (revision 1"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Shell: ssh -p 22 agent@{}", setup.shell_ip)),
        "{stdout}"
    );
    // The database was healthy before anything of wave 1 was created.
    let at = |s: &str| {
        stderr
            .find(s)
            .unwrap_or_else(|| panic!("no {s:?} in:\n{stderr}"))
    };
    assert!(
        at("StatefulSet/paperclip-db-postgresql is healthy")
            < at("PersistentVolumeClaim/paperclip-data created")
    );
    assert!(at("ExternalSecret/paperclip-auth is healthy") < at("Deployment/paperclip created"));

    // External Secrets synced the values from Infisical, merged with the static base URL.
    let secrets = Api::<Secret>::namespaced(h.client().await, ns);
    let llm = secrets
        .get("paperclip-llm-key")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(llm["OPENAI_API_KEY"].0, LLM_KEY.as_bytes());
    assert_eq!(
        llm["OPENAI_BASE_URL"].0,
        b"http://litellm.litellm.svc.cluster.local:4000"
    );
    // BETTER_AUTH_SECRET was generated in Infisical (nobody provided it) and synced.
    let auth = secrets.get("paperclip-auth").await.unwrap().data.unwrap();
    assert!(auth["BETTER_AUTH_SECRET"].0.len() >= 32);
    let auth_secret = String::from_utf8(auth["BETTER_AUTH_SECRET"].0.clone()).unwrap();
    assert!(!stdout.contains(&auth_secret) && !stderr.contains(&auth_secret));
    // The generated database password exists and is never printed.
    let password = secrets
        .get("paperclip-db-postgresql")
        .await
        .unwrap()
        .data
        .unwrap()["password"]
        .clone();
    assert_eq!(password.0.len(), 64);
    let password = String::from_utf8(password.0).unwrap();
    assert!(!stdout.contains(&password) && !stderr.contains(&password));
    assert!(!stdout.contains(LLM_KEY) && !stderr.contains(LLM_KEY));

    // The running app reports its health and bootstrap state (just restarted, it may still be
    // in its startup recovery on a loaded machine), and onboarding asked it for the first
    // admin's invite at the profile's public URL.
    assert!(
        stdout.contains("Health: ok, bootstrap: bootstrap_pending\n")
            || stdout.contains(
                "Health: starting (startup recovery in progress), bootstrap: bootstrap_pending\n"
            ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Onboarded. Create the first admin account: http://192.168.55.212:3100/invite/pcp_bootstrap_"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("no admin yet"), "{stdout}");

    // Both containers run: the app and the shell sidecar.
    let app = real::app_pod(ns).await;
    let ready: Vec<(String, bool)> = app
        .status
        .clone()
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

    // Onboarding left upstream's files on the volume, written as uid 1000.
    let instance = "/paperclip/instances/default";
    let files = [
        format!("{instance}/config.json"),
        format!("{instance}/secrets/master.key"),
        format!("{instance}/.env"),
    ];
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let owners = stat_in_app(ns, "%u %F", &files).await;
    assert_eq!(owners, ["1000 regular file"; 3], "{files:?}");

    // The app that runs now started after onboarding wrote .env, so it has the agent JWT secret
    // and the tool-action signing secret without anyone restarting it; onboarding's own second
    // server (upstream's, deaf to SIGTERM, on the next port) did not survive.
    assert!(stderr.contains("restarting the app"), "{stderr}");
    let written: i64 = stat_in_app(ns, "%Y", &[files[2]]).await[0].parse().unwrap();
    let created = app
        .metadata
        .creation_timestamp
        .as_ref()
        .unwrap()
        .0
        .as_second();
    assert!(
        created >= written,
        "the app pod was created at {created}, before onboarding wrote .env at {written}"
    );
    assert_eq!(
        listening_ports(ns)
            .await
            .into_iter()
            .filter(|p| (3100..3200).contains(p))
            .collect::<Vec<_>>(),
        [3100],
        "only the app's own server listens"
    );

    // `status` agrees, once the app's startup recovery is over.
    real::settled(ns).await;

    // A second install of the same profile writes nothing at all and does not onboard again.
    let config_written = stat_in_app(ns, "%Y", &[files[0]]).await;
    let before = versions(ns).await;
    let again = install(&setup, &["--timeout", "10m"], &llm_env).await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    let again_out = text(&again.stdout);
    assert!(
        again_out.contains("is up to date: nothing changed"),
        "{again_out}\n{}",
        text(&again.stderr)
    );
    assert!(!again_out.contains("Onboarded"), "{again_out}");
    assert_eq!(versions(ns).await, before);
    assert_eq!(
        stat_in_app(ns, "%Y", &[files[0]]).await,
        config_written,
        "onboarding must not run again"
    );
}

#[tokio::test]
async fn a_lock_held_by_a_live_run_refuses_a_second_run() {
    let h = Harness::shared();
    let setup = setup("locked", None).await;
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("paperclipctl-lock".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("paperclipctl@laptop/4242".into()),
            lease_duration_seconds: Some(30),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    Api::<Lease>::namespaced(h.client().await, &setup.namespace)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    let run = install(&setup, &[], &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)]).await;
    assert_eq!(run.status.code(), Some(4), "{}", text(&run.stderr));
    let stderr = text(&run.stderr);
    assert!(
        stderr
            .contains("another paperclipctl run holds the release lock: paperclipctl@laptop/4242"),
        "{stderr}"
    );
    assert!(stderr.contains("expires by itself"), "{stderr}");
    // Nothing of the release was written behind the lock.
    let statefulsets = versions(&setup.namespace).await;
    assert!(
        !statefulsets.keys().any(|k| k.starts_with("StatefulSet/")),
        "{statefulsets:?}"
    );
}

#[tokio::test]
async fn a_required_secret_nobody_provides_stops_the_install_before_anything_is_written() {
    let setup = setup("nokey", None).await;
    let run = install(&setup, &[], &[]).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PAPERCLIP_LITELLM_KEY"), "{stderr}");
    assert!(stderr.contains("--secret-file"), "{stderr}");
    let versions = versions(&setup.namespace).await;
    assert!(
        !versions
            .keys()
            .any(|k| k.starts_with("StatefulSet/") || k.starts_with("ExternalSecret/")),
        "nothing may be applied: {versions:?}"
    );
}

#[tokio::test]
async fn an_external_secret_that_cannot_sync_is_named_with_the_controller_condition() {
    // The store's credentials are wrong: External Secrets cannot log in to Infisical.
    let setup = setup("nosync", Some("not-the-secret")).await;
    let run = install(
        &setup,
        &["--timeout", "8s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("ExternalSecret/paperclip-"), "{stderr}");
    assert!(
        stderr.contains("did not become healthy in time"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("no status seen"),
        "the controller's condition is shown: {stderr}"
    );
    let versions = versions(&setup.namespace).await;
    assert!(
        !versions.contains_key("Deployment/paperclip"),
        "wave 1 must not start: {versions:?}"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: dead\n  context:\n    cluster: dead\n    user: nobody\nusers:\n- name: nobody\n  user:\n    token: x\n",
    )
    .unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args([
            "install",
            "--profile",
            "frank",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(run.status.code(), Some(4));
    assert!(
        text(&run.stderr).contains("the Kubernetes API at https://127.0.0.1:1/ did not answer"),
        "{}",
        text(&run.stderr)
    );
}

#[tokio::test]
async fn plan_yaml_is_accepted_by_kubectl_server_side_apply() {
    let h = Harness::shared();
    let namespace = h.namespace("manifests").await;
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args([
            "plan",
            "--profile",
            "frank",
            "--namespace",
            &namespace,
            "-o",
            "yaml",
        ])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    h.assert_server_side_applies(
        &plan.stdout,
        &[
            "statefulset.apps/paperclip-db-postgresql",
            "deployment.apps/paperclip",
            "clustersecretstore.external-secrets.io/infisical",
            "externalsecret.external-secrets.io/paperclip-llm-key",
            "service/paperclip-shell",
        ],
    );
}

/// Installs with the app container playing a kubelet failure (see the harness's
/// stages/pod-failures.yaml) and returns the exit code and stderr.
async fn install_failing_app(what: &str) -> (Option<i32>, String, Setup) {
    let setup = setup(&format!("fail-{what}"), None).await;
    let image = format!("app.image=harness.invalid/fail:{what}");
    let args = [
        "--timeout",
        "60s",
        "--ignore-preflight",
        "image-app",
        "--set",
        &image,
    ];
    let run = install(&setup, &args, &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)]).await;
    (run.status.code(), text(&run.stderr), setup)
}

#[tokio::test]
async fn a_crash_looping_app_fails_fast_with_the_command_to_read_its_logs() {
    let (code, stderr, setup) = install_failing_app("crashloop").await;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("warning: preflight check image-app failed; going on"),
        "{stderr}"
    );
    assert!(
        stderr.contains("container paperclip of pod paperclip-"),
        "{stderr}"
    );
    assert!(stderr.contains("is crash-looping (4 restarts)"), "{stderr}");
    assert!(
        stderr.contains(&format!("kubectl logs -n {} paperclip-", setup.namespace)),
        "{stderr}"
    );
    assert!(
        !stderr.contains("in time"),
        "it must fail fast, not time out: {stderr}"
    );
}

#[tokio::test]
async fn an_oom_killed_app_names_its_limit_and_the_field_to_raise() {
    let (code, stderr, _) = install_failing_app("oom").await;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("was OOMKilled at its memory limit (12Gi)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("raise app.resources.limits.memory"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_fast() {
    let (code, stderr, _) = install_failing_app("pull").await;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("cannot pull image harness.invalid/fail:pull (ImagePullBackOff)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_secret_in_the_pod_spec_names_the_secret() {
    let (code, stderr, _) = install_failing_app("config").await;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("cannot be configured: secret \"paperclip-gemini\" not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("mark it optional in app.envFrom"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_volume_that_cannot_attach_fails_fast() {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
    use kube::runtime::{WatchStreamExt, watcher};

    let h = Harness::shared();
    let setup = setup("attach", None).await;
    let client = h.client().await;
    // The attach/detach controller's complaint about the app pod, once the pod exists (no exec
    // is served for it, so it never becomes ready on its own).
    let namespace = setup.namespace.clone();
    let complain = tokio::spawn(async move {
        let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
        let selector = "app.kubernetes.io/component=app";
        let mut stream = watcher(pods, watcher::Config::default().labels(selector))
            .applied_objects()
            .boxed();
        let pod = stream.next().await.unwrap().unwrap();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some("attach-".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: Some(namespace.clone()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            reason: Some("FailedAttachVolume".into()),
            message: Some("Multi-Attach error for volume \"pvc-1\": Volume is already exclusively attached to one node".into()),
            type_: Some("Warning".into()),
            ..Default::default()
        };
        Api::<Event>::namespaced(client, &namespace)
            .create(&PostParams::default(), &event)
            .await
            .unwrap();
    });
    let run = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    // Stops watching when the install ended before the pod appeared (the assertions say why).
    complain.abort();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("cannot attach its volume: Multi-Attach error"),
        "{stderr}"
    );
    assert!(stderr.contains("Recreate strategy"), "{stderr}");
}

/// Runs on KWOK's nodes: the real server exits at start without its database (the crash-loop
/// test below), so a server that runs on while its database is gone, as the install reads it,
/// is staged by the least app's health answer.
#[tokio::test]
async fn an_app_that_cannot_reach_its_database_fails_the_install_naming_database_url() {
    let h = Harness::shared();
    let setup = setup("nodb", None).await;
    let _app = h
        .kwok_app(&setup.namespace, Health::DatabaseUnreachable)
        .await;
    let run = install(
        &setup,
        &["--timeout", "60s"],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("503 database_unreachable"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("paperclip-db-postgresql"), "{stderr}");
    // The revision is recorded as failed, so the next run installs again instead of skipping.
    let failed = Api::<Secret>::namespaced(h.client().await, &setup.namespace)
        .list(&ListParams::default().labels("paperclipctl.io/status=failed"))
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 1, "one failed revision");
}

#[tokio::test]
async fn a_failed_preflight_writes_nothing_and_reports_json_for_scripts() {
    let setup = setup("preflight", None).await;
    let registry = Harness::shared().var("HARNESS_REGISTRY");
    let dead = format!("app.image={registry}/fixtures/platforms:no-such-tag");
    let run = install(
        &setup,
        &["-o", "json", "--set", &dead],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("1 preflight check(s) failed; nothing was written"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let checks = doc["preflight"]["checks"].as_array().unwrap();
    let app = checks.iter().find(|c| c["id"] == "image-app").unwrap();
    assert_eq!(app["status"], "fail");
    assert!(
        app["detail"].as_str().unwrap().contains("does not exist"),
        "{app}"
    );
    assert!(
        checks
            .iter()
            .filter(|c| c["id"] != "image-app")
            .all(|c| c["status"] != "fail")
    );
    let versions = versions(&setup.namespace).await;
    assert!(
        !versions
            .keys()
            .any(|k| k.starts_with("StatefulSet/") || k.starts_with("ExternalSecret/")),
        "nothing may be applied: {versions:?}"
    );
}

/// The end of upstream 2026.916.1's log when its database host does not resolve, as a kubelet
/// stores it (CRI log lines): the server exits about ten seconds after its start.
fn unreachable_database_log(host: &str) -> String {
    [
        "[00:07:03] \u{1b}[31mERROR\u{1b}[39m: \u{1b}[36mPaperclip server failed to start\u{1b}[39m ",
        "    err: {",
        "      \"type\": \"Error\",",
        &format!("      \"message\": \"getaddrinfo ENOTFOUND {host}\","),
        "      \"stack\":",
        &format!("          Error: getaddrinfo ENOTFOUND {host}"),
        "      \"code\": \"ENOTFOUND\",",
        "    }",
    ]
    .iter()
    .map(|line| format!("2026-12-01T00:07:03.000000000Z stderr F {line}\n"))
    .collect()
}

#[tokio::test]
async fn an_app_that_cannot_reach_its_database_at_start_is_named_with_its_host() {
    use k8s_openapi::api::core::v1::Pod;

    let (code, stderr, setup) = install_failing_app("crashloop").await;
    assert_eq!(code, Some(5), "{stderr}");
    let ns = setup.namespace.as_str();
    let host = format!("paperclip-db-postgresql.{ns}.svc");
    // The crash-looping pod's previous run logged upstream's database failure.
    let client = Harness::shared().client().await;
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/component=app"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("previous.log");
    std::fs::write(&log, unreachable_database_log(&host)).unwrap();
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Logs");
    let logs: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Logs",
        "metadata": {"name": pod, "namespace": ns},
        "spec": {"logs": [{"containers": ["paperclip"], "logsFile": log, "previousLogsFile": log}]},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "logs"),
    )
    .create(&PostParams::default(), &logs)
    .await
    .unwrap();

    // `status` names the database and the host the app tried (KWOK serves the log after a
    // moment: poll until it does).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let said = loop {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
            .args(["status", "--namespace", ns])
            .env("KUBECONFIG", Harness::shared().var("KUBECONFIG"))
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        let stdout = text(&status.stdout);
        if stdout.contains("cannot reach its database") {
            assert_eq!(status.status.code(), Some(5), "{stdout}");
            break stdout;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never named the database:\n{stdout}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        said.contains(&format!(
            "Paperclip cannot reach its database at {host}:5432: pod {pod} exited at start: \
             getaddrinfo ENOTFOUND {host}"
        )),
        "{said}"
    );

    // And so does install's wait, instead of a bare crash loop.
    let image = "app.image=harness.invalid/fail:crashloop";
    let again = install(
        &setup,
        &[
            "--timeout",
            "60s",
            "--ignore-preflight",
            "image-app",
            "--set",
            image,
        ],
        &[("PAPERCLIP_LITELLM_KEY", LLM_KEY)],
    )
    .await;
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach its database at {host}:5432"))
            && stderr.contains(&format!("getaddrinfo ENOTFOUND {host}")),
        "{stderr}"
    );
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}
