//! `paperclipctl ssh` against the harness: the port-forward route reaches a real sshd (the
//! harness forwards pod port 2222 to it), the printed config works with plain ssh, and writing it
//! into `~/.ssh/config` keeps every other host.
//!
//! These run on KWOK's nodes with the harness's least app (`harness::apps`): the shell pod's
//! port 2222 is forwarded to the harness's sshd, and nothing of Paperclip is involved.

use std::path::Path;
use std::process::Output;

use crate::harness::Harness;
use crate::install::{Installed, installed, text};

/// Profile values that take the port-forward route (no LoadBalancer address for the shell).
const PORT_FORWARD: [&str; 4] = [
    "--set",
    "shell.service.loadBalancerIp=null",
    "--set",
    "shell.service.type=ClusterIP",
];

async fn paperclipctl(args: &[&str], home: Option<&Path>) -> Output {
    let h = Harness::shared();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"));
    command
        .args(args)
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("CI", "true")
        .env("NO_COLOR", "1");
    if let Some(home) = home {
        command.env("HOME", home);
    }
    command.output().await.unwrap()
}

/// The harness sshd's known host key, filed under the alias paperclipctl names it by (the local
/// port of a port-forward changes from run to run).
fn known_hosts(dir: &Path) -> String {
    let harness =
        std::fs::read_to_string(Harness::shared().var("HARNESS_SSH_KNOWN_HOSTS")).unwrap();
    let line = harness.lines().next().expect("a host key");
    let (_, key) = line.split_once(' ').unwrap();
    let path = dir.join("known_hosts");
    std::fs::write(&path, format!("paperclip-shell {key}\n")).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn ssh_through_a_port_forward_runs_a_command_and_the_printed_config_works_with_plain_ssh() {
    let h = Harness::shared();
    let Installed {
        setup,
        app: _app,
        run,
    } = installed("ssh").await;
    assert!(
        run.status.success(),
        "install failed:\n{}",
        text(&run.stderr)
    );
    let ns = setup.namespace.as_str();
    let dir = tempfile::tempdir().unwrap();
    let known = format!("UserKnownHostsFile={}", known_hosts(dir.path()));
    let key = h.var("HARNESS_SSH_KEY");
    let options = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        known.as_str(),
        "-i",
        key,
    ];
    let selection = ["--profile", "frank", "--namespace", ns];

    let mut args = vec!["ssh"];
    args.extend(selection);
    args.extend(PORT_FORWARD);
    args.push("--");
    args.extend(options);
    args.extend(["id", "-u"]);
    let run = paperclipctl(&args, None).await;
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout).trim(), "1000");

    // The failing remote command's status is the command's.
    let mut args = vec!["ssh"];
    args.extend(selection);
    args.extend(PORT_FORWARD);
    args.push("--");
    args.extend(options);
    args.extend(["exit", "7"]);
    assert_eq!(paperclipctl(&args, None).await.status.code(), Some(7));

    let mut args = vec!["ssh", "--print-config"];
    args.extend(selection);
    args.extend(PORT_FORWARD);
    let run = paperclipctl(&args, None).await;
    let block = text(&run.stdout);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(block.starts_with("Host paperclip-shell\n"), "{block}");
    assert!(block.contains("    User agent\n"), "{block}");
    assert!(block.contains("ssh --stdio"), "{block}");

    // Plain ssh with that block goes through `paperclipctl ssh --stdio`.
    let config = dir.path().join("config");
    std::fs::write(&config, &block).unwrap();
    let config = config.display().to_string();
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.args(["-F", &config])
        .args(&options[2..])
        .args(["paperclip-shell", "id", "-u"])
        .env("KUBECONFIG", h.var("KUBECONFIG"));
    let run = ssh.output().await.unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout).trim(), "1000");
}

#[tokio::test]
async fn the_config_block_names_the_load_balancer_and_is_written_in_place_with_consent() {
    let lb = [
        "--profile",
        "frank",
        "--set",
        "shell.service.loadBalancerIp=10.96.7.8",
    ];
    let mut args = vec!["ssh", "--print-config"];
    args.extend(lb);
    let run = paperclipctl(&args, None).await;
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        text(&run.stdout),
        "Host paperclip-shell\n    HostName 10.96.7.8\n    Port 22\n    User agent\n"
    );

    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let config = home.path().join(".ssh/config");
    let before = "Host work\n    HostName work.example\n\nHost paperclip-shell\n    HostName 10.0.0.1\n\nHost *\n    ServerAliveInterval 30\n";
    std::fs::write(&config, before).unwrap();

    // Without a terminal, writing needs --yes; nothing is written.
    let mut args = vec!["ssh", "--write-config"];
    args.extend(lb);
    let refused = paperclipctl(&args, Some(home.path())).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--yes"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    args.push("--yes");
    let run = paperclipctl(&args, Some(home.path())).await;
    assert!(run.status.success(), "{}", text(&run.stderr));
    let after = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        after,
        "Host work\n    HostName work.example\n\nHost paperclip-shell\n    HostName 10.96.7.8\n    \
         Port 22\n    User agent\n\nHost *\n    ServerAliveInterval 30\n"
    );
    // A second run changes nothing.
    let again = paperclipctl(&args, Some(home.path())).await;
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), after);
}

/// Runs paperclipctl under `umask 002` (a common default for personal groups) with `home`.
async fn under_umask_002(args: &[&str], home: &Path) -> Output {
    tokio::process::Command::new("sh")
        .args(["-c", "umask 002 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_paperclipctl"))
        .args(args)
        .env("HOME", home)
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_written_config_is_private_keeps_what_follows_our_block_and_refuses_injected_lines() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".ssh/config");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A kubeconfig path with a `%`, which ssh would expand in a ProxyCommand.
    let kubeconfig = home.path().join("100%/kubeconfig");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let mut args = vec!["ssh", "--write-config", "--yes", "--profile", "frank"];
    args.extend(PORT_FORWARD);
    args.extend(["--kubeconfig", kubeconfig]);

    let run = under_umask_002(&args, home.path()).await;
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        mode(&config),
        0o600,
        "OpenSSH refuses a group-writable config"
    );
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("/100%%/kubeconfig"),
        "a literal % is written %%: {written}"
    );

    // What follows our block (comments, an option added under the alias) stays.
    let after = format!(
        "{written}    IdentityFile ~/.ssh/shell\n# the next host is the VPN's\n\nHost vpn\n    Port 2\n"
    );
    std::fs::write(&config, &after).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut moved = vec!["ssh", "--write-config", "--yes", "--profile", "frank"];
    moved.extend(["--set", "shell.service.loadBalancerIp=10.96.7.9"]);
    let run = under_umask_002(&moved, home.path()).await;
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "Host paperclip-shell\n    HostName 10.96.7.9\n    Port 22\n    User agent\n    \
         IdentityFile ~/.ssh/shell\n# the next host is the VPN's\n\nHost vpn\n    Port 2\n"
    );
    assert_eq!(
        mode(&config),
        0o600,
        "an existing private config stays private"
    );

    // A newline in a flag would start directives of its own.
    let before = std::fs::read_to_string(&config).unwrap();
    let mut injected = args.clone();
    injected.extend([
        "--context",
        "prod\nHost *\n    ProxyCommand touch /tmp/owned",
    ]);
    let refused = under_umask_002(&injected, home.path()).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--context holds the control character '\\n'"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}
