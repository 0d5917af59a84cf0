//! The shell sidecar's inventory, alerts and view of the instance, as the profile renders them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use paperclipctl::profile::{self, Profile};
use paperclipctl::render::{self, Object, eso};

const SHELL: &str = "name: x\nshell:\n  image: r.example/shell:1\n";

fn profile(yaml: &str) -> Profile {
    profile::parse("profile.yaml", yaml).unwrap_or_else(|e| panic!("{e}: {:?}", e.help))
}

fn deployment(p: &Profile) -> Deployment {
    render::render(p)
        .objects()
        .find_map(|o| match o {
            Object::Deployment(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap()
}

fn pod(p: &Profile) -> PodSpec {
    deployment(p).spec.unwrap().template.spec.unwrap()
}

fn checksum(p: &Profile) -> String {
    let template = deployment(p).spec.unwrap().template.metadata.unwrap();
    template.annotations.unwrap()["paperclipctl.io/shell-config-sha256"].clone()
}

fn inventory_file(p: &Profile) -> String {
    let configmap: ConfigMap = render::render(p)
        .objects()
        .find_map(|o| match o {
            Object::ConfigMap(c) if o.name() == "paperclip-shell-inventory" => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    configmap.data.unwrap()["inventory.yaml"].clone()
}

#[test]
fn the_profiles_inventory_is_the_configmap_and_a_change_rolls_the_pod() {
    let first = profile(&format!(
        "{SHELL}  inventory:\n    npm-global: [cowsay]\n    pipx: [pycowsay]\n    cargo: [bat]\n    removed:\n      pipx: [black]\n"
    ));
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&inventory_file(&first)).unwrap();
    let expected: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "{mise: [], npm-global: [cowsay], pipx: [pycowsay], cargo: [bat], removed: {pipx: [black]}}",
    )
    .unwrap();
    assert_eq!(parsed, expected);

    let same = profile(&format!(
        "{SHELL}  inventory:\n    cargo: [bat]\n    pipx: [pycowsay]\n    npm-global: [cowsay]\n    removed: {{pipx: [black]}}\n"
    ));
    assert_eq!(
        checksum(&first),
        checksum(&same),
        "the same inventory rolls nothing"
    );
    let changed = profile(&format!(
        "{SHELL}  inventory:\n    npm-global: [cowsay]\n    pipx: [pycowsay]\n    cargo: [bat, fd-find]\n"
    ));
    assert_ne!(checksum(&first), checksum(&changed));
}

#[test]
fn without_an_inventory_the_sidecar_gets_the_images_default() {
    let file = inventory_file(&profile(SHELL));
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&file).unwrap();
    let image: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../embedded/shell-image/inventory.yaml")).unwrap();
    assert_eq!(parsed, image);
}

#[test]
fn inventory_entries_that_are_not_one_package_are_refused_naming_the_entry() {
    let cases = [
        (
            "npm-global: [cowsay, \"--registry=http://evil\"]",
            "shell.inventory.npm-global[1]",
            "option",
        ),
        (
            "pipx: [\"black ruff\"]",
            "shell.inventory.pipx[0]",
            "not a tool name",
        ),
        (
            "cargo: [\"\"]",
            "shell.inventory.cargo[0]",
            "not a tool name",
        ),
        (
            "cargo: [bat]\n    removed:\n      cargo: [fd-find, bat]",
            "shell.inventory.removed.cargo[1]",
            "also listed under cargo",
        ),
        ("brew: [jq]", "shell.inventory.brew", "unknown field `brew`"),
    ];
    for (lists, path, message) in cases {
        let yaml = format!("{SHELL}  inventory:\n    {lists}\n");
        let e = profile::parse("profile.yaml", &yaml).expect_err(&yaml);
        assert_eq!(e.path, path, "{yaml}\n{e}");
        assert!(e.message.contains(message), "{yaml}\n{e}");
        assert!(
            e.origin.starts_with("profile.yaml:"),
            "no line for {path}: {}",
            e.origin
        );
    }
}

#[test]
fn telegram_keys_sync_into_an_optional_secret_the_sidecar_alone_loads() {
    let p = profile(&format!(
        "{SHELL}  alerts:\n    telegram:\n      botTokenKey: BOT_TOKEN\n      chatIdKey: BOT_CHAT\n"
    ));
    let release = render::render(&p);
    assert!(release.findings.is_empty(), "{:?}", release.findings);
    let es = release
        .objects()
        .find_map(|o| match o {
            Object::ExternalSecret(es) if o.name() == "paperclip-shell-alerts" => Some(es),
            _ => None,
        })
        .expect("an ExternalSecret for the alert settings");
    assert!(eso::is_optional(es), "the pod must start without the keys");
    let keys: Vec<(&str, &str)> = es
        .spec
        .data
        .iter()
        .map(|d| (d.remote_ref.key.as_str(), d.secret_key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
            ("BOT_CHAT", "TELEGRAM_CHAT_ID")
        ]
    );

    let pod = pod(&p);
    let loads = |name: &str| -> Vec<(String, Option<bool>)> {
        let container = pod.containers.iter().find(|c| c.name == name).unwrap();
        container
            .env_from
            .iter()
            .flatten()
            .filter_map(|e| e.secret_ref.as_ref())
            .map(|s| (s.name.clone(), s.optional))
            .collect()
    };
    assert_eq!(
        loads("paperclip-shell"),
        [("paperclip-shell-alerts".to_string(), Some(true))]
    );
    assert!(
        loads("paperclip")
            .iter()
            .all(|(n, _)| n != "paperclip-shell-alerts")
    );

    let same_key = "  alerts:\n    telegram:\n      botTokenKey: BOT\n      chatIdKey: BOT\n";
    let e = profile::parse("profile.yaml", &format!("{SHELL}{same_key}")).unwrap_err();
    assert_eq!(e.path, "shell.alerts.telegram.chatIdKey");
}

#[test]
fn the_sidecar_sees_the_agents_workspaces_but_not_the_instance_key() {
    let pod = pod(&profile(SHELL));
    let shell = pod
        .containers
        .iter()
        .find(|c| c.name == "paperclip-shell")
        .unwrap();
    let data: Vec<_> = shell
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == "data")
        .collect();
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(
        data[0].sub_path.as_deref(),
        Some("instances/default/workspaces")
    );
    assert_eq!(data[0].read_only, Some(true));
    // The directory exists, made by the app's user, before the kubelet mounts it.
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.command.as_deref().unwrap().last().map(String::as_str),
        Some("/paperclip/instances/default/workspaces")
    );
    assert_eq!(
        init.security_context.as_ref().unwrap().run_as_user,
        Some(1000)
    );
}

#[test]
fn a_service_account_token_is_mounted_only_when_the_profile_asks() {
    assert_eq!(
        pod(&profile(SHELL)).automount_service_account_token,
        Some(false)
    );
    let asked = profile(&format!("{SHELL}app:\n  serviceAccountToken: true\n"));
    assert_eq!(pod(&asked).automount_service_account_token, Some(true));
    let e = profile::parse(
        "profile.yaml",
        "name: x\napp:\n  serviceAccountToken: yes please\n",
    )
    .unwrap_err();
    assert_eq!(e.path, "app.serviceAccountToken");
}

/// The real sidecar image on the harness's real node, built from this checkout, converging a
/// profile's inventory from the package registries this machine reaches. Pods there reach
/// nothing beyond the node, so the sidecar downloads through `shell.env`'s HTTPS_PROXY: a CONNECT
/// proxy this test runs on the node's address that lets through the registries and refuses
/// everything else (mise's GitHub downloads among them). Telegram is a stand-in Bot API on the
/// node's address too.
mod real_node {
    use std::net::IpAddr;
    use std::process::Output;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::Api;
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::harness::Harness;
    use crate::harness::real::{self, RealNode};
    use crate::install::{operator_command, setup, text};

    /// Where the package managers download from; the proxy refuses every other host.
    const REGISTRIES: &[&str] = &[
        "registry.npmjs.org",
        "pypi.org",
        "files.pythonhosted.org",
        "static.rust-lang.org",
        "index.crates.io",
        "static.crates.io",
    ];
    const BOT_TOKEN: &str = "4242:shell-alerts-token";
    const CHAT: &str = "-100777";
    /// A tool mise downloads from GitHub, which the proxy refuses.
    const UNREACHABLE: &str = "ripgrep@14";
    const SIDECAR: &str = "paperclip-shell";

    /// An HTTP CONNECT proxy on `ip` that tunnels to port 443 of [`REGISTRIES`] only.
    async fn start_proxy(ip: IpAddr) -> u16 {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(tunnel(client));
            }
        });
        port
    }

    async fn tunnel(mut client: TcpStream) {
        let Some(head) = read_head(&mut client).await else {
            return;
        };
        let target = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("CONNECT "))
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|target| {
                target
                    .strip_suffix(":443")
                    .is_some_and(|host| REGISTRIES.contains(&host))
            })
            .map(str::to_string);
        let upstream = match target {
            Some(target) => TcpStream::connect(target).await.ok(),
            None => None,
        };
        let Some(mut upstream) = upstream else {
            let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_ok()
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    }

    /// The request line and headers, up to the blank line.
    async fn read_head(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 || stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    /// A stand-in for the Telegram Bot API on `ip`: records each request's path and form body.
    async fn start_bot_api(ip: IpAddr) -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or_default();
                    seen.lock().unwrap().push((
                        path.to_string(),
                        String::from_utf8_lossy(&body).into_owned(),
                    ));
                    let reply = r#"{"ok":true,"result":{"message_id":1}}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        (port, requests)
    }

    /// The form field `name` of a urlencoded body.
    fn field(body: &str, name: &str) -> Option<String> {
        body.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| {
                let value = value.replace('+', " ");
                let bytes = value.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' && i + 2 < bytes.len() {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8_lossy(&out).into_owned()
            })
        })
    }

    async fn paperclipctl(args: &[&str], env: &[(&str, &str)]) -> Output {
        operator_command()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap()
    }

    fn ok(run: &Output, what: &str) -> String {
        assert!(
            run.status.success(),
            "{what} failed ({:?}):\n{}\n{}",
            run.status.code(),
            text(&run.stdout),
            text(&run.stderr)
        );
        text(&run.stdout)
    }

    /// The `Shell:` line of `status`, once the sidecar's boot hook has written one.
    async fn reconciled(namespace: &str, deadline: Duration) -> String {
        let start = Instant::now();
        loop {
            let run = paperclipctl(&["status", "-n", namespace, "-o", "json"], &[]).await;
            let report: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
            if let Some(line) = report["shell"].as_str()
                && (line.starts_with('✓') || line.starts_with('⚠'))
            {
                return line.to_string();
            }
            assert!(
                start.elapsed() < deadline,
                "no reconcile summary within {deadline:?}: {}",
                text(&run.stdout)
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    /// The log of the sidecar's current container (its boot hooks' output).
    fn sidecar_log(namespace: &str, pod: &str) -> String {
        let out = Harness::shared()
            .kubectl()
            .args(["logs", "-n", namespace, pod, "-c", SIDECAR])
            .output()
            .unwrap();
        text(&out.stdout)
    }

    /// Runs `script` with a login bash in the sidecar of `pod`; its output, once it succeeded.
    async fn in_sidecar(namespace: &str, pod: &str, script: &str) -> String {
        let ran = real::exec(namespace, pod, SIDECAR, &["bash", "-lc", script]).await;
        assert!(ran.success, "{script}: {}{}", ran.stdout, ran.stderr);
        ran.stdout
    }

    /// How often the sidecar's container of `pod` has restarted.
    async fn sidecar_restarts(namespace: &str, pod: &str) -> i32 {
        let pods = Api::<Pod>::namespaced(Harness::shared().client().await, namespace);
        let pod = pods.get(pod).await.unwrap();
        pod.status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()
            .iter()
            .find(|c| c.name == SIDECAR)
            .map_or(0, |c| c.restart_count)
    }

    /// The time the reconciler's run took, from the last line it logs (`done in N ms`).
    fn run_time(log: &str) -> Option<u64> {
        log.lines()
            .rev()
            .find_map(|l| l.strip_prefix("paperclip-shell: done in "))
            .and_then(|rest| rest.strip_suffix(" ms"))
            .and_then(|n| n.parse().ok())
    }

    async fn node_ip(node: &str) -> IpAddr {
        let node = Api::<Node>::all(Harness::shared().client().await)
            .get(node)
            .await
            .unwrap();
        node.status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.parse().unwrap())
            .expect("the real node's InternalIP")
    }

    #[tokio::test]
    async fn the_real_sidecar_converges_the_profiles_inventory_and_alerts_once() {
        let Some(real) = RealNode::or_skip("the sidecar's inventory") else {
            return;
        };
        let h = Harness::shared();
        let shell_image = real::shell_image_of_this_checkout().await;
        let node_ip = node_ip(&real.node).await;
        let proxy = format!("http://{node_ip}:{}", start_proxy(node_ip).await);
        let (bot_port, bot_requests) = start_bot_api(node_ip).await;
        let ssh_key = h.var("HARNESS_SSH_KEY").to_string();
        let public_key = std::fs::read_to_string(format!("{ssh_key}.pub")).unwrap();
        // This machine's egress inspects TLS: the sidecar trusts what this machine trusts.
        let ca_bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();

        let mut slot = real::slot().await;
        let setup = setup("shell-inventory", None).await;
        slot.holds(&setup.namespace);
        let namespace = setup.namespace.as_str();
        let base = crate::journey::profile(&real, &setup, &real.image, "official").await;
        let dir = tempfile::tempdir().unwrap();
        let profile_path = dir.path().join("profile.yaml");
        let write_profile = |inventory: Value| {
            let mut profile = base.clone();
            profile["name"] = json!("shell-inventory");
            profile["shell"] = json!({
                "image": shell_image,
                "home": {"size": "2Gi"},
                "authorizedKeys": [public_key.trim()],
                "inventory": inventory,
                "caBundle": ca_bundle,
                "alerts": {"telegram": {"botTokenKey": "SHELL_BOT_TOKEN", "chatIdKey": "SHELL_BOT_CHAT"}},
                "env": {
                    "HTTPS_PROXY": proxy,
                    "NO_PROXY": node_ip.to_string(),
                    "TELEGRAM_API_URL": format!("http://{node_ip}:{bot_port}"),
                },
            });
            std::fs::write(
                &profile_path,
                serde_json::to_string_pretty(&profile).unwrap(),
            )
            .unwrap();
        };
        let profile = profile_path.to_str().unwrap();
        let install = || async {
            let run = paperclipctl(
                &["install", "-p", profile, "--timeout", "10m"],
                &[("SHELL_BOT_TOKEN", BOT_TOKEN), ("SHELL_BOT_CHAT", CHAT)],
            )
            .await;
            ok(&run, "install");
        };

        // First boot: three managers install from their registries, mise cannot reach GitHub.
        // Onboarding restarts the app pod meanwhile, cutting a boot short in the middle of its
        // installs: the next boot finishes what it left.
        write_profile(json!({
            "mise": [UNREACHABLE],
            "npm-global": ["cowsay"],
            "pipx": ["pycowsay"],
            "cargo": ["hello-cli"],
        }));
        install().await;
        let first_name = real::app_pod(namespace).await.metadata.name.unwrap();
        let summary = reconciled(namespace, Duration::from_secs(15 * 60)).await;
        assert_eq!(
            summary,
            format!(
                "⚠ paperclip-shell: 1 install(s) failed on last reconcile (mise use --global {UNREACHABLE})"
            ),
            "only mise's download fails:\n{}",
            sidecar_log(namespace, &first_name)
        );
        let motd = in_sidecar(namespace, &first_name, "cat /etc/motd").await;
        assert_eq!(motd, format!("{summary}\n"), "the MOTD is the one ⚠ line");
        let tools = in_sidecar(
            namespace,
            &first_name,
            "cowsay moo >/dev/null && pycowsay moo >/dev/null && cargo install --list",
        )
        .await;
        assert!(tools.contains("hello-cli"), "{tools}");
        let start = Instant::now();
        while bot_requests.lock().unwrap().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no alert reached the Bot API:\n{}",
                sidecar_log(namespace, &first_name)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let sent = bot_requests.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "one alert per problem: {sent:?}");
        assert_eq!(sent[0].0, format!("/bot{BOT_TOKEN}/sendMessage"));
        assert_eq!(field(&sent[0].1, "chat_id").as_deref(), Some(CHAT));
        let message = field(&sent[0].1, "text").unwrap();
        assert!(message.starts_with(&summary), "{message}");

        // sshd is up through the failure, and a login shows the summary as its MOTD.
        let ssh = |script: &'static str| {
            let profile = profile.to_string();
            let key = ssh_key.clone();
            async move {
                let mut command = operator_command();
                command
                    .args(["ssh", "-p", &profile, "--", "-tt", "-o", "BatchMode=yes"])
                    .args([
                        "-o",
                        "StrictHostKeyChecking=no",
                        "-o",
                        "UserKnownHostsFile=/dev/null",
                    ])
                    .args(["-o", "IdentitiesOnly=yes", "-i", &key])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut child = command.spawn().unwrap();
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(script.as_bytes()).await.unwrap();
                drop(stdin);
                let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
                    .await
                    .expect("ssh returns")
                    .unwrap();
                text(&out.stdout)
            }
        };
        let login = ssh("exit\n").await;
        assert!(
            login.contains(&summary),
            "the MOTD shows the summary: {login}"
        );

        // A changed inventory rolls the pod on install, and the new boot converges to it.
        write_profile(json!({
            "pipx": ["pycowsay"],
            "cargo": ["hello-cli"],
            "removed": {"npm-global": ["cowsay"]},
        }));
        install().await;
        let second_name = real::app_pod(namespace).await.metadata.name.unwrap();
        assert_ne!(
            second_name, first_name,
            "the inventory change rolls the pod"
        );
        let summary = reconciled(namespace, Duration::from_secs(10 * 60)).await;
        assert!(
            summary.starts_with("✓ paperclip-shell: 0 installed, 2 already present, 1 removed @ "),
            "{summary}\n{}",
            sidecar_log(namespace, &second_name)
        );
        let login = ssh("exit\n").await;
        assert!(login.contains(&summary), "{login}");

        // The sidecar boots again with nothing changed: its reconciler asks no manager, and says
        // in its own log that the run took under a second.
        let restarts = sidecar_restarts(namespace, &second_name).await;
        let _ = h
            .kubectl()
            .args(["exec", "-n", namespace, &second_name, "-c", SIDECAR])
            .args(["--", "bash", "-c", "kill 1"])
            .output();
        let start = Instant::now();
        let log = loop {
            if sidecar_restarts(namespace, &second_name).await > restarts {
                let log = sidecar_log(namespace, &second_name);
                if run_time(&log).is_some() {
                    break log;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "the sidecar did not boot again"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let millis = run_time(&log).unwrap();
        eprintln!("an unchanged boot's reconcile took {millis} ms");
        assert!(millis < 1000, "an unchanged boot took {millis} ms:\n{log}");
        assert!(
            log.contains("inventory unchanged since the last complete reconcile"),
            "{log}"
        );
        assert!(
            !log.lines().any(|l| l.starts_with("$ ")),
            "an unchanged boot runs no manager command:\n{log}"
        );
        let summary = reconciled(namespace, Duration::from_secs(60)).await;
        assert!(
            summary.starts_with("✓ paperclip-shell: 0 installed, 2 already present, 0 removed @ "),
            "{summary}"
        );
        assert_eq!(
            bot_requests.lock().unwrap().len(),
            1,
            "success sends nothing"
        );
    }
}
