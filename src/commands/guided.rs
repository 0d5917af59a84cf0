//! Guided `install`: a person at a terminal who named no profile is asked for the values that
//! differ between clusters, instead of silently getting the `default` profile.
//!
//! The answers become `--set` values on the `default` profile, so they go through the very
//! loading and validation every other profile does; the result is shown as a plan and saved as a
//! profile file first, so the same install can be repeated without questions. Scripts and CI
//! (no terminal), `--profile`/PAPERCLIPCTL_PROFILE and `--yes` never get here.

use std::path::{Path, PathBuf};

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, MultiSelect, Select};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use serde_json::json;

use super::preview::{self as show, Planned};
use crate::cli::Global;
use crate::cluster;
use crate::error::{Error, Result};
use crate::preflight;
use crate::profile::model::{ExternalSecret, Profile, ServiceType};
use crate::profile::types::{DnsLabel, HttpUrl, ImageRef, IpAddress};
use crate::profile::{self, Loaded};
use crate::render;
use crate::ui::Ui;

/// Where the profile is saved unless the person says otherwise.
const DEFAULT_FILE: &str = "./paperclip-profile.yaml";

/// The label a node selector pins a pod to one node with.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether `install` asks instead of using the default profile: a person can answer (terminal,
/// not CI), named no profile, and did not say `--yes`.
pub fn wanted(global: &Global, ui: &Ui) -> bool {
    global.profile.is_none() && !global.yes && ui.interactive()
}

/// What the person chose: the profile to install (saved already) and the kubeconfig context.
pub struct Chosen {
    pub loaded: Loaded,
    pub context: Option<String>,
}

/// Asks, shows the plan, saves the profile and asks to go on; `None` when the answer is no.
pub fn run(global: &Global, ui: &Ui) -> Result<Option<Chosen>> {
    ui.note(&format!(
        "{} (`--profile default --yes` skips the questions)",
        ui.heading("No --profile given: a few questions to write one for this cluster.")
    ));
    let context = choose_context(global)?;
    let offered = super::block_on(discover(global, context.as_deref()))?;
    let base = profile::load(super::DEFAULT_PROFILE, &[])?.profile;
    let mut answers = Answers::from_profile(&base);
    if let Some(namespace) = &global.namespace {
        answers.namespace = namespace.clone();
    }
    let loaded = loop {
        answers = ask(&answers, &offered, global.namespace.is_none())?;
        match answers.load(&base, &global.sets) {
            // The plan names what the person chose, not the --set values it was built with.
            Ok(loaded) => {
                break Loaded {
                    origin: "your answers".into(),
                    overrides: global.sets.clone(),
                    ..loaded
                };
            }
            Err(e) => ui.note(&format!(
                "{:?}\nLet's go through the questions again.",
                miette::Report::new(Error::from(e))
            )),
        }
    };
    let release = render::render(&loaded.profile);
    let checks = preflight::planned(&loaded.profile);
    let mut planned = Planned {
        loaded,
        release,
        checks,
    };
    ui.note(&show::text(ui, &planned, &show::plan(&planned)));
    let path = save(&planned.loaded.profile)?;
    let shown = path.display();
    ui.note(&format!(
        "Saved the profile to {shown}. To run this install again without questions:\n  \
         paperclipctl install --profile {shown} --yes{}",
        context
            .as_deref()
            .map(|c| format!(" --context {c}"))
            .unwrap_or_default()
    ));
    let go = prompt(
        Confirm::with_theme(&ColorfulTheme::default())
            .with_prompt("Install now?")
            .default(true)
            .interact(),
    )?;
    if !go {
        ui.note("Nothing was installed.");
        return Ok(None);
    }
    planned.loaded.origin = shown.to_string();
    planned.loaded.overrides.clear();
    Ok(Some(Chosen {
        loaded: planned.loaded,
        context,
    }))
}

fn prompt<T>(result: dialoguer::Result<T>) -> Result<T> {
    result.map_err(|e| Error::Output(e.into()))
}

/// A kubeconfig context: the one given with --context, or the person's pick among several;
/// `None` means the current one.
fn choose_context(global: &Global) -> Result<Option<String>> {
    if global.context.is_some() {
        return Ok(global.context.clone());
    }
    let kubeconfig = match &global.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    };
    // Without a readable kubeconfig, connecting says what is wrong better than a question can.
    let Ok(kubeconfig) = kubeconfig else {
        return Ok(None);
    };
    let names: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    if names.len() < 2 {
        return Ok(None);
    }
    let current = kubeconfig.current_context.as_deref();
    let items: Vec<String> = names
        .iter()
        .map(|n| match Some(n.as_str()) == current {
            true => format!("{n} (current)"),
            false => n.clone(),
        })
        .collect();
    let picked = prompt(
        Select::with_theme(&ColorfulTheme::default())
            .with_prompt("Cluster (kubeconfig context)")
            .items(&items)
            .default(
                names
                    .iter()
                    .position(|n| Some(n.as_str()) == current)
                    .unwrap_or(0),
            )
            .interact(),
    )?;
    Ok(Some(names[picked].clone()).filter(|n| Some(n.as_str()) != current))
}

/// What the cluster offers to choose from.
#[derive(Debug, Default)]
struct Offered {
    /// Storage classes, with whether each is the cluster's default.
    storage_classes: Vec<(String, bool)>,
    nodes: Vec<NodeOffer>,
}

#[derive(Debug, Clone)]
struct NodeOffer {
    /// The value of the node's hostname label, what the node selector matches.
    hostname: String,
    /// Taints as `(key, value, effect)`.
    taints: Vec<(String, Option<String>, String)>,
}

/// Lists storage classes and nodes; a list the credentials may not read is offered empty (the
/// questions then take free text or offer no pinning).
async fn discover(global: &Global, context: Option<&str>) -> Result<Offered> {
    let cluster = cluster::connect(global.kubeconfig.as_deref(), context).await?;
    let client = cluster.client;
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let default_class = |class: &StorageClass| {
        class.metadata.annotations.as_ref().is_some_and(|a| {
            a.get("storageclass.kubernetes.io/is-default-class")
                .is_some_and(|v| v == "true")
        })
    };
    Ok(Offered {
        storage_classes: classes
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    default_class(c),
                )
            })
            .collect(),
        nodes: nodes
            .iter()
            .map(|n| NodeOffer {
                hostname: n
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(HOSTNAME_LABEL).cloned())
                    .or_else(|| n.metadata.name.clone())
                    .unwrap_or_default(),
                taints: n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key, t.value, t.effect))
                    .collect(),
            })
            .collect(),
    })
}

/// Everything guided mode asks, as the values it sets on the default profile.
#[derive(Debug, Clone, PartialEq)]
struct Answers {
    namespace: String,
    storage_class: Option<String>,
    service_type: ServiceType,
    load_balancer_ip: Option<String>,
    public_url: String,
    /// The node's hostname label value; `None`: any node.
    node: Option<String>,
    /// Taints of that node to tolerate, as `(key, effect)`.
    tolerations: Vec<(String, String)>,
    host_api: String,
    project: String,
    environment: String,
    secrets_path: String,
    /// Optional ExternalSecrets to add, by name (see [`optional_secrets`]).
    features: Vec<String>,
    shell: Option<ShellAnswers>,
}

#[derive(Debug, Clone, PartialEq)]
struct ShellAnswers {
    image: String,
    authorized_keys: Vec<String>,
}

impl Answers {
    fn from_profile(profile: &Profile) -> Answers {
        let store = &profile.secrets.store;
        Answers {
            namespace: profile.namespace.to_string(),
            storage_class: profile.storage.class_name.as_ref().map(|c| c.to_string()),
            service_type: profile.app.service.kind,
            load_balancer_ip: None,
            public_url: profile.app.public_url.to_string(),
            node: None,
            tolerations: Vec::new(),
            host_api: store.host_api.to_string(),
            project: store.project_slug.clone(),
            environment: store.environment_slug.clone(),
            secrets_path: store.secrets_path.clone(),
            features: Vec::new(),
            shell: None,
        }
    }

    /// The answers as `--set` values on `base` (the default profile). Values are written as
    /// JSON, which YAML reads back unchanged, so a slug such as `123` stays a string.
    fn sets(&self, base: &Profile) -> Vec<String> {
        let text = |v: &str| json!(v).to_string();
        let mut sets = vec![
            format!("name={}", text(&self.namespace)),
            format!("namespace={}", text(&self.namespace)),
            format!(
                "app.service.type={}",
                text(service_type_name(self.service_type))
            ),
            format!("app.publicUrl={}", text(&self.public_url)),
            format!("secrets.store.hostApi={}", text(&self.host_api)),
            format!("secrets.store.projectSlug={}", text(&self.project)),
            format!("secrets.store.environmentSlug={}", text(&self.environment)),
            format!("secrets.store.secretsPath={}", text(&self.secrets_path)),
        ];
        if let Some(class) = &self.storage_class {
            sets.push(format!("storage.className={}", text(class)));
        }
        if let Some(ip) = &self.load_balancer_ip {
            sets.push(format!("app.service.loadBalancerIp={}", text(ip)));
        }
        if let Some(node) = &self.node {
            sets.push(format!(
                "app.placement.nodeSelector={}",
                json!({ HOSTNAME_LABEL: node })
            ));
        }
        if !self.tolerations.is_empty() {
            let tolerations: Vec<_> = self
                .tolerations
                .iter()
                .map(|(key, effect)| json!({"key": key, "operator": "Exists", "effect": effect}))
                .collect();
            sets.push(format!("app.placement.tolerations={}", json!(tolerations)));
        }
        if !self.features.is_empty() {
            let mut secrets = base.secrets.external_secrets.clone();
            secrets.extend(
                optional_secrets()
                    .into_iter()
                    .filter(|(_, es)| self.features.contains(&es.name.to_string()))
                    .map(|(_, es)| es),
            );
            let list = serde_json::to_string(&secrets).expect("secrets serialize");
            sets.push(format!("secrets.externalSecrets={list}"));
        }
        if let Some(shell) = &self.shell {
            sets.push(format!(
                "shell={}",
                json!({"image": shell.image, "authorizedKeys": shell.authorized_keys})
            ));
        }
        sets
    }

    /// The default profile with the answers (then the command line's `--set`) applied, checked
    /// by the same code as any profile file.
    fn load(
        &self,
        base: &Profile,
        extra: &[String],
    ) -> std::result::Result<Loaded, profile::ProfileError> {
        let mut sets = self.sets(base);
        sets.extend(extra.iter().cloned());
        profile::load(super::DEFAULT_PROFILE, &sets)
    }
}

fn service_type_name(kind: ServiceType) -> &'static str {
    match kind {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    }
}

/// The optional ExternalSecrets guided mode offers, with what each one enables. The app loads
/// them as optional, so a key not (yet) in Infisical never blocks the pod.
fn optional_secrets() -> Vec<(&'static str, ExternalSecret)> {
    let secret = |name: &str, remote: &str, target: &str| -> ExternalSecret {
        serde_json::from_value(json!({
            "name": name,
            "optional": true,
            "keys": [{"remote": remote, "as": target}],
        }))
        .expect("a valid ExternalSecret")
    };
    vec![
        (
            "Brave Search for agents",
            secret(
                "paperclip-brave",
                "BRAVE_SEARCH_KEY_PAPERCLIP",
                "BRAVE_API_KEY",
            ),
        ),
        (
            "email through Resend",
            secret("paperclip-resend", "EMAIL_RESEND_API_KEY", "RESEND_API_KEY"),
        ),
    ]
}

/// Validates input as a value of type `T` (the profile's own parsers, with their messages).
fn valid<T: std::str::FromStr<Err = String>>(input: &str) -> std::result::Result<(), String> {
    input.trim().parse::<T>().map(|_| ())
}

fn text_input<'a>(theme: &'a ColorfulTheme, label: &str, default: &str) -> Input<'a, String> {
    let input = Input::<String>::with_theme(theme).with_prompt(label);
    if default.is_empty() {
        input
    } else {
        input.default(default.to_string())
    }
}

/// Asks every question, offering `previous` as the defaults.
fn ask(previous: &Answers, offered: &Offered, ask_namespace: bool) -> Result<Answers> {
    let theme = ColorfulTheme::default();
    let mut a = previous.clone();
    if ask_namespace {
        a.namespace = prompt(
            Input::<String>::with_theme(&theme)
                .with_prompt("Namespace")
                .default(previous.namespace.clone())
                .validate_with(|s: &String| valid::<DnsLabel>(s))
                .interact_text(),
        )?;
    }
    a.storage_class = ask_storage_class(&theme, previous, offered)?;

    let kinds = [
        ServiceType::ClusterIP,
        ServiceType::NodePort,
        ServiceType::LoadBalancer,
    ];
    let picked = prompt(
        Select::with_theme(&theme)
            .with_prompt("App Service type")
            .items(kinds.map(service_type_name))
            .default(
                kinds
                    .iter()
                    .position(|k| *k == previous.service_type)
                    .unwrap_or(0),
            )
            .interact(),
    )?;
    a.service_type = kinds[picked];
    a.load_balancer_ip = None;
    if a.service_type == ServiceType::LoadBalancer {
        let ip = prompt(
            Input::<String>::with_theme(&theme)
                .with_prompt("Fixed LoadBalancer IP (empty: the cluster picks one)")
                .default(previous.load_balancer_ip.clone().unwrap_or_default())
                .allow_empty(true)
                .show_default(previous.load_balancer_ip.is_some())
                .validate_with(|s: &String| match s.trim() {
                    "" => Ok(()),
                    _ => valid::<IpAddress>(s),
                })
                .interact_text(),
        )?;
        a.load_balancer_ip = Some(ip.trim().to_string()).filter(|ip| !ip.is_empty());
    }
    let url_default = match (&a.load_balancer_ip, &previous.load_balancer_ip) {
        // A new fixed address is where people will open it.
        (Some(ip), old) if old.as_ref() != Some(ip) => format!("http://{ip}:3100"),
        _ => previous.public_url.clone(),
    };
    a.public_url = prompt(
        Input::<String>::with_theme(&theme)
            .with_prompt("Public URL people open")
            .default(url_default)
            .validate_with(|s: &String| valid::<HttpUrl>(s))
            .interact_text(),
    )?;

    ask_node(&theme, previous, offered, &mut a)?;

    let store = |label: &str, default: &str| -> Result<String> {
        prompt(
            text_input(&theme, label, default)
                .validate_with(|s: &String| match s.trim() {
                    "" => Err("a value is needed".to_string()),
                    _ => Ok(()),
                })
                .interact_text(),
        )
        .map(|s| s.trim().to_string())
    };
    a.host_api = prompt(
        Input::<String>::with_theme(&theme)
            .with_prompt("Infisical address")
            .default(previous.host_api.clone())
            .validate_with(|s: &String| valid::<HttpUrl>(s))
            .interact_text(),
    )?;
    a.project = store("Infisical project slug", &previous.project)?;
    a.environment = store("Infisical environment", &previous.environment)?;
    a.secrets_path = store("Infisical folder", &previous.secrets_path)?;

    ask_features(&theme, previous, &mut a)?;
    Ok(a)
}

fn ask_storage_class(
    theme: &ColorfulTheme,
    previous: &Answers,
    offered: &Offered,
) -> Result<Option<String>> {
    if offered.storage_classes.is_empty() {
        let class = prompt(
            text_input(
                theme,
                "Storage class (empty: the cluster's default)",
                previous.storage_class.as_deref().unwrap_or_default(),
            )
            .allow_empty(true)
            .interact_text(),
        )?;
        return Ok(Some(class.trim().to_string()).filter(|c| !c.is_empty()));
    }
    let items: Vec<String> = offered
        .storage_classes
        .iter()
        .map(|(name, default)| match default {
            true => format!("{name} (default)"),
            false => name.clone(),
        })
        .collect();
    let chosen = offered
        .storage_classes
        .iter()
        .position(|(n, _)| Some(n) == previous.storage_class.as_ref())
        .or_else(|| offered.storage_classes.iter().position(|(_, d)| *d))
        .unwrap_or(0);
    let picked = prompt(
        Select::with_theme(theme)
            .with_prompt("Storage class for the volumes")
            .items(&items)
            .default(chosen)
            .interact(),
    )?;
    Ok(Some(offered.storage_classes[picked].0.clone()))
}

fn ask_node(
    theme: &ColorfulTheme,
    previous: &Answers,
    offered: &Offered,
    a: &mut Answers,
) -> Result<()> {
    a.node = None;
    a.tolerations.clear();
    if offered.nodes.is_empty() {
        return Ok(());
    }
    let mut items = vec!["none: any node".to_string()];
    items.extend(offered.nodes.iter().map(|n| {
        if n.taints.is_empty() {
            n.hostname.clone()
        } else {
            format!("{} (tainted)", n.hostname)
        }
    }));
    let chosen = offered
        .nodes
        .iter()
        .position(|n| Some(&n.hostname) == previous.node.as_ref())
        .map_or(0, |i| i + 1);
    let picked = prompt(
        Select::with_theme(theme)
            .with_prompt("Pin the app to a node")
            .items(&items)
            .default(chosen)
            .interact(),
    )?;
    let Some(node) = picked.checked_sub(1).map(|i| &offered.nodes[i]) else {
        return Ok(());
    };
    a.node = Some(node.hostname.clone());
    if node.taints.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = node
        .taints
        .iter()
        .map(|(key, value, effect)| match value {
            Some(v) => format!("{key}={v}:{effect}"),
            None => format!("{key}:{effect}"),
        })
        .collect();
    let tolerate = prompt(
        Confirm::with_theme(theme)
            .with_prompt(format!(
                "{} has taints {}; tolerate them (else the app cannot run there)?",
                node.hostname,
                shown.join(", ")
            ))
            .default(true)
            .interact(),
    )?;
    if tolerate {
        a.tolerations = node
            .taints
            .iter()
            .map(|(key, _, effect)| (key.clone(), effect.clone()))
            .collect();
    }
    Ok(())
}

fn ask_features(theme: &ColorfulTheme, previous: &Answers, a: &mut Answers) -> Result<()> {
    let optional = optional_secrets();
    let mut items: Vec<String> = optional
        .iter()
        .map(|(what, es)| format!("{what} (Secret {}, optional)", es.name))
        .collect();
    items.push("shell sidecar: SSH and mosh into the app's volume".to_string());
    let mut defaults: Vec<bool> = optional
        .iter()
        .map(|(_, es)| previous.features.contains(&es.name.to_string()))
        .collect();
    defaults.push(previous.shell.is_some());
    let picked = prompt(
        MultiSelect::with_theme(theme)
            .with_prompt("Optional features (space toggles, enter accepts)")
            .items(&items)
            .defaults(&defaults)
            .interact(),
    )?;
    a.features = optional
        .iter()
        .enumerate()
        .filter(|(i, _)| picked.contains(i))
        .map(|(_, (_, es))| es.name.to_string())
        .collect();
    a.shell = None;
    if !picked.contains(&optional.len()) {
        return Ok(());
    }
    let image = prompt(
        text_input(
            theme,
            "Shell sidecar image (`paperclipctl image push` prints it)",
            previous.shell.as_ref().map_or("", |s| s.image.as_str()),
        )
        .validate_with(|s: &String| valid::<ImageRef>(s))
        .interact_text(),
    )?;
    let keys = public_keys();
    let authorized_keys = if keys.is_empty() {
        Vec::new()
    } else {
        let items: Vec<String> = keys.iter().map(|(p, _)| p.display().to_string()).collect();
        let picked = prompt(
            MultiSelect::with_theme(theme)
                .with_prompt("Keys allowed to log in to the shell")
                .items(&items)
                .interact(),
        )?;
        picked.into_iter().map(|i| keys[i].1.clone()).collect()
    };
    a.shell = Some(ShellAnswers {
        image: image.trim().to_string(),
        authorized_keys,
    });
    Ok(())
}

/// `~/.ssh/*.pub` with their contents, sorted by path.
fn public_keys() -> Vec<(PathBuf, String)> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(Path::new(&home).join(".ssh")) else {
        return Vec::new();
    };
    let mut keys: Vec<(PathBuf, String)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .filter_map(|p| {
            let key = std::fs::read_to_string(&p).ok()?.trim().to_string();
            (!key.is_empty()).then_some((p, key))
        })
        .collect();
    keys.sort();
    keys
}

/// Asks where to save `profile` (never overwriting without a yes) and writes it there.
fn save(profile: &Profile) -> Result<PathBuf> {
    let theme = ColorfulTheme::default();
    let mut default = DEFAULT_FILE.to_string();
    loop {
        let answer = prompt(
            Input::<String>::with_theme(&theme)
                .with_prompt("Save the profile to")
                .default(default.clone())
                .interact_text(),
        )?;
        let path = PathBuf::from(answer.trim());
        if path.exists() {
            let overwrite = prompt(
                Confirm::with_theme(&theme)
                    .with_prompt(format!("{} exists; overwrite it?", path.display()))
                    .default(false)
                    .interact(),
            )?;
            if !overwrite {
                default = answer.trim().to_string();
                continue;
            }
        }
        std::fs::write(&path, profile_file(profile)?).map_err(Error::Output)?;
        return Ok(path);
    }
}

/// The saved profile: every value spelled out, so the file alone says what gets installed.
fn profile_file(profile: &Profile) -> Result<String> {
    Ok(format!(
        "# Written by `paperclipctl install` from the answers to its questions.\n\
         # Install with it again: paperclipctl install --profile FILE --yes\n{}",
        serde_yaml_ng::to_string(profile)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public key of the form the profile accepts (made for this test, its private half gone).
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEPxhsXrnPYL+93uVN++VwYMfNpkj6eEdb/xaHmRLRdH me@laptop";

    fn base() -> Profile {
        profile::load("default", &[]).unwrap().profile
    }

    fn answers() -> Answers {
        Answers {
            namespace: "agents".into(),
            storage_class: Some("longhorn".into()),
            service_type: ServiceType::LoadBalancer,
            load_balancer_ip: Some("192.168.55.212".into()),
            public_url: "http://192.168.55.212:3100".into(),
            node: Some("gpu-1".into()),
            tolerations: vec![("nvidia.com/gpu".into(), "NoSchedule".into())],
            host_api: "http://infisical.example:8080".into(),
            project: "123".into(),
            environment: "prod".into(),
            secrets_path: "/paperclip".into(),
            features: vec!["paperclip-resend".into()],
            shell: Some(ShellAnswers {
                image: "ghcr.io/me/paperclip-shell:1".into(),
                authorized_keys: vec![KEY.into()],
            }),
        }
    }

    #[test]
    fn answers_become_profile_values() {
        let profile = answers().load(&base(), &[]).unwrap().profile;
        assert_eq!(profile.name, "agents");
        assert_eq!(profile.namespace.to_string(), "agents");
        assert_eq!(profile.storage.class_name.unwrap().to_string(), "longhorn");
        let service = &profile.app.service;
        assert_eq!(service.kind, ServiceType::LoadBalancer);
        assert_eq!(
            service.load_balancer_ip.as_ref().unwrap().to_string(),
            "192.168.55.212"
        );
        assert_eq!(
            profile.app.public_url.to_string(),
            "http://192.168.55.212:3100"
        );
        let placement = &profile.app.placement;
        assert_eq!(placement.node_selector[HOSTNAME_LABEL], "gpu-1");
        assert_eq!(placement.tolerations[0].key, "nvidia.com/gpu");
        let store = &profile.secrets.store;
        assert_eq!(store.project_slug, "123", "a numeric slug stays a string");
        assert_eq!(store.secrets_path, "/paperclip");
        let names: Vec<String> = profile
            .secrets
            .external_secrets
            .iter()
            .map(|es| es.name.to_string())
            .collect();
        assert_eq!(
            names,
            ["paperclip-llm-key", "paperclip-auth", "paperclip-resend"]
        );
        assert!(profile.secrets.external_secrets[2].optional);
        let shell = profile.shell.unwrap();
        assert_eq!(shell.image.to_string(), "ghcr.io/me/paperclip-shell:1");
        assert_eq!(shell.authorized_keys, [KEY]);
    }

    #[test]
    fn untouched_answers_are_the_default_profile() {
        let base = base();
        let profile = Answers::from_profile(&base)
            .load(&base, &[])
            .unwrap()
            .profile;
        assert_eq!(
            serde_yaml_ng::to_string(&Profile {
                name: base.name.clone(),
                ..profile
            })
            .unwrap(),
            serde_yaml_ng::to_string(&Profile {
                name: base.name.clone(),
                ..base
            })
            .unwrap()
        );
    }

    #[test]
    fn command_line_sets_win_and_bad_combinations_are_refused() {
        let mut a = answers();
        let extra = ["app.service.port=8080".to_string()];
        let profile = a.load(&base(), &extra).unwrap().profile;
        assert_eq!(profile.app.service.port, 8080);
        // A fixed IP on a ClusterIP Service is the profile's own validation error.
        a.service_type = ServiceType::ClusterIP;
        let error = a.load(&base(), &[]).unwrap_err().to_string();
        assert!(
            error.contains("loadBalancerIp") || error.contains("LoadBalancer"),
            "{error}"
        );
    }

    #[test]
    fn the_saved_file_loads_back_as_the_same_profile() {
        let profile = answers().load(&base(), &[]).unwrap().profile;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, profile_file(&profile).unwrap()).unwrap();
        let again = profile::load(path.to_str().unwrap(), &[]).unwrap().profile;
        assert_eq!(
            serde_yaml_ng::to_string(&again).unwrap(),
            serde_yaml_ng::to_string(&profile).unwrap()
        );
    }
}
