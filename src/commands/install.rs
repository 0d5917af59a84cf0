//! `paperclipctl install`: the ordered install of a release (`--dry-run`: its plan).

use serde_json::json;

use super::guided;
use super::plan::{self as show, Planned};
use crate::cli::{Global, InstallArgs, Output};
use crate::cluster;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::image;
use crate::install::{self, Summary};
use crate::onboarding::Outcome;
use crate::plan::{Plan, Step};
use crate::preflight;
use crate::preflight::Check;
use crate::profile::Loaded;
use crate::profile::model::{Profile, SecretKey, ServiceType};
use crate::profile::types::ImageRef;
use crate::render::Release;
use crate::render::lint::Severity;
use crate::render::{self, Object, eso, meta};
use crate::secrets;
use crate::transaction;
use crate::ui::Ui;
use crate::ui::progress::{Event, Progress};

pub fn run(global: &Global, args: &InstallArgs, ui: &Ui) -> Result<()> {
    if args.dry_run {
        return show::run(global, ui);
    }
    let (loaded, context) = if guided::wanted(global, ui) {
        match guided::run(global, ui)? {
            Some(chosen) => (chosen.loaded, chosen.context),
            None => return Ok(()),
        }
    } else {
        (super::load_profile(global)?, global.context.clone())
    };
    let release = render::render(&loaded.profile);
    lint(&release, ui)?;
    let interactive = ui.interactive() && !global.yes;
    let progress = Progress::new(ui);
    super::block_on(async {
        let cluster = cluster::connect(global.kubeconfig.as_deref(), context.as_deref()).await?;
        progress.event(Event::Note(&format!("connected to {}", cluster.server)));
        // A run in progress must be refused before this one writes anything, Infisical included.
        transaction::ensure_free(&cluster.client, &release.namespace).await?;
        let auth = registry_auth()?;
        // From here on the release is the one install applies: the sidecar pinned to a digest.
        let loaded = pin_shell(&cluster.client, &loaded, &auth, &progress).await?;
        let release = render::render(&loaded.profile);
        let report = preflight(
            &cluster.client,
            &loaded.profile,
            &release,
            &auth,
            &args.ignore_preflight,
            ui,
        )
        .await?;
        provision_secrets(&loaded.profile, args, interactive, &progress).await?;
        let summary = install::run(
            &cluster.client,
            &loaded.profile,
            &release,
            args.timeout,
            &|event| progress.event(event),
        )
        .await?;
        progress.finish();
        let text = match ui.output {
            Output::Json => serde_json::to_string_pretty(&summary_json(&summary, &report))? + "\n",
            Output::Text | Output::Yaml => done(&loaded.profile, &release.namespace, &summary),
        };
        ui.print(&text)?;
        Ok(())
    })
}

/// Registry credentials from the Docker config, for preflight and digest pinning.
pub(super) fn registry_auth() -> Result<image::RegistryAuth> {
    image::RegistryAuth::from_docker_config().map_err(|e| {
        Error::usage(
            e.to_string(),
            "fix or move the Docker config file (DOCKER_CONFIG), or log in again",
        )
    })
}

/// Prints what the lints found and stops when one of them is an error.
pub(super) fn lint(release: &Release, ui: &Ui) -> Result<()> {
    for finding in &release.findings {
        ui.note(&show::finding_line(ui, finding));
    }
    let errors = release
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if errors > 0 {
        return Err(Error::Lint { count: errors });
    }
    Ok(())
}

/// Runs every preflight check and stops, before anything is written, when one fails that the
/// user did not choose to ignore. The table goes to stderr; with `--output json` a failed
/// preflight prints its report as the command's JSON document.
pub(super) async fn preflight(
    client: &kube::Client,
    profile: &Profile,
    release: &Release,
    auth: &image::RegistryAuth,
    ignore: &[String],
    ui: &Ui,
) -> Result<preflight::Report> {
    let report = preflight::run(client, profile, release, auth).await;
    ui.note(&report.to_text());
    if let Some(unknown) = ignore.iter().find(|id| report.get(id).is_none()) {
        let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
        return Err(Error::usage(
            format!("--ignore-preflight {unknown}: there is no such check"),
            format!("checks: {}", ids.join(", ")),
        ));
    }
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.outcome.status == preflight::Status::Fail)
        .map(|c| c.id.as_str())
        .collect();
    for id in failed.iter().filter(|id| ignore.iter().any(|i| i == *id)) {
        ui.note(&format!(
            "{}: preflight check {id} failed; going on as --ignore-preflight says",
            ui.warning("warning")
        ));
    }
    let blocking = failed
        .iter()
        .filter(|id| !ignore.iter().any(|i| i == *id))
        .count();
    if blocking > 0 {
        if ui.output == Output::Json {
            ui.print(&(serde_json::to_string_pretty(&json!({ "preflight": report }))? + "\n"))?;
        }
        return Err(Error::Preflight { count: blocking });
    }
    Ok(report)
}

/// The profile with its shell sidecar pinned to the digest the registry serves now (see
/// [`image::pin_shell_image`]); unchanged without a sidecar.
pub(super) async fn pin_shell(
    client: &kube::Client,
    loaded: &Loaded,
    auth: &image::RegistryAuth,
    progress: &Progress,
) -> Result<Loaded> {
    let mut loaded = loaded.clone();
    let Some(shell) = loaded.profile.shell.as_mut() else {
        return Ok(loaded);
    };
    let selector = loaded
        .origin
        .strip_prefix("builtin:")
        .unwrap_or(&loaded.origin);
    let mut push = format!("paperclipctl image push --profile {selector}");
    if !loaded.overrides.is_empty() {
        push.push_str(" with the same --set options");
    }
    let node_selector = &loaded.profile.app.placement.node_selector;
    let pinned = image::pin_shell_image(client, &shell.image, node_selector, auth, &push).await?;
    progress.event(Event::Note(&format!(
        "shell image {} pinned to {}",
        shell.image, pinned.digest
    )));
    shell.image = pinned.reference;
    Ok(loaded)
}

/// Makes sure every key the ExternalSecrets read exists in Infisical, before anything is applied.
async fn provision_secrets(
    profile: &Profile,
    args: &InstallArgs,
    interactive: bool,
    progress: &Progress,
) -> Result<()> {
    // The shell's pull secret is synced from Infisical too: its keys are required like any other.
    let synced = render::synced_secrets(profile);
    let env = |name: &str| std::env::var(name).ok();
    let client_secret = match env(secrets::ENV_CLIENT_SECRET) {
        None if interactive && args.infisical_client_id.is_some() => {
            ask("Infisical client secret").map_err(Error::Output)?
        }
        _ => None,
    };
    let credentials = secrets::Credentials::resolve(
        &profile.secrets.store,
        args.infisical_client_id.clone(),
        client_secret,
        env,
    )?;
    let inputs = secrets::Inputs {
        provided: secrets::Provided::gather(&synced, args.secret_file.as_deref(), env)?,
        rotate: args.rotate.iter().cloned().collect(),
    };
    let mut prompt = |request: &secrets::PromptRequest<'_>| {
        ask(&format!(
            "{} (for {})",
            request.key,
            request.secrets.join(", ")
        ))
    };
    let prompt: Option<&mut dyn secrets::Prompt> =
        if interactive { Some(&mut prompt) } else { None };
    let outcome = secrets::ensure(&synced, &credentials, &inputs, prompt).await?;
    for line in outcome.lines() {
        progress.event(Event::Note(&line));
    }
    Ok(())
}

/// Hidden input at the terminal; an empty answer is no answer.
fn ask(label: &str) -> std::io::Result<Option<secrets::SecretValue>> {
    let value = dialoguer::Password::new()
        .with_prompt(label)
        .allow_empty_password(true)
        .interact()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((!value.is_empty()).then(|| secrets::SecretValue::new(value)))
}

fn summary_json(summary: &Summary, preflight: &preflight::Report) -> serde_json::Value {
    let onboarding = match &summary.onboarding {
        Some(Outcome::Onboarded { invite_url }) => {
            json!({"state": "onboarded", "inviteUrl": invite_url})
        }
        Some(Outcome::AlreadyDone) => json!({"state": "already-onboarded"}),
        None => json!(null),
    };
    json!({
        "upToDate": summary.up_to_date(),
        "revision": summary.revision,
        "changes": summary.changes.iter().map(|(id, c)| json!({"object": id, "change": c.as_str()})).collect::<Vec<_>>(),
        "onboarding": onboarding,
        "health": health_json(&summary.health),
        "preflight": preflight,
    })
}

pub(super) fn health_json(health: &Health) -> serde_json::Value {
    match health {
        Health::Ok {
            starting,
            version,
            bootstrap,
            invite_active,
        } => json!({"status": if *starting { "starting" } else { "ok" }, "version": version,
                    "bootstrapStatus": bootstrap, "bootstrapInviteActive": invite_active}),
        Health::Unknown(problem) => json!({"status": "unknown", "problem": problem}),
    }
}

/// The closing words: what happened, where to go, how to get a shell, what to run next.
fn done(profile: &Profile, namespace: &str, summary: &Summary) -> String {
    let mut out = String::new();
    match summary.revision {
        None => out.push_str(&format!(
            "Paperclip in namespace {namespace} is up to date: nothing changed.\n"
        )),
        Some(revision) => {
            let changed = summary
                .changes
                .iter()
                .filter(|(_, c)| c.as_str() != "unchanged")
                .count();
            out.push_str(&format!(
                "Paperclip is installed in namespace {namespace} (revision {revision}, {changed} object(s) changed).\n"
            ));
        }
    }
    match &summary.onboarding {
        Some(Outcome::Onboarded {
            invite_url: Some(url),
        }) => out.push_str(&format!(
            "Onboarded. Create the first admin account: {url}\n"
        )),
        Some(Outcome::Onboarded { invite_url: None }) => out.push_str("Onboarded.\n"),
        Some(Outcome::AlreadyDone) => {
            out.push_str("Already onboarded (config.json exists on the data volume).\n")
        }
        None => {}
    }
    out.push_str(&health_lines(namespace, summary));
    out.push_str(&format!("Open {}\n", profile.app.public_url));
    if let Some(shell) = &profile.shell {
        let s = &shell.service;
        match (&s.load_balancer_ip, s.kind) {
            (Some(ip), ServiceType::LoadBalancer) => {
                out.push_str(&format!("Shell: ssh -p {} agent@{ip}\n", s.ssh_port));
                if let Some(range) = &s.mosh_ports {
                    let ports = range.ports();
                    out.push_str(&format!(
                        "       mosh --ssh='ssh -p {}' -p {}:{} agent@{ip}\n",
                        s.ssh_port,
                        ports.start(),
                        ports.end()
                    ));
                }
            }
            _ => out.push_str(
                "Shell: paperclipctl ssh (through a port-forward; `paperclipctl ssh --print-config` \
                 for ~/.ssh/config)\n",
            ),
        }
    }
    out.push_str(
        "Next: `paperclipctl status` checks it, `paperclipctl plan` shows what a profile change \
         would do.\n",
    );
    out
}

/// `Health: ok, bootstrap: <status>`, and how to get an admin invite when the instance still waits
/// for its first admin and this run printed none.
pub(super) fn health_lines(namespace: &str, summary: &Summary) -> String {
    match &summary.health {
        Health::Ok {
            starting,
            bootstrap,
            invite_active,
            ..
        } => {
            let state = if *starting {
                "starting (startup recovery in progress)"
            } else {
                "ok"
            };
            let mut out = format!("Health: {state}, bootstrap: {bootstrap}\n");
            let invited = matches!(
                &summary.onboarding,
                Some(Outcome::Onboarded {
                    invite_url: Some(_)
                })
            );
            if bootstrap == "bootstrap_pending" && !invited {
                let state = if *invite_active {
                    "an invite is open"
                } else {
                    "no invite is open"
                };
                out.push_str(&format!(
                    "        no admin yet and {state}; a new invite (revoking older ones): \
                     kubectl exec -n {namespace} deploy/{} -c {} -- pnpm paperclipai auth bootstrap-ceo\n",
                    meta::APP_NAME,
                    meta::APP_NAME
                ));
            }
            out
        }
        Health::Unknown(problem) => format!("Health: warning: {problem}\n"),
    }
}

/// The steps of an install of `release`, in order.
pub fn plan(planned: &Planned) -> Plan {
    let Planned {
        loaded,
        release,
        checks,
    } = planned;
    let profile = &loaded.profile;
    let mut connect = Step::new("Connect to the cluster")
        .line("use the kubeconfig context (--kubeconfig/--context, or in-cluster credentials)")
        .line("stop when another run holds the release lock (looked at, not taken yet)");
    if profile.shell.is_some() {
        connect = connect.line("pin the shell image to the digest its registry serves");
    }
    let mut steps = vec![
        connect,
        Step::new("Preflight (stops before anything is written)")
            .lines(checks.iter().map(|c: &Check| format!("check {}", c.title))),
        secrets_step(loaded),
        Step::new("Compare with what runs")
            .line(
                "server-side dry run of every object: when the last revision deployed this \
                 profile and nothing would change, stop here (nothing written, not even the lock)",
            )
            .line(format!(
                "apply Namespace/{} and take the release lock (a Lease that expires if this run \
                 dies); generated values are made only from here on",
                release.namespace
            )),
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
            .line("print the bootstrap invite URL when upstream produces one")
            .line(format!(
                "read GET /api/health (Host: localhost) through a port-forward to port {}: \
                 database reachable, bootstrap status",
                crate::render::APP_PORT
            )),
    );
    let mut done = Step::new("Done")
        .line(format!(
            "record the revision in namespace {} (deployed, or failed with the reason), then \
             give the lock up",
            release.namespace
        ))
        .line(format!("open {}", profile.app.public_url));
    if profile.shell.is_some() {
        done = done.line("print how to reach the shell sidecar over SSH (and mosh)");
    }
    steps.push(done);
    Plan { steps }
}

fn secrets_step(loaded: &Loaded) -> Step {
    let s = &render::synced_secrets(&loaded.profile);
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
    if let Object::ExternalSecret(es) = object
        && eso::is_pull_secret(es)
    {
        notes.push("image pull login for the shell, not loaded as env".to_string());
    }
    let shell = object.pod_spec().and_then(|p| {
        p.containers
            .iter()
            .find(|c| c.name == meta::SHELL_NAME)
            .and_then(|c| c.image.as_deref()?.parse::<ImageRef>().ok())
    });
    match shell {
        Some(image) if image.digest().is_some() => {}
        Some(image) if image.tag().is_none() => notes.push(format!(
            "shell image {image}: the content tag `image push` builds for the nodes' platform, \
             pinned to its registry digest at install"
        )),
        Some(image) => notes.push(format!(
            "shell image {image} is pinned to its registry digest at install"
        )),
        None => {}
    }
    if notes.is_empty() {
        object.id()
    } else {
        format!("{} ({})", object.id(), notes.join("; "))
    }
}
