//! The shared test harness: a real kube-apiserver with KWOK nodes and the services around it,
//! started once per machine by `tests/harness/up` and shared by every test in this binary.

pub mod apps;
pub mod infisical;
pub mod real;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct Harness {
    env: HashMap<String, String>,
}

impl Harness {
    /// The running harness, brought up on first use when it is not up already.
    pub fn shared() -> &'static Harness {
        static SHARED: OnceLock<Harness> = OnceLock::new();
        SHARED.get_or_init(|| {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let dir = harness_dir();
            let output = Command::new(dir.join("up"))
                .output()
                .expect("run tests/harness/up");
            assert!(
                output.status.success(),
                "tests/harness/up failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Harness {
                env: parse_env(&String::from_utf8_lossy(&output.stdout)),
            }
        })
    }

    /// A variable the harness exported (see `tests/harness/env`); panics naming it when absent.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("the harness exports no {key}"))
    }

    /// A variable the harness exported, if it did.
    pub fn var_opt(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A client for the harness cluster, built from its kubeconfig (not from the caller's
    /// environment, so a developer's own cluster is never touched).
    pub async fn client(&self) -> kube::Client {
        let path = self.var("KUBECONFIG");
        let kubeconfig = Kubeconfig::read_from(path)
            .unwrap_or_else(|e| panic!("read the harness kubeconfig {path}: {e}"));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("load the harness kubeconfig");
        kube::Client::try_from(config).expect("build a client for the harness cluster")
    }

    /// Creates a namespace of its own for one test, named `<prefix>-<unique suffix>` and labelled
    /// `paperclipctl-test=true`. Tests never clean up: `tests/harness/down` removes the cluster.
    pub async fn namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // The pid and clock keep names unique across test processes sharing one cluster.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "{prefix}-{:x}-{:x}-{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("paperclipctl-test".to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client().await)
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        name
    }

    /// The harness's kubectl (the cluster's own version), already pointed at the harness cluster.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.var("HARNESS_KUBECTL"));
        command.env("KUBECONFIG", self.var("KUBECONFIG"));
        command
    }

    /// Asserts that the API server accepts `manifests` in a server-side dry run (as paperclipctl's
    /// field manager; nothing is stored) and that it applied each of `objects` (`kind/name` as
    /// kubectl prints them): the API server's own verdict on rendered objects.
    pub fn assert_server_side_applies(&self, manifests: &[u8], objects: &[&str]) {
        let out = self.server_side_dry_run(manifests);
        assert!(
            out.status.success(),
            "the API server refused the manifests:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let applied = String::from_utf8_lossy(&out.stdout);
        for object in objects {
            assert!(
                applied.contains(&format!("{object} serverside-applied")),
                "{object} missing in:\n{applied}"
            );
        }
    }

    fn server_side_dry_run(&self, manifests: &[u8]) -> std::process::Output {
        use std::io::Write;
        use std::process::Stdio;
        let mut apply = self
            .kubectl()
            .args(["apply", "--server-side", "--dry-run=server"])
            .args(["--field-manager=paperclipctl", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        apply.stdin.take().unwrap().write_all(manifests).unwrap();
        apply.wait_with_output().unwrap()
    }
}

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness")
}

/// Parses the `export KEY=value` lines that `up` prints (values are shell-quoted with %q).
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), unquote(v)))
        .collect()
}

fn unquote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '\'' => out.extend(chars.by_ref().take_while(|&c| c != '\'')),
            _ => out.push(c),
        }
    }
    out
}

/// An address no other test or run uses (198.18.0.0/15 is reserved for benchmarks and never
/// routed): Services are never cleaned up, so a fixed address would collide on a re-run. A test
/// process hands out consecutive addresses from a start picked by its time and pid, so its own
/// tests never share one and another run most likely starts elsewhere.
pub fn unique_ip() -> String {
    /// Hosts 1..=254 of the 512 /24s of 198.18.0.0/15.
    const ADDRESSES: u32 = 2 * 256 * 254;
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u32;
        micros.wrapping_mul(31) ^ std::process::id().rotate_left(20)
    });
    let n = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % ADDRESSES;
    let (network, host) = (n / 254, 1 + n % 254);
    format!("198.{}.{}.{host}", 18 + network / 256, network % 256)
}

/// Creates an IngressClass named `name` whose controller nobody runs (preflight only looks for
/// the class), labelled as a test's; returns the API to delete it with, since a cluster-scoped
/// object goes with no namespace.
pub async fn ingress_class(
    name: &str,
) -> kube::Api<k8s_openapi::api::networking::v1::IngressClass> {
    use k8s_openapi::api::networking::v1::{IngressClass, IngressClassSpec};
    let classes = kube::Api::<IngressClass>::all(Harness::shared().client().await);
    let class = IngressClass {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some([("paperclipctl-test".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        spec: Some(IngressClassSpec {
            controller: Some("example.com/reach-test".into()),
            parameters: None,
        }),
    };
    classes
        .create(&kube::api::PostParams::default(), &class)
        .await
        .unwrap();
    classes
}
