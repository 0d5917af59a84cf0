//! Checks that need more than one field (or a whole list) and so cannot live in a single type's
//! deserializer. Each failure names the field to change.

use std::collections::BTreeSet;

use super::error::ProfileError;
use super::locate::{format_path, locate, parse_path};
use super::model::{DeploymentMode, Inventory, Profile, ServiceType, TolerationOperator};
use crate::render::meta::{SHELL_ALERTS_SECRET, SHELL_PULL_SECRET};

/// One failed check: the field it is about, what is wrong, and how to fix it.
#[derive(Debug)]
pub struct Issue {
    pub path: String,
    pub message: String,
    pub help: String,
}

impl Issue {
    fn new(path: impl Into<String>, message: impl Into<String>, help: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// The error for this issue, pointing at the field's node in `text` (read from `file`).
    pub fn at_file(self, file: &str, text: &str) -> ProfileError {
        let segments = parse_path(&self.path);
        let error = ProfileError::new(file.to_string(), format_path(&segments), self.message)
            .with_help(self.help);
        match locate(text, &segments) {
            Some((offset, line, col)) => error.located(file, text, offset, line, col),
            None => error,
        }
    }
}

/// Variables the app container gets from paperclipctl itself; a profile must not set them.
const MANAGED_ENV: &[&str] = &[
    "DATABASE_URL",
    "PG_PASSWORD",
    "PAPERCLIP_DEPLOYMENT_MODE",
    "PAPERCLIP_DEPLOYMENT_EXPOSURE",
    "PAPERCLIP_PUBLIC_URL",
    "PAPERCLIP_ALLOWED_HOSTNAMES",
    "PAPERCLIP_HOME",
    "HOST",
    "PORT",
    "PAPERCLIP_AUTH_BASE_URL_MODE",
    "PAPERCLIP_SECRETS_STRICT_MODE",
];

pub fn check(p: &Profile) -> Result<(), Issue> {
    check_services(p)?;
    check_app(p)?;
    check_ingress(p)?;
    check_secrets(p)?;
    check_shell(p)
}

fn check_services(p: &Profile) -> Result<(), Issue> {
    if p.app.service.load_balancer_ip.is_some() && p.app.service.kind != ServiceType::LoadBalancer {
        return Err(Issue::new(
            "app.service.loadBalancerIp",
            "a fixed loadBalancerIp needs a Service of type LoadBalancer",
            "set app.service.type: LoadBalancer, or remove loadBalancerIp",
        ));
    }
    if p.app.service.port == 0 {
        return Err(Issue::new(
            "app.service.port",
            "port 0 is not a valid port",
            "use 1-65535, e.g. 3100",
        ));
    }
    let Some(shell) = &p.shell else { return Ok(()) };
    if shell.service.load_balancer_ip.is_some() && shell.service.kind != ServiceType::LoadBalancer {
        return Err(Issue::new(
            "shell.service.loadBalancerIp",
            "a fixed loadBalancerIp needs a Service of type LoadBalancer",
            "set shell.service.type: LoadBalancer, or remove loadBalancerIp",
        ));
    }
    if let (Some(app_ip), Some(shell_ip)) = (
        &p.app.service.load_balancer_ip,
        &shell.service.load_balancer_ip,
    ) && app_ip == shell_ip
    {
        return Err(Issue::new(
            "shell.service.loadBalancerIp",
            format!("{shell_ip} is already the app's loadBalancerIp"),
            "give the shell its own address so SSH and the API route separately",
        ));
    }
    if shell.service.ssh_port == 0 {
        return Err(Issue::new(
            "shell.service.sshPort",
            "port 0 is not a valid port",
            "use 1-65535, e.g. 22",
        ));
    }
    Ok(())
}

fn check_app(p: &Profile) -> Result<(), Issue> {
    // The pod must listen on 0.0.0.0 for its Service and probes; upstream refuses that bind in
    // local_trusted mode ("local_trusted requires server.bind=loopback", shared
    // network-bind.js), so such a pod would crash-loop from its first start.
    if p.app.deployment_mode == DeploymentMode::LocalTrusted {
        return Err(Issue::new(
            "app.deploymentMode",
            "local_trusted cannot run in a pod: upstream binds it to loopback only and refuses \
             the 0.0.0.0 bind the Service and probes need (\"local_trusted requires \
             server.bind=loopback\")",
            "use deploymentMode: authenticated (sign-in required; the install prints the first \
             admin's invite URL)",
        ));
    }
    for (name, probe) in [
        ("readiness", &p.app.probes.readiness),
        ("liveness", &p.app.probes.liveness),
    ] {
        let http = probe.kind == super::model::ProbeType::Http;
        if http
            && probe
                .path
                .as_deref()
                .is_none_or(|path| !path.starts_with('/'))
        {
            return Err(Issue::new(
                format!("app.probes.{name}.path"),
                "an http probe needs a path starting with '/'",
                "use path: /api/health",
            ));
        }
        if !http && (probe.path.is_some() || probe.host.is_some()) {
            return Err(Issue::new(
                format!("app.probes.{name}.type"),
                "path and host only apply to an http probe",
                "set type: http, or remove path and host",
            ));
        }
    }
    for (i, host) in p.app.allowed_hostnames.iter().enumerate() {
        if !is_hostname(host) {
            return Err(Issue::new(
                format!("app.allowedHostnames[{i}]"),
                format!("{host:?} is not a host name or IP address"),
                "list bare host names such as paperclip.example.com (no scheme, port or path)",
            ));
        }
    }
    for name in p.app.env.keys() {
        if looks_secret(name.as_str()) {
            return Err(Issue::new(
                format!("app.env.{name}"),
                format!(
                    "{name} looks like a credential, and plain env values are printed in plans"
                ),
                "keep it in Infisical and list it under secrets.externalSecrets",
            ));
        }
        if MANAGED_ENV.contains(&name.as_str()) {
            return Err(Issue::new(
                format!("app.env.{name}"),
                format!("{name} is set by paperclipctl from other profile fields"),
                "remove it here and set the profile field it comes from (see README: profile reference)",
            ));
        }
    }
    for (section, placement) in [
        ("app", &p.app.placement),
        ("database", &p.database.placement),
    ] {
        for (i, t) in placement.tolerations.iter().enumerate() {
            if t.operator == TolerationOperator::Exists && t.value.is_some() {
                return Err(Issue::new(
                    format!("{section}.placement.tolerations[{i}].value"),
                    "a toleration with operator Exists cannot have a value",
                    "remove value, or set operator: Equal",
                ));
            }
        }
    }
    let declared: BTreeSet<&str> = p
        .secrets
        .external_secrets
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for (i, env) in p.app.env_from.iter().flatten().enumerate() {
        if !declared.contains(env.secret.as_str()) && !env.optional {
            return Err(Issue::new(
                format!("app.envFrom[{i}].secret"),
                format!(
                    "{} is not one of the profile's ExternalSecrets, so nothing creates it",
                    env.secret
                ),
                "add it to secrets.externalSecrets, or mark it optional: true so a missing Secret \
                 does not block the rollout",
            ));
        }
    }
    Ok(())
}

/// The Ingress's hosts must be names private mode can allow-list, and a public URL the profile
/// sets must be the one the Ingress serves (its first host; https with TLS).
fn check_ingress(p: &Profile) -> Result<(), Issue> {
    let Some(ingress) = &p.app.ingress else {
        return Ok(());
    };
    if ingress.hosts.is_empty() {
        return Err(Issue::new(
            "app.ingress.hosts",
            "an Ingress needs at least one host",
            "list the names users open, e.g. hosts: [paperclip.example.com]",
        ));
    }
    for (i, host) in ingress.hosts.iter().enumerate() {
        if !is_hostname(host) || host.parse::<std::net::IpAddr>().is_ok() {
            return Err(Issue::new(
                format!("app.ingress.hosts[{i}]"),
                format!("{host:?} is not a DNS name an Ingress can route"),
                "list bare DNS names such as paperclip.example.com (no scheme, port, path, IP \
                 address or wildcard)",
            ));
        }
    }
    if let Some(tls) = &ingress.tls
        && tls.secret_name.is_none()
        && tls.cluster_issuer.is_none()
    {
        return Err(Issue::new(
            "app.ingress.tls",
            "tls names neither a certificate Secret nor an issuer",
            "set tls.secretName to an existing kubernetes.io/tls Secret, or tls.clusterIssuer \
             to a cert-manager ClusterIssuer",
        ));
    }
    let url = p.app.ingress_url().expect("hosts is not empty");
    let public = &p.app.public_url;
    let scheme = |u: &str| u.split_once("://").map(|(s, _)| s.to_string());
    let same = public.host() == ingress.hosts[0] && scheme(public.as_str()) == scheme(&url);
    if public.host() != "localhost" && !same {
        return Err(Issue::new(
            "app.publicUrl",
            format!("{public} is not what the Ingress serves: {url}"),
            format!("remove publicUrl (it then follows the Ingress), or set it to {url}"),
        ));
    }
    Ok(())
}

fn check_secrets(p: &Profile) -> Result<(), Issue> {
    let store = &p.secrets.store;
    if !store.secrets_path.starts_with('/') {
        return Err(Issue::new(
            "secrets.store.secretsPath",
            format!(
                "{:?} is not an absolute Infisical folder path",
                store.secrets_path
            ),
            "start it with '/', e.g. /paperclip",
        ));
    }
    for (field, value) in [
        ("projectSlug", &store.project_slug),
        ("environmentSlug", &store.environment_slug),
    ] {
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(Issue::new(
                format!("secrets.store.{field}"),
                format!("{value:?} is not a slug"),
                "use the slug shown in Infisical's project settings, e.g. paperclip or prod",
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (i, es) in p.secrets.external_secrets.iter().enumerate() {
        if !names.insert(es.name.as_str()) {
            return Err(Issue::new(
                format!("secrets.externalSecrets[{i}].name"),
                format!("a second ExternalSecret named {}", es.name),
                "every ExternalSecret needs its own name",
            ));
        }
        if es.keys.is_empty() {
            return Err(Issue::new(
                format!("secrets.externalSecrets[{i}].keys"),
                format!("ExternalSecret {} has no keys", es.name),
                "list at least one key: - remote: NAME_IN_INFISICAL",
            ));
        }
        if let Some(name) = es.static_values.keys().find(|k| looks_secret(k.as_str())) {
            return Err(Issue::new(
                format!("secrets.externalSecrets[{i}].static.{name}"),
                format!("{name} looks like a credential, and static values are printed in plans"),
                "keep it in Infisical and list it under keys: - remote: NAME",
            ));
        }
        let mut targets = BTreeSet::new();
        for (j, key) in es.keys.iter().enumerate() {
            if !targets.insert(key.target().as_str()) || es.static_values.contains_key(key.target())
            {
                return Err(Issue::new(
                    format!("secrets.externalSecrets[{i}].keys[{j}]"),
                    format!("{} is written twice into Secret {}", key.target(), es.name),
                    "give each key its own `as:` name",
                ));
            }
        }
    }
    Ok(())
}

fn check_shell(p: &Profile) -> Result<(), Issue> {
    let Some(shell) = &p.shell else { return Ok(()) };
    if let Some(pull) = &shell.pull_secret {
        let image_registry = shell.image.reference().registry().to_string();
        if pull.registry.as_str() != image_registry {
            return Err(Issue::new(
                "shell.pullSecret.registry",
                format!(
                    "the login is for {}, but shell.image comes from {image_registry}",
                    pull.registry
                ),
                format!("set registry: {image_registry}, the host of shell.image"),
            ));
        }
        if pull.username_key == pull.password_key {
            return Err(Issue::new(
                "shell.pullSecret.passwordKey",
                format!("{} is also the usernameKey", pull.password_key),
                "name two Infisical keys, e.g. usernameKey: GHCR_USERNAME, passwordKey: GHCR_TOKEN",
            ));
        }
        if let Some(i) = p
            .secrets
            .external_secrets
            .iter()
            .position(|es| es.name.as_str() == SHELL_PULL_SECRET)
        {
            return Err(Issue::new(
                format!("secrets.externalSecrets[{i}].name"),
                format!("{SHELL_PULL_SECRET} is the name of the shell's image pull secret"),
                "give this ExternalSecret another name",
            ));
        }
    }
    check_inventory(&shell.inventory)?;
    if let Some(bundle) = &shell.ca_bundle
        && (!bundle.contains("-----BEGIN CERTIFICATE-----") || bundle.contains("PRIVATE KEY"))
    {
        return Err(Issue::new(
            "shell.caBundle",
            "not a PEM certificate bundle",
            "paste the certificates (-----BEGIN CERTIFICATE----- blocks), never a private key",
        ));
    }
    for name in shell.env.keys() {
        let alert_setting = ["TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"].contains(&name.as_str());
        if alert_setting || looks_secret(name.as_str()) {
            return Err(Issue::new(
                format!("shell.env.{name}"),
                format!(
                    "{name} looks like a credential, and plain env values are printed in plans"
                ),
                "keep alert settings in Infisical and name their keys in shell.alerts.telegram",
            ));
        }
    }
    if let Some(alerts) = &shell.alerts {
        let telegram = &alerts.telegram;
        if telegram.bot_token_key == telegram.chat_id_key {
            return Err(Issue::new(
                "shell.alerts.telegram.chatIdKey",
                format!("{} is also the botTokenKey", telegram.chat_id_key),
                "name two Infisical keys, e.g. botTokenKey: TELEGRAM_BOT_TOKEN, chatIdKey: TELEGRAM_CHAT_ID",
            ));
        }
        if let Some(i) = p
            .secrets
            .external_secrets
            .iter()
            .position(|es| es.name.as_str() == SHELL_ALERTS_SECRET)
        {
            return Err(Issue::new(
                format!("secrets.externalSecrets[{i}].name"),
                format!("{SHELL_ALERTS_SECRET} is the name of the shell's alert settings"),
                "give this ExternalSecret another name",
            ));
        }
    }
    for (i, key) in shell.authorized_keys.iter().enumerate() {
        let mut parts = key.split_whitespace();
        let (kind, body) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let known =
            kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
        if !known || body.len() < 16 {
            return Err(Issue::new(
                format!("shell.authorizedKeys[{i}]"),
                "not an OpenSSH public key",
                "paste one line of a .pub file, e.g. `ssh-ed25519 AAAA… you@laptop` (never a private key)",
            ));
        }
    }
    Ok(())
}

/// Each inventory entry becomes one argument of a package manager's command line: it must be
/// one word that cannot be read as an option, and no tool may be both wanted and removed.
fn check_inventory(inventory: &Inventory) -> Result<(), Issue> {
    for (list, tools) in inventory.lists() {
        for (i, tool) in tools.iter().enumerate() {
            let path = format!("shell.inventory.{list}[{i}]");
            if tool.is_empty() || tool.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Issue::new(
                    path,
                    format!("{tool:?} is not a tool name"),
                    "one package per entry, e.g. ripgrep, @openai/codex or python@3.12",
                ));
            }
            if tool.starts_with('-') {
                return Err(Issue::new(
                    path,
                    format!("{tool} would be read as an option of the package manager"),
                    "list package names only; options are not supported",
                ));
            }
        }
    }
    let lists = inventory.lists();
    let (wanted, removed) = lists.split_at(4);
    for ((manager, tools), (_, gone)) in wanted.iter().zip(removed) {
        if let Some(i) = gone.iter().position(|tool| tools.contains(tool)) {
            return Err(Issue::new(
                format!("shell.inventory.removed.{manager}[{i}]"),
                format!("{} is also listed under {manager}", gone[i]),
                "keep the tool in one list: installed or removed",
            ));
        }
    }
    Ok(())
}

/// Whether a variable name says it holds a credential (static values end up in plan output).
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|word| upper.split(['_', '-', '.']).any(|part| part == *word))
}

fn is_hostname(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }))
}
