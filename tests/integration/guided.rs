//! Guided `install` as a person meets it: `paperclipctl install` without a profile in a real
//! terminal (a tmux pane), answered key by key against the harness cluster, and the same command
//! without a terminal, which must never ask.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Harness;

/// A public key of the form the profile accepts (its private half was never kept).
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEPxhsXrnPYL+93uVN++VwYMfNpkj6eEdb/xaHmRLRdH me@laptop";

/// How long one prompt may take to appear (the first one waits for the cluster's lists).
const PROMPT_DEADLINE: Duration = Duration::from_secs(30);

/// A tmux server of its own (its socket in a temporary directory, so a person's tmux and other
/// tests are never touched) running one command in a wide pane.
struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    fn start(socket: PathBuf, command: &str) -> Terminal {
        let terminal = Terminal { socket };
        let status = terminal
            .tmux()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "guided"])
            .args(["-x", "200", "-y", "80", command])
            .status()
            .expect("run tmux (tests/harness/up installs it)");
        assert!(status.success(), "tmux could not start a session");
        terminal
    }

    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket);
        command
    }

    /// Presses keys by their tmux names (`Enter`, `Down`, `Space`, `y`).
    fn keys(&self, keys: &[&str]) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", "guided"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Types `text` literally, then Enter.
    fn answer(&self, text: &str) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", "guided", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
        self.keys(&["Enter"]);
    }

    /// The pane with its history, wrapped lines joined.
    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-S", "-1000", "-t", "guided"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until it shows `text`; fails with the screen when the deadline passes
    /// first. An answered prompt's `?` line turns into a `✔` line, so `? Label` means that
    /// prompt is waiting now.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + PROMPT_DEADLINE;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the screen in time:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

/// The shell command the pane runs: paperclipctl with a clean environment of the test's own
/// (no CI, no profile variable, its own HOME), reporting its exit code when it ends.
fn pane_command(dir: &Path, home: &Path) -> String {
    let quote = |p: &Path| format!("'{}'", p.display());
    format!(
        "cd {dir} && env -u CI -u PAPERCLIPCTL_PROFILE -u NO_COLOR HOME={home} TERM=xterm-256color \
         KUBECONFIG={kubeconfig} {bin} install; echo \"paperclipctl exited $?\"; read done",
        dir = quote(dir),
        home = quote(home),
        kubeconfig = quote(Path::new(Harness::shared().var("KUBECONFIG"))),
        bin = quote(Path::new(env!("CARGO_BIN_EXE_paperclipctl"))),
    )
}

/// How many times to press Down to reach the item containing `item` in the list under the
/// last prompt containing `prompt`.
fn downs_to(screen: &str, prompt: &str, item: &str) -> usize {
    let lines: Vec<&str> = screen.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains(prompt))
        .unwrap_or_else(|| panic!("no prompt {prompt:?} in:\n{screen}"));
    lines[start + 1..]
        .iter()
        .position(|l| l.contains(item))
        .unwrap_or_else(|| panic!("no {item:?} offered in:\n{screen}"))
}

#[test]
fn a_terminal_without_a_profile_is_asked_and_the_answers_are_saved_as_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY}\n")).unwrap();
    // A file already where the profile goes by default: it must not be overwritten unasked.
    std::fs::write(dir.path().join("paperclip-profile.yaml"), "mine\n").unwrap();
    let ip = crate::harness::unique_ip();

    let term = Terminal::start(
        dir.path().join("tmux.sock"),
        &pane_command(dir.path(), &home),
    );
    term.wait_for("? Namespace");
    term.answer("guided-agents");
    let screen = term.wait_for("? Storage class for the volumes");
    assert!(screen.contains("standard (default)"), "{screen}");
    let down = downs_to(&screen, "Storage class for the volumes", "longhorn");
    let up = downs_to(
        &screen,
        "Storage class for the volumes",
        "standard (default)",
    );
    for _ in up..down {
        term.keys(&["Down"]);
    }
    for _ in down..up {
        term.keys(&["Up"]);
    }
    term.keys(&["Enter"]);
    term.wait_for("? App Service type");
    term.keys(&["Down", "Down", "Enter"]);
    term.wait_for("? Fixed LoadBalancer IP");
    term.answer("not-an-ip");
    term.wait_for("invalid IP address \"not-an-ip\"");
    term.answer(&ip);
    term.wait_for(&format!("? Public URL people open (http://{ip}:3100)"));
    term.keys(&["Enter"]);
    let screen = term.wait_for("? Pin the app to a node");
    for _ in 0..downs_to(&screen, "Pin the app to a node", "gpu-1 (tainted)") {
        term.keys(&["Down"]);
    }
    term.keys(&["Enter"]);
    term.wait_for("gpu-1 has taints nvidia.com/gpu=true:NoSchedule; tolerate them");
    term.keys(&["y"]);
    term.wait_for("? Infisical address");
    term.keys(&["Enter"]);
    term.wait_for("? Infisical project slug");
    term.answer("agents-project");
    term.wait_for("? Infisical environment");
    term.keys(&["Enter"]);
    term.wait_for("? Infisical folder");
    term.answer("/paperclip");
    term.wait_for("? Optional features");
    // Brave Search, not Resend, and the shell sidecar.
    term.keys(&["Space", "Down", "Down", "Space", "Enter"]);
    term.wait_for("? Shell sidecar image");
    term.answer("registry.example/paperclip-shell:1.0");
    term.wait_for("? Keys allowed to log in to the shell");
    term.keys(&["Space", "Enter"]);

    let screen = term.wait_for("? Save the profile to");
    assert!(
        screen.contains(
            "Plan: install profile guided-agents (your answers) into namespace guided-agents"
        ),
        "{screen}"
    );
    assert!(screen.contains("Wave 0: database and secrets"), "{screen}");
    assert!(
        screen.contains("+ ExternalSecret/paperclip-brave (optional)"),
        "{screen}"
    );
    term.keys(&["Enter"]);
    term.wait_for("paperclip-profile.yaml exists; overwrite it?");
    term.keys(&["n"]);
    term.wait_for("paperclip-profile.yaml exists; overwrite it? · no");
    // Asked again where to save; a new name this time.
    term.wait_for("? Save the profile to");
    term.answer("./agents.yaml");
    term.wait_for("? Install now?");
    term.keys(&["n"]);
    let screen = term.wait_for("paperclipctl exited");
    assert!(screen.contains("paperclipctl exited 0"), "{screen}");
    assert!(
        screen.contains("paperclipctl install --profile ./agents.yaml --yes"),
        "{screen}"
    );
    assert!(screen.contains("Nothing was installed."), "{screen}");

    assert_eq!(
        std::fs::read_to_string(dir.path().join("paperclip-profile.yaml")).unwrap(),
        "mine\n"
    );
    let saved = dir.path().join("agents.yaml");
    let profile = paperclipctl::profile::load(saved.to_str().unwrap(), &[])
        .unwrap_or_else(|e| panic!("the saved profile loads: {e}"))
        .profile;
    assert_eq!(profile.namespace.to_string(), "guided-agents");
    assert_eq!(profile.storage.class_name.unwrap().to_string(), "longhorn");
    let service = &profile.app.service;
    assert_eq!(service.load_balancer_ip.as_ref().unwrap().to_string(), ip);
    assert_eq!(
        profile.app.public_url.to_string(),
        format!("http://{ip}:3100")
    );
    let placement = &profile.app.placement;
    assert_eq!(placement.node_selector["kubernetes.io/hostname"], "gpu-1");
    assert_eq!(placement.tolerations.len(), 1);
    assert_eq!(placement.tolerations[0].key, "nvidia.com/gpu");
    let store = &profile.secrets.store;
    assert_eq!(store.project_slug, "agents-project");
    assert_eq!(store.secrets_path, "/paperclip");
    let secrets: Vec<String> = profile
        .secrets
        .external_secrets
        .iter()
        .map(|es| es.name.to_string())
        .collect();
    assert_eq!(
        secrets,
        ["paperclip-llm-key", "paperclip-auth", "paperclip-brave"]
    );
    let shell = profile.shell.expect("the shell sidecar was chosen");
    assert_eq!(
        shell.image.to_string(),
        "registry.example/paperclip-shell:1.0"
    );
    assert_eq!(shell.authorized_keys, [KEY]);
}

#[test]
fn without_a_terminal_nothing_is_asked_and_the_default_profile_is_used() {
    let h = Harness::shared();
    let dir = tempfile::tempdir().unwrap();
    // Stops at preflight (the namespace holds no Infisical credentials): nothing is written.
    let namespace = format!("guided-none-{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args(["install", "--namespace", &namespace])
        .current_dir(dir.path())
        .env("KUBECONFIG", h.var("KUBECONFIG"))
        .env("HOME", dir.path())
        .env_remove("CI")
        .env_remove("PAPERCLIPCTL_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "install waited for an answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("questions"), "{stderr}");
    assert!(stderr.contains("connected to"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(
        !dir.path().join("paperclip-profile.yaml").exists(),
        "no profile is saved without questions"
    );
}
