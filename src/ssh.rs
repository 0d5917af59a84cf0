//! Reaching the shell sidecar's sshd: directly at its LoadBalancer IP when the profile publishes
//! one, otherwise through a port-forward over the API server (so a cluster with no reachable
//! Service address still gets a shell), and the `~/.ssh/config` block that makes plain `ssh
//! paperclip-shell` do the same.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::cluster::forward;
use crate::error::{Error, Result};
use crate::onboarding;
use crate::profile::model::{ServiceType, Shell};
use crate::render::SSHD_PORT;

/// The `Host` alias of the config block.
pub const HOST_ALIAS: &str = "paperclip-shell";
/// The login of the sidecar (uid 1000).
pub const USER: &str = "agent";

/// How ssh reaches the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The sidecar's LoadBalancer Service.
    Direct { ip: String, port: u16 },
    /// A port-forward through the API server to the pod's sshd.
    PortForward,
}

impl Route {
    pub fn of(shell: &Shell) -> Route {
        let service = &shell.service;
        match (&service.load_balancer_ip, service.kind) {
            (Some(ip), ServiceType::LoadBalancer) => Route::Direct {
                ip: ip.to_string(),
                port: service.ssh_port,
            },
            _ => Route::PortForward,
        }
    }
}

/// The mosh command for a published UDP range; mosh needs the Service's address, so only with a
/// direct route.
pub fn mosh_command(shell: &Shell) -> Option<String> {
    let Route::Direct { ip, port } = Route::of(shell) else {
        return None;
    };
    let range = shell.service.mosh_ports.as_ref()?.ports();
    Some(format!(
        "mosh --ssh='ssh -p {port}' -p {}:{} {USER}@{ip}",
        range.start(),
        range.end()
    ))
}

/// The `Host paperclip-shell` block; `proxy` is the command line a port-forward route runs as
/// `ProxyCommand` (it carries the connection on its stdin and stdout). ssh expands `%` tokens
/// in `ProxyCommand`, so a literal `%` (in a path, say) is written `%%`; callers refuse control
/// characters first (see [`refuse_control`]), which would start lines of their own.
pub fn config_block(route: &Route, proxy: &str) -> String {
    let mut block = format!("Host {HOST_ALIAS}\n");
    match route {
        Route::Direct { ip, port } => {
            block.push_str(&format!("    HostName {ip}\n    Port {port}\n"));
        }
        Route::PortForward => {
            block.push_str(&format!("    HostName {HOST_ALIAS}\n"));
            block.push_str(&format!("    ProxyCommand {}\n", proxy.replace('%', "%%")));
        }
    }
    block.push_str(&format!("    User {USER}\n"));
    block
}

/// Fails when `value` (given as `what`, e.g. `--context`) holds a control character: a newline
/// in `~/.ssh/config` starts a directive of its own (a `Host *` with a `ProxyCommand` runs
/// anything for every host).
pub fn refuse_control(what: &str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(Error::usage(
            format!(
                "{what} holds the control character {:?}, which cannot go into an ssh config",
                c
            ),
            format!("pass {what} without newlines or other control characters"),
        )),
    }
}

/// The options this block writes: the lines of an existing block that the new one replaces.
const OUR_OPTIONS: [&str; 4] = ["hostname", "port", "proxycommand", "user"];

/// `config` with the `Host paperclip-shell` block replaced by `block` in place, or appended when
/// there is none. Only the options the block sets are replaced: comments, blank lines and
/// options someone added under the alias stay where they were, as does every other line.
pub fn update_config(config: &str, block: &str) -> String {
    let first_word = |line: &str| {
        line.split(|c: char| c.is_whitespace() || c == '=')
            .find(|w| !w.is_empty())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let is_ours = |line: &str| {
        let mut words = line.split_whitespace();
        words.next().is_some_and(|w| w.eq_ignore_ascii_case("host"))
            && words.next() == Some(HOST_ALIAS)
            && words.next().is_none()
    };
    let mut out = String::new();
    let mut replaced = false;
    let mut in_ours = false;
    for line in config.lines() {
        let word = first_word(line);
        if word == "host" || word == "match" {
            in_ours = false;
        }
        if !replaced && is_ours(line) {
            out.push_str(block);
            replaced = true;
            in_ours = true;
            continue;
        }
        if in_ours && OUR_OPTIONS.contains(&word.as_str()) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(block);
    }
    out
}

/// Opens a port-forward to the running app pod's sshd port.
async fn forward(
    pods: &Api<Pod>,
    pod: &str,
    namespace: &str,
) -> Result<impl AsyncRead + AsyncWrite + Unpin + use<>> {
    let (forward, stream) = forward::open(pods, pod, namespace, SSHD_PORT as u16).await?;
    forward.detach();
    Ok(stream)
}

/// The running pod that carries the shell sidecar (it shares the app's pod).
pub async fn shell_pod(client: &kube::Client, namespace: &str) -> Result<(Api<Pod>, String)> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let pod = onboarding::running_app_pod(&pods, namespace, "reach the shell sidecar in").await?;
    Ok((pods, pod))
}

/// Carries one ssh connection over stdin and stdout (the `ProxyCommand` side).
pub async fn stdio(client: &kube::Client, namespace: &str) -> Result<()> {
    let (pods, pod) = shell_pod(client, namespace).await?;
    let mut remote = forward(&pods, &pod, namespace).await?;
    let mut local = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
    tokio::io::copy_bidirectional(&mut local, &mut remote)
        .await
        .map_err(Error::Output)?;
    Ok(())
}

/// Listens on 127.0.0.1 at a free port and forwards every connection to the sidecar's sshd,
/// until the returned task is aborted. Returns the port. A connection that cannot be forwarded
/// is handed to `failed`: the caller decides how to show it, since ssh owns the terminal.
pub async fn listen(
    client: &kube::Client,
    namespace: &str,
    failed: impl Fn(Error) + Clone + Send + 'static,
) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let (pods, pod) = shell_pod(client, namespace).await?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(Error::Output)?;
    let port = listener.local_addr().map_err(Error::Output)?.port();
    let namespace = namespace.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let (pods, pod, namespace) = (pods.clone(), pod.clone(), namespace.clone());
            let failed = failed.clone();
            tokio::spawn(async move {
                match forward(&pods, &pod, &namespace).await {
                    Ok(mut remote) => {
                        let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                    }
                    Err(e) => failed(e),
                }
            });
        }
    });
    Ok((port, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosh_is_offered_only_where_its_udp_ports_are_reachable() {
        let mut shell = crate::profile::load("frank", &[])
            .unwrap()
            .profile
            .shell
            .unwrap();
        assert_eq!(
            mosh_command(&shell).as_deref(),
            Some("mosh --ssh='ssh -p 22' -p 60000:60015 agent@192.168.55.221")
        );
        shell.service.kind = ServiceType::ClusterIP;
        assert_eq!(mosh_command(&shell), None);
    }

    #[test]
    fn a_percent_in_the_proxy_command_is_not_expanded_by_ssh() {
        let block = config_block(&Route::PortForward, "'/opt/100%/paperclipctl' ssh --stdio");
        assert!(
            block.contains("ProxyCommand '/opt/100%%/paperclipctl' ssh --stdio\n"),
            "{block}"
        );
        let refused = refuse_control("--context", "prod\nHost *").unwrap_err();
        assert_eq!(refused.exit_code(), crate::error::exit::INVALID_INPUT);
        assert!(
            refused
                .to_string()
                .contains("--context holds the control character")
        );
    }

    #[test]
    fn updating_replaces_our_block_in_place_and_keeps_other_hosts() {
        let block = config_block(
            &Route::Direct {
                ip: "10.0.0.9".into(),
                port: 22,
            },
            "",
        );
        let config =
            "Host a\n    User x\n\nHost paperclip-shell\n    HostName old\n\nHost b\n    Port 2\n";
        let updated = update_config(config, &block);
        assert_eq!(
            updated,
            "Host a\n    User x\n\nHost paperclip-shell\n    HostName 10.0.0.9\n    Port 22\n    User agent\n\nHost b\n    Port 2\n"
        );
        assert_eq!(update_config(&updated, &block), updated);
        // Comments and options added under the alias stay; only the block's own options go.
        let commented = "Host paperclip-shell\n    HostName old\n    IdentityFile ~/.ssh/k\n# keep me\n\n# and me\nHost b\n";
        assert_eq!(
            update_config(commented, &block),
            format!("{block}    IdentityFile ~/.ssh/k\n# keep me\n\n# and me\nHost b\n")
        );
        let appended = update_config("Host a\n    User x\n", &block);
        assert_eq!(appended, format!("Host a\n    User x\n\n{block}"));
    }
}
