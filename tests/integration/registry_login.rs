//! Registry logins for pinning a private sidecar image: a registry that wants a login, and
//! install pinning the image with what a `credHelpers` helper answers (where reading only the
//! config's inline `auths` finds nothing), or, with no login in the Docker config at all, with
//! the values of `shell.pullSecret`'s Infisical keys.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use sha2::Digest as _;

use crate::harness::Harness;
use crate::harness::infisical::Infisical;
use crate::install::{operator_command, setup, text};

const USER: &str = "helper-user";
const PASSWORD: &str = "helper-password-not-in-any-file";

/// A Distribution registry on a free loopback port that refuses anonymous requests.
struct PrivateRegistry {
    address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Option<PrivateRegistry> {
    let binary = Path::new("/usr/bin/docker-registry");
    if !binary.exists() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    // Distribution reads bcrypt htpasswd entries; Python's crypt makes one without a new tool.
    let hash = Command::new("python3")
        .args([
            "-c",
            "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(hash.status.success(), "{}", text(&hash.stderr));
    std::fs::write(
        dir.path().join("htpasswd"),
        format!("{USER}:{}", text(&hash.stdout).trim()),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\nhttp:\n  addr: {address}\n\
         auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n",
        root = dir.path().join("data").display(),
        htpasswd = dir.path().join("htpasswd").display(),
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let child = Command::new(binary)
        .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = PrivateRegistry {
        address,
        child,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&registry.address).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(registry)
}

/// Pushes a one-layer linux/amd64 image as `reference` with the registry's login; returns the
/// digest the registry serves it under.
async fn push_tiny_image(reference: &str) -> String {
    let registry = reference.split('/').next().unwrap();
    let client = crate::harness::registry::client(registry);
    let auth = RegistryAuth::Basic(USER.into(), PASSWORD.into());
    let layer = b"not a real filesystem, only bytes to point at".to_vec();
    let hex: String = sha2::Sha256::digest(&layer)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let diff_id = format!("sha256:{hex}");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let parsed: Reference = reference.parse().unwrap();
    client
        .push(
            &parsed,
            &[ImageLayer::new(layer, IMAGE_LAYER_MEDIA_TYPE.into(), None)],
            Config::new(config, IMAGE_CONFIG_MEDIA_TYPE.into(), None),
            &auth,
            None,
        )
        .await
        .expect("push the tiny image");
    client
        .fetch_manifest_digest(&parsed, &auth)
        .await
        .expect("read the pushed digest")
}

/// A Docker config directory whose only login is `credHelpers` naming a helper that answers
/// for `registry`, and a directory holding that helper.
fn helper_config(dir: &Path, registry: &str) -> (String, String) {
    let config = dir.join("docker");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"credHelpers": {{"{registry}": "paperclip-test"}}}}"#),
    )
    .unwrap();
    let helper = bin.join("docker-credential-paperclip-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (
        config.display().to_string(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    )
}

#[tokio::test]
async fn install_pins_a_private_sidecar_with_the_login_a_credential_helper_keeps() {
    let h = Harness::shared();
    let Some(registry) = start_registry() else {
        eprintln!("skipped: no Distribution registry binary on this machine");
        return;
    };
    let reference = format!("{}/private/shell:1.0", registry.address);
    let digest = push_tiny_image(&reference).await;
    let namespace = h.namespace("cred-helper").await;
    let dir = tempfile::tempdir().unwrap();
    let (docker_config, path) = helper_config(dir.path(), &registry.address);
    // The storage class does not exist: preflight stops the install after the pin, before
    // anything is written.
    let run = |docker_config: &str, path: &str| {
        let mut command = operator_command();
        command
            .args(["install", "--profile", "default", "--namespace", &namespace])
            .args(["--set", &format!("shell={{image: \"{reference}\"}}")])
            .args(["--set", "storage.className=no-such-class"])
            .env("DOCKER_CONFIG", docker_config)
            .env("PATH", path);
        async move { command.output().await.unwrap() }
    };

    let helped = run(&docker_config, &path).await;
    let stderr = text(&helped.stderr);
    assert!(
        stderr.contains(&format!("shell image {reference} pinned to {digest}")),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD) && !text(&helped.stdout).contains(PASSWORD));

    // The same config without its helper on PATH has no login: the registry refuses.
    let empty = dir.path().join("no-login");
    std::fs::create_dir_all(&empty).unwrap();
    let refused = run(empty.to_str().unwrap(), &std::env::var("PATH").unwrap()).await;
    assert_ne!(refused.status.code(), Some(0));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("unauthorized or private"), "{stderr}");
    assert!(!stderr.contains("pinned to"), "{stderr}");
}

/// The kubelet pulls the sidecar with the pull secret that External Secrets makes from two
/// Infisical keys; install pins the image with the same two values when the Docker config has
/// no login for the registry, and a refused login names the keys, never their values.
#[tokio::test]
async fn install_pins_a_private_sidecar_with_the_pull_secrets_values_from_infisical() {
    const WRONG: &str = "a-wrong-password-kept-in-infisical";
    let h = Harness::shared();
    let Some(registry) = start_registry() else {
        eprintln!("skipped: no Distribution registry binary on this machine");
        return;
    };
    let reference = format!("{}/private/shell:1.0", registry.address);
    let digest = push_tiny_image(&reference).await;
    let setup = setup("pull-login", None).await;
    let infisical = Infisical::new();
    let client = infisical.client(infisical.identity()).await;
    for (key, value) in [
        ("REGISTRY_USER", USER),
        ("REGISTRY_PASSWORD", PASSWORD),
        ("REGISTRY_PASSWORD_OLD", WRONG),
    ] {
        let request =
            infisical::secrets::CreateSecretRequest::builder(key, value, &setup.project.id, "prod")
                .path("/")
                .build();
        client.secrets().create(request).await.unwrap();
    }
    let no_login = tempfile::tempdir().unwrap();
    let run = |password_key: &str| {
        let shell = format!(
            "shell={{image: \"{reference}\", pullSecret: {{registry: \"{}\", \
             usernameKey: REGISTRY_USER, passwordKey: {password_key}}}}}",
            registry.address
        );
        let mut command = operator_command();
        command
            .args([
                "install",
                "--profile",
                "default",
                "--namespace",
                &setup.namespace,
            ])
            .args(["--set", &shell])
            .args(["--set", "secrets.store.kind=SecretStore"])
            .args([
                "--set",
                &format!("secrets.store.hostApi={}", h.var("INFISICAL_API_URL")),
            ])
            .args([
                "--set",
                &format!("secrets.store.projectSlug={}", setup.project.slug),
            ])
            .args(["--set", "secrets.store.environmentSlug=prod"])
            // The storage class does not exist: preflight stops the install after the pin,
            // before anything is written.
            .args(["--set", "storage.className=no-such-class"])
            .env("DOCKER_CONFIG", no_login.path())
            .env_remove("REGISTRY_USER")
            .env_remove("REGISTRY_PASSWORD")
            .env_remove("REGISTRY_PASSWORD_OLD");
        async move { command.output().await.unwrap() }
    };

    let pinned = run("REGISTRY_PASSWORD").await;
    let (stdout, stderr) = (text(&pinned.stdout), text(&pinned.stderr));
    assert!(
        stderr.contains(&format!("shell image {reference} pinned to {digest}")),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD) && !stdout.contains(PASSWORD));

    let refused = run("REGISTRY_PASSWORD_OLD").await;
    let (stdout, stderr) = (text(&refused.stdout), text(&refused.stderr));
    assert_ne!(refused.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} refused the login from shell.pullSecret's keys REGISTRY_USER and \
             REGISTRY_PASSWORD_OLD (from Infisical)",
            registry.address
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(WRONG) && !stdout.contains(WRONG),
        "{stderr}"
    );
    assert!(!stderr.contains("pinned to"), "{stderr}");
}
