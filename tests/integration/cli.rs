//! The binary as a user runs it: output, exit codes and error messages.

use std::process::Command;

/// How a run of the binary ended.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the binary with `args` and no profile or kubeconfig from the environment.
pub(crate) fn paperclipctl(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_paperclipctl"))
        .args(args)
        .env_remove("PAPERCLIPCTL_PROFILE")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run paperclipctl");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn install_dry_run_shows_the_waves_in_order_and_changes_nothing() {
    let run = paperclipctl(&["install", "--profile", "frank", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    let at = |s: &str| {
        out.find(s)
            .unwrap_or_else(|| panic!("missing {s:?} in\n{out}"))
    };
    assert!(at("Preflight") < at("Secrets in Infisical"));
    assert!(at("Secrets in Infisical") < at("Wave 0: database and secrets"));
    assert!(at("+ StatefulSet/paperclip-db-postgresql") < at("Wave 1: app and shell sidecar"));
    assert!(at("Wave 1: app and shell sidecar") < at("+ Deployment/paperclip"));
    assert!(at("+ Deployment/paperclip") < at("Onboarding"));
    assert!(out.contains("check image ghcr.io/paperclipai/paperclip:sha-3494e84 exists and offers the platform of nodes with kubernetes.io/hostname=gpu-1"));
    assert!(out.contains(
        "Secret/paperclip-db-postgresql (password set at install, never shown; kept on uninstall)"
    ));
    assert!(out.ends_with("Dry run: nothing was changed.\n"));
    assert_eq!(run.stdout, paperclipctl(&["plan", "-p", "frank"]).stdout);
    assert!(!run.stdout.contains("Containers:"));
    let verbose = paperclipctl(&["plan", "-p", "frank", "-v"]).stdout;
    assert!(verbose.contains("Deployment/paperclip paperclip: ghcr.io/paperclipai/paperclip:sha-3494e84; requests cpu=250m memory=1Gi; limits cpu=1 memory=12Gi"), "{verbose}");
}

#[test]
fn yaml_output_is_a_multi_document_manifest_stream() {
    let run = paperclipctl(&["plan", "--profile", "frank", "-o", "yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&run.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let ids: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ids.first().map(String::as_str),
        Some("Namespace/paperclip-system")
    );
    assert!(ids.contains(&"ClusterSecretStore/infisical".to_string()));
    assert_eq!(docs.len(), 20, "{ids:?}");
    assert!(docs.iter().all(|d| d["apiVersion"].is_string()));
}

#[test]
fn json_output_is_one_stable_document() {
    let run = paperclipctl(&["plan", "--profile", "frank", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["kind"], "Plan");
    assert_eq!(doc["namespace"], "paperclip-system");
    assert_eq!(doc["waves"][0]["wave"], 0);
    assert_eq!(
        doc["waves"][1]["waitFor"],
        serde_json::json!(["Deployment/paperclip"])
    );
    assert_eq!(doc["findings"], serde_json::json!([]));
    assert!(
        doc["preflight"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "storage-class")
    );
    assert_eq!(
        run.stdout,
        paperclipctl(&["plan", "--profile", "frank", "-o", "json"]).stdout
    );
}

#[test]
fn a_bad_profile_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.yaml");
    std::fs::write(
        &file,
        "name: mine\napp:\n  resources:\n    limits:\n      memory: 12GB\n",
    )
    .unwrap();
    let run = paperclipctl(&["plan", "--profile", file.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("mine.yaml:5:15: app.resources.limits.memory: invalid quantity \"12GB\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("try 12Gi"), "{}", run.stderr);
}

#[test]
fn a_local_trusted_profile_is_refused_before_anything_renders() {
    let run = paperclipctl(&[
        "plan",
        "--profile",
        "default",
        "--set",
        "app.deploymentMode=local_trusted",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("app.deploymentMode: local_trusted cannot run in a pod")
            && run
                .stderr
                .contains("local_trusted requires server.bind=loopback"),
        "{}",
        run.stderr
    );
}

#[test]
fn blocking_findings_exit_3_and_keep_manifests_off_stdout() {
    let run = paperclipctl(&[
        "plan",
        "-p",
        "frank",
        "--set",
        "app.strategy=RollingUpdate",
        "-o",
        "yaml",
    ]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("error[rwo-rolling-update] Deployment/paperclip"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("help: set app.strategy: Recreate"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was applied"), "{}", run.stderr);
}

#[test]
fn warnings_go_to_stderr_and_quiet_drops_them() {
    let set = "app.image=ghcr.io/paperclipai/paperclip:latest";
    let run = paperclipctl(&["plan", "--set", set, "-o", "yaml"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr.contains("warning[unpinned-image]"),
        "{}",
        run.stderr
    );
    let quiet = paperclipctl(&["plan", "--set", set, "-o", "yaml", "-q"]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert_eq!(quiet.stdout, run.stdout);
}

#[test]
fn namespace_flag_overrides_the_profile_and_is_validated() {
    let run = paperclipctl(&["plan", "-p", "frank", "-n", "agents", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["namespace"], "agents");
    let bad = paperclipctl(&["plan", "-n", "Agents"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("--namespace: invalid name \"Agents\""),
        "{}",
        bad.stderr
    );
}

#[test]
fn profile_show_prints_every_resolved_value() {
    let run = paperclipctl(&[
        "profile",
        "show",
        "-p",
        "default",
        "--set",
        "app.service.port=8080",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown: serde_json::Value = serde_yaml_ng::from_str(&run.stdout).unwrap();
    assert_eq!(shown["app"]["service"]["port"], 8080);
    assert_eq!(shown["app"]["strategy"], "Recreate");
    assert_eq!(shown["app"]["probes"]["readiness"]["host"], "localhost");
    // What `profile show` prints is itself a valid profile.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shown.yaml");
    std::fs::write(&file, &run.stdout).unwrap();
    let again = paperclipctl(&["profile", "show", "-p", file.to_str().unwrap()]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout.lines().skip(1).collect::<Vec<_>>(),
        run.stdout.lines().skip(1).collect::<Vec<_>>()
    );
    assert_eq!(
        paperclipctl(&["profile", "list"]).stdout,
        "default\nfrank\n"
    );
}

#[test]
fn every_verb_has_help() {
    for args in [
        vec!["--help"],
        vec!["install", "--help"],
        vec!["plan", "--help"],
        vec!["profile", "--help"],
        vec!["profile", "show", "--help"],
        vec!["image", "build", "--help"],
        vec!["image", "push", "--help"],
    ] {
        let run = paperclipctl(&args);
        assert_eq!(run.code, 0, "{args:?}");
        assert!(
            run.stdout.contains("Usage: paperclipctl"),
            "{args:?}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("--profile <NAME|PATH>"), "{args:?}");
    }
    let top = paperclipctl(&["--help"]).stdout;
    assert!(top.contains("Exit codes: 0 success, 1 failure, 2 invalid input"));
    assert_eq!(paperclipctl(&["no-such-verb"]).code, 2);
}

#[test]
fn bash_completion_completes_verbs_and_flags() {
    let run = paperclipctl(&["completions", "bash"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("paperclipctl.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    // What bash does on <TAB>: fill COMP_WORDS/COMP_CWORD and call the registered function.
    let complete = |line: &str| {
        let probe = format!(
            "source {}; COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"{line}\"; COMP_POINT=${{#COMP_LINE}}; _paperclipctl paperclipctl; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash").arg("-c").arg(probe).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let verbs = complete("paperclipctl u");
    assert!(verbs.lines().any(|w| w == "upgrade"), "{verbs}");
    assert!(verbs.lines().any(|w| w == "uninstall"), "{verbs}");
    let flags = complete("paperclipctl restore --o");
    assert!(flags.lines().any(|w| w == "--other-namespace"), "{flags}");
}

#[test]
fn completions_for_an_unknown_shell_are_refused_as_usage() {
    let run = paperclipctl(&["completions", "tcsh"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("invalid value 'tcsh'"),
        "{}",
        run.stderr
    );
}

#[test]
fn man_pages_cover_every_verb_and_name_an_unwritable_directory() {
    let page = paperclipctl(&["man"]);
    assert_eq!(page.code, 0, "{}", page.stderr);
    assert!(
        page.stdout.contains(".TH paperclipctl 1"),
        "{}",
        page.stdout
    );
    for verb in [
        "install",
        "upgrade",
        "rollback",
        "backup",
        "restore",
        "uninstall",
        "ssh",
    ] {
        assert!(
            page.stdout.contains(&format!("paperclipctl\\-{verb}(1)")),
            "{verb}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let run = paperclipctl(&["man", "--dir", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let install = std::fs::read_to_string(out.join("paperclipctl-install.1")).unwrap();
    assert!(install.contains("\\-\\-dry\\-run"), "{install}");
    assert!(out.join("paperclipctl-backup-pull.1").exists());

    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let target = blocked.join("man1");
    let run = paperclipctl(&["man", "--dir", target.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(&format!("cannot write {}", target.display())),
        "{}",
        run.stderr
    );
}
