//! `paperclipctl install`: the ordered install of a release. This build plans it (`--dry-run`).

use super::plan::{self as show, Planned};
use crate::cli::{Global, InstallArgs};
use crate::error::{Error, Result};
use crate::plan::{Plan, Step};
use crate::preflight::Check;
use crate::profile::Loaded;
use crate::profile::model::SecretKey;
use crate::render::{Object, eso, meta};
use crate::ui::Ui;

pub fn run(global: &Global, args: &InstallArgs, ui: &Ui) -> Result<()> {
    if !args.dry_run {
        return Err(Error::usage(
            "this build of paperclipctl plans installs but does not apply them",
            "run `paperclipctl install --dry-run` (or `paperclipctl plan`) to see every step",
        ));
    }
    show::run(global, ui)
}

/// The steps of an install of `release`, in order.
pub fn plan(planned: &Planned) -> Plan {
    let Planned {
        loaded,
        release,
        checks,
    } = planned;
    let profile = &loaded.profile;
    let mut steps = vec![
        Step::new("Connect to the cluster")
            .line("use the kubeconfig context (--kubeconfig/--context, or in-cluster credentials)")
            .line("take the release lock (a Lease that expires if this run dies)"),
        Step::new("Preflight (stops before anything is written)")
            .lines(checks.iter().map(|c: &Check| format!("check {}", c.title))),
        secrets_step(loaded),
    ];
    for wave in &release.waves {
        steps.push(
            Step::new(format!("Wave {}: {}", wave.number, wave.title))
                .lines(
                    wave.objects
                        .iter()
                        .map(|o| format!("apply {}", describe(o))),
                )
                .line(format!("wait until healthy: {}", wave.wait_for.join(", "))),
        );
    }
    steps.push(
        Step::new("Onboarding")
            .line(format!(
                "exec `pnpm paperclipai onboard` in container {} as uid 1000, unless \
                 instances/default/config.json exists",
                meta::APP_NAME
            ))
            .line("read GET /api/health (Host: localhost) and report the bootstrap state"),
    );
    let mut done = Step::new("Done")
        .line(format!(
            "record the release revision in namespace {}",
            release.namespace
        ))
        .line(format!("open {}", profile.app.public_url));
    if profile.shell.is_some() {
        done = done.line("connect to the shell sidecar with `paperclipctl ssh`");
    }
    steps.push(done);
    Plan { steps }
}

fn secrets_step(loaded: &Loaded) -> Step {
    let s = &loaded.profile.secrets;
    let source = |key: &SecretKey, optional: bool| {
        if key.generate {
            "generated when missing"
        } else if optional {
            "optional: set when provided"
        } else {
            "from the environment or a prompt"
        }
    };
    Step::new("Secrets in Infisical")
        .line(format!(
            "log in to {} with universal auth; project {}, environment {}, folder {}",
            s.store.host_api, s.store.project_slug, s.store.environment_slug, s.store.secrets_path
        ))
        .lines(s.external_secrets.iter().flat_map(|es| {
            es.keys.iter().map(move |key| {
                format!(
                    "ensure {} ({}); an existing value is kept",
                    key.remote,
                    source(key, es.optional)
                )
            })
        }))
}

/// `Kind/name`, with a note on what is special about the object.
pub fn describe(object: &Object) -> String {
    let annotations = object.metadata().annotations.as_ref();
    let has = |key: &str| annotations.is_some_and(|a| a.contains_key(key));
    let mut notes = Vec::new();
    if let Some(keys) = annotations.and_then(|a| a.get(meta::GENERATED_KEYS)) {
        notes.push(format!("{keys} set at install, never shown"));
    }
    if has(meta::KEEP) {
        notes.push("kept on uninstall".to_string());
    }
    if let Object::ExternalSecret(es) = object
        && eso::is_optional(es)
    {
        notes.push("optional".to_string());
    }
    if notes.is_empty() {
        object.id()
    } else {
        format!("{} ({})", object.id(), notes.join("; "))
    }
}
