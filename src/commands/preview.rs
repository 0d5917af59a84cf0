//! The install plan: every step a run takes, rendered for people (`plan`, `install --dry-run`,
//! the guided install before it asks) and as one JSON document, with what a cluster said of it
//! when one was reached.

use serde::Serialize;

use super::report::finding_line;
use crate::cli::{Global, Output};
use crate::cluster::apply::Change;
use crate::error::{Error, Result};
use crate::plan::{Plan, Step};
use crate::preflight::{self, Check};
use crate::profile::Loaded;
use crate::profile::model::SecretKey;
use crate::profile::types::ImageRef;
use crate::render::lint::{Finding, Severity};
use crate::render::{self, Object, Release, eso, meta};
use crate::ui::Ui;

/// Everything a plan shows: the profile, its rendered release and the checks a run would do.
pub struct Planned {
    pub loaded: Loaded,
    pub release: Release,
    pub checks: Vec<Check>,
}

/// What a prepared install found on a cluster, shown under the plan by `install --dry-run`.
pub struct Against {
    pub server: String,
    pub namespace: String,
    pub prepared: crate::install::Prepared,
}

impl Against {
    fn text(&self) -> String {
        let Against {
            server,
            namespace,
            prepared,
        } = self;
        let mut out = format!("Against the cluster at {server}, namespace {namespace}:\n");
        out.push_str(&match &prepared.last {
            Some(r) => format!(
                "  last revision: {} ({}, profile {})\n",
                r.revision, r.result, r.profile
            ),
            None => "  last revision: none recorded\n".to_string(),
        });
        out.push_str("  a server-side dry run of every object says:\n");
        let changed: Vec<String> = prepared
            .changes
            .iter()
            .filter(|(_, c)| *c != Change::Unchanged)
            .map(|(id, c)| format!("    {id} {}\n", c.describe()))
            .collect();
        if changed.is_empty() {
            out.push_str("    none would change\n");
        } else {
            out.push_str(&changed.concat());
        }
        out.push_str(if prepared.up_to_date {
            "  Up to date: a run stops here and writes nothing, not even the lock.\n"
        } else {
            "  A run would take the lock, apply these, wait for each wave, onboard and record a \
             revision.\n"
        });
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.server,
            "namespace": self.namespace,
            "lastRevision": self.prepared.last.as_ref().map(|r| r.revision),
            "upToDate": self.prepared.up_to_date,
            "changes": self.prepared.changes.iter()
                .map(|(id, c)| serde_json::json!({"object": id, "change": c.as_str()}))
                .collect::<Vec<_>>(),
        })
    }
}

/// The plan, with what a cluster said of it when `against` is given.
pub fn show(global: &Global, ui: &Ui, against: Option<&Against>) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let release = render::render(&loaded.profile);
    let checks = preflight::planned(&loaded.profile);
    let planned = Planned {
        loaded,
        release,
        checks,
    };
    let plan = plan(&planned);
    let errors = planned
        .release
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    match ui.output {
        Output::Text => {
            let done = ui.dim("Dry run: nothing was changed.");
            let cluster = against
                .map(|a| format!("\n{}", a.text()))
                .unwrap_or_default();
            ui.print(&format!("{}{cluster}\n{done}\n", text(ui, &planned, &plan)))?
        }
        Output::Json => {
            let mut document = serde_json::to_value(document(&planned, &plan))?;
            if let Some(against) = against {
                document["cluster"] = against.json();
            }
            ui.print(&(serde_json::to_string_pretty(&document)? + "\n"))?
        }
        Output::Yaml => {
            note_findings(ui, &planned.release.findings);
            // Manifests with a blocking finding must not reach a `| kubectl apply` pipeline.
            if errors == 0 {
                ui.print(&planned.release.to_yaml()?)?;
            }
        }
    }
    if errors > 0 {
        return Err(Error::Lint { count: errors });
    }
    Ok(())
}

fn note_findings(ui: &Ui, findings: &[Finding]) {
    for f in findings {
        ui.note(&finding_line(ui, f));
    }
}

/// The plan for people: what `plan` prints, and what guided `install` shows before it asks.
pub(super) fn text(ui: &Ui, planned: &Planned, plan: &Plan) -> String {
    let Planned {
        loaded, release, ..
    } = planned;
    let mut out = String::new();
    let origin = if loaded.overrides.is_empty() {
        loaded.origin.clone()
    } else {
        format!("{} with {}", loaded.origin, loaded.overrides.join(" "))
    };
    out.push_str(&ui.heading(&format!(
        "Plan: install profile {} ({origin}) into namespace {}\n",
        loaded.profile.name, release.namespace
    )));
    out.push_str(&format!("\n{}\n", ui.heading("Steps:")));
    for (i, step) in plan.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, ui.heading(&step.title)));
        for line in &step.dry_run {
            let line = match line.strip_prefix("apply ") {
                Some(object) => format!("{} {object}", ui.added("+")),
                None => line.clone(),
            };
            out.push_str(&format!("       {line}\n"));
        }
    }
    if ui.verbose > 0 {
        out.push_str(&format!("\n{}\n", ui.heading("Containers:")));
        for line in containers(release) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if !release.findings.is_empty() {
        out.push_str(&format!("\n{}\n", ui.heading("Findings:")));
        for f in &release.findings {
            out.push_str(&format!(
                "  {}\n",
                finding_line(ui, f).replace('\n', "\n  ")
            ));
        }
    }
    out
}

/// One line per container of every workload: image and sizing (shown with -v).
fn containers(release: &Release) -> Vec<String> {
    let quantities = |list: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        list.map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.0))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "none".into())
    };
    let mut lines = Vec::new();
    for object in release.objects() {
        let spec = match object {
            Object::Deployment(d) => d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            Object::StatefulSet(s) => s.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            _ => None,
        };
        for c in spec.into_iter().flat_map(|p| &p.containers) {
            let resources = c.resources.as_ref();
            lines.push(format!(
                "{} {}: {}; requests {}; limits {}",
                object.id(),
                c.name,
                c.image.as_deref().unwrap_or("?"),
                quantities(resources.and_then(|r| r.requests.as_ref())),
                quantities(resources.and_then(|r| r.limits.as_ref())),
            ));
        }
    }
    lines
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    profile: ProfileRef<'a>,
    namespace: &'a str,
    preflight: &'a [Check],
    steps: &'a [crate::plan::Step],
    waves: Vec<WaveDocument<'a>>,
    findings: &'a [Finding],
}

#[derive(Serialize)]
struct ProfileRef<'a> {
    name: &'a str,
    origin: &'a str,
    overrides: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WaveDocument<'a> {
    wave: u8,
    title: &'a str,
    wait_for: &'a [String],
    objects: Vec<ObjectDocument<'a>>,
}

#[derive(Serialize)]
struct ObjectDocument<'a> {
    kind: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    manifest: &'a Object,
}

fn document<'a>(planned: &'a Planned, plan: &'a Plan) -> Document<'a> {
    let Planned {
        loaded,
        release,
        checks,
    } = planned;
    Document {
        api_version: "paperclipctl.io/v1alpha1",
        kind: "Plan",
        profile: ProfileRef {
            name: &loaded.profile.name,
            origin: &loaded.origin,
            overrides: &loaded.overrides,
        },
        namespace: &release.namespace,
        preflight: checks,
        steps: &plan.steps,
        waves: release
            .waves
            .iter()
            .map(|w| WaveDocument {
                wave: w.number,
                title: w.title,
                wait_for: &w.wait_for,
                objects: w
                    .objects
                    .iter()
                    .map(|o| ObjectDocument {
                        kind: o.kind(),
                        name: o.name(),
                        namespace: o.namespace(),
                        manifest: o,
                    })
                    .collect(),
            })
            .collect(),
        findings: &release.findings,
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
