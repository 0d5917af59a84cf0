//! The human output of the read-only views and of each dry run, pinned as snapshots: what a
//! user reads changes only on purpose. What differs between runs (namespaces, addresses,
//! digests, times, sizes, paths) is redacted.

use crate::harness::registry::fixture_images;
use crate::install::text;
use crate::user::{Release, User};

/// Settings that redact what differs between runs of the same test.
fn redactions(release: &Release) -> insta::Settings {
    let setup = &release.installed.setup;
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&setup.project.slug), "[project]");
    settings.add_filter(&regex_escape(&setup.namespace), "[namespace]");
    // Whether the host's disk is nearly full, and how much memory other tests' pods left free.
    settings.add_filter(r"(?m)^warning: the volume at .* full.*\n", "");
    settings.add_filter(r"\(\d+(\.\d+)?Gi free\)", "([size] free)");
    // Pods are listed by name, and the app pod's generated name sorts before or after the
    // database's: the database pod's line is left out.
    settings.add_filter(r"(?m)^  paperclip-db-postgresql-0 Running.*\n", "");
    settings.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[digest]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[short-digest]");
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[time]",
    );
    settings.add_filter(r"https://127\.0\.0\.1:\d+/?", "[server]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "[registry]");
    // A fix line is indented to the table's widest columns, which the addresses above size.
    settings.add_filter(r"(?m)^ +fix: ", "    fix: ");
    settings.add_filter(r"\b(\d{1,3}\.){3}\d{1,3}\b", "[ip]");
    settings.add_filter(r"/tmp/[^\s)]+", "[path]");
    settings.add_filter(r"paperclip-[a-z0-9]+-[a-z0-9]{5}\b", "[pod]");
    settings.add_filter(r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|TiB|kB|MB|GB)\b", "[size]");
    settings.add_filter(r"\b\d+(\.\d+)?%", "[percent]");
    settings.add_filter(r"\(\d+ bytes\)", "([size])");
    settings.add_filter(r"\b\d+[smhd]\b", "[age]");
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[tokio::test]
async fn status_history_and_every_dry_run_read_as_before() {
    let release = Release::with_instance("snapshots").await;
    // The install waits for the required ExternalSecrets only; status shows the optional ones'
    // conditions, so the controller must have judged each of them first.
    let judged = crate::harness::Harness::shared()
        .kubectl()
        .args(["wait", "externalsecret", "--all", "-n", release.namespace()])
        .args([
            "--for=jsonpath={.status.conditions[0].type}=Ready",
            "--timeout=120s",
        ])
        .output()
        .unwrap();
    assert!(judged.status.success(), "{}", text(&judged.stderr));
    let target = fixture_images().await.amd64_only;
    let settings = redactions(&release);
    // Tables pad their columns to the widest value, which redaction changed.
    let mut tables = settings.clone();
    tables.add_filter(r"(\S)  +", "$1  ");
    let upgrade =
        format!("paperclipctl upgrade -p ./profile.yaml --to {target} --no-backup --dry-run");
    let views = [
        ("status", "paperclipctl status -p ./profile.yaml"),
        ("history", "paperclipctl history -p ./profile.yaml"),
        (
            "install-dry-run",
            "paperclipctl install -p ./profile.yaml --dry-run",
        ),
        ("upgrade-dry-run", &upgrade),
        (
            "rollback-dry-run",
            "paperclipctl rollback -p ./profile.yaml 1 --dry-run",
        ),
        (
            "uninstall-dry-run",
            "paperclipctl uninstall -p ./profile.yaml --dry-run",
        ),
    ];
    for (name, line) in views {
        let out = release.run(line).await;
        assert!(out.status.success(), "{line}: {}", text(&out.stderr));
        let settings = if name == "history" {
            &tables
        } else {
            &settings
        };
        settings.bind(|| insta::assert_snapshot!(name, text(&out.stdout)));
    }
    // A restore's dry run, of an archive of this very release.
    let archive = release.installed.app.home.path().join("snapshot.tar.zst");
    let archive = archive.to_str().unwrap();
    let backed_up = release
        .run(&format!(
            "paperclipctl backup -p ./profile.yaml --file {archive}"
        ))
        .await;
    assert!(backed_up.status.success(), "{}", text(&backed_up.stderr));
    let out = release
        .run(&format!(
            "paperclipctl restore -p ./profile.yaml {archive} --dry-run"
        ))
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    settings.bind(|| insta::assert_snapshot!("restore-dry-run", text(&out.stdout)));

    // Preflight's table, as `install --dry-run` prints it on stderr before the plan.
    let out = release
        .run("paperclipctl install -p ./profile.yaml --dry-run")
        .await;
    let stderr = text(&out.stderr);
    let table: String = stderr
        .lines()
        .skip_while(|l| !l.starts_with("STATUS"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!table.is_empty(), "no preflight table in:\n{stderr}");
    tables.bind(|| insta::assert_snapshot!("preflight", table));
}

#[tokio::test]
async fn the_plan_reads_as_before() {
    let user = User::frank(&[]);
    let output = user.run("paperclipctl plan --profile frank").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    insta::assert_snapshot!("plan-frank", text(&output.stdout));
}

#[tokio::test]
async fn an_uninstall_dry_run_without_a_cluster_previews_what_the_profile_renders() {
    let user = User::frank(&[]).env("KUBECONFIG", "/nonexistent/kubeconfig");
    let output = user
        .run("paperclipctl uninstall --profile frank --dry-run")
        .await;
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("offline: ") && stderr.contains("not what the cluster holds"),
        "the preview says it is offline: {stderr}"
    );
    insta::assert_snapshot!("uninstall-dry-run-offline", text(&output.stdout));
}
