//! The inventory reconciler (`paperclip-shell-reconcile`) run as the image runs it, with stand-in
//! managers on PATH that record their calls and keep what is "installed" in files, and a local
//! HTTP server in place of the Telegram Bot API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use tempfile::TempDir;

const TOKEN: &str = "123456:test-token-never-logged";
const CHAT: &str = "-100777";

fn image_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/shell-image")
}

fn reconciler() -> PathBuf {
    image_dir().join("rootfs/usr/local/bin/paperclip-shell-reconcile")
}

/// One stand-in for every manager (and rustup), dispatching on the name it is called by. It
/// appends `name args` to calls.log, fails the one call named by STUB_FAIL, and answers the
/// reconciler's queries in each manager's own output format from `<name>.installed`. An install
/// also lays out the files the real manager would (npm's package.json with its `bin`, pipx's
/// and cargo's executables in their bin directories), which the reconciler checks; an uninstall
/// removes them. While `<name>.broken` exists its list fails, as pipx's does over a
/// half-installed tool; an install repairs it.
const STUB: &str = r#"#!/usr/bin/env bash
set -u
me=${0##*/}
state=$STUB_STATE/$me.installed
touch "$state"
printf '%s %s\n' "$me" "$*" >>"$STUB_STATE/calls.log"
[[ -z ${TELEGRAM_BOT_TOKEN:-} ]] || echo "$me saw TELEGRAM_BOT_TOKEN" >>"$STUB_STATE/calls.log"
if [[ "$me $*" == "${STUB_FAIL:-}" ]]; then
  echo "simulated failure of $me $*" >&2
  exit 1
fi
if [[ $* == *list* && -e $STUB_STATE/$me.broken ]]; then
  echo "simulated broken install of $me" >&2
  exit 1
fi
modules=$NPM_CONFIG_PREFIX/lib/node_modules
# The executable a package provides: named after it, without an npm scope.
executable() {
  case $me in
    npm) echo "$NPM_CONFIG_PREFIX/bin/${1##*/}" ;;
    pipx) echo "$HOME/.local/bin/$1" ;;
    cargo) echo "$HOME/.cargo/bin/$1" ;;
  esac
}
add() {
  rm -f "$STUB_STATE/$me.broken"
  grep -qxF -- "$1" "$state" || echo "$1" >>"$state"
  [[ $me == mise ]] && return
  if [[ $me == npm ]]; then
    mkdir -p "$modules/$1"
    printf '{"name": "%s", "bin": {"%s": "cli.js"}}\n' "$1" "${1##*/}" >"$modules/$1/package.json"
  fi
  mkdir -p "$(dirname "$(executable "$1")")"
  printf '#!/bin/sh\n' >"$(executable "$1")"
  chmod +x "$(executable "$1")"
}
del() {
  grep -vxF -- "$1" "$state" >"$state.new"
  mv "$state.new" "$state"
  [[ $me == mise ]] && return
  rm -rf "$(executable "$1")" "$modules/$1"
}
case "$me $*" in
  "rustup default") echo "stable-x86_64-unknown-linux-gnu (default)" ;;
  "mise ls --installed --json")
    python3 -c '
import json, sys
tools = {}
for line in open(sys.argv[1]).read().split():
    name, version = line.split("@", 1)
    tools.setdefault(name, []).append({"version": version, "installed": True})
print(json.dumps(tools))' "$state" ;;
  "mise use --global "*) add "$3.7" ;;
  "mise unuse --global "*) del "$3.7" ;;
  "npm ls -g --depth=0 --parseable")
    echo "$NPM_CONFIG_PREFIX/lib"
    sed "s#^#$modules/#" "$state" ;;
  "npm i -g "*) add "$3" ;;
  "npm uninstall -g "*) del "$3" ;;
  "pipx list --json")
    python3 -c '
import json, sys
names = open(sys.argv[1]).read().split()
venvs = {n: {"metadata": {"main_package": {"package": n, "apps": [n]}}} for n in names}
print(json.dumps({"pipx_spec_version": "0.1", "venvs": venvs}))' "$state" ;;
  "pipx install --force "*) add "$3" ;;
  "pipx uninstall "*) del "$2" ;;
  "cargo install --list") sed 's/.*/& v1.0.0:\n    &/' "$state" ;;
  "cargo install --locked --force "*) add "$4" ;;
  "cargo uninstall "*) del "$2" ;;
  *) echo "stub: unexpected call: $me $*" >&2; exit 2 ;;
esac
"#;

/// A home, stand-in managers and the reconciler's files in one temporary directory.
struct Shell {
    dir: TempDir,
}

impl Shell {
    fn new(inventory: &str) -> Shell {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        for sub in ["bin", "state", "home"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let stub = dir.path().join("stub");
        std::fs::write(&stub, STUB).unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["mise", "npm", "pipx", "cargo", "rustup"] {
            symlink(&stub, bin.join(name)).unwrap();
        }
        // The boot hook calls the reconciler by name, as it finds it on the image's PATH.
        symlink(reconciler(), bin.join("paperclip-shell-reconcile")).unwrap();
        std::fs::write(dir.path().join("inventory.yaml"), inventory).unwrap();
        Shell { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Installs `tools` with the stand-in `manager` (`npm`, `pipx` or `cargo`), files and all,
    /// as an earlier boot would have.
    fn installed(&self, manager: &str, tools: &[&str]) {
        for tool in tools {
            let install: &[&str] = match manager {
                "npm" => &["i", "-g"],
                "pipx" => &["install", "--force"],
                "cargo" => &["install", "--locked", "--force"],
                _ => panic!("no stand-in install for {manager}"),
            };
            let run = self
                .command(&self.path(&format!("bin/{manager}")), None)
                .env("NPM_CONFIG_PREFIX", self.path("home/.local"))
                .args(install)
                .arg(tool)
                .output()
                .unwrap();
            assert!(run.status.success(), "{}", text(&run));
        }
    }

    fn command(&self, program: &Path, telegram: Option<&Telegram>) -> Command {
        let mut command = Command::new(program);
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap()
        );
        command
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("STUB_STATE", self.path("state"))
            .env("PAPERCLIP_SHELL_INVENTORY", self.path("inventory.yaml"))
            .env(
                "PAPERCLIP_SHELL_LOG",
                self.path("log/40-shell-inventory.log"),
            )
            .env("PAPERCLIP_SHELL_MOTD", self.path("motd/motd"))
            .env_remove("NPM_CONFIG_PREFIX")
            .env_remove("PIPX_BIN_DIR")
            .env_remove("CARGO_HOME")
            .env_remove("CARGO_INSTALL_ROOT")
            .env_remove("TELEGRAM_BOT_TOKEN")
            .env_remove("TELEGRAM_CHAT_ID");
        if let Some(telegram) = telegram {
            command
                .env("TELEGRAM_BOT_TOKEN", TOKEN)
                .env("TELEGRAM_CHAT_ID", CHAT)
                .env("TELEGRAM_API_URL", &telegram.url);
        }
        command
    }

    /// Runs the reconciler once and clears the call record of the run before, so `calls()`
    /// shows this run's calls only.
    fn reconcile(&self, telegram: Option<&Telegram>) -> Output {
        let _ = std::fs::remove_file(self.path("state/calls.log"));
        let output = self
            .command(&reconciler(), telegram)
            .output()
            .expect("run the reconciler");
        assert!(
            output.status.success(),
            "the reconciler must always exit 0, got {}:\n{}",
            output.status,
            text(&output)
        );
        output
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("state/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn motd(&self) -> String {
        std::fs::read_to_string(self.path("motd/motd")).expect("the MOTD summary is written")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log/40-shell-inventory.log"))
            .expect("the log is written")
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The calls that change something (everything but the queries).
fn changes(calls: &[String]) -> Vec<&str> {
    const QUERIES: [&str; 5] = [
        "rustup default",
        "mise ls --installed --json",
        "npm ls -g --depth=0 --parseable",
        "pipx list --json",
        "cargo install --list",
    ];
    calls
        .iter()
        .map(String::as_str)
        .filter(|c| !QUERIES.contains(c))
        .collect()
}

/// A stand-in for the Telegram Bot API on 127.0.0.1: answers every request with ok and keeps
/// each one as `request line` + body.
struct Telegram {
    url: String,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Telegram {
    fn start() -> Telegram {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                // Recorded before answering: once the client has its answer, the test sees it.
                seen.lock().unwrap().push((
                    request_line.trim().to_string(),
                    String::from_utf8(body).unwrap(),
                ));
                let answer = "{\"ok\":true}";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Telegram { url, requests }
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

/// Decodes an application/x-www-form-urlencoded body into its fields.
fn form(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn default_inventory() -> String {
    std::fs::read_to_string(image_dir().join("inventory.yaml")).unwrap()
}

const DEFAULT_INSTALLS: [&str; 6] = [
    "mise use --global python@3.12",
    "mise use --global node@20",
    "npm i -g @anthropic-ai/claude-code",
    "npm i -g @openai/codex",
    "pipx install --force uv",
    "cargo install --locked --force ripgrep",
];

fn assert_success_motd(motd: &str, installed: usize, present: usize, removed: usize) {
    let prefix = format!(
        "✓ paperclip-shell: {installed} installed, {present} already present, {removed} removed @ "
    );
    let stamp = motd
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("MOTD {motd:?} does not start with {prefix:?}"));
    // YYYY-MM-DDTHH:MM
    assert!(
        stamp.len() == 16 && stamp.as_bytes()[10] == b'T',
        "MOTD time stamp {stamp:?}"
    );
}

#[test]
fn fresh_home_gets_every_inventory_tool_and_no_alert() {
    let shell = Shell::new(&default_inventory());
    let telegram = Telegram::start();
    shell.reconcile(Some(&telegram));

    assert_eq!(changes(&shell.calls()), DEFAULT_INSTALLS);
    assert_success_motd(&shell.motd(), 6, 0, 0);
    let log = shell.log();
    for install in DEFAULT_INSTALLS {
        assert!(log.contains(&format!("exit=0 {install}\n")), "{log}");
    }
    assert!(telegram.requests().is_empty(), "success sends no alert");
}

#[test]
fn a_list_that_the_installs_repair_is_no_problem_and_one_that_stays_broken_is() {
    let shell = Shell::new(&default_inventory());
    std::fs::write(shell.path("state/pipx.broken"), "").unwrap();
    shell.reconcile(None);
    assert_eq!(changes(&shell.calls()), DEFAULT_INSTALLS);
    assert_success_motd(&shell.motd(), 6, 0, 0);

    let shell = Shell::new(&default_inventory());
    shell.installed("pipx", &["uv"]);
    std::fs::write(shell.path("state/pipx.broken"), "").unwrap();
    // Nothing is installed for pipx, so nothing repairs its list.
    std::fs::write(
        shell.path("inventory.yaml"),
        "pipx: []\nremoved:\n  pipx: [black]\n",
    )
    .unwrap();
    shell.reconcile(None);
    let motd = shell.motd();
    assert!(
        motd.starts_with("⚠ paperclip-shell: could not list pipx tools (exit 1)"),
        "{motd}"
    );
}

#[test]
fn unchanged_inventory_asks_no_manager_after_a_converged_run() {
    let shell = Shell::new(&default_inventory());
    shell.reconcile(None);
    shell.reconcile(None);

    let calls = shell.calls();
    assert!(calls.is_empty(), "an unchanged boot asked: {calls:?}");
    assert_success_motd(&shell.motd(), 0, 6, 0);
    let log = shell.log();
    let last = log.lines().last().unwrap_or_default();
    let millis: u64 = last
        .strip_prefix("paperclip-shell: done in ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the run does not end with its time: {log}"));
    assert!(millis < 1000, "an unchanged run took {millis} ms");
}

/// A pod restarted in the middle of `npm i -g` (or of pipx's or cargo's install) leaves the
/// package where the manager still lists it, but without the executable: the next boot installs
/// it again, with the flag that makes pipx and cargo overwrite what is there.
#[test]
fn a_package_an_interrupted_install_left_without_its_executable_is_installed_again() {
    let shell =
        Shell::new("npm-global: [cowsay, \"@scope/tool\"]\npipx: [pycowsay]\ncargo: [hello-cli]\n");
    shell.installed("npm", &["cowsay", "@scope/tool"]);
    shell.installed("pipx", &["pycowsay"]);
    shell.installed("cargo", &["hello-cli"]);
    for executable in [
        "home/.local/bin/cowsay",
        "home/.local/bin/pycowsay",
        "home/.cargo/bin/hello-cli",
    ] {
        std::fs::remove_file(shell.path(executable)).unwrap();
    }
    // Extraction stopped before package.json was written.
    std::fs::remove_file(shell.path("home/.local/lib/node_modules/@scope/tool/package.json"))
        .unwrap();
    shell.reconcile(None);

    assert_eq!(
        changes(&shell.calls()),
        [
            "npm i -g cowsay",
            "npm i -g @scope/tool",
            "pipx install --force pycowsay",
            "cargo install --locked --force hello-cli",
        ]
    );
    assert_success_motd(&shell.motd(), 4, 0, 0);
}

#[test]
fn the_convergence_stamp_does_not_hide_a_missing_executable() {
    let shell = Shell::new(&default_inventory());
    shell.reconcile(None);
    std::fs::remove_file(shell.path("home/.local/bin/claude-code")).unwrap();
    shell.reconcile(None);

    assert_eq!(
        changes(&shell.calls()),
        ["npm i -g @anthropic-ai/claude-code"]
    );
    assert_success_motd(&shell.motd(), 1, 5, 0);
    assert!(
        shell
            .log()
            .contains("home/.local/bin/claude-code is gone since the last complete reconcile"),
        "{}",
        shell.log()
    );
}

/// Every restart of a pod whose download is out of reach fails the same way: the chat hears
/// of it once, and again only after a success or when the problem changes.
#[test]
fn the_same_problem_is_alerted_once_however_many_boots_repeat_it() {
    let shell = Shell::new("pipx: [uv]\n");
    let telegram = Telegram::start();
    let boot = |fail: &str| {
        let output = shell
            .command(&reconciler(), Some(&telegram))
            .env("STUB_FAIL", fail)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
    };
    boot("pipx install --force uv");
    boot("pipx install --force uv");
    assert_eq!(telegram.requests().len(), 1, "{:?}", telegram.requests());
    assert!(
        shell.log().contains("this problem was reported already"),
        "{}",
        shell.log()
    );
    boot("pipx list --json");
    assert_eq!(telegram.requests().len(), 2, "a new problem is news");
    boot("");
    assert_success_motd(&shell.motd(), 0, 1, 0);
    boot("");
    std::fs::write(shell.path("inventory.yaml"), "pipx: [uv, black]\n").unwrap();
    boot("pipx install --force black");
    boot("pipx install --force black");
    assert_eq!(telegram.requests().len(), 3, "{:?}", telegram.requests());
}

#[test]
fn without_the_convergence_stamp_each_manager_is_queried_once_and_nothing_installed() {
    let shell = Shell::new(&default_inventory());
    shell.reconcile(None);
    std::fs::remove_file(shell.path("home/.paperclip-shell/converged")).unwrap();
    shell.reconcile(None);

    let calls = shell.calls();
    assert!(
        changes(&calls).is_empty(),
        "second run changed things: {calls:?}"
    );
    for query in [
        "mise ls --installed --json",
        "npm ls -g --depth=0 --parseable",
        "pipx list --json",
        "cargo install --list",
    ] {
        let count = calls.iter().filter(|c| *c == query).count();
        assert_eq!(count, 1, "`{query}` ran {count} times: {calls:?}");
    }
    assert_success_motd(&shell.motd(), 0, 6, 0);
}

#[test]
fn failed_install_flips_the_motd_and_alerts_once_without_leaking_the_token() {
    let shell = Shell::new(&default_inventory());
    let telegram = Telegram::start();
    let output = shell
        .command(&reconciler(), Some(&telegram))
        .env("STUB_FAIL", "npm i -g @openai/codex")
        .output()
        .unwrap();
    assert!(output.status.success(), "fail-open: {}", text(&output));

    assert_eq!(
        shell.motd().trim_end(),
        "⚠ paperclip-shell: 1 install(s) failed on last reconcile (npm i -g @openai/codex)"
    );
    // Everything else still converged.
    assert_eq!(changes(&shell.calls()), DEFAULT_INSTALLS);
    let log = shell.log();
    assert!(log.contains("exit=1 npm i -g @openai/codex\n"), "{log}");
    assert!(log.contains("exit=0 pipx install --force uv\n"), "{log}");

    let requests = telegram.requests();
    assert_eq!(requests.len(), 1, "exactly one alert: {requests:?}");
    let (request_line, body) = &requests[0];
    assert_eq!(
        request_line,
        &format!("POST /bot{TOKEN}/sendMessage HTTP/1.1")
    );
    let fields = form(body);
    assert!(
        fields.contains(&("chat_id".into(), CHAT.into())),
        "{fields:?}"
    );
    let message = &fields.iter().find(|(k, _)| k == "text").expect("text").1;
    assert!(message.contains("npm i -g @openai/codex"), "{message}");

    for (what, content) in [("log", log), ("output", text(&output))] {
        assert!(!content.contains(TOKEN), "the token leaked into the {what}");
    }
}

#[test]
fn removed_tools_are_uninstalled_only_when_present() {
    let shell =
        Shell::new("cargo: [ripgrep]\nremoved:\n  cargo: [fd-find]\n  npm-global: [left-pad]\n");
    shell.installed("cargo", &["ripgrep", "fd-find"]);
    shell.reconcile(None);

    assert_eq!(changes(&shell.calls()), ["cargo uninstall fd-find"]);
    assert_success_motd(&shell.motd(), 0, 1, 1);
    let left = std::fs::read_to_string(shell.path("state/cargo.installed")).unwrap();
    assert_eq!(left, "ripgrep\n");
}

#[test]
fn malformed_inventory_is_reported_and_sshd_still_starts() {
    let shell = Shell::new("mise: [python@3.12\nnpm-global: x\n");
    let telegram = Telegram::start();

    // The image's boot sequence: the entrypoint runs the real hook, then execs its command.
    let hooks = shell.path("cont-init.d");
    std::fs::create_dir(&hooks).unwrap();
    symlink(
        image_dir().join("rootfs/etc/cont-init.d/40-shell-inventory"),
        hooks.join("40-shell-inventory"),
    )
    .unwrap();
    let output = shell
        .command(
            &image_dir().join("rootfs/usr/local/bin/paperclip-shell-init"),
            Some(&telegram),
        )
        .env("PAPERCLIP_SHELL_CONT_INIT_DIR", &hooks)
        .args(["sh", "-c", "echo sshd would start"])
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.trim_end().ends_with("sshd would start"), "{out}");

    let motd = shell.motd();
    assert!(
        motd.starts_with("⚠ paperclip-shell: inventory not applied: ") && motd.contains("YAML"),
        "{motd}"
    );
    assert!(changes(&shell.calls()).is_empty(), "{:?}", shell.calls());
    assert!(
        shell.log().contains("inventory not applied"),
        "{}",
        shell.log()
    );
    assert_eq!(telegram.requests().len(), 1);
}

/// The Telegram token reaches the boot hooks (an alert is sent) but not the process the
/// entrypoint execs, whose environment stays readable at /proc/1/environ for every login.
#[test]
fn the_telegram_token_reaches_the_boot_hooks_but_not_sshds_environment() {
    let shell = Shell::new("brew: [wget]\n");
    let telegram = Telegram::start();
    let hooks = shell.path("cont-init.d");
    std::fs::create_dir(&hooks).unwrap();
    symlink(
        image_dir().join("rootfs/etc/cont-init.d/40-shell-inventory"),
        hooks.join("40-shell-inventory"),
    )
    .unwrap();
    let output = shell
        .command(
            &image_dir().join("rootfs/usr/local/bin/paperclip-shell-init"),
            Some(&telegram),
        )
        .env("PAPERCLIP_SHELL_CONT_INIT_DIR", &hooks)
        // Stands in for sshd: prints its own initial environment, as /proc/1/environ shows it.
        .args(["sh", "-c", "tr '\\0' '\\n' </proc/$$/environ"])
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert_eq!(telegram.requests().len(), 1, "the hook had the token");
    assert!(out.contains("PAPERCLIP_SHELL_CONT_INIT_DIR="), "{out}");
    assert!(
        !out.contains(TOKEN),
        "the token is left in sshd's environment: {out}"
    );
    assert!(!out.contains("TELEGRAM_BOT_TOKEN="), "{out}");
}

#[test]
fn unknown_manager_is_reported_and_the_rest_converges() {
    let shell = Shell::new("brew: [wget]\npipx: [uv]\n");
    shell.reconcile(None);

    assert_eq!(changes(&shell.calls()), ["pipx install --force uv"]);
    assert_eq!(
        shell.motd().trim_end(),
        "⚠ paperclip-shell: unknown manager(s) skipped: brew"
    );
    let log = shell.log();
    assert!(log.contains("unknown manager 'brew'"), "{log}");
    assert!(
        log.contains("TELEGRAM_BOT_TOKEN or TELEGRAM_CHAT_ID is unset; no alert sent"),
        "{log}"
    );
}
