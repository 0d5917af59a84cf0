//! `paperclipctl install`: check, provision secrets, prepare and run the install of a release
//! (`--dry-run`: its plan, and what a cluster says of it).

use serde_json::json;

use super::checks::check;
use super::guided;
use super::preview::{self, Against};
use super::report::{health_json, health_lines};
use super::session::Session;
use crate::cli::{Global, InstallArgs, Output};
use crate::error::{Error, Result};
use crate::install::{self, Summary};
use crate::onboarding::Outcome;
use crate::preflight;
use crate::profile::model::{Profile, ServiceType};
use crate::render;
use crate::render::lint::Severity;
use crate::secrets;
use crate::ui::Ui;
use crate::ui::progress::{Event, Progress};

pub fn run(global: &Global, args: &InstallArgs, ui: &Ui) -> Result<()> {
    if args.dry_run {
        return dry_run(global, args, ui);
    }
    let (loaded, context) = if guided::wanted(global, ui) {
        match guided::run(global, ui)? {
            Some(chosen) => (chosen.loaded, chosen.context),
            None => return Ok(()),
        }
    } else {
        (super::load_profile(global)?, global.context.clone())
    };
    super::checks::lint(&render::render(&loaded.profile), ui)?;
    let interactive = ui.interactive() && !global.yes;
    let namespace = loaded.profile.namespace.to_string();
    super::block_on(async {
        let session = Session::connect(global, context.as_deref(), namespace, ui).await?;
        let client = session.client();
        let checked = check(&session, &loaded, &args.ignore_preflight).await?;
        let profile = &checked.loaded.profile;
        provision_secrets(profile, args, interactive, &session.progress).await?;
        let prepared = install::prepare(client, profile, &checked.release).await?;
        let summary = install::run(
            client,
            profile,
            &checked.release,
            &prepared,
            args.timeout,
            &|event| session.report(event),
        )
        .await?;
        session.progress.finish();
        let text = match ui.output {
            Output::Json => {
                serde_json::to_string_pretty(&summary_json(&summary, &checked.report))? + "\n"
            }
            Output::Text | Output::Yaml => done(profile, &checked.release.namespace, &summary),
        };
        ui.print(&text)?;
        Ok(())
    })
}

/// `install --dry-run`: the plan, and, when a cluster answers, what the run would decide there
/// (the same checks and server-side dry runs as the run, up to its first write). Offline it is
/// the plan alone, and stderr says so.
fn dry_run(global: &Global, args: &InstallArgs, ui: &Ui) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let linted = render::render(&loaded.profile)
        .findings
        .iter()
        .all(|f| f.severity != Severity::Error);
    let namespace = loaded.profile.namespace.to_string();
    let against = super::block_on(async {
        let session = match Session::connect(global, global.context.as_deref(), namespace, ui).await
        {
            Ok(session) if linted => session,
            // A lint error stops a run before it connects: the plan shows the findings.
            Ok(_) => return Ok(None),
            Err(e) => {
                ui.note(&format!(
                    "offline: {e}\nThe plan below was not checked against a cluster; a run \
                     connects first, then checks and compares as `install --dry-run` does when \
                     it can reach one."
                ));
                return Ok(None);
            }
        };
        let checked = check(&session, &loaded, &args.ignore_preflight).await?;
        let profile = &checked.loaded.profile;
        let prepared = install::prepare(session.client(), profile, &checked.release).await?;
        session.progress.finish();
        Ok(Some(Against {
            server: session.cluster.server.clone(),
            namespace: checked.release.namespace.clone(),
            prepared,
        }))
    })?;
    preview::show(global, ui, against.as_ref())
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
