//! `paperclipctl plan` (and `install --dry-run`): render, lint and show, touching nothing.

use serde::Serialize;

use super::install;
use crate::cli::{Global, Output};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::preflight::{self, Check};
use crate::profile::Loaded;
use crate::render::lint::{Finding, Severity};
use crate::render::{self, Object, Release};
use crate::ui::Ui;

/// Everything a plan shows: the profile, its rendered release and the checks a run would do.
pub struct Planned {
    pub loaded: Loaded,
    pub release: Release,
    pub checks: Vec<Check>,
}

pub fn run(global: &Global, ui: &Ui) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let release = render::render(&loaded.profile);
    let checks = preflight::planned(&loaded.profile);
    let planned = Planned {
        loaded,
        release,
        checks,
    };
    let plan = install::plan(&planned);
    let errors = planned
        .release
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    match ui.output {
        Output::Text => {
            let done = ui.dim("Dry run: nothing was changed.");
            ui.print(&format!("{}\n{done}\n", text(ui, &planned, &plan)))?
        }
        Output::Json => {
            ui.print(&(serde_json::to_string_pretty(&document(&planned, &plan))? + "\n"))?
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

pub fn finding_line(ui: &Ui, f: &Finding) -> String {
    let label = match f.severity {
        Severity::Error => ui.error("error"),
        Severity::Warning => ui.warning("warning"),
    };
    format!(
        "{label}[{}] {}: {}\n  help: {}",
        f.code, f.object, f.message, f.help
    )
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
